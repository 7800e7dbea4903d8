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

// DELLA's MagPrune (IMergeKernels.SampleByMagnitudeRank): one block per fiber (grid-stride over fibers). The fiber's
// (magnitude key << 32 | position) pairs order the elements exactly as the CPU's stable sort does. Fibers of up to
// WELD_RANK_TILE elements are sorted in shared memory (bitonic, padded with all-ones keys); a longer fiber counts each
// element's rank, rank = #{pairs below its own}, over tiles of the fiber in shared memory (O(length²) per fiber).
// Reads `input`, writes `output`, so no element is overwritten while the fiber is still being ranked.
#define WELD_RANK_TILE 4096

__device__ __forceinline__ weld_u64 weld_rank_pair(const float* __restrict__ input, weld_i64 first, int r, weld_i64 stride)
{
    weld_u32 magnitude = __float_as_uint(__ldg(input + first + (weld_i64)r * stride)) & 0x7FFFFFFFu;
    return ((weld_u64)magnitude << 32) | (weld_u32)r;
}

// Element `index` at sorted position s of its fiber: p from s (float32 operations in the CPU's order), then the DARE draw.
__device__ __forceinline__ float weld_rank_sample(float x, weld_i64 index, int s, int length, float low, float epsilon,
    float single, int divide, weld_u64 seed, weld_u32 tensor_hash, weld_u32 model_index)
{
    float p = length == 1 ? single
        : __fadd_rn(low, __fmul_rn(__fmul_rn(__fdiv_rn((float)s, (float)(length - 1)), 2.0f), epsilon));
    weld_u64 block = (weld_u64)index >> 2;
    uint4 word = weld_philox4x32_10(make_uint4((weld_u32)block, (weld_u32)(block >> 32), tensor_hash, model_index),
        (weld_u32)seed, (weld_u32)(seed >> 32));
    int lane = (int)(index & 3);
    weld_u32 bits = lane == 0 ? word.x : lane == 1 ? word.y : lane == 2 ? word.z : word.w;
    return weld_keep(x, bits, p, divide);
}

extern "C" __global__ void rank_magnitude_sample(const float* __restrict__ input, float* __restrict__ output, weld_i64 fibers,
    int length, weld_i64 stride, float low, float epsilon, float single, int divide, weld_u64 seed, weld_u32 tensor_hash,
    weld_u32 model_index)
{
    __shared__ weld_u64 tile[WELD_RANK_TILE];
    for (weld_i64 fiber = blockIdx.x; fiber < fibers; fiber += gridDim.x)
    {
        weld_i64 first = fiber / stride * length * stride + fiber % stride;
        if (length <= WELD_RANK_TILE)
        {
            int padded = 1;
            while (padded < length)
                padded <<= 1;
            for (int t = threadIdx.x; t < padded; t += blockDim.x)
                tile[t] = t < length ? weld_rank_pair(input, first, t, stride) : ~0ull;
            __syncthreads();
            for (int k = 2; k <= padded; k <<= 1)
            {
                for (int j = k >> 1; j > 0; j >>= 1)
                {
                    for (int t = threadIdx.x; t < padded; t += blockDim.x)
                    {
                        int partner = t ^ j;
                        if (partner > t)
                        {
                            weld_u64 a = tile[t], b = tile[partner];
                            bool ascending = (t & k) == 0;
                            if ((a > b) == ascending)
                            {
                                tile[t] = b;
                                tile[partner] = a;
                            }
                        }
                    }
                    __syncthreads();
                }
            }
            for (int s = threadIdx.x; s < length; s += blockDim.x)
            {
                weld_i64 index = first + (weld_i64)(weld_u32)tile[s] * stride;
                output[index] = weld_rank_sample(__ldg(input + index), index, s, length, low, epsilon, single, divide, seed,
                    tensor_hash, model_index);
            }
            __syncthreads(); // the next fiber reuses the tile
        }
        else
        {
            for (int start = 0; start < length; start += blockDim.x)
            {
                int r = start + threadIdx.x;
                bool valid = r < length;
                weld_u64 own = valid ? weld_rank_pair(input, first, r, stride) : 0;
                int rank = 0;
                for (int tile_start = 0; tile_start < length; tile_start += WELD_RANK_TILE)
                {
                    int tile_count = min(WELD_RANK_TILE, length - tile_start);
                    __syncthreads();
                    for (int t = threadIdx.x; t < tile_count; t += blockDim.x)
                        tile[t] = weld_rank_pair(input, first, tile_start + t, stride);
                    __syncthreads();
                    if (valid)
                    {
                        for (int t = 0; t < tile_count; t++)
                            rank += tile[t] < own ? 1 : 0;
                    }
                }
                if (valid)
                {
                    weld_i64 index = first + (weld_i64)r * stride;
                    output[index] = weld_rank_sample(__ldg(input + index), index, rank, length, low, epsilon, single, divide,
                        seed, tensor_hash, model_index);
                }
            }
            __syncthreads();
        }
    }
}
