using System.Runtime.InteropServices;

namespace VectorLm.Distributed.Nccl;

/// <summary><c>ncclResult_t</c> (nccl.h).</summary>
internal enum NcclResult
{
    Success = 0,
    UnhandledCudaError = 1,
    SystemError = 2,
    InternalError = 3,
    InvalidArgument = 4,
    InvalidUsage = 5,
    RemoteError = 6,
    InProgress = 7,
}

/// <summary><c>ncclDataType_t</c> (nccl.h).</summary>
internal enum NcclDataType
{
    Int8 = 0,
    Uint8 = 1,
    Int32 = 2,
    Uint32 = 3,
    Int64 = 4,
    Uint64 = 5,
    Float16 = 6,
    Float32 = 7,
    Float64 = 8,
    BFloat16 = 9,
}

/// <summary><c>ncclRedOp_t</c> (nccl.h); Avg needs NCCL 2.10 or later.</summary>
internal enum NcclRedOp
{
    Sum = 0,
    Prod = 1,
    Max = 2,
    Min = 3,
    Avg = 4,
}

/// <summary><c>ncclUniqueId</c>: 128 opaque bytes made by rank 0 and shared through the store; passed by value.</summary>
[StructLayout(LayoutKind.Sequential, Size = Bytes)]
internal unsafe struct NcclUniqueId
{
    public const int Bytes = 128;
    public fixed byte Internal[Bytes];
}

/// <summary>
/// P/Invoke of <c>libnccl.so.2</c> (the NCCL that ships with the CUDA build of libtorch, or the system's).
/// Communicators are raw <c>ncclComm_t</c> pointers owned by <see cref="NcclCommunicator"/>.
/// </summary>
internal static partial class NcclNative
{
    const string Lib = "libnccl.so.2";

    [LibraryImport(Lib)] internal static partial NcclResult ncclGetVersion(out int version);
    [LibraryImport(Lib)] internal static partial NcclResult ncclGetUniqueId(out NcclUniqueId uniqueId);
    [LibraryImport(Lib)] internal static partial NcclResult ncclCommInitRank(out nint comm, int nranks, NcclUniqueId commId, int rank);
    [LibraryImport(Lib)] internal static partial NcclResult ncclCommDestroy(nint comm);
    [LibraryImport(Lib)] internal static partial NcclResult ncclCommAbort(nint comm);
    [LibraryImport(Lib)] internal static partial NcclResult ncclCommGetAsyncError(nint comm, out NcclResult asyncError);
    [LibraryImport(Lib)] internal static partial nint ncclGetErrorString(NcclResult result);
    [LibraryImport(Lib)] internal static partial nint ncclGetLastError(nint comm);

    [LibraryImport(Lib)]
    internal static partial NcclResult ncclAllReduce(nint sendbuff, nint recvbuff, nuint count, NcclDataType datatype, NcclRedOp op, nint comm, nint stream);

    [LibraryImport(Lib)]
    internal static partial NcclResult ncclBroadcast(nint sendbuff, nint recvbuff, nuint count, NcclDataType datatype, int root, nint comm, nint stream);

    [LibraryImport(Lib)]
    internal static partial NcclResult ncclAllGather(nint sendbuff, nint recvbuff, nuint sendcount, NcclDataType datatype, nint comm, nint stream);

    [LibraryImport(Lib)] internal static partial NcclResult ncclGroupStart();
    [LibraryImport(Lib)] internal static partial NcclResult ncclGroupEnd();

    /// <summary>Throws <see cref="NcclException"/> unless <paramref name="result"/> is success.</summary>
    internal static void Check(NcclResult result, string call, nint comm = 0)
    {
        if (result == NcclResult.Success) return;
        throw new NcclException(result, call, Describe(result), comm == 0 ? null : LastError(comm));
    }

    /// <summary>The library's text for a result code, or our own when the library cannot say.</summary>
    internal static string Describe(NcclResult result)
    {
        try
        {
            var p = ncclGetErrorString(result);
            if (p != 0) return Marshal.PtrToStringUTF8(p) ?? NcclException.Name(result);
        }
        catch (DllNotFoundException) { }
        catch (EntryPointNotFoundException) { }
        return NcclException.Name(result);
    }

    static string? LastError(nint comm)
    {
        try
        {
            var p = ncclGetLastError(comm);
            return p == 0 ? null : Marshal.PtrToStringUTF8(p) is { Length: > 0 } s ? s : null;
        }
        catch (EntryPointNotFoundException) { return null; }
    }

    /// <summary>The NCCL version as "2.28.3", or throws a <see cref="DistributedException"/> when NCCL cannot be loaded.</summary>
    internal static string Version()
    {
        try
        {
            Check(ncclGetVersion(out int v), "ncclGetVersion");
            // NCCL >= 2.9 encodes major*10000 + minor*100 + patch.
            return $"{v / 10000}.{v / 100 % 100}.{v % 100}";
        }
        catch (DllNotFoundException e)
        {
            throw new DistributedException(
                "the nccl backend needs libnccl.so.2 and it could not be loaded; put the directory holding it " +
                "(for a pip PyTorch: .../site-packages/nvidia/nccl/lib or torch/lib) on LD_LIBRARY_PATH, or use --backend tcp", e);
        }
    }
}

/// <summary>An NCCL call failed; the message has NCCL's own text and, where it has one, its last error detail.</summary>
public sealed class NcclException : DistributedException
{
    internal NcclException(NcclResult result, string call, string text, string? detail)
        : base($"{call} failed: {Name(result)} ({(int)result}): {text}{(detail is null ? "" : $" - {detail}")}{Hint(result)}")
    {
        Code = (int)result;
    }

    /// <summary>The <c>ncclResult_t</c> value.</summary>
    public int Code { get; }

    internal static string Name(NcclResult r) => r switch
    {
        NcclResult.Success => "ncclSuccess",
        NcclResult.UnhandledCudaError => "ncclUnhandledCudaError",
        NcclResult.SystemError => "ncclSystemError",
        NcclResult.InternalError => "ncclInternalError",
        NcclResult.InvalidArgument => "ncclInvalidArgument",
        NcclResult.InvalidUsage => "ncclInvalidUsage",
        NcclResult.RemoteError => "ncclRemoteError",
        NcclResult.InProgress => "ncclInProgress",
        _ => $"ncclResult {(int)r}",
    };

    static string Hint(NcclResult r) => r switch
    {
        NcclResult.UnhandledCudaError => " (a CUDA call inside NCCL failed; see NCCL_DEBUG=WARN)",
        NcclResult.SystemError => " (a system call or the network failed; NCCL_DEBUG=INFO shows which)",
        NcclResult.RemoteError => " (another rank failed or exited)",
        NcclResult.InvalidUsage => " (collectives called in different orders on different ranks? try VECTORLM_DESYNC_DEBUG=1)",
        _ => "",
    };
}
