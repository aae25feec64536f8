using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace VectorLm.Distributed;

/// <summary>
/// Data-parallel gradient averaging for one optimizer: the gradients of its parameters go through ONE all-reduce per
/// dtype and device, over a flat buffer.
/// </summary>
/// <remarks>
/// After each reduce every parameter's <c>.grad</c> is set to a view into the flat buffer. If the loop zeroes
/// gradients in place (the optimizer's <c>zero_grad()</c>), backward accumulates straight into the buffer and the next
/// step copies nothing. If it sets them to none (TorchSharp's <c>Module.zero_grad()</c> default), backward allocates
/// fresh gradients and the step copies them in and drops them at once (not at the next GC: the GC does not see device
/// memory); either way the result is the same. Behind each parameter's slice the buffer carries one flag element, 1
/// when this rank has a gradient for it: a parameter that no rank touched keeps a null gradient (the optimizer skips
/// it), one that only some ranks touched counts as zero on the others.
/// <para>The buffers live as long as the reducer, so they are detached from the caller's <c>DisposeScope</c> (a
/// user loop or <see cref="Training.Trainer.Step()"/> opens one per step); everything else here is disposed per call.</para>
/// <para>Parameters that were not yet made identical (<see cref="ParameterBroadcast"/>: an optimizer the SDK did not
/// build) are first broadcast from rank 0 at the first step.</para>
/// </remarks>
internal sealed class GradientReducer
{
    Bucket[] _buckets = [];
    nint[] _parameterHandles = [];

    /// <summary>
    /// True once this step's gradients were averaged ahead of the step (so gradient clipping sees the averaged
    /// gradients, as with PyTorch DDP); the step then does not average them again.
    /// </summary>
    public bool AveragedBeforeStep { get; set; }

    /// <summary>The parameters whose gradients the buckets hold (those that require gradients).</summary>
    internal IEnumerable<Parameter> ReducedParameters => _buckets.SelectMany(b => b.Parameters);

    /// <summary>Averages the gradients of <paramref name="parameters"/> over the ranks of <paramref name="ctx"/>.</summary>
    public void AverageGradients(TrainerContext ctx, IEnumerable<Parameter> parameters, CallSite site)
    {
        var ps = parameters.Where(p => p.requires_grad).ToArray();
        var handles = ps.Select(p => p.Handle).ToArray();
        if (!handles.AsSpan().SequenceEqual(_parameterHandles))
        {
            foreach (var b in _buckets) b.Dispose();
            _buckets = ps.GroupBy(p => (p.dtype, p.device_type, p.device_index))
                .Select(g => new Bucket(g.ToArray())).ToArray();
            _parameterHandles = handles;
            var notYetIdentical = ps.Where(p => !ParameterBroadcast.IsDone(p)).ToArray();
            if (notYetIdentical.Length > 0) ParameterBroadcast.FromRank0(ctx, notYetIdentical, site);
        }
        using var _ = torch.no_grad();
        foreach (var bucket in _buckets) bucket.Reduce(ctx, site);
    }

    sealed class Bucket : IDisposable
    {
        readonly Parameter[] _params;
        readonly long[] _offsets;
        readonly long _total;
        readonly Tensor _flat;
        readonly Tensor[] _views;
        readonly Tensor _flags;

        public IReadOnlyList<Parameter> Parameters => _params;

        public Bucket(Parameter[] ps)
        {
            _params = ps;
            _offsets = new long[ps.Length];
            long at = 0;
            for (int i = 0; i < ps.Length; i++) { _offsets[i] = at; at += ps[i].numel(); }
            _total = at;
            // Kept across steps: out of the caller's DisposeScope, or the end of the first step would free them.
            _flat = torch.zeros(_total + ps.Length, ps[0].dtype, ps[0].device).DetachFromDisposeScope();
            _views = new Tensor[ps.Length];
            for (int i = 0; i < ps.Length; i++)
            {
                using var slice = _flat.narrow(0, _offsets[i], ps[i].numel());
                _views[i] = slice.view(ps[i].shape).DetachFromDisposeScope();
            }
            _flags = _flat.narrow(0, _total, ps.Length).DetachFromDisposeScope();
        }

        public void Reduce(TrainerContext ctx, CallSite site)
        {
            var hasGrad = new float[_params.Length];
            for (int i = 0; i < _params.Length; i++)
            {
                using var g = _params[i].grad; // a new handle per read: disposed here, the gradient itself lives on
                if (g is null) { _views[i].zero_(); continue; }
                hasGrad[i] = 1;
                if (!SharesMemory(g, _views[i])) _views[i].copy_(g);
            }
            using (var flags = torch.tensor(hasGrad, dtype: _flags.dtype, device: _flags.device)) _flags.copy_(flags);

            ctx.AllReduce(_flat, ReduceOp.Avg, site.Member, site.File, site.Line);

            float[] reducedFlags;
            using (var onCpu = _flags.cpu())
            using (var asFloat = onCpu.to_type(ScalarType.Float32))
                reducedFlags = asFloat.data<float>().ToArray();
            for (int i = 0; i < _params.Length; i++)
            {
                if (reducedFlags[i] <= 0) continue; // no rank has a gradient: leave it null so the optimizer skips it
                using var g = _params[i].grad;
                // Replacing the gradient drops the parameter's reference to the one backward made, and disposing
                // our handle drops the last: its memory is freed now.
                if (g is null || !SharesMemory(g, _views[i])) _params[i].grad = _views[i];
            }
        }

        static bool SharesMemory(Tensor a, Tensor b) =>
            a.is_contiguous() && a.numel() == b.numel() && a.numel() > 0 &&
            TensorMemory.DataPointer(a) == TensorMemory.DataPointer(b);

        public void Dispose()
        {
            foreach (var v in _views) v.Dispose();
            _flags.Dispose();
            _flat.Dispose();
        }
    }
}
