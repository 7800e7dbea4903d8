using System.Runtime.InteropServices;
using Weld.Kernels;

namespace Weld.Engine.SafeTensors;

/// <summary>Float32 values to a floating-point dtype's bytes (rounding to nearest even), as the writer stores them.</summary>
internal static class FloatEncoding
{
    /// <summary>Encodes <paramref name="values"/> as <paramref name="dtype"/> into <paramref name="destination"/> (exactly values.Length × size bytes).</summary>
    public static void Encode(DType dtype, ReadOnlySpan<float> values, Span<byte> destination)
    {
        switch (dtype)
        {
            case DType.F32: MemoryMarshal.AsBytes(values).CopyTo(destination); break;
            case DType.BF16: FloatConversions.SingleToBf16(values, MemoryMarshal.Cast<byte, ushort>(destination)); break;
            case DType.F16: FloatConversions.SingleToHalf(values, MemoryMarshal.Cast<byte, ushort>(destination)); break;
            case DType.F64: FloatConversions.SingleToDouble(values, MemoryMarshal.Cast<byte, double>(destination)); break;
            case DType.F8_E4M3: FloatConversions.SingleToFp8E4M3(values, destination); break;
            case DType.F8_E5M2: FloatConversions.SingleToFp8E5M2(values, destination); break;
            default: throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Not a narrowing float dtype.");
        }
    }
}
