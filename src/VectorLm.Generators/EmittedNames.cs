namespace VectorLm.Generators;

/// <summary>
/// Every type and namespace the generated code names, fully qualified, in one place: the runtime's hosting types the
/// generated entry point and interceptors call, and the framework types they use.
/// </summary>
internal static class EmittedNames
{
    /// <summary>Fans out the ranks and runs the training method on each (<c>VectorLm.Hosting.TrainerHost.Run</c>).</summary>
    public const string TrainerHost = "global::VectorLm.Hosting.TrainerHost";

    /// <summary>The generated command line: launch options, <c>--config</c> and one option per <c>[Option]</c>.</summary>
    public const string TrainerCommandLine = "global::VectorLm.Hosting.CommandLine.TrainerCommandLine";

    /// <summary>What intercepted <c>optimizer.step()</c>, gradient clips and <c>Generate</c> calls become.</summary>
    public const string CollectiveInterceptors = "global::VectorLm.Hosting.CollectiveInterceptors";

    /// <summary>The namespace of the generated entry point and interceptors; consuming projects opt into it (<c>InterceptorsNamespaces</c>).</summary>
    public const string GeneratedNamespace = "VectorLm.Generated";

    /// <summary>Marks every generated member (with the generator's version).</summary>
    public const string GeneratedCodeAttribute = "global::System.CodeDom.Compiler.GeneratedCode";

    /// <summary>What a synchronous <c>Train</c> returns to the host.</summary>
    public const string CompletedTask = "global::System.Threading.Tasks.Task.CompletedTask";

    /// <summary>The compiler's interceptor attribute; the generated file declares a file-local copy in this namespace.</summary>
    public const string InterceptsLocationNamespace = "System.Runtime.CompilerServices";

    /// <summary>The interceptor attribute as the interceptors name it.</summary>
    public const string InterceptsLocationAttribute = "global::" + InterceptsLocationNamespace + ".InterceptsLocation";

    /// <summary>The base of the file-local attribute copy.</summary>
    public const string Attribute = "global::System.Attribute";

    /// <summary>The attribute usage of the file-local attribute copy.</summary>
    public const string AttributeUsage = "global::System.AttributeUsage";

    /// <summary>The targets of the file-local attribute copy.</summary>
    public const string AttributeTargetsMethod = "global::System.AttributeTargets.Method";
}
