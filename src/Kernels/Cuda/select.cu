// Exact magnitude selection (top-k and the Breadcrumbs band) by radix select on the 31-bit key
// key(x) = bits(x) & 0x7FFFFFFF, whose integer order is the order of |x| with NaN above +Inf.
// 1. radix_histogram: three passes (digits of 11, 10, 10 bits from the top) over the elements whose higher key bits
//    match the prefix found so far; the host walks each histogram to the digit holding the sought rank.
// 2. count_key_per_tile: elements equal to the found key per fixed tile of WELD_TILE elements, so the host can give
//    each tile the tie index of its first tied element (an exclusive prefix sum).
// 3. magnitude_mask: zeroes what a lower and/or upper cut drop. Ties at a cut are numbered in flat index order; a
//    block walks its tile in order, numbering its ties with warp ballots and a block-wide prefix.

#define WELD_SELECT_THREADS 256
#define WELD_TILE 4096
#define WELD_KEY_MASK 0x7FFFFFFFu

extern "C" __global__ void __launch_bounds__(WELD_SELECT_THREADS) radix_histogram(const weld_u32* __restrict__ bits,
    weld_i64 count, int shift, int width, int prefix_shift, weld_u32 prefix, weld_u32* __restrict__ histogram)
{
    __shared__ weld_u32 shared_bins[2048];
    int bins = 1 << width;
    weld_u32 digit_mask = (weld_u32)bins - 1u;
    bool first_pass = prefix_shift >= 31;
    // Up to 11-bit digits count in shared memory first; wider ones (IMergeKernels allows 16) go straight to global.
    bool in_shared = bins <= 2048;
    weld_u32* local = in_shared ? shared_bins : histogram;
    if (in_shared)
        for (int b = threadIdx.x; b < bins; b += blockDim.x)
            local[b] = 0u;
    __syncthreads();

    weld_i64 vectors = weld_aligned16(bits) ? count / 4 : 0;
    WELD_GRID_STRIDE(v, vectors)
    {
        uint4 word = __ldg(reinterpret_cast<const uint4*>(bits) + v);
        weld_u32 keys[4] = { word.x & WELD_KEY_MASK, word.y & WELD_KEY_MASK, word.z & WELD_KEY_MASK, word.w & WELD_KEY_MASK };
        #pragma unroll
        for (int lane = 0; lane < 4; lane++)
            if (first_pass || (keys[lane] >> prefix_shift) == prefix)
                atomicAdd(&local[(keys[lane] >> shift) & digit_mask], 1u);
    }
    WELD_GRID_STRIDE(j, count - vectors * 4)
    {
        weld_u32 key = __ldg(bits + vectors * 4 + j) & WELD_KEY_MASK;
        if (first_pass || (key >> prefix_shift) == prefix)
            atomicAdd(&local[(key >> shift) & digit_mask], 1u);
    }
    __syncthreads();
    if (in_shared)
        for (int b = threadIdx.x; b < bins; b += blockDim.x)
            if (local[b] != 0u)
                atomicAdd(histogram + b, local[b]);
}

// One block per tile: tile_counts[blockIdx.x] = elements of the tile whose key equals `key`.
extern "C" __global__ void __launch_bounds__(WELD_SELECT_THREADS) count_key_per_tile(const weld_u32* __restrict__ bits,
    weld_i64 count, weld_u32 key, weld_u32* __restrict__ tile_counts)
{
    weld_i64 start = (weld_i64)blockIdx.x * WELD_TILE;
    weld_i64 end = min(start + WELD_TILE, count);
    int equal = 0;
    for (weld_i64 i = start + threadIdx.x; i < end; i += blockDim.x)
        equal += (__ldg(bits + i) & WELD_KEY_MASK) == key ? 1 : 0;
    __shared__ int sum;
    if (threadIdx.x == 0)
        sum = 0;
    __syncthreads();
    if (equal != 0)
        atomicAdd(&sum, equal);
    __syncthreads();
    if (threadIdx.x == 0)
        tile_counts[blockIdx.x] = (weld_u32)sum;
}

// How a cut treats the ties of one tile.
#define WELD_CUT_NONE 0      // no cut on this side
#define WELD_CUT_KEEP_TIES 1 // every tie at the key kept (only beyond-the-key elements drop)
#define WELD_CUT_DROP_TIES 2 // every tie at the key dropped
#define WELD_CUT_BY_INDEX 3  // ties with tie index in [drop_start, drop_end) dropped; needs ties_before

struct WeldCut
{
    weld_u32 key;
    int mode;
    weld_i64 drop_start;
    weld_i64 drop_end;
};

// Resolves BY_INDEX to KEEP/DROP for a tile whose ties are all on one side of the drop range.
__device__ __forceinline__ int weld_tile_mode(const WeldCut& cut, const weld_i64* ties_before, const weld_u32* tile_counts)
{
    if (cut.mode != WELD_CUT_BY_INDEX)
        return cut.mode;
    weld_i64 first = ties_before[blockIdx.x];
    weld_i64 ties = tile_counts[blockIdx.x];
    weld_i64 overlap = min(first + ties, cut.drop_end) - max(first, cut.drop_start);
    if (overlap <= 0)
        return WELD_CUT_KEEP_TIES;
    return overlap == ties ? WELD_CUT_DROP_TIES : WELD_CUT_BY_INDEX;
}

// Exclusive block-wide prefix of a 0/1 flag over threads in thread order; returns the prefix, sets *total.
__device__ __forceinline__ int weld_block_prefix(bool flag, int* warp_totals, int* total)
{
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    unsigned ballot = __ballot_sync(0xFFFFFFFFu, flag);
    int in_warp = __popc(ballot & ((1u << lane) - 1u));
    if (lane == 0)
        warp_totals[warp] = __popc(ballot);
    __syncthreads();
    int before = 0, sum = 0;
    for (int w = 0; w < WELD_SELECT_THREADS / 32; w++)
    {
        if (w < warp)
            before += warp_totals[w];
        sum += warp_totals[w];
    }
    __syncthreads(); // warp_totals is reused by the next call
    *total = sum;
    return before + in_warp;
}

// One block per tile of WELD_TILE elements, WELD_SELECT_THREADS threads (the prefix assumes that block size).
// lower: key < cut.key dropped, ties by mode. upper: key > cut.key dropped, ties by mode. Dropped elements become +0.
extern "C" __global__ void __launch_bounds__(WELD_SELECT_THREADS) magnitude_mask(weld_u32* __restrict__ bits,
    weld_i64 count, WeldCut lower, const weld_i64* __restrict__ lower_ties_before, const weld_u32* __restrict__ lower_tile_counts,
    WeldCut upper, const weld_i64* __restrict__ upper_ties_before, const weld_u32* __restrict__ upper_tile_counts)
{
    __shared__ int warp_totals[WELD_SELECT_THREADS / 32];
    weld_i64 start = (weld_i64)blockIdx.x * WELD_TILE;
    weld_i64 end = min(start + WELD_TILE, count);
    int lower_mode = weld_tile_mode(lower, lower_ties_before, lower_tile_counts);
    int upper_mode = weld_tile_mode(upper, upper_ties_before, upper_tile_counts);
    bool by_index = lower_mode == WELD_CUT_BY_INDEX || upper_mode == WELD_CUT_BY_INDEX;
    weld_i64 lower_tie = lower_mode == WELD_CUT_BY_INDEX ? lower_ties_before[blockIdx.x] : 0;
    weld_i64 upper_tie = upper_mode == WELD_CUT_BY_INDEX ? upper_ties_before[blockIdx.x] : 0;

    // Every thread runs the same number of steps (the prefix needs the whole block at each step).
    for (weld_i64 base = start; base < end; base += WELD_SELECT_THREADS)
    {
        weld_i64 i = base + threadIdx.x;
        bool inside = i < end;
        weld_u32 word = inside ? bits[i] : 0u;
        weld_u32 key = word & WELD_KEY_MASK;
        bool keep = inside;
        bool lower_tie_here = inside && lower_mode != WELD_CUT_NONE && key == lower.key;
        bool upper_tie_here = inside && upper_mode != WELD_CUT_NONE && key == upper.key;

        if (lower_mode != WELD_CUT_NONE)
        {
            if (key < lower.key)
                keep = false;
            else if (lower_tie_here && lower_mode == WELD_CUT_DROP_TIES)
                keep = false;
        }
        if (upper_mode != WELD_CUT_NONE)
        {
            if (key > upper.key)
                keep = false;
            else if (upper_tie_here && upper_mode == WELD_CUT_DROP_TIES)
                keep = false;
        }

        if (by_index) // uniform per block: every thread takes part in the prefixes
        {
            int step_total;
            if (lower_mode == WELD_CUT_BY_INDEX)
            {
                weld_i64 tie = lower_tie + weld_block_prefix(lower_tie_here, warp_totals, &step_total);
                if (lower_tie_here && tie >= lower.drop_start && tie < lower.drop_end)
                    keep = false;
                lower_tie += step_total;
            }
            if (upper_mode == WELD_CUT_BY_INDEX)
            {
                weld_i64 tie = upper_tie + weld_block_prefix(upper_tie_here, warp_totals, &step_total);
                if (upper_tie_here && tie >= upper.drop_start && tie < upper.drop_end)
                    keep = false;
                upper_tie += step_total;
            }
        }

        if (inside && !keep && word != 0u)
            bits[i] = 0u;
    }
}
