using ILGPU;
using ILGPU.Runtime;
using static Weld.Kernels.Gpu.GpuArithmetic;

namespace Weld.Kernels.Gpu;

public sealed partial class GpuKernels
{
    private Action<AcceleratorStream, KernelConfig, ArrayView<ushort>, ArrayView<float>, long>? _bf16ToSingle;
    private Action<AcceleratorStream, KernelConfig, ArrayView<ushort>, ArrayView<float>, long>? _halfToSingle;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<ushort>, long>? _singleToBf16;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<ushort>, long>? _singleToHalf;
    private Action<AcceleratorStream, KernelConfig, ArrayView<byte>, ArrayView<float>, long>? _fp8E4M3ToSingle;
    private Action<AcceleratorStream, KernelConfig, ArrayView<byte>, ArrayView<float>, long>? _fp8E5M2ToSingle;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<byte>, long>? _singleToFp8E4M3;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<byte>, long>? _singleToFp8E5M2;

    /// <summary>Widens bf16 bit patterns to float32 on the device (bit-identical to <see cref="Weld.Kernels.FloatConversions.Bf16ToSingle(ReadOnlySpan{ushort}, Span{float})"/>).</summary>
    /// <param name="source">bf16 bit patterns.</param>
    /// <param name="destination">At least as long as <paramref name="source"/>.</param>
    public void Bf16ToSingle(ReadOnlySpan<ushort> source, Span<float> destination) =>
        Convert<ushort, float>(LaunchBf16ToSingle, source, destination);

    /// <summary>Widens IEEE half bit patterns to float32 on the device (bit-identical to <see cref="Weld.Kernels.FloatConversions.HalfToSingle(ReadOnlySpan{ushort}, Span{float})"/>).</summary>
    /// <param name="source">fp16 bit patterns.</param>
    /// <param name="destination">At least as long as <paramref name="source"/>.</param>
    public void HalfToSingle(ReadOnlySpan<ushort> source, Span<float> destination) =>
        Convert<ushort, float>(LaunchHalfToSingle, source, destination);

    /// <summary>Narrows float32 to bf16 on the device, nearest even (bit-identical to <see cref="Weld.Kernels.FloatConversions.SingleToBf16(ReadOnlySpan{float}, Span{ushort})"/>).</summary>
    /// <param name="source">float32 values.</param>
    /// <param name="destination">At least as long as <paramref name="source"/>.</param>
    public void SingleToBf16(ReadOnlySpan<float> source, Span<ushort> destination) =>
        Convert<float, ushort>(LaunchSingleToBf16, source, destination);

    /// <summary>Narrows float32 to IEEE half on the device, nearest even (bit-identical to <see cref="Weld.Kernels.FloatConversions.SingleToHalf(ReadOnlySpan{float}, Span{ushort})"/>).</summary>
    /// <param name="source">float32 values.</param>
    /// <param name="destination">At least as long as <paramref name="source"/>.</param>
    public void SingleToHalf(ReadOnlySpan<float> source, Span<ushort> destination) =>
        Convert<float, ushort>(LaunchSingleToHalf, source, destination);

    /// <summary>Widens fp8 E4M3FN to float32 on the device (bit-identical to <see cref="Weld.Kernels.FloatConversions.Fp8E4M3ToSingle(ReadOnlySpan{byte}, Span{float})"/>).</summary>
    /// <param name="source">fp8 E4M3FN bytes.</param>
    /// <param name="destination">At least as long as <paramref name="source"/>.</param>
    public void Fp8E4M3ToSingle(ReadOnlySpan<byte> source, Span<float> destination) =>
        Convert<byte, float>(LaunchFp8E4M3ToSingle, source, destination);

    /// <summary>Widens fp8 E5M2 to float32 on the device (bit-identical to <see cref="Weld.Kernels.FloatConversions.Fp8E5M2ToSingle(ReadOnlySpan{byte}, Span{float})"/>).</summary>
    /// <param name="source">fp8 E5M2 bytes.</param>
    /// <param name="destination">At least as long as <paramref name="source"/>.</param>
    public void Fp8E5M2ToSingle(ReadOnlySpan<byte> source, Span<float> destination) =>
        Convert<byte, float>(LaunchFp8E5M2ToSingle, source, destination);

    /// <summary>Narrows float32 to fp8 E4M3FN on the device with PyTorch's rules (bit-identical to <see cref="Weld.Kernels.FloatConversions.SingleToFp8E4M3(ReadOnlySpan{float}, Span{byte})"/>).</summary>
    /// <param name="source">float32 values.</param>
    /// <param name="destination">At least as long as <paramref name="source"/>.</param>
    public void SingleToFp8E4M3(ReadOnlySpan<float> source, Span<byte> destination) =>
        Convert<float, byte>(LaunchSingleToFp8E4M3, source, destination);

    /// <summary>Narrows float32 to fp8 E5M2 on the device with PyTorch's rules (bit-identical to <see cref="Weld.Kernels.FloatConversions.SingleToFp8E5M2(ReadOnlySpan{float}, Span{byte})"/>).</summary>
    /// <param name="source">float32 values.</param>
    /// <param name="destination">At least as long as <paramref name="source"/>.</param>
    public void SingleToFp8E5M2(ReadOnlySpan<float> source, Span<byte> destination) =>
        Convert<float, byte>(LaunchSingleToFp8E5M2, source, destination);

    /// <summary>One conversion over a host span: upload, convert element by element on the device, download.</summary>
    private void Convert<TSource, TDestination>(Action<ArrayView<TSource>, ArrayView<TDestination>, long> launch,
        ReadOnlySpan<TSource> source, Span<TDestination> destination)
        where TSource : unmanaged where TDestination : unmanaged
    {
        if (destination.Length < source.Length)
            throw new ArgumentException(
                $"Destination holds {destination.Length} elements, fewer than the {source.Length} source elements.", nameof(destination));
        if (source.Length == 0)
            return;
        using var call = new Call(this);
        ArrayView<TSource> input = call.Upload(source);
        ArrayView<TDestination> output = call.Rent<TDestination>(source.Length);
        launch(input, output, source.Length);
        call.Download(output, destination[..source.Length]);
    }

    // Launches on device arrays (inside a Call; also for the bench, which times kernels without transfers).

    internal void LaunchBf16ToSingle(ArrayView<ushort> source, ArrayView<float> destination, long length) =>
        Load(ref _bf16ToSingle, FloatConversionKernels.Bf16ToSingle)(Stream, GridFor(length), source, destination, length);

    internal void LaunchHalfToSingle(ArrayView<ushort> source, ArrayView<float> destination, long length) =>
        Load(ref _halfToSingle, FloatConversionKernels.HalfToSingle)(Stream, GridFor(length), source, destination, length);

    internal void LaunchSingleToBf16(ArrayView<float> source, ArrayView<ushort> destination, long length) =>
        Load(ref _singleToBf16, FloatConversionKernels.SingleToBf16)(Stream, GridFor(length), source, destination, length);

    internal void LaunchSingleToHalf(ArrayView<float> source, ArrayView<ushort> destination, long length) =>
        Load(ref _singleToHalf, FloatConversionKernels.SingleToHalf)(Stream, GridFor(length), source, destination, length);

    internal void LaunchFp8E4M3ToSingle(ArrayView<byte> source, ArrayView<float> destination, long length) =>
        Load(ref _fp8E4M3ToSingle, FloatConversionKernels.Fp8E4M3ToSingle)(Stream, GridFor(length), source, destination, length);

    internal void LaunchFp8E5M2ToSingle(ArrayView<byte> source, ArrayView<float> destination, long length) =>
        Load(ref _fp8E5M2ToSingle, FloatConversionKernels.Fp8E5M2ToSingle)(Stream, GridFor(length), source, destination, length);

    internal void LaunchSingleToFp8E4M3(ArrayView<float> source, ArrayView<byte> destination, long length) =>
        Load(ref _singleToFp8E4M3, FloatConversionKernels.SingleToFp8E4M3)(Stream, GridFor(length), source, destination, length);

    internal void LaunchSingleToFp8E5M2(ArrayView<float> source, ArrayView<byte> destination, long length) =>
        Load(ref _singleToFp8E5M2, FloatConversionKernels.SingleToFp8E5M2)(Stream, GridFor(length), source, destination, length);
}

/// <summary>
/// Storage conversions between bf16 / fp16 (raw <see cref="ushort"/> bits), fp8 (raw bytes) and float32, one element
/// per loop step, spelled out in integer arithmetic: that pins the NaN rules to those of
/// <see cref="Weld.Kernels.FloatConversions"/> (.NET's Half, PyTorch's fp8), where PTX <c>cvt</c> would canonicalise
/// NaNs. Where the CPU lets the float adder round (subnormal results), the add is <see cref="GpuArithmetic.Add(float, float)"/>:
/// <c>add.rn.f32</c> without <c>.ftz</c>, so subnormal inputs and results are kept as on the CPU.
/// </summary>
internal static class FloatConversionKernels
{
    public static void Bf16ToSingle(ArrayView<ushort> source, ArrayView<float> destination, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
            destination[i] = FromBits((uint)source[i] << 16);
    }

    public static void HalfToSingle(ArrayView<ushort> source, ArrayView<float> destination, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
            destination[i] = WidenHalf(source[i]);
    }

    public static void SingleToBf16(ArrayView<float> source, ArrayView<ushort> destination, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
            destination[i] = NarrowToBf16(source[i]);
    }

    public static void SingleToHalf(ArrayView<float> source, ArrayView<ushort> destination, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
            destination[i] = NarrowToHalf(source[i]);
    }

    public static void Fp8E4M3ToSingle(ArrayView<byte> source, ArrayView<float> destination, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
            destination[i] = WidenE4M3(source[i]);
    }

    public static void Fp8E5M2ToSingle(ArrayView<byte> source, ArrayView<float> destination, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
            destination[i] = WidenHalf((ushort)(source[i] << 8)); // E5M2 is the top byte of an IEEE half
    }

    public static void SingleToFp8E4M3(ArrayView<float> source, ArrayView<byte> destination, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
            destination[i] = NarrowToE4M3(source[i]);
    }

    public static void SingleToFp8E5M2(ArrayView<float> source, ArrayView<byte> destination, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
            destination[i] = NarrowToE5M2(source[i]);
    }

    /// <summary>f32 → bf16: nearest even on the upper 16 bits; a NaN keeps sign and top payload and gets the quiet bit.</summary>
    public static ushort NarrowToBf16(float value)
    {
        uint bits = Bits(value);
        if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
            return (ushort)((bits >> 16) | 0x40u); // truncating the payload alone could leave Inf
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }

    /// <summary>fp16 → f32: exact, subnormals included; a NaN keeps sign and payload with the quiet bit (as .NET's Half).</summary>
    public static float WidenHalf(ushort half)
    {
        uint sign = ((uint)half & 0x8000u) << 16;
        uint exponent = ((uint)half >> 10) & 0x1Fu;
        uint mantissa = (uint)half & 0x3FFu;
        if (exponent == 0x1Fu)
            return FromBits(sign | 0x7F800000u | (mantissa != 0u ? 0x400000u | (mantissa << 13) : 0u));
        if (exponent == 0u)
        {
            // Zero or subnormal: mantissa · 2^-24, exact in float32 (a normal float there).
            float magnitude = Mul((float)mantissa, 5.9604644775390625e-8f);
            return FromBits(sign | Bits(magnitude));
        }
        return FromBits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
    }

    /// <summary>
    /// f32 → fp16: nearest even, |x| ≥ 65520 to ±Inf, subnormals rounded exactly; a NaN keeps its sign and top payload
    /// bits with the quiet bit set (as .NET's (Half)float).
    /// </summary>
    public static ushort NarrowToHalf(float value)
    {
        uint bits = Bits(value);
        uint sign = (bits >> 16) & 0x8000u;
        uint magnitude = bits & 0x7FFFFFFFu;
        if (magnitude > 0x7F800000u)
            return (ushort)(sign | 0x7E00u | ((magnitude >> 13) & 0x3FFu));
        if (magnitude >= 0x477FF000u) // 65520 and above round past the largest half (65504)
            return (ushort)(sign | 0x7C00u);
        if (magnitude < 0x38800000u)
        {
            // Below 2^-14: adding 0.5 makes the float adder round to a multiple of 2^-24 (ties to even); the low
            // mantissa bits of the sum are then the half's subnormal mantissa (0x400 = the smallest normal).
            float sum = Add(FromBits(magnitude), 0.5f);
            return (ushort)(sign | (Bits(sum) - 0x3F000000u));
        }
        uint rebased = magnitude - 0x38000000u; // exponent bias 127 -> 15
        return (ushort)(sign | ((rebased + 0xFFFu + ((rebased >> 13) & 1u)) >> 13));
    }

    /// <summary>fp8 E4M3FN → f32 (bias 7, no infinities, S.1111.111 = NaN), exact.</summary>
    public static float WidenE4M3(byte value)
    {
        uint sign = ((uint)value & 0x80u) << 24;
        uint exponent = ((uint)value >> 3) & 0xFu;
        uint mantissa = (uint)value & 0x7u;
        if (exponent == 0xFu && mantissa == 0x7u)
            return FromBits(sign | 0x7FC00000u);
        if (exponent == 0u)
            return FromBits(sign | Bits(Mul((float)mantissa, 1f / 512f))); // subnormal: m · 2^-9, exact
        return FromBits(sign | ((exponent + 120u) << 23) | (mantissa << 20));
    }

    /// <summary>f32 → fp8 E4M3FN (c10's fp8e4m3fn_from_fp32_value): nearest even; |x| &gt; 464, ±Inf, NaN → NaN; no saturation.</summary>
    public static byte NarrowToE4M3(float value)
    {
        const uint firstUnrepresentable = 1087u << 20; // 480.0f
        const uint denormMagic = 141u << 23;           // ((127 - 7) + (23 - 3) + 1) << 23
        uint bits = Bits(value);
        uint sign = bits & 0x80000000u;
        bits ^= sign;
        uint result;
        if (bits >= firstUnrepresentable)
        {
            result = 0x7Fu;
        }
        else if (bits < 121u << 23)
        {
            // Below the smallest normal (2^-6): adding a magic float lets the adder round to a subnormal.
            result = Bits(Add(FromBits(bits), FromBits(denormMagic))) - denormMagic;
        }
        else
        {
            uint mantissaOdd = (bits >> 20) & 1u;
            bits += unchecked((uint)((7 - 127) << 23)) + 0x7FFFFu + mantissaOdd;
            result = bits >> 20;
        }
        return (byte)(result | (sign >> 24));
    }

    /// <summary>f32 → fp8 E5M2 (c10's fp8e5m2_from_fp32_value): nearest even, overflow to ±Inf, NaN stays NaN.</summary>
    public static byte NarrowToE5M2(float value)
    {
        const uint firstUnrepresentable = 143u << 23; // 65536.0f
        const uint denormMagic = 134u << 23;          // ((127 - 15) + (23 - 2) + 1) << 23
        uint bits = Bits(value);
        uint sign = bits & 0x80000000u;
        bits ^= sign;
        uint result;
        if (bits >= firstUnrepresentable)
        {
            result = bits > 0x7F800000u ? 0x7Fu : 0x7Cu;
        }
        else if (bits < 113u << 23)
        {
            result = Bits(Add(FromBits(bits), FromBits(denormMagic))) - denormMagic;
        }
        else
        {
            uint mantissaOdd = (bits >> 21) & 1u;
            bits += unchecked((uint)((15 - 127) << 23)) + 0xFFFFFu + mantissaOdd;
            result = bits >> 21;
        }
        return (byte)(result | (sign >> 24));
    }
}
