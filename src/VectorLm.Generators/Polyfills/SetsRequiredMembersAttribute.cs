namespace System.Diagnostics.CodeAnalysis;

// netstandard2.0 lacks it; records with 'required' members need it on their copy constructors.
[AttributeUsage(AttributeTargets.Constructor, AllowMultiple = false, Inherited = false)]
internal sealed class SetsRequiredMembersAttribute : Attribute;
