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

/// <summary>One intercepted call site, anywhere in the project.</summary>
/// <param name="Kind">What the call becomes.</param>
/// <param name="Version">The InterceptsLocation version from Roslyn.</param>
/// <param name="Data">The InterceptsLocation data (file checksum and position) from Roslyn.</param>
/// <param name="DisplayLocation">file(line,column) of the call, for the comment above the interceptor.</param>
/// <param name="ReceiverType">The fully qualified type declaring the called method (the interceptor's 'this' type for instance methods).</param>
/// <param name="ReturnType">The fully qualified return type.</param>
/// <param name="Parameters">The called method's parameters (the interceptor must match them).</param>
/// <param name="CallerMember">The member containing the call, as [CallerMemberName] would give it.</param>
/// <param name="CallerFile">The path of the file containing the call.</param>
/// <param name="CallerLine">The 1-based line of the call.</param>
internal sealed record InterceptorSpec(
    InterceptorKind Kind,
    int Version,
    string Data,
    string DisplayLocation,
    string ReceiverType,
    string ReturnType,
    EquatableArray<ParameterSpec> Parameters,
    string CallerMember,
    string CallerFile,
    int CallerLine);

/// <summary>A parameter of an intercepted method.</summary>
/// <param name="Name">The parameter name.</param>
/// <param name="TypeName">The fully qualified type, with nullable annotations.</param>
internal sealed record ParameterSpec(string Name, string TypeName);
