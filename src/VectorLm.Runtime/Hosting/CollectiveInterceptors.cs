using System.ComponentModel;
using System.Globalization;
using System.Runtime.CompilerServices;
using TorchSharp.Modules;
using VectorLm.Distributed;
using VectorLm.Sampling;
using static TorchSharp.torch;
using CallSite = VectorLm.Distributed.CallSite;

namespace VectorLm.Hosting;

/// <summary>
/// What the generator's interceptors call in place of <c>optimizer.step()</c>, <c>torch.nn.utils.clip_grad_norm_</c>,
/// <c>clip_grad_value_</c> and <c>ISamplingEngine.Generate</c>, at every call site of the consuming project. Each
/// method is correct for any world size; outside a distributed trainer (no <see cref="TrainerContextScope.Current"/>,
/// or world size 1) it is exactly the plain call.
/// </summary>
/// <remarks>
/// At world size above 1 the first optimizer steps, then one in <see cref="ParameterCheckInterval"/>, check that the
/// parameters still agree across ranks (one small all-gather of per-parameter sums), and fail with the likely cause
/// when they do not: an optimizer step that was not intercepted. <c>VECTORLM_PARAMETER_CHECK=0</c> turns it off,
/// <c>always</c> checks every step.
/// </remarks>
[EditorBrowsable(EditorBrowsableState.Never)] // called by generated code, not by users
public static class CollectiveInterceptors
{
    /// <summary>Environment variable for the parameter agreement check: <c>0</c> (off), <c>1</c> (default) or <c>always</c>.</summary>
    public const string ParameterCheckVariable = "VECTORLM_PARAMETER_CHECK";

    /// <summary>How many optimizer steps of a parameter set are checked from the start.</summary>
    public const int ParameterCheckFirstSteps = 4;

    /// <summary>After <see cref="ParameterCheckFirstSteps"/>, every this many steps are checked.</summary>
    public const int ParameterCheckInterval = 100;

    /// <summary>
    /// Replaces <c>optimizer.step()</c>: averages the gradients of the optimizer's parameters over ranks (one
    /// bucketed all-reduce over a flat gradient buffer) unless a clip just did, steps, then marks the context's
    /// samplers stale. Two ranks with half batches each end with the parameters one rank gets from the whole batch.
    /// </summary>
    [Collective]
    public static Tensor OptimizerStep(optim.Optimizer optimizer, Func<Tensor>? closure,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var ctx = TrainerContextScope.Current;
        SharedReducer? shared = null;
        var site = new CallSite(member, file, line);
        if (ctx is { WorldSize: > 1 })
        {
            shared = SharedReducer.For(optimizer.parameters());
            var reducer = shared.Reducer;
            bool averagedAlready = reducer.AveragedBeforeStep;
            reducer.AveragedBeforeStep = false; // consumed by this step, whichever form it takes
            if (closure is null)
            {
                if (!averagedAlready) reducer.AverageGradients(ctx, shared.Parameters, site);
            }
            else
            {
                // The closure recomputes the gradients (possibly several times, as LBFGS does): average after each run.
                var inner = closure;
                closure = () =>
                {
                    var l = inner();
                    reducer.AverageGradients(ctx, shared.Parameters, site);
                    return l;
                };
            }
        }
        var loss = optimizer.step(closure);
        if (ctx is not null && shared is not null) shared.CheckAgreementAfterStep(ctx, site);
        ctx?.NotifyWeightsChanged();
        return loss;
    }

    /// <summary>
    /// Averages the gradients of <paramref name="optimizer"/>'s parameters over ranks now, for code that must see the
    /// averaged gradients before the step (gradient clipping); the next <see cref="OptimizerStep"/> then steps without
    /// averaging again. A no-op with world size 1 or outside a trainer.
    /// </summary>
    [Collective]
    public static void AverageGradients(optim.Optimizer optimizer,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var ctx = TrainerContextScope.Current;
        if (ctx is not { WorldSize: > 1 }) return;
        SharedReducer.For(optimizer.parameters()).AverageBeforeStep(ctx, new CallSite(member, file, line));
    }

    /// <summary>
    /// Replaces <c>torch.nn.utils.clip_grad_norm_</c>: averages the gradients of <paramref name="parameters"/> over
    /// ranks first (as PyTorch DDP does during backward), then clips, so every rank computes the norm of the averaged
    /// gradients, the same on all ranks. The optimizer step that follows does not average them again when it steps
    /// the same parameters.
    /// </summary>
    /// <returns>The total norm of the (averaged) gradients before clipping.</returns>
    [Collective]
    public static double ClipGradNorm(IEnumerable<Parameter> parameters, double maxNorm, double normType = 2.0,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var ps = AverageBeforeClip(parameters, new CallSite(member, file, line));
        return nn.utils.clip_grad_norm_(ps, maxNorm, normType);
    }

    /// <summary>
    /// Replaces <c>torch.nn.utils.clip_grad_value_</c>: averages the gradients of <paramref name="parameters"/> over
    /// ranks first, then clips each element to [-clipValue, clipValue] (see <see cref="ClipGradNorm"/>).
    /// </summary>
    [Collective]
    public static void ClipGradValue(IEnumerable<Parameter> parameters, double clipValue,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var ps = AverageBeforeClip(parameters, new CallSite(member, file, line));
        nn.utils.clip_grad_value_(ps, clipValue);
    }

    /// <summary>Replaces <c>sampler.Generate(...)</c>: weight sync if stale, then the distributed generate.</summary>
    [Collective]
    public static IReadOnlyList<Completion> Generate(ISamplingEngine engine, IReadOnlyList<string> prompts, SamplingParams? parameters,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(engine);
        engine.SyncWeights(member, file, line);
        return engine.Generate(prompts, parameters, member, file, line);
    }

    // The parameters enumerated once (model.parameters() may be lazy), averaged when a distributed trainer is active.
    static List<Parameter> AverageBeforeClip(IEnumerable<Parameter> parameters, CallSite site)
    {
        var ps = parameters.ToList();
        var ctx = TrainerContextScope.Current;
        if (ctx is { WorldSize: > 1 }) SharedReducer.For(ps).AverageBeforeStep(ctx, site);
        return ps;
    }

    /// <summary>The reducer an intercepted step of <paramref name="optimizer"/> uses (tests: what its buckets hold).</summary>
    internal static GradientReducer ReducerOf(optim.Optimizer optimizer) => SharedReducer.For(optimizer.parameters()).Reducer;

    /// <summary>
    /// One gradient reducer per set of trainable parameters, whoever asks: a clip over <c>model.parameters()</c> and
    /// the step of an optimizer built from them find the same reducer (and its "averaged already" flag), whatever the
    /// order in which each lists the parameters.
    /// </summary>
    sealed class SharedReducer
    {
        // Keyed by the set's parameter with the lowest native handle; a short list, since a parameter rarely belongs
        // to more than one set (progressive unfreezing, a second optimizer over part of the model).
        static readonly ConditionalWeakTable<Parameter, List<SharedReducer>> s_bySmallestParameter = new();
        const int MaxSetsPerParameter = 8;

        readonly nint[] _handles; // sorted: the set's identity, whatever the order callers list it in
        long _steps;

        SharedReducer(Parameter[] parameters, nint[] handles)
        {
            Parameters = parameters;
            _handles = handles;
        }

        /// <summary>
        /// The trainable parameters in the order of the first caller. Every later caller with the same set gets this
        /// order, so buckets keep one layout; and every rank runs the same program, so the layout is the same on all
        /// ranks (native handles are not: they differ between processes).
        /// </summary>
        public Parameter[] Parameters { get; }

        public GradientReducer Reducer { get; } = new();

        public static SharedReducer For(IEnumerable<Parameter> parameters)
        {
            var ps = parameters.Where(p => p.requires_grad).ToArray();
            var handles = ps.Select(p => p.Handle).Order().ToArray();
            if (ps.Length == 0) return new SharedReducer(ps, handles);
            var smallest = ps.First(p => p.Handle == handles[0]);
            var list = s_bySmallestParameter.GetValue(smallest, _ => new List<SharedReducer>());
            lock (list)
            {
                foreach (var existing in list)
                    if (existing._handles.AsSpan().SequenceEqual(handles)) return existing;
                var made = new SharedReducer(ps, handles);
                if (list.Count == MaxSetsPerParameter) list.RemoveAt(0);
                list.Add(made);
                return made;
            }
        }

        public void AverageBeforeStep(TrainerContext ctx, CallSite site)
        {
            Reducer.AverageGradients(ctx, Parameters, site);
            Reducer.AveragedBeforeStep = true;
        }

        /// <summary>
        /// After an intercepted step every rank must hold the same parameters: they started equal (rank 0's) and
        /// stepped on the same averaged gradients. Checked on the first steps, then sampled.
        /// </summary>
        public void CheckAgreementAfterStep(TrainerContext ctx, CallSite site)
        {
            long step = ++_steps;
            var mode = ParameterCheckMode();
            if (mode == CheckMode.Off || Parameters.Length == 0) return;
            if (mode == CheckMode.Default && step > ParameterCheckFirstSteps && step % ParameterCheckInterval != 0) return;

            double[] sums;
            using (var scope = NewDisposeScope())
            using (no_grad())
            {
                // One float64 sum per parameter, gathered on the device and copied back once.
                var perParameter = stack(Parameters.Select(p => p.detach().sum(ScalarType.Float64).to(Parameters[0].device)).ToArray());
                sums = perParameter.cpu().data<double>().ToArray();
            }
            var all = ctx.AllGatherObject(sums, site.Member, site.File, site.Line);
            for (int i = 0; i < sums.Length; i++)
                for (int r = 1; r < all.Count; r++)
                {
                    if (BitConverter.DoubleToInt64Bits(all[r][i]) == BitConverter.DoubleToInt64Bits(all[0][i])) continue;
                    var p = Parameters[i];
                    string Number(double v) => v.ToString("R", CultureInfo.InvariantCulture);
                    throw new DistributedException(
                        $"Parameters differ across ranks after the optimizer step at {Path.GetFileName(site.File)}:{site.Line} ({site.Member}), " +
                        $"optimizer step {step}: a parameter of shape [{string.Join(", ", p.shape)}] sums to {Number(all[0][i])} on rank 0 " +
                        $"and {Number(all[r][i])} on rank {r}. Likely cause: an optimizer step that was not intercepted ran earlier on this " +
                        "model (a step called through a delegate, a method group or reflection, or from an assembly built without " +
                        "VectorLm's generator; see VLM0009), so each rank stepped on its own gradients. Call optimizer.step() directly " +
                        "in code that references VectorLm. Other causes: weights changed on some ranks only (e.g. a checkpoint loaded " +
                        $"on one rank). Set {ParameterCheckVariable}=0 to turn this check off.");
                }
        }

        enum CheckMode { Off, Default, Always }

        static CheckMode ParameterCheckMode()
        {
            var text = Environment.GetEnvironmentVariable(ParameterCheckVariable)?.Trim();
            return text?.ToLowerInvariant() switch
            {
                null or "" or "1" or "on" or "true" => CheckMode.Default,
                "0" or "off" or "false" => CheckMode.Off,
                "always" => CheckMode.Always,
                _ => throw new DistributedException($"{ParameterCheckVariable}='{text}' must be 0 (off), 1 (first steps, then sampled) or always"),
            };
        }
    }
}
