using System.Numerics;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace VectorLm.Distributed;

/// <summary>Raw access to tensor memory for the backends, and the element-wise reductions of the tcp backend.</summary>
static class TensorMemory
{
    /// <summary>
    /// Address of the first element of a contiguous tensor (CPU or CUDA): the storage's base address plus the
    /// tensor's storage offset. The base comes from TorchSharp's own binding of <c>THSStorage_data_ptr</c>, which
    /// works for every dtype; <c>storage&lt;T&gt;()</c> is the fallback, and it must be asked with the tensor's own
    /// element type (another type converts the tensor, and Half/BFloat16 are not supported there).
    /// </summary>
    public static nint DataPointer(Tensor t)
    {
        if (!t.is_contiguous()) throw new ArgumentException("the tensor must be contiguous", nameof(t));
        if (t.numel() == 0) return 0;
        nint basePtr = s_storageDataPtr is { } native ? native(t.Handle) : t.dtype switch
        {
            ScalarType.Float32 => Base<float>(t),
            ScalarType.Float64 => Base<double>(t),
            ScalarType.Int64 => Base<long>(t),
            ScalarType.Int32 => Base<int>(t),
            ScalarType.Int16 => Base<short>(t),
            ScalarType.Int8 => Base<sbyte>(t),
            ScalarType.Byte => Base<byte>(t),
            ScalarType.Bool => Base<bool>(t),
            _ => throw new NotSupportedException($"tensors of dtype {DTypeName(t.dtype)} are not supported by the collectives"),
        };
        return basePtr + (nint)(t.storage_offset() * t.element_size());
    }

    /// <summary>
    /// Base address of <paramref name="t"/>'s storage (any layout): with <c>storage_offset</c>, where the tensor lives.
    /// One native call when TorchSharp's binding is found.
    /// </summary>
    public static nint StorageBase(Tensor t) => s_storageDataPtr is { } native ? native(t.Handle)
        : t.is_contiguous() ? DataPointer(t) - (nint)(t.storage_offset() * t.element_size())
        : throw new NotSupportedException("this TorchSharp build does not expose THSStorage_data_ptr for non-contiguous tensors");

    static readonly Func<nint, nint>? s_storageDataPtr = BindStorageDataPtr();

    static Func<nint, nint>? BindStorageDataPtr()
    {
        var method = typeof(torch).Assembly.GetType("TorchSharp.PInvoke.NativeMethods")?.GetMethod(
            "THSStorage_data_ptr", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Public,
            [typeof(nint)]);
        return method is null || method.ReturnType != typeof(nint) ? null : method.CreateDelegate<Func<nint, nint>>();
    }

    static nint Base<T>(Tensor t) where T : unmanaged
    {
        using var s = t.storage<T>();
        return s.data_ptr();
    }

    /// <summary>Torch's name for a dtype ("float32", "bfloat16").</summary>
    public static string DTypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.Float64 => "float64",
        ScalarType.Float16 => "float16",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Int64 => "int64",
        ScalarType.Int32 => "int32",
        ScalarType.Int16 => "int16",
        ScalarType.Int8 => "int8",
        ScalarType.Byte => "uint8",
        ScalarType.Bool => "bool",
        _ => t.ToString().ToLowerInvariant(),
    };

    public static bool IsFloating(ScalarType t) => t is ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16;

    /// <summary>dst[i] = op(dst[i], src[i]) for <paramref name="count"/> elements of <paramref name="type"/>.</summary>
    public static unsafe void Reduce(ScalarType type, ReduceOp op, byte* dst, byte* src, long count)
    {
        switch (type)
        {
            case ScalarType.Float32: Reduce((float*)dst, (float*)src, count, op); break;
            case ScalarType.Float64: Reduce((double*)dst, (double*)src, count, op); break;
            case ScalarType.Int64: Reduce((long*)dst, (long*)src, count, op); break;
            case ScalarType.Int32: Reduce((int*)dst, (int*)src, count, op); break;
            case ScalarType.Int16: Reduce((short*)dst, (short*)src, count, op); break;
            case ScalarType.Int8: Reduce((sbyte*)dst, (sbyte*)src, count, op); break;
            case ScalarType.Byte: Reduce(dst, src, count, op); break;
            default: throw new NotSupportedException($"the tcp backend cannot reduce {DTypeName(type)} tensors in place");
        }
    }

    /// <summary>dst[i] /= divisor for floating-point elements (the last step of <see cref="ReduceOp.Avg"/>).</summary>
    public static unsafe void Divide(ScalarType type, byte* dst, long count, int divisor)
    {
        switch (type)
        {
            case ScalarType.Float32: Divide((float*)dst, count, (float)divisor); break;
            case ScalarType.Float64: Divide((double*)dst, count, (double)divisor); break;
            default: throw new NotSupportedException($"ReduceOp.Avg needs a floating-point tensor, not {DTypeName(type)}");
        }
    }

    static unsafe void Reduce<T>(T* dst, T* src, long count, ReduceOp op) where T : unmanaged, INumber<T>
    {
        long i = 0;
        int w = Vector<T>.Count;
        switch (op)
        {
            case ReduceOp.Sum or ReduceOp.Avg:
                for (; i + w <= count; i += w) Vector.Store(Vector.Load(dst + i) + Vector.Load(src + i), dst + i);
                for (; i < count; i++) dst[i] += src[i];
                break;
            case ReduceOp.Min:
                for (; i + w <= count; i += w) Vector.Store(Vector.Min(Vector.Load(dst + i), Vector.Load(src + i)), dst + i);
                for (; i < count; i++) dst[i] = T.Min(dst[i], src[i]);
                break;
            case ReduceOp.Max:
                for (; i + w <= count; i += w) Vector.Store(Vector.Max(Vector.Load(dst + i), Vector.Load(src + i)), dst + i);
                for (; i < count; i++) dst[i] = T.Max(dst[i], src[i]);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "unknown reduction");
        }
    }

    static unsafe void Divide<T>(T* dst, long count, T divisor) where T : unmanaged, INumber<T>
    {
        long i = 0;
        int w = Vector<T>.Count;
        var d = new Vector<T>(divisor);
        for (; i + w <= count; i += w) Vector.Store(Vector.Load(dst + i) / d, dst + i);
        for (; i < count; i++) dst[i] /= divisor;
    }

    /// <summary>An aligned native scratch buffer, freed on dispose.</summary>
    public sealed unsafe class Scratch(long bytes) : IDisposable
    {
        public byte* Pointer { get; private set; } = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 64), 64);
        public long Length { get; } = bytes;

        public void Dispose()
        {
            if (Pointer != null) NativeMemory.AlignedFree(Pointer);
            Pointer = null;
        }
    }
}
