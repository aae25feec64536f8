using System.Runtime.CompilerServices;
using VectorLm.Distributed.Nccl;
using static TorchSharp.torch;

namespace VectorLm.Distributed.Tests;

/// <summary>What can be checked of the NCCL binding without a GPU; bench/gpu/nccl.sh covers the rest on GPUs.</summary>
public class NcclTests
{
    [Fact]
    public void The_unique_id_is_128_bytes_as_in_nccl_h()
    {
        Assert.Equal(128, Unsafe.SizeOf<NcclUniqueId>());
        Assert.Equal(128, System.Runtime.InteropServices.Marshal.SizeOf<NcclUniqueId>());
    }

    [Fact]
    public void Enum_values_match_nccl_h()
    {
        Assert.Equal(7, (int)NcclProcessGroup.DataType(ScalarType.Float32));
        Assert.Equal(9, (int)NcclProcessGroup.DataType(ScalarType.BFloat16));
        Assert.Equal(6, (int)NcclProcessGroup.DataType(ScalarType.Float16));
        Assert.Equal(4, (int)NcclProcessGroup.DataType(ScalarType.Int64));
        Assert.Equal(1, (int)NcclProcessGroup.DataType(ScalarType.Byte));
        Assert.Equal(0, (int)NcclProcessGroup.RedOp(ReduceOp.Sum));
        Assert.Equal(2, (int)NcclProcessGroup.RedOp(ReduceOp.Max));
        Assert.Equal(3, (int)NcclProcessGroup.RedOp(ReduceOp.Min));
        Assert.Equal(4, (int)NcclProcessGroup.RedOp(ReduceOp.Avg));
        Assert.Throws<NotSupportedException>(() => NcclProcessGroup.DataType(ScalarType.ComplexFloat32));
    }

    [Theory]
    [InlineData(1, "ncclUnhandledCudaError (1)", "NCCL_DEBUG=WARN")]
    [InlineData(6, "ncclRemoteError (6)", "another rank failed")]
    [InlineData(5, "ncclInvalidUsage (5)", "VECTORLM_DESYNC_DEBUG=1")]
    public void Errors_name_the_call_the_code_and_a_hint(int code, string name, string hint)
    {
        var result = (NcclResult)code;
        var e = Assert.Throws<NcclException>(() => NcclNative.Check(result, "ncclAllReduce"));
        Assert.StartsWith($"ncclAllReduce failed: {name}: ", e.Message);
        Assert.Contains(hint, e.Message);
        Assert.Equal((int)result, e.Code);
        NcclNative.Check(NcclResult.Success, "ncclAllReduce"); // success is silent
    }

    [Fact]
    public void Without_libnccl_the_error_says_how_to_find_it()
    {
        string? version = null;
        var e = Record.Exception(() => version = NcclNative.Version());
        if (e is null) Assert.Matches(@"^2\.\d+\.\d+$", version); // a machine with NCCL installed
        else Assert.Contains("LD_LIBRARY_PATH", Assert.IsType<DistributedException>(e).Message);
    }
}
