// Storage conversions between bf16 / fp16 (raw unsigned shorts) and float32, 16 bytes per load where aligned.

extern "C" __global__ void bf16_to_f32(const weld_u16* __restrict__ source, float* __restrict__ destination, weld_i64 count)
{
    weld_i64 vectors = (weld_aligned16(source) && weld_aligned16(destination)) ? count / 8 : 0;
    WELD_GRID_STRIDE(v, vectors)
    {
        uint4 packed = reinterpret_cast<const uint4*>(source)[v];
        float4 low = make_float4(__uint_as_float(packed.x << 16), __uint_as_float(packed.x & 0xFFFF0000u),
                                 __uint_as_float(packed.y << 16), __uint_as_float(packed.y & 0xFFFF0000u));
        float4 high = make_float4(__uint_as_float(packed.z << 16), __uint_as_float(packed.z & 0xFFFF0000u),
                                  __uint_as_float(packed.w << 16), __uint_as_float(packed.w & 0xFFFF0000u));
        reinterpret_cast<float4*>(destination)[2 * v] = low;
        reinterpret_cast<float4*>(destination)[2 * v + 1] = high;
    }
    WELD_GRID_STRIDE(j, count - vectors * 8)
        destination[vectors * 8 + j] = weld_bf16_to_f32(source[vectors * 8 + j]);
}

extern "C" __global__ void f16_to_f32(const weld_u16* __restrict__ source, float* __restrict__ destination, weld_i64 count)
{
    weld_i64 vectors = (weld_aligned16(source) && weld_aligned16(destination)) ? count / 8 : 0;
    WELD_GRID_STRIDE(v, vectors)
    {
        uint4 packed = reinterpret_cast<const uint4*>(source)[v];
        float4 low = make_float4(weld_f16_to_f32((weld_u16)packed.x), weld_f16_to_f32((weld_u16)(packed.x >> 16)),
                                 weld_f16_to_f32((weld_u16)packed.y), weld_f16_to_f32((weld_u16)(packed.y >> 16)));
        float4 high = make_float4(weld_f16_to_f32((weld_u16)packed.z), weld_f16_to_f32((weld_u16)(packed.z >> 16)),
                                  weld_f16_to_f32((weld_u16)packed.w), weld_f16_to_f32((weld_u16)(packed.w >> 16)));
        reinterpret_cast<float4*>(destination)[2 * v] = low;
        reinterpret_cast<float4*>(destination)[2 * v + 1] = high;
    }
    WELD_GRID_STRIDE(j, count - vectors * 8)
        destination[vectors * 8 + j] = weld_f16_to_f32(source[vectors * 8 + j]);
}

__device__ __forceinline__ weld_u32 weld_pack(weld_u16 low, weld_u16 high) { return (weld_u32)low | ((weld_u32)high << 16); }

extern "C" __global__ void f32_to_bf16(const float* __restrict__ source, weld_u16* __restrict__ destination, weld_i64 count)
{
    weld_i64 vectors = (weld_aligned16(source) && weld_aligned16(destination)) ? count / 8 : 0;
    WELD_GRID_STRIDE(v, vectors)
    {
        float4 a = reinterpret_cast<const float4*>(source)[2 * v];
        float4 b = reinterpret_cast<const float4*>(source)[2 * v + 1];
        uint4 packed = make_uint4(weld_pack(weld_f32_to_bf16(a.x), weld_f32_to_bf16(a.y)),
                                  weld_pack(weld_f32_to_bf16(a.z), weld_f32_to_bf16(a.w)),
                                  weld_pack(weld_f32_to_bf16(b.x), weld_f32_to_bf16(b.y)),
                                  weld_pack(weld_f32_to_bf16(b.z), weld_f32_to_bf16(b.w)));
        reinterpret_cast<uint4*>(destination)[v] = packed;
    }
    WELD_GRID_STRIDE(j, count - vectors * 8)
        destination[vectors * 8 + j] = weld_f32_to_bf16(source[vectors * 8 + j]);
}

extern "C" __global__ void f32_to_f16(const float* __restrict__ source, weld_u16* __restrict__ destination, weld_i64 count)
{
    weld_i64 vectors = (weld_aligned16(source) && weld_aligned16(destination)) ? count / 8 : 0;
    WELD_GRID_STRIDE(v, vectors)
    {
        float4 a = reinterpret_cast<const float4*>(source)[2 * v];
        float4 b = reinterpret_cast<const float4*>(source)[2 * v + 1];
        uint4 packed = make_uint4(weld_pack(weld_f32_to_f16(a.x), weld_f32_to_f16(a.y)),
                                  weld_pack(weld_f32_to_f16(a.z), weld_f32_to_f16(a.w)),
                                  weld_pack(weld_f32_to_f16(b.x), weld_f32_to_f16(b.y)),
                                  weld_pack(weld_f32_to_f16(b.z), weld_f32_to_f16(b.w)));
        reinterpret_cast<uint4*>(destination)[v] = packed;
    }
    WELD_GRID_STRIDE(j, count - vectors * 8)
        destination[vectors * 8 + j] = weld_f32_to_f16(source[vectors * 8 + j]);
}
