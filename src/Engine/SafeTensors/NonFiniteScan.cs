using System.Numerics;
using System.Runtime.InteropServices;

namespace Weld.Engine.SafeTensors;

/// <summary>
/// Finds NaN and ±Inf in stored tensor bytes without converting them: a value is non-finite exactly when its exponent
/// bits are all ones (bf16 <c>0x7F80</c>, fp16 <c>0x7C00</c>, f32 <c>0x7F800000</c>, f64 <c>0x7FF0…</c>, fp8 E5M2
/// <c>0x7C</c>; fp8 E4M3FN has no infinity and one NaN pattern per sign, <c>0x7F</c>). SIMD over the raw bit patterns
/// (<see cref="Vector{T}"/>): one AND and one compare per lane, at memory speed.
/// </summary>
public static class NonFiniteScan
{
    /// <summary>The index of the first non-finite element of <paramref name="bytes"/> stored as <paramref name="dtype"/>, or -1.
    /// Integer and boolean dtypes have no non-finite values (always -1).</summary>
    public static long IndexOfNonFinite(DType dtype, ReadOnlySpan<byte> bytes) => dtype switch
    {
        DType.BF16 => Scan(MemoryMarshal.Cast<byte, ushort>(bytes), (ushort)0x7F80, (ushort)0x7F80),
        DType.F16 => Scan(MemoryMarshal.Cast<byte, ushort>(bytes), (ushort)0x7C00, (ushort)0x7C00),
        DType.F32 => Scan(MemoryMarshal.Cast<byte, uint>(bytes), 0x7F80_0000u, 0x7F80_0000u),
        DType.F64 => Scan(MemoryMarshal.Cast<byte, ulong>(bytes), 0x7FF0_0000_0000_0000ul, 0x7FF0_0000_0000_0000ul),
        DType.F8_E5M2 => Scan(bytes, (byte)0x7C, (byte)0x7C),
        DType.F8_E4M3 => Scan(bytes, (byte)0x7F, (byte)0x7F),
        _ => -1,
    };

    /// <summary>True when the element at <paramref name="index"/> is a NaN (false: an infinity).</summary>
    public static bool IsNaN(DType dtype, ReadOnlySpan<byte> bytes, long index) => dtype switch
    {
        DType.BF16 => (MemoryMarshal.Cast<byte, ushort>(bytes)[(int)index] & 0x007F) != 0,
        DType.F16 => (MemoryMarshal.Cast<byte, ushort>(bytes)[(int)index] & 0x03FF) != 0,
        DType.F32 => (MemoryMarshal.Cast<byte, uint>(bytes)[(int)index] & 0x007F_FFFF) != 0,
        DType.F64 => (MemoryMarshal.Cast<byte, ulong>(bytes)[(int)index] & 0x000F_FFFF_FFFF_FFFFul) != 0,
        DType.F8_E5M2 => (bytes[(int)index] & 0x03) != 0,
        _ => true,
    };

    private static long Scan<T>(ReadOnlySpan<T> values, T mask, T exponent)
        where T : unmanaged, IBinaryInteger<T>
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && values.Length >= Vector<T>.Count * 4)
        {
            var m = new Vector<T>(mask);
            var e = new Vector<T>(exponent);
            ReadOnlySpan<Vector<T>> vectors = MemoryMarshal.Cast<T, Vector<T>>(values);
            int v = 0;
            // Four vectors per step: one branch per 4 loads keeps the loop at load bandwidth.
            for (; v + 4 <= vectors.Length; v += 4)
            {
                Vector<T> hit = Vector.Equals(vectors[v] & m, e) | Vector.Equals(vectors[v + 1] & m, e)
                    | Vector.Equals(vectors[v + 2] & m, e) | Vector.Equals(vectors[v + 3] & m, e);
                if (hit != Vector<T>.Zero) break;
            }
            i = v * Vector<T>.Count;
        }
        for (; i < values.Length; i++)
            if ((values[i] & mask) == exponent) return i;
        return -1;
    }
}

/// <summary>An input tensor holds NaN or ±Inf (refused unless the merge allows non-finite values).</summary>
public sealed class NonFiniteInputException : WeldException
{
    /// <summary>Creates the exception; the message names the file, the tensor and the first bad element.</summary>
    public NonFiniteInputException(string filePath, string tensorName, long element, bool nan)
        : base($"{filePath}: tensor {tensorName} holds {(nan ? "NaN" : "an infinity")} (element {element:N0}); " +
               "a merge of it would spread the non-finite value. Repair or drop that model, or pass --allow-non-finite to merge it as mergekit does")
    {
        FilePath = filePath;
        TensorName = tensorName;
    }

    /// <summary>The file at fault.</summary>
    public string FilePath { get; }

    /// <summary>The tensor at fault.</summary>
    public string TensorName { get; }
}
