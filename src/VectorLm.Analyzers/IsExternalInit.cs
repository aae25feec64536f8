namespace System.Runtime.CompilerServices;

/// <summary>Lets netstandard2.0 compile <c>init</c> accessors (the linked <c>OptionAttribute</c> has them).</summary>
internal static class IsExternalInit;
