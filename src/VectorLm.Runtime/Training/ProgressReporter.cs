using System.Globalization;
using System.Text;
using Spectre.Console;

namespace VectorLm.Training;

/// <summary>Settings of a <see cref="ProgressReporter"/>.</summary>
public sealed record ProgressOptions
{
    /// <summary>Where plain lines go; null: standard output.</summary>
    public TextWriter? Output { get; init; }

    /// <summary>Live bar (true) or plain lines (false); null: a live bar only when standard output is an interactive terminal.</summary>
    public bool? Live { get; init; }

    /// <summary>Least time between two plain lines (the first and last step are always printed); zero prints every step.</summary>
    public TimeSpan PlainInterval { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// Progress of a training run on rank 0: a live Spectre.Console bar (step, chosen values, tokens/s, ETA) on a
/// terminal, plain periodic lines when output is redirected (CI logs, ranks under the launcher); silent on other ranks.
/// </summary>
/// <remarks>Use <see cref="WriteLine"/> for other output while the bar is live: it prints above the bar.</remarks>
public sealed class ProgressReporter : IDisposable
{
    readonly int _totalSteps;
    readonly bool _enabled, _live;
    readonly TextWriter _output;
    readonly TimeSpan _interval;
    readonly System.Diagnostics.Stopwatch _clock = new();
    readonly string _title;
    long _tokens;
    int _startStep = -1;
    TimeSpan _lastPlain = TimeSpan.MinValue;
    readonly Task? _liveLoop;
    readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly TaskCompletionSource<ProgressTask> _task = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A reporter for <paramref name="totalSteps"/> steps; it prints only where <paramref name="isMainRank"/>.</summary>
    public ProgressReporter(string title, int totalSteps, bool isMainRank, ProgressOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(totalSteps, 1);
        options ??= new ProgressOptions();
        _title = title;
        _totalSteps = totalSteps;
        _enabled = isMainRank;
        _output = options.Output ?? Console.Out;
        _interval = options.PlainInterval;
        _clock.Start(); // from construction: the first step's time counts
        _live = _enabled && (options.Live ?? (options.Output is null && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive));
        if (_live)
        {
            _liveLoop = Task.Run(() => AnsiConsole.Progress()
                .AutoClear(false)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                    new RemainingTimeColumn(), new SpinnerColumn())
                .StartAsync(async ctx =>
                {
                    _task.SetResult(ctx.AddTask(Markup.Escape(_title), maxValue: _totalSteps));
                    await _finished.Task.ConfigureAwait(false);
                    ctx.Refresh();
                }));
        }
    }

    /// <summary>
    /// Records that <paramref name="step"/> (one-based) finished, having processed <paramref name="tokens"/> tokens, and
    /// shows <paramref name="values"/> (e.g. loss or reward) beside it.
    /// </summary>
    public void Update(int step, long tokens, IEnumerable<KeyValuePair<string, double>> values)
    {
        if (!_enabled) return;
        if (_startStep < 0) _startStep = step - 1; // a resumed run starts past 0
        _tokens += tokens;
        var elapsed = _clock.Elapsed;
        double tokensPerSecond = elapsed.TotalSeconds > 0 ? _tokens / elapsed.TotalSeconds : 0;
        int done = step - _startStep;
        var eta = done > 0 ? TimeSpan.FromSeconds(elapsed.TotalSeconds / done * Math.Max(0, _totalSteps - step)) : TimeSpan.Zero;
        var shown = new StringBuilder();
        foreach (var (name, value) in values) shown.Append(CultureInfo.InvariantCulture, $"  {name} {value:0.####}");
        if (_live)
        {
            var task = _task.Task.GetAwaiter().GetResult();
            task.Description = Markup.Escape($"{_title} step {step}/{_totalSteps}{shown}  {tokensPerSecond:N0} tok/s");
            task.Value = step;
            return;
        }
        bool due = _lastPlain == TimeSpan.MinValue || step >= _totalSteps || elapsed - _lastPlain >= _interval;
        if (!due) return;
        _lastPlain = elapsed;
        _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{_title} step {step}/{_totalSteps} ({100.0 * step / _totalSteps:F0}%){shown}  {tokensPerSecond:N0} tok/s  eta {eta:hh\\:mm\\:ss}"));
        _output.Flush();
    }

    /// <summary>Prints a line on the main rank (above the live bar when there is one).</summary>
    public void WriteLine(string line)
    {
        if (!_enabled) return;
        if (_live) AnsiConsole.WriteLine(line);
        else
        {
            _output.WriteLine(line);
            _output.Flush();
        }
    }

    /// <summary>Stops the live bar, leaving its last state on screen.</summary>
    public void Dispose()
    {
        if (_liveLoop is null) return;
        _finished.TrySetResult();
        _liveLoop.GetAwaiter().GetResult();
    }
}
