// Weld CUDA prelude: fixed-width types, grid-stride loops, and bit-exact float conversions.
// Prepended to every other kernel file (NVRTC has no cuda_fp16.h / cuda_bf16.h here, so bf16 and fp16 are raw
// unsigned shorts and every conversion is spelled out in integer arithmetic — which also pins the NaN rules to
// those of .NET's Half and Weld's FloatConversions, where the PTX cvt instructions would canonicalise NaNs).
typedef unsigned short weld_u16;
typedef unsigned int weld_u32;
typedef unsigned long long weld_u64;
typedef long long weld_i64;

#define WELD_THREAD_INDEX ((weld_i64)blockIdx.x * blockDim.x + threadIdx.x)
#define WELD_THREAD_COUNT ((weld_i64)blockDim.x * gridDim.x)
#define WELD_GRID_STRIDE(i, count) for (weld_i64 i = WELD_THREAD_INDEX; i < (weld_i64)(count); i += WELD_THREAD_COUNT)

// bf16 -> f32: exact, the bf16 bits are the top half of the float.
__device__ __forceinline__ float weld_bf16_to_f32(weld_u16 b) { return __uint_as_float(((weld_u32)b) << 16); }

// f32 -> bf16: round to nearest even; a NaN keeps its sign and top payload bits and gets the quiet bit.
__device__ __forceinline__ weld_u16 weld_f32_to_bf16(float f)
{
    weld_u32 bits = __float_as_uint(f);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
        return (weld_u16)((bits >> 16) | 0x40u);
    return (weld_u16)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

// fp16 -> f32: exact, subnormals included; a NaN keeps sign and payload and gets the quiet bit (as .NET's Half).
__device__ __forceinline__ float weld_f16_to_f32(weld_u16 h)
{
    weld_u32 sign = ((weld_u32)h & 0x8000u) << 16;
    weld_u32 exponent = ((weld_u32)h >> 10) & 0x1Fu;
    weld_u32 mantissa = (weld_u32)h & 0x3FFu;
    if (exponent == 0x1Fu)
        return __uint_as_float(sign | 0x7F800000u | (mantissa != 0u ? 0x400000u | (mantissa << 13) : 0u));
    if (exponent == 0u)
    {
        // Zero or subnormal: mantissa · 2^-24, exact in float32 (a normal float there).
        float magnitude = __fmul_rn((float)mantissa, 5.9604644775390625e-8f);
        return __uint_as_float(sign | __float_as_uint(magnitude));
    }
    return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// f32 -> fp16: round to nearest even, |x| >= 65520 to ±Inf, subnormals rounded exactly; a NaN keeps its sign and
// top payload bits with the quiet bit set (bit-identical to .NET's (Half)float).
__device__ __forceinline__ weld_u16 weld_f32_to_f16(float f)
{
    weld_u32 bits = __float_as_uint(f);
    weld_u32 sign = (bits >> 16) & 0x8000u;
    weld_u32 magnitude = bits & 0x7FFFFFFFu;
    if (magnitude > 0x7F800000u)
        return (weld_u16)(sign | 0x7E00u | ((magnitude >> 13) & 0x3FFu));
    if (magnitude >= 0x477FF000u) // 65520 and above round past the largest half (65504)
        return (weld_u16)(sign | 0x7C00u);
    if (magnitude < 0x38800000u)
    {
        // Below 2^-14: adding 0.5 makes the float adder round to a multiple of 2^-24 (ties to even); the low
        // mantissa bits of the sum are then the half's subnormal mantissa (0x400 = the smallest normal).
        float sum = __fadd_rn(__uint_as_float(magnitude), 0.5f);
        return (weld_u16)(sign | (__float_as_uint(sum) - 0x3F000000u));
    }
    weld_u32 rebased = magnitude - 0x38000000u; // exponent bias 127 -> 15
    return (weld_u16)(sign | ((rebased + 0xFFFu + ((rebased >> 13) & 1u)) >> 13));
}

// 16-byte vector loads need every pointer 16-byte aligned; device buffers are, row offsets may not be.
__device__ __forceinline__ bool weld_aligned16(const void* p) { return (((weld_u64)p) & 15u) == 0u; }
