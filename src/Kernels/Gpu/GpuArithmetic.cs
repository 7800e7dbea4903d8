using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Weld.Kernels.Gpu;

/// <summary>
/// Float32 arithmetic with the rounding pinned, for kernels that must give the CPU backend's bits. ILGPU emits plain
/// <c>mul.f32</c> / <c>add.f32</c>, which ptxas may contract into an FMA (one rounding instead of two); the explicit
/// <c>.rn</c> forms are never contracted. On the CPU accelerator the same calls are plain C# arithmetic, which the
/// .NET JIT never contracts either. Where the CPU side uses <see cref="MathF.FusedMultiplyAdd"/>, use <see cref="Fma"/>.
/// </summary>
internal static class GpuArithmetic
{
    /// <summary>a·b rounded to nearest even, never fused with a following add.</summary>
    public static float Mul(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("mul.rn.f32 %0, %1, %2;", out float product, a, b);
            return product;
        }
        return a * b;
    }

    /// <summary>a + b rounded to nearest even, never fused with a preceding multiply.</summary>
    public static float Add(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("add.rn.f32 %0, %1, %2;", out float sum, a, b);
            return sum;
        }
        return a + b;
    }

    /// <summary>a − b rounded to nearest even.</summary>
    public static float Sub(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("sub.rn.f32 %0, %1, %2;", out float difference, a, b);
            return difference;
        }
        return a - b;
    }

    /// <summary>a / b, one IEEE division (never the approximate form).</summary>
    public static float Div(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("div.rn.f32 %0, %1, %2;", out float quotient, a, b);
            return quotient;
        }
        return a / b;
    }

    /// <summary>a·b + c with one rounding (the CPU side calls <see cref="MathF.FusedMultiplyAdd"/>).</summary>
    public static float Fma(float a, float b, float c)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("fma.rn.f32 %0, %1, %2, %3;", out float result, a, b, c);
            return result;
        }
        return SoftwareFma(a, b, c);
    }

    /// <summary>
    /// a·b + c with one rounding, in plain arithmetic that every ILGPU backend compiles (ILGPU has no FMA intrinsic:
    /// <see cref="MathF.FusedMultiplyAdd"/> becomes a call to an undefined PTX function). The product of two floats
    /// is exact in float64; the float64 sum is made round-to-odd (TwoSum gives its exact error; an even result with a
    /// non-zero error steps one ulp toward the error), and rounding a round-to-odd value with 29 extra bits to float32
    /// is correctly rounded (Boldo and Melquiond, "Emulation of FMA and correctly rounded sums: proved algorithms
    /// using rounding to odd", IEEE TC 2008). Equals <see cref="MathF.FusedMultiplyAdd"/> bit for bit (tested).
    /// </summary>
    public static float SoftwareFma(float a, float b, float c)
    {
        double product = (double)a * b;
        double sum = product + c;
        // TwoSum (Knuth): the exact rounding error of product + c. Sums of finite values only; infinities and NaNs
        // pass through the plain sum, which already is the IEEE result.
        double bVirtual = sum - product;
        double error = (product - (sum - bVirtual)) + (c - bVirtual);
        ulong bits = Interop.FloatAsInt(sum);
        if (error != 0.0 && (bits & 1UL) == 0UL && (bits & 0x7FF0000000000000UL) != 0x7FF0000000000000UL)
            sum = Interop.IntAsFloat((error > 0.0) == (sum > 0.0) ? bits + 1UL : bits - 1UL);
        return (float)sum;
    }

    /// <summary>a·b in float64, rounded, never fused.</summary>
    public static double Mul(double a, double b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("mul.rn.f64 %0, %1, %2;", out double product, a, b);
            return product;
        }
        return a * b;
    }

    /// <summary>a + b in float64, rounded, never fused.</summary>
    public static double Add(double a, double b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("add.rn.f64 %0, %1, %2;", out double sum, a, b);
            return sum;
        }
        return a + b;
    }

    /// <summary>The bits of a float32.</summary>
    public static uint Bits(float x) => Interop.FloatAsInt(x);

    /// <summary>The float32 with these bits.</summary>
    public static float FromBits(uint bits) => Interop.IntAsFloat(bits);

    /// <summary>Magnitude key: bits(x) &amp; 0x7FFFFFFF (±0 tie, NaN above +∞), as the CPU kernels order magnitudes.</summary>
    public static uint MagnitudeKey(float x) => Interop.FloatAsInt(x) & 0x7FFFFFFFu;
}
