using System.Runtime.CompilerServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace VectorLm.Distributed;

/// <summary>
/// Makes every rank hold rank 0's parameter values, as PyTorch's DDP does at construction, and remembers which
/// parameters were made identical so that each is sent once.
/// </summary>
/// <remarks>
/// The SDK broadcasts when a model meets the context through an optimizer the SDK builds
/// (<see cref="Training.Optimizers.AdamW"/>, and so <see cref="Training.Trainer"/>), before any forward. Parameters of an
/// optimizer made another way are broadcast by <see cref="GradientReducer"/> at that optimizer's first step, after the
/// first backward ran on each rank's own values; <see cref="TrainerContext.BroadcastParameters"/> does it earlier.
/// </remarks>
internal static class ParameterBroadcast
{
    // Keyed by the Parameter object: the module and its optimizers hold the same objects.
    static readonly ConditionalWeakTable<Parameter, object> s_fromRank0 = new();

    // Largest buffer one broadcast sends: the copy exists only during the call, so memory grows by at most this.
    const long MaxBucketBytes = 256L << 20;

    /// <summary>True once <paramref name="parameter"/> was overwritten with rank 0's value on this rank.</summary>
    public static bool IsDone(Parameter parameter) => s_fromRank0.TryGetValue(parameter, out _);

    /// <summary>
    /// Overwrites <paramref name="parameters"/> with rank 0's values (a collective: every rank passes the same
    /// parameters in the same order). Nothing with one rank. Samplers are not told: the caller does that, or the
    /// optimizer step that follows does.
    /// </summary>
    public static void FromRank0(TrainerContext ctx, IEnumerable<Parameter> parameters, CallSite site)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        ArgumentNullException.ThrowIfNull(parameters);
        var ps = parameters.Distinct<Parameter>(ReferenceEqualityComparer.Instance).ToArray();
        if (ctx.WorldSize == 1 || ps.Length == 0) return;
        using (no_grad())
        {
            foreach (var group in ps.GroupBy(p => (p.dtype, p.device_type, p.device_index)))
                foreach (var bucket in Buckets(group.ToArray()))
                    Broadcast(ctx, bucket, site);
        }
        foreach (var p in ps) s_fromRank0.AddOrUpdate(p, true);
    }

    static IEnumerable<Parameter[]> Buckets(Parameter[] ps)
    {
        var bucket = new List<Parameter>();
        long bytes = 0;
        foreach (var p in ps)
        {
            long size = p.numel() * p.element_size();
            if (bucket.Count > 0 && bytes + size > MaxBucketBytes)
            {
                yield return bucket.ToArray();
                bucket.Clear();
                bytes = 0;
            }
            bucket.Add(p);
            bytes += size;
        }
        if (bucket.Count > 0) yield return bucket.ToArray();
    }

    static void Broadcast(TrainerContext ctx, Parameter[] ps, CallSite site)
    {
        using var scope = NewDisposeScope(); // every tensor here is a temporary
        var flat = cat(ps.Select(p => p.detach().reshape(-1)).ToList(), 0);
        ctx.Broadcast(flat, 0, site.Member, site.File, site.Line);
        long at = 0;
        foreach (var p in ps)
        {
            long n = p.numel();
            p.copy_(flat.narrow(0, at, n).view(p.shape));
            at += n;
        }
    }
}
