// TIES sign election and disjoint merge in one pass, per element with d_k = w_k·δ_k (float32, rounded):
// Sum election: s = ((0 + d_0) + d_1) + …, elected = s >= 0 ? +1 : -1 (a NaN sum elects -1).
// Count election: c = Σ sign(d_k) with sign(0) = sign(NaN) = 0, elected = c >= 0 ? +1 : -1.
// agree_k = sign(d_k) == elected (zeros and NaNs never agree); out = k-ordered float32 sum of the agreeing d_k,
// divided (normalize) by the k-ordered float32 sum of the agreeing w_k, a divisor of 0 replaced by 1.
// Exactly SignConsensusKernel's scalar path, so bit-identical to the CPU.

__device__ __forceinline__ int weld_sign(float x) { return x > 0.0f ? 1 : (x < 0.0f ? -1 : 0); }

#define WELD_TIES_CACHED 16

// Elects and merges one element from its K weighted deltas (held in registers when K <= WELD_TIES_CACHED).
__device__ __forceinline__ float weld_ties_element(const float* d, const float* __restrict__ weights, int rows,
    int count_election, int normalize)
{
    int elected;
    if (count_election)
    {
        int votes = 0;
        #pragma unroll
        for (int k = 0; k < WELD_TIES_CACHED; k++)
            if (k < rows)
                votes += weld_sign(d[k]);
        elected = votes >= 0 ? 1 : -1;
    }
    else
    {
        float sum = 0.0f;
        #pragma unroll
        for (int k = 0; k < WELD_TIES_CACHED; k++)
            if (k < rows)
                sum = __fadd_rn(sum, d[k]);
        elected = sum >= 0.0f ? 1 : -1;
    }

    float merged = 0.0f;
    float divisor = 0.0f;
    #pragma unroll
    for (int k = 0; k < WELD_TIES_CACHED; k++)
    {
        if (k < rows && weld_sign(d[k]) == elected)
        {
            merged = __fadd_rn(merged, d[k]);
            divisor = __fadd_rn(divisor, __ldg(weights + k));
        }
    }
    return normalize ? __fdiv_rn(merged, divisor == 0.0f ? 1.0f : divisor) : merged;
}

extern "C" __global__ void sign_consensus_merge(const float* __restrict__ stacked, const float* __restrict__ weights,
    int rows, weld_i64 length, int count_election, int normalize, float* __restrict__ output)
{
    if (rows <= WELD_TIES_CACHED)
    {
        // Each delta is read from memory once; fully unrolled bounds keep d[] in registers.
        WELD_GRID_STRIDE(i, length)
        {
            float d[WELD_TIES_CACHED];
            #pragma unroll
            for (int k = 0; k < WELD_TIES_CACHED; k++)
                d[k] = k < rows ? __fmul_rn(__ldg(weights + k), __ldg(stacked + k * length + i)) : 0.0f;
            output[i] = weld_ties_element(d, weights, rows, count_election, normalize);
        }
        return;
    }

    // Many models: re-read the column for each pass instead of spilling K values.
    WELD_GRID_STRIDE(i, length)
    {
        int elected;
        if (count_election)
        {
            int votes = 0;
            for (int k = 0; k < rows; k++)
                votes += weld_sign(__fmul_rn(__ldg(weights + k), __ldg(stacked + k * length + i)));
            elected = votes >= 0 ? 1 : -1;
        }
        else
        {
            float sum = 0.0f;
            for (int k = 0; k < rows; k++)
                sum = __fadd_rn(sum, __fmul_rn(__ldg(weights + k), __ldg(stacked + k * length + i)));
            elected = sum >= 0.0f ? 1 : -1;
        }

        float merged = 0.0f;
        float divisor = 0.0f;
        for (int k = 0; k < rows; k++)
        {
            float w = __ldg(weights + k);
            float d = __fmul_rn(w, __ldg(stacked + k * length + i));
            if (weld_sign(d) == elected)
            {
                merged = __fadd_rn(merged, d);
                divisor = __fadd_rn(divisor, w);
            }
        }
        output[i] = normalize ? __fdiv_rn(merged, divisor == 0.0f ? 1.0f : divisor) : merged;
    }
}
