using System.Diagnostics;

namespace VectorLm.Distributed.Nccl;

/// <summary>
/// Keeps device collectives from hanging a job: NCCL kernels wait for their peers forever, so a rank that died
/// or took another path leaves the others blocked inside CUDA. A thread polls what the collectives queued so far:
/// each is marked complete by a CUDA event recorded after it, and the communicator's asynchronous error is read.
/// When the oldest one is older than the collective timeout, or NCCL reports an error, the communicator is aborted
/// (its kernels return), the failure is recorded so the next collective throws it, and <c>onFailure</c> runs.
/// </summary>
internal sealed class NcclWatchdog : IDisposable
{
    /// <summary>What the watchdog needs of CUDA and NCCL; tests pass a fake.</summary>
    internal interface IDevice
    {
        /// <summary>Called once on the watchdog thread before it polls (makes the CUDA context current).</summary>
        void AttachThread();

        /// <summary>A marker queued on the collective's stream after it; complete once the collective is.</summary>
        nint RecordCompletion();

        bool IsComplete(nint marker);

        void Release(nint marker);

        /// <summary><c>ncclCommGetAsyncError</c>.</summary>
        NcclResult AsyncError();

        /// <summary><c>ncclCommAbort</c>: ends the communicator's kernels and frees it.</summary>
        void Abort();
    }

    readonly IDevice _device;
    readonly Func<string> _describeRanks;
    readonly Action<string> _onFailure;
    readonly TimeSpan _poll;
    readonly Queue<(nint Marker, string What, long Started)> _pending = new();
    readonly Thread _thread;
    readonly object _lock = new();
    readonly ManualResetEventSlim _wake = new();
    CancellationTokenRegistration _stopRegistration;
    volatile string? _failure;
    volatile bool _disposed;
    bool _aborted;

    /// <param name="device">The communicator and its stream.</param>
    /// <param name="timeout">How long a queued collective may take; the job's collective timeout.</param>
    /// <param name="describeRanks">Says which ranks seem gone (for the message), e.g. from the tcp control group.</param>
    /// <param name="onFailure">Runs once, on the watchdog thread, after the abort.</param>
    /// <param name="poll">How often to look; null: 100 ms.</param>
    public NcclWatchdog(IDevice device, TimeSpan timeout, Func<string> describeRanks, Action<string> onFailure, TimeSpan? poll = null)
    {
        _device = device;
        Timeout = timeout;
        _describeRanks = describeRanks;
        _onFailure = onFailure;
        _poll = poll ?? TimeSpan.FromMilliseconds(100);
        _thread = new Thread(Loop) { IsBackground = true, Name = "vectorlm-nccl-watchdog" };
        _thread.Start();
    }

    public TimeSpan Timeout { get; }

    /// <summary>Why the communicator was aborted; null while it is healthy.</summary>
    public string? Failure => _failure;

    /// <summary>Throws the recorded failure: no collective may run on an aborted communicator.</summary>
    public void ThrowIfFailed()
    {
        if (_failure is { } f) throw new CollectiveTimeoutException(f);
    }

    /// <summary>Starts timing a collective the caller just queued; <paramref name="what"/> names it in the error.</summary>
    public void Track(string what)
    {
        var marker = _device.RecordCompletion();
        lock (_lock) _pending.Enqueue((marker, what, Stopwatch.GetTimestamp()));
    }

    /// <summary>Once <paramref name="token"/> is cancelled the communicator is aborted, so a rank stuck in a kernel gets out.</summary>
    public void ObserveCancellation(CancellationToken token) =>
        _stopRegistration = token.Register(() => Fail("the job was asked to stop", notify: false));

    void Loop()
    {
        _device.AttachThread();
        while (!_disposed && _failure is null)
        {
            _wake.Wait(_poll);
            if (_disposed || _failure is not null) return;
            var error = _device.AsyncError();
            string? oldest;
            long started;
            lock (_lock)
            {
                // One stream runs its collectives in order, so they complete in order.
                while (_pending.Count > 0 && _device.IsComplete(_pending.Peek().Marker))
                    _device.Release(_pending.Dequeue().Marker);
                (oldest, started) = _pending.Count > 0 ? (_pending.Peek().What, _pending.Peek().Started) : (null, 0L);
            }
            if (error is not (NcclResult.Success or NcclResult.InProgress))
            {
                Fail($"NCCL reported {NcclException.Name(error)} ({NcclNative.Describe(error)}) " +
                     $"{(oldest is null ? "after the last collective" : $"during {oldest}")}. {_describeRanks()}", notify: true);
                return;
            }
            if (oldest is not null && Stopwatch.GetElapsedTime(started) > Timeout)
            {
                Fail($"{oldest} did not complete within {Timeout.TotalSeconds:0.#} s (the collective timeout). {_describeRanks()}", notify: true);
                return;
            }
        }
    }

    void Fail(string message, bool notify)
    {
        lock (_lock)
        {
            if (_aborted) return;
            _aborted = true;
            _failure ??= message + " The NCCL communicator was aborted.";
        }
        _wake.Set();
        _device.Abort();
        if (notify) _onFailure(_failure!);
    }

    /// <summary>True once the communicator was aborted here; the owner must not destroy it too.</summary>
    public bool Aborted
    {
        get { lock (_lock) return _aborted; }
    }

    public void Dispose()
    {
        _disposed = true;
        _stopRegistration.Dispose();
        _wake.Set();
        if (Thread.CurrentThread != _thread) _thread.Join(TimeSpan.FromSeconds(5));
        lock (_lock)
            while (_pending.Count > 0 && !_aborted) _device.Release(_pending.Dequeue().Marker);
    }
}
