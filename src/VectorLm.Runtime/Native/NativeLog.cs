using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace VectorLm.Native;

/// <summary>Keeps llama.cpp/ggml's log quiet: warnings and errors go to stderr, info and debug lines are dropped.</summary>
internal static unsafe class NativeLog
{
    const int Warn = 3, Cont = 5;
    static int s_installed;
    static int s_lastLevel;

    public static void Install()
    {
        if (Interlocked.Exchange(ref s_installed, 1) == 0) LlamaNative.LogSet(&OnLog);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    static void OnLog(int level, byte* text, IntPtr userData)
    {
        if (level != Cont) s_lastLevel = level;
        if (s_lastLevel < Warn) return;
        try { Console.Error.Write(Marshal.PtrToStringUTF8((IntPtr)text)); }
        catch (IOException) { }
    }
}
