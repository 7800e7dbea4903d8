// Per-element kernels of the newer merge methods (MagMax, TALL masks, Consensus, Fisher, NearSwap, RAM).
// Each does MethodKernels' scalar path in the same order with every operation rounded on its own (__fadd_rn,
// __fsub_rn, __fmul_rn, __fdiv_rn: never contracted to FMA) and IEEE comparisons (NaN compares false), so the
// results are bit-identical to the CPU. Rows of a stacked input lie `length` apart; one thread per element.

__device__ __forceinline__ weld_u32 weld_magnitude_key(float x) { return __float_as_uint(x) & 0x7FFFFFFFu; }

// output[i] = the row value of largest magnitude key; equal keys keep the first row.
extern "C" __global__ void select_largest_magnitude(const float* __restrict__ stacked, int rows, weld_i64 length,
    float* __restrict__ output)
{
    WELD_GRID_STRIDE(i, length)
    {
        float best = __ldg(stacked + i);
        weld_u32 best_key = weld_magnitude_key(best);
        for (int k = 1; k < rows; k++)
        {
            float candidate = __ldg(stacked + k * length + i);
            weld_u32 key = weld_magnitude_key(candidate);
            if (key > best_key)
            {
                best = candidate;
                best_key = key;
            }
        }
        output[i] = best;
    }
}

// One thread per packed byte: bit j of byte b is [ |τ| >= λ·|τ_MTL − τ| ] of element 8b + j; the bits set are
// summed per warp and added to *set_count (an integer, so the order of the atomics does not matter).
extern "C" __global__ void tall_mask(const float* __restrict__ task, const float* __restrict__ multi_task, float lambda,
    weld_i64 length, unsigned char* __restrict__ packed, weld_u64* __restrict__ set_count)
{
    weld_i64 bytes = (length + 7) / 8;
    weld_i64 rounds = (bytes + WELD_THREAD_COUNT - 1) / WELD_THREAD_COUNT; // every lane runs every round for the shuffle
    weld_u32 set = 0;
    for (weld_i64 round = 0; round < rounds; round++)
    {
        weld_i64 b = round * WELD_THREAD_COUNT + WELD_THREAD_INDEX;
        if (b < bytes)
        {
            weld_u32 bits = 0;
            weld_i64 first = b * 8;
            int valid = (int)min((weld_i64)8, length - first);
            for (int j = 0; j < valid; j++)
            {
                float own = __ldg(task + first + j);
                float rest = __fmul_rn(lambda, fabsf(__fsub_rn(__ldg(multi_task + first + j), own)));
                if (fabsf(own) >= rest)
                    bits |= 1u << j;
            }
            packed[b] = (unsigned char)bits;
            set += __popc(bits);
        }
    }
    for (int offset = 16; offset > 0; offset >>= 1)
        set += __shfl_down_sync(0xFFFFFFFFu, set, offset);
    if ((threadIdx.x & 31) == 0 && set != 0)
        atomicAdd(set_count, (weld_u64)set);
}

// output[i] = bit i of the packed mask ? base[i] + τ_MTL[i] : base[i].
extern "C" __global__ void tall_restore(const float* __restrict__ baseline, const float* __restrict__ multi_task,
    const unsigned char* __restrict__ packed, weld_i64 length, float* __restrict__ output)
{
    WELD_GRID_STRIDE(i, length)
    {
        float b = __ldg(baseline + i);
        output[i] = ((__ldg(packed + (i >> 3)) >> (i & 7)) & 1) ? __fadd_rn(b, __ldg(multi_task + i)) : b;
    }
}

// output[i] = (#{k : |τ_k| >= λ_k·|s − τ_k|} >= min_agreeing) ? s : +0, s = ((0 + τ_0) + τ_1) + …
extern "C" __global__ void consensus_merge(const float* __restrict__ stacked, const float* __restrict__ lambdas, int rows,
    weld_i64 length, int min_agreeing, float* __restrict__ output)
{
    WELD_GRID_STRIDE(i, length)
    {
        float sum = 0.0f;
        for (int k = 0; k < rows; k++)
            sum = __fadd_rn(sum, __ldg(stacked + k * length + i));
        int agreeing = 0;
        for (int k = 0; k < rows; k++)
        {
            float own = __ldg(stacked + k * length + i);
            if (fabsf(own) >= __fmul_rn(__ldg(lambdas + k), fabsf(__fsub_rn(sum, own))))
                agreeing++;
        }
        output[i] = agreeing >= min_agreeing ? sum : 0.0f;
    }
}

// output[i] = Σ_k f_k·θ_k / (den < ε ? ε : den), f_k = w_k·F_k, den = Σ_k f_k (a NaN den stays NaN).
extern "C" __global__ void fisher_merge(const float* __restrict__ models, const float* __restrict__ fisher,
    const float* __restrict__ weights, int rows, weld_i64 length, float epsilon, float* __restrict__ output)
{
    WELD_GRID_STRIDE(i, length)
    {
        float numerator = 0.0f, denominator = 0.0f;
        for (int k = 0; k < rows; k++)
        {
            float f = __fmul_rn(__ldg(weights + k), __ldg(fisher + k * length + i));
            numerator = __fadd_rn(numerator, __fmul_rn(f, __ldg(models + k * length + i)));
            denominator = __fadd_rn(denominator, f);
        }
        output[i] = __fdiv_rn(numerator, denominator < epsilon ? epsilon : denominator);
    }
}

// w = (1 / |v0 − v1|)·t, 1 when not finite, else clamped to [0, 1]; output = w·v1 + (1 − w)·v0.
extern "C" __global__ void near_swap(const float* __restrict__ v0, const float* __restrict__ v1, float t, weld_i64 length,
    float* __restrict__ output)
{
    WELD_GRID_STRIDE(i, length)
    {
        float a = __ldg(v0 + i), b = __ldg(v1 + i);
        float w = __fmul_rn(__fdiv_rn(1.0f, fabsf(__fsub_rn(a, b))), t);
        if (fabsf(w) < __int_as_float(0x7F800000)) // finite: NaN and ±∞ compare false
            w = w < 0.0f ? 0.0f : (w > 1.0f ? 1.0f : w);
        else
            w = 1.0f;
        output[i] = __fadd_rn(__fmul_rn(w, b), __fmul_rn(__fsub_rn(1.0f, w), a));
    }
}

// RAM: c = #{k : |δ_k| > ε}; output = base + Σ_k ((z_k·u)·a_k + (z_k·s) / max(c, 1)), z_k = δ_k·[|δ_k| > ε].
extern "C" __global__ void ram_merge(const float* __restrict__ deltas, const float* __restrict__ baseline,
    const float* __restrict__ unique_scales, int rows, weld_i64 length, float epsilon, float* __restrict__ output)
{
    WELD_GRID_STRIDE(i, length)
    {
        int contributors = 0;
        for (int k = 0; k < rows; k++)
            if (fabsf(__ldg(deltas + k * length + i)) > epsilon)
                contributors++;
        float unique = contributors == 1 ? 1.0f : 0.0f;
        float shared = contributors > 1 ? 1.0f : 0.0f;
        float divisor = (float)(contributors > 1 ? contributors : 1);
        float merged = 0.0f;
        for (int k = 0; k < rows; k++)
        {
            float delta = __ldg(deltas + k * length + i);
            float z = __fmul_rn(delta, fabsf(delta) > epsilon ? 1.0f : 0.0f);
            float term = __fadd_rn(__fmul_rn(__fmul_rn(z, unique), __ldg(unique_scales + k)),
                __fdiv_rn(__fmul_rn(z, shared), divisor));
            merged = __fadd_rn(merged, term);
        }
        output[i] = __fadd_rn(__ldg(baseline + i), merged);
    }
}

// RAM+ counts for model blockIdx.y: counts[k] += elements where k contributes and c > 1 (shared),
// counts[rows + k] += those where k is the only contributor (unique). Integer atomics: order-free.
extern "C" __global__ void ram_contribution_counts(const float* __restrict__ deltas, int rows, weld_i64 length,
    float epsilon, weld_u64* __restrict__ counts)
{
    int model = blockIdx.y;
    weld_i64 rounds = (length + WELD_THREAD_COUNT - 1) / WELD_THREAD_COUNT;
    weld_u32 shared = 0, unique = 0;
    for (weld_i64 round = 0; round < rounds; round++)
    {
        weld_i64 i = round * WELD_THREAD_COUNT + WELD_THREAD_INDEX;
        if (i < length && fabsf(__ldg(deltas + model * length + i)) > epsilon)
        {
            int contributors = 0;
            for (int k = 0; k < rows; k++)
                if (fabsf(__ldg(deltas + k * length + i)) > epsilon)
                    contributors++;
            if (contributors == 1)
                unique++;
            else
                shared++;
        }
    }
    for (int offset = 16; offset > 0; offset >>= 1)
    {
        shared += __shfl_down_sync(0xFFFFFFFFu, shared, offset);
        unique += __shfl_down_sync(0xFFFFFFFFu, unique, offset);
    }
    if ((threadIdx.x & 31) == 0)
    {
        if (shared != 0)
            atomicAdd(counts + model, (weld_u64)shared);
        if (unique != 0)
            atomicAdd(counts + rows + model, (weld_u64)unique);
    }
}

// SCE's variance across rows in float64 (every operation rounded: __dadd_rn / __dmul_rn / __ddiv_rn, no DFMA), rounded
// once to float32; the outputs that are not ±0 (NaN included) are summed per warp into *nonzero_count.
extern "C" __global__ void variance_across_rows(const float* __restrict__ stacked, int rows, weld_i64 length,
    float* __restrict__ output, weld_u64* __restrict__ nonzero_count)
{
    weld_i64 rounds = (length + WELD_THREAD_COUNT - 1) / WELD_THREAD_COUNT; // every lane runs every round for the shuffle
    weld_u32 nonzero = 0;
    double count = (double)rows;
    for (weld_i64 round = 0; round < rounds; round++)
    {
        weld_i64 i = round * WELD_THREAD_COUNT + WELD_THREAD_INDEX;
        if (i < length)
        {
            double mean = 0.0;
            for (int k = 0; k < rows; k++)
                mean = __dadd_rn(mean, (double)__ldg(stacked + k * length + i));
            mean = __ddiv_rn(mean, count);
            double sum = 0.0;
            for (int k = 0; k < rows; k++)
            {
                double deviation = __dsub_rn((double)__ldg(stacked + k * length + i), mean);
                sum = __dadd_rn(sum, __dmul_rn(deviation, deviation));
            }
            float variance = __double2float_rn(__ddiv_rn(sum, count));
            output[i] = variance;
            if (!(variance == 0.0f))
                nonzero++;
        }
    }
    for (int offset = 16; offset > 0; offset >>= 1)
        nonzero += __shfl_down_sync(0xFFFFFFFFu, nonzero, offset);
    if ((threadIdx.x & 31) == 0 && nonzero != 0)
        atomicAdd(nonzero_count, (weld_u64)nonzero);
}

// stacked[k·length + i] = +0 where selector[i] is ±0; blockIdx.y is the row.
extern "C" __global__ void clear_rows_where_zero(float* __restrict__ stacked, const float* __restrict__ selector, weld_i64 length)
{
    float* row = stacked + (weld_i64)blockIdx.y * length;
    WELD_GRID_STRIDE(i, length)
        if (__ldg(selector + i) == 0.0f)
            row[i] = 0.0f;
}

// SCE's erase and mix: elected = (Σ δ_k >= 0) ? + : − (NaN: −); e_k = sign(δ_k) == elected ? w_k : 0;
// output = Σ δ_k·e_k / (Σ e_k < floor ? floor : Σ e_k).
extern "C" __global__ void sign_erased_mix(const float* __restrict__ deltas, const float* __restrict__ weights, int rows,
    weld_i64 length, float divisor_floor, float* __restrict__ output)
{
    WELD_GRID_STRIDE(i, length)
    {
        float sum = 0.0f;
        for (int k = 0; k < rows; k++)
            sum = __fadd_rn(sum, __ldg(deltas + k * length + i));
        bool positive = sum >= 0.0f;
        float mixed = 0.0f, divisor = 0.0f;
        for (int k = 0; k < rows; k++)
        {
            float delta = __ldg(deltas + k * length + i);
            float erased = (positive ? delta > 0.0f : delta < 0.0f) ? __ldg(weights + k) : 0.0f;
            mixed = __fadd_rn(mixed, __fmul_rn(delta, erased));
            divisor = __fadd_rn(divisor, erased);
        }
        output[i] = __fdiv_rn(mixed, divisor < divisor_floor ? divisor_floor : divisor);
    }
}
