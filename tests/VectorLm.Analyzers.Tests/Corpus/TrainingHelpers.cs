// Shapes a training project has outside its trainer class: hooks behind interfaces, callbacks in fields, events,
// strategies chosen at run time, and delegates handed in by callers. Analysed by CorpusTests; not compiled into tests.
using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using VectorLm;
using VectorLm.Sampling;
using static TorchSharp.torch;

namespace Corpus;

public interface IStepHook { void AfterStep(TrainerContext ctx, int step); }

public sealed class EvalHook(ISamplingEngine sampler, IReadOnlyList<string> prompts) : IStepHook
{
    public void AfterStep(TrainerContext ctx, int step)
    {
        if (step % 10 != 0) return;
        var completions = sampler.Generate(prompts);
        if (ctx.IsMainRank) Console.WriteLine(completions.Count);
    }
}

public sealed class LogHook : IStepHook
{
    public void AfterStep(TrainerContext ctx, int step)
    {
        if (ctx.IsMainRank) Console.WriteLine($"step {step}");
    }
}

public abstract class LossAverager
{
    public abstract double Mean(TrainerContext ctx, Tensor loss);
}

public sealed class AllReduceAverager : LossAverager
{
    public override double Mean(TrainerContext ctx, Tensor loss) => ctx.AllReduce(loss.detach().clone(), ReduceOp.Avg).item<float>();
}

public sealed class Loop
{
    readonly TrainerContext _ctx;
    readonly List<IStepHook> _hooks = new();
    readonly Action<int> _checkpoint;
    public event Action<int>? Finished;

    public Loop(TrainerContext ctx, Action<int> save)
    {
        _ctx = ctx;
        _checkpoint = step => { ctx.Barrier(); if (ctx.IsMainRank) save(step); };
        Finished += step => Console.WriteLine($"done at {step}");
    }

    public void Add(IStepHook hook) => _hooks.Add(hook);

    public void Run(int steps, LossAverager averager, Func<int, Tensor> loss, Action<Tensor> step)
    {
        for (int i = 1; i <= steps; i++)
        {
            using var l = loss(i);
            step(l);                                            // a caller's delegate: unknown targets
            var mean = averager.Mean(_ctx, l);                  // dispatch: every override averages
            foreach (var hook in _hooks) hook.AfterStep(_ctx, i); // dispatch: some hooks generate
            if (i % 100 == 0) _checkpoint(i);                   // a delegate field: known targets
            if (_ctx.IsMainRank && double.IsNaN(mean)) Console.WriteLine("nan");
        }
        if (_ctx.IsMainRank) Finished?.Invoke(steps);           // an event without collectives
    }
}
