namespace System.Runtime.CompilerServices;

// netstandard2.0 lacks it; the compiler marks constructors of types with 'required' members with it.
[AttributeUsage(AttributeTargets.All, AllowMultiple = true, Inherited = false)]
internal sealed class CompilerFeatureRequiredAttribute(string featureName) : Attribute
{
    public string FeatureName { get; } = featureName;
}
