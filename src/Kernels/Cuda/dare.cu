// DARE: Bernoulli keep with probability `density` from Philox4x32-10 (Random123), identical to
// Weld.Kernels.Random.Philox4x32: element i takes word i % 4 of the block at counter
// (low, high 32 bits of i / 4, tensor_hash, model_index) under key (low, high 32 bits of seed);
// u = (word >> 8) · 2^-24; kept iff u < density, becoming x / density (one IEEE division) when rescaling.
// One thread computes one block of four elements (blocks are aligned to tensor indices, not to the span).

__device__ __forceinline__ uint4 weld_philox4x32_10(uint4 counter, weld_u32 key0, weld_u32 key1)
{
    #pragma unroll
    for (int round = 0; round < 10; round++)
    {
        if (round != 0)
        {
            key0 += 0x9E3779B9u;
            key1 += 0xBB67AE85u;
        }
        weld_u32 high0 = __umulhi(0xD2511F53u, counter.x);
        weld_u32 low0 = 0xD2511F53u * counter.x;
        weld_u32 high1 = __umulhi(0xCD9E8D57u, counter.z);
        weld_u32 low1 = 0xCD9E8D57u * counter.z;
        counter = make_uint4(high1 ^ counter.y ^ key0, low1, high0 ^ counter.w ^ key1, low0);
    }
    return counter;
}

__device__ __forceinline__ float weld_keep(float x, weld_u32 word, float density, int rescale)
{
    float u = __fmul_rn((float)(word >> 8), 5.9604644775390625e-8f); // exact: a 24-bit integer times 2^-24
    return u < density ? (rescale ? __fdiv_rn(x, density) : x) : 0.0f;
}

// values[0] is tensor element `first`, so a tensor processed in chunks draws the mask it draws in one piece.
extern "C" __global__ void drop_and_rescale(float* __restrict__ values, weld_i64 count, float density, int rescale,
    weld_u64 seed, weld_u32 tensor_hash, weld_u32 model_index, weld_i64 first)
{
    if (count <= 0)
        return;
    weld_i64 first_block = first >> 2;
    weld_i64 blocks = ((first + count - 1) >> 2) - first_block + 1;
    bool vector = (first & 3) == 0 && weld_aligned16(values);
    WELD_GRID_STRIDE(j, blocks)
    {
        weld_i64 b = first_block + j;
        uint4 word = weld_philox4x32_10(make_uint4((weld_u32)b, (weld_u32)((weld_u64)b >> 32), tensor_hash, model_index),
            (weld_u32)seed, (weld_u32)(seed >> 32));
        weld_i64 base = b * 4 - first; // index in values of the block's lane 0 (negative in a first partial block)
        if (vector && base + 4 <= count)
        {
            float4 x = reinterpret_cast<float4*>(values + base)[0];
            x.x = weld_keep(x.x, word.x, density, rescale);
            x.y = weld_keep(x.y, word.y, density, rescale);
            x.z = weld_keep(x.z, word.z, density, rescale);
            x.w = weld_keep(x.w, word.w, density, rescale);
            reinterpret_cast<float4*>(values + base)[0] = x;
        }
        else
        {
            weld_u32 words[4] = { word.x, word.y, word.z, word.w };
            for (int lane = 0; lane < 4; lane++)
            {
                weld_i64 i = base + lane;
                if (i >= 0 && i < count)
                    values[i] = weld_keep(values[i], words[lane], density, rescale);
            }
        }
    }
}
