namespace VectorLm.Generators.Model;

/// <summary>Which runtime method an intercepted call is routed to.</summary>
internal enum InterceptorKind
{
    /// <summary><c>optimizer.step(closure)</c> to <c>CollectiveInterceptors.OptimizerStep</c>.</summary>
    OptimizerStep,
    /// <summary><c>engine.Generate(prompts, parameters, ...)</c> to <c>CollectiveInterceptors.Generate</c>.</summary>
    Generate,
    /// <summary><c>torch.nn.utils.clip_grad_norm_(parameters, max_norm, norm_type)</c> to <c>CollectiveInterceptors.ClipGradNorm</c>.</summary>
    ClipGradNorm,
    /// <summary><c>torch.nn.utils.clip_grad_value_(parameters, clip_value)</c> to <c>CollectiveInterceptors.ClipGradValue</c>.</summary>
    ClipGradValue,
}
