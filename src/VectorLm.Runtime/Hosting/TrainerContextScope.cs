using System.ComponentModel;

namespace VectorLm.Hosting;

/// <summary>
/// The context of the trainer running on this thread of control. Generated interceptors read it, since an
/// intercepted call such as <c>optimizer.step()</c> has no context argument.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)] // called by generated code, not by users
public static class TrainerContextScope
{
    static readonly AsyncLocal<TrainerContext?> s_current = new();

    /// <summary>The active context, or null outside a trainer.</summary>
    public static TrainerContext? Current => s_current.Value;

    /// <summary>Makes <paramref name="context"/> current until the returned handle is disposed.</summary>
    public static IDisposable Enter(TrainerContext context)
    {
        var previous = s_current.Value;
        s_current.Value = context;
        return new Restore(previous);
    }

    sealed class Restore(TrainerContext? previous) : IDisposable
    {
        public void Dispose() => s_current.Value = previous;
    }
}
