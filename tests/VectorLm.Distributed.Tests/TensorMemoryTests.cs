using TorchSharp;
using static TorchSharp.torch;

namespace VectorLm.Distributed.Tests;

public class TensorMemoryTests
{
    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    [InlineData(ScalarType.Int64)]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Byte)]
    public unsafe void DataPointer_addresses_the_first_element_of_a_view(ScalarType dtype)
    {
        var t = zeros(10, dtype: dtype);
        var view = t.narrow(0, 3, 4);
        var p = (byte*)TensorMemory.DataPointer(view);
        long es = t.element_size();
        Assert.Equal(TensorMemory.DataPointer(t) + (nint)(3 * es), (nint)p);
        // Write the bytes of one element through the pointer and see it in torch at index 3.
        var one = ones(1, dtype: dtype).bytes.ToArray();
        for (int i = 0; i < es; i++) p[i] = one[i];
        Assert.Equal(1.0, t[3].to_type(ScalarType.Float64).item<double>());
        Assert.Equal(0.0, t.to_type(ScalarType.Float64).sum().item<double>() - 1.0);
    }

    [Fact]
    public void A_non_contiguous_tensor_is_refused()
    {
        Assert.Throws<ArgumentException>(() => TensorMemory.DataPointer(zeros(3, 4).t()));
    }
}
