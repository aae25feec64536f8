namespace System.Runtime.CompilerServices;

// netstandard2.0 lacks the types the compiler needs for 'required' members (the spec records use them).
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Struct | AttributeTargets.Field | AttributeTargets.Property, Inherited = false)]
internal sealed class RequiredMemberAttribute : Attribute;
