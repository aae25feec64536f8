using TorchSharp;
using VectorLm.Hosting;
using VectorLm.Native;
using static TorchSharp.torch;

namespace VectorLm.Training;

/// <summary>
/// How a trainer stores weights and computes, with PyTorch Lightning's names: <c>32-true</c>, <c>tf32</c>,
/// <c>bf16-mixed</c>, <c>bf16-true</c>. Chosen with <c>--precision</c> on every generated trainer and read by
/// <see cref="Models.LlamaModel"/> from <see cref="Current"/>, so a training loop honours it without changes.
/// </summary>
/// <remarks>
/// <para><c>bf16-mixed</c> keeps float32 parameters ("master weights"), gradients and optimizer state and runs the
/// forward under libtorch's autocast with bfloat16, as <c>torch.autocast("cuda", torch.bfloat16)</c> does: matmuls
/// and attention in bfloat16, norms, softmax and the loss in float32. Updates smaller than bfloat16's resolution are
/// kept, and the sampling engines read the float32 parameters.</para>
/// <para><c>bf16-true</c> stores the parameters (and so the optimizer state) in bfloat16: the fastest and smallest,
/// but small updates are lost. <c>tf32</c> keeps float32 everywhere and lets CUDA matmuls use TF32 tensor cores.</para>
/// </remarks>
public sealed class Precision
{
    static readonly AsyncLocal<Precision?> s_override = new();

    /// <summary>float32 weights and compute (the default on the CPU).</summary>
    public static Precision Full32 { get; } = new("32-true", ScalarType.Float32, null, tf32: false);
    /// <summary>float32 weights; CUDA matmuls in TF32.</summary>
    public static Precision Tf32 { get; } = new("tf32", ScalarType.Float32, null, tf32: true);
    /// <summary>float32 master weights and optimizer state, bfloat16 compute through autocast (the default on CUDA).</summary>
    public static Precision Bf16Mixed { get; } = new("bf16-mixed", ScalarType.Float32, ScalarType.BFloat16, tf32: false);
    /// <summary>bfloat16 weights, optimizer state and compute.</summary>
    public static Precision Bf16True { get; } = new("bf16-true", ScalarType.BFloat16, null, tf32: false);

    /// <summary>Every precision, in the order <c>--help</c> lists them.</summary>
    public static IReadOnlyList<Precision> All { get; } = [Full32, Tf32, Bf16Mixed, Bf16True];

    Precision(string name, ScalarType parameterDtype, ScalarType? autocastDtype, bool tf32)
    {
        Name = name;
        ParameterDtype = parameterDtype;
        AutocastDtype = autocastDtype;
        AllowTf32 = tf32;
    }

    /// <summary>The Lightning name (<c>bf16-mixed</c>, ...), as <c>--precision</c> takes it.</summary>
    public string Name { get; }
    /// <summary>The dtype of the parameters, gradients and optimizer state.</summary>
    public ScalarType ParameterDtype { get; }
    /// <summary>The autocast dtype of the forward pass, or null when the forward runs in <see cref="ParameterDtype"/>.</summary>
    public ScalarType? AutocastDtype { get; }
    /// <summary>Whether float32 CUDA matmuls may use TF32.</summary>
    public bool AllowTf32 { get; }

    /// <summary>
    /// The precision in effect here: the innermost <see cref="Use"/>, else the running trainer's
    /// (<see cref="TrainerContext.Precision"/>), else <see cref="Full32"/>.
    /// </summary>
    public static Precision Current => s_override.Value ?? TrainerContextScope.Current?.Precision ?? Full32;

    /// <summary>The default for a device: <see cref="Bf16Mixed"/> on CUDA, <see cref="Full32"/> elsewhere.</summary>
    public static Precision DefaultFor(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return device.type == DeviceType.CUDA ? Bf16Mixed : Full32;
    }

    /// <summary>The precision called <paramref name="name"/> (case-insensitive).</summary>
    /// <exception cref="ArgumentException">Unknown name; the message lists the valid ones.</exception>
    public static Precision Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return All.FirstOrDefault(p => string.Equals(p.Name, name.Trim(), StringComparison.OrdinalIgnoreCase))
            ?? throw new ArgumentException($"unknown precision '{name}'; use one of {string.Join(", ", All.Select(p => p.Name))}", nameof(name));
    }

    /// <summary>
    /// Makes this precision <see cref="Current"/> on this flow of control until the handle is disposed (tests, code
    /// outside a generated trainer), and applies its process-wide switch (TF32) meanwhile.
    /// </summary>
    public IDisposable Use()
    {
        var previous = s_override.Value;
        bool tf32Before = ApplyGlobalSettings();
        s_override.Value = this;
        return new Restore(() =>
        {
            s_override.Value = previous;
            backends.cuda.matmul.allow_tf32 = tf32Before;
        });
    }

    /// <summary>Sets the process-wide switches this precision needs (TF32 matmuls); returns the TF32 setting before.</summary>
    internal bool ApplyGlobalSettings()
    {
        bool before = backends.cuda.matmul.allow_tf32;
        backends.cuda.matmul.allow_tf32 = AllowTf32;
        return before;
    }

    /// <summary>
    /// Runs the ops of this thread under autocast for <paramref name="device"/> until disposed, when this precision
    /// is mixed; otherwise a no-op. Wrap the forward pass only: the backward follows the dtypes the forward chose.
    /// </summary>
    public IDisposable Autocast(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (AutocastDtype is not { } dtype) return NoRegion;
        var state = LibTorchAutocast.Enter(device.type, dtype);
        return new Restore(() => LibTorchAutocast.Exit(state));
    }

    /// <summary>The Lightning name.</summary>
    public override string ToString() => Name;

    static readonly IDisposable NoRegion = new Restore(null);

    sealed class Restore(Action? action) : IDisposable
    {
        Action? _action = action;
        public void Dispose() => Interlocked.Exchange(ref _action, null)?.Invoke();
    }
}
