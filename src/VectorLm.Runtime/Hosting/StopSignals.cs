using System.Runtime.InteropServices;

namespace VectorLm.Hosting;

/// <summary>
/// Turns SIGINT (Ctrl+C) and SIGTERM (kill, scancel, the launcher) into a stop request: the first one cancels
/// <see cref="Token"/>, which the training loop and every collective observe; a second one ends the process at
/// once, dying of that signal as if no handler were installed. A signal that arrives within
/// <see cref="DuplicateWindow"/> of the first counts as the same request: Ctrl+C in a terminal reaches every
/// process of the foreground group, and the launcher forwards the one it got too.
/// </summary>
internal sealed class StopSignals : IDisposable
{
    /// <summary>Signals this close to the first are one request (the terminal's and the launcher's copies).</summary>
    public static readonly TimeSpan DuplicateWindow = TimeSpan.FromSeconds(1);

    readonly CancellationTokenSource _cts = new();
    readonly PosixSignalRegistration[] _registrations;
    readonly Action<int> _killNow;
    readonly Func<DateTime> _clock;
    readonly object _lock = new();
    DateTime _first;

    /// <param name="killNow">Ends the process by a signal; null: restore its default action and raise it.</param>
    /// <param name="clock">The time now (tests step it); null: the real clock.</param>
    /// <param name="register">False for tests that call <see cref="OnSignal"/> themselves.</param>
    public StopSignals(Action<int>? killNow = null, Func<DateTime>? clock = null, bool register = true)
    {
        _killNow = killNow ?? DieBySignal;
        _clock = clock ?? (() => DateTime.UtcNow);
        _registrations = register && (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
            ? [Register(PosixSignal.SIGINT), Register(PosixSignal.SIGTERM)]
            : [];
    }

    /// <summary>Cancelled by the first stop signal.</summary>
    public CancellationToken Token => _cts.Token;

    /// <summary>The signal that asked to stop (<see cref="Posix.SIGINT"/> or <see cref="Posix.SIGTERM"/>), or 0.</summary>
    public int Signal { get; private set; }

    /// <summary>The exit status a process killed by <see cref="Signal"/> reports, as shells do: 130 or 143.</summary>
    public int ExitCode => 128 + Signal;

    /// <summary>Waits up to <paramref name="time"/> for a stop signal; true when one came.</summary>
    public bool AwaitSignal(TimeSpan time)
    {
        _cts.Token.WaitHandle.WaitOne(time);
        return Signal != 0;
    }

    PosixSignalRegistration Register(PosixSignal signal) => PosixSignalRegistration.Create(signal, c =>
    {
        c.Cancel = true; // the default would end the process before the loop saw the request
        OnSignal(signal == PosixSignal.SIGINT ? Posix.SIGINT : Posix.SIGTERM);
    });

    /// <summary>Handles one delivery of <paramref name="signal"/>.</summary>
    internal void OnSignal(int signal)
    {
        bool kill;
        lock (_lock)
        {
            var now = _clock();
            if (Signal == 0)
            {
                Signal = signal;
                _first = now;
                kill = false;
            }
            else kill = now - _first >= DuplicateWindow;
        }
        if (kill)
        {
            Console.Error.WriteLine($"second stop signal: exiting now");
            _killNow(signal);
        }
        else if (!_cts.IsCancellationRequested)
        {
            Console.Error.WriteLine($"{Posix.SignalName(signal)}: stopping (send it again to exit at once)");
            _cts.Cancel();
        }
    }

    static void DieBySignal(int signal)
    {
        Console.Error.Flush();
        Posix.signal(signal, Posix.SIG_DFL);
        Posix.kill(Environment.ProcessId, signal);
        Thread.Sleep(Timeout.Infinite); // the signal ends the process while this thread waits
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _cts.Dispose();
    }
}
