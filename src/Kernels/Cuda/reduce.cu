// Float64 reductions: each block sums a fixed grid-stride share into one partial (shared-memory tree, fixed
// order), the host adds the partials in block order. The grid size depends only on the length, so results are
// deterministic on a given device; they may differ from the CPU's in the last bits (different summation order).

#define WELD_REDUCE_THREADS 256

__device__ __forceinline__ void weld_block_sum(double value, double* partials)
{
    __shared__ double scratch[WELD_REDUCE_THREADS];
    scratch[threadIdx.x] = value;
    __syncthreads();
    for (int half = WELD_REDUCE_THREADS / 2; half > 0; half >>= 1)
    {
        if (threadIdx.x < half)
            scratch[threadIdx.x] += scratch[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        partials[blockIdx.x] = scratch[0];
}

extern "C" __global__ void __launch_bounds__(WELD_REDUCE_THREADS) dot_f64(const float* __restrict__ a,
    const float* __restrict__ b, weld_i64 count, double* __restrict__ partials)
{
    double sum = 0.0;
    weld_i64 vectors = (weld_aligned16(a) && weld_aligned16(b)) ? count / 4 : 0;
    WELD_GRID_STRIDE(v, vectors)
    {
        float4 x = __ldg(reinterpret_cast<const float4*>(a) + v);
        float4 y = __ldg(reinterpret_cast<const float4*>(b) + v);
        sum += (double)x.x * (double)y.x + (double)x.y * (double)y.y + (double)x.z * (double)y.z + (double)x.w * (double)y.w;
    }
    WELD_GRID_STRIDE(j, count - vectors * 4)
        sum += (double)__ldg(a + vectors * 4 + j) * (double)__ldg(b + vectors * 4 + j);
    weld_block_sum(sum, partials);
}

extern "C" __global__ void __launch_bounds__(WELD_REDUCE_THREADS) sum_of_squares_f64(const float* __restrict__ x,
    weld_i64 count, double* __restrict__ partials)
{
    double sum = 0.0;
    weld_i64 vectors = weld_aligned16(x) ? count / 4 : 0;
    WELD_GRID_STRIDE(v, vectors)
    {
        float4 p = __ldg(reinterpret_cast<const float4*>(x) + v);
        sum += (double)p.x * (double)p.x + (double)p.y * (double)p.y + (double)p.z * (double)p.z + (double)p.w * (double)p.w;
    }
    WELD_GRID_STRIDE(j, count - vectors * 4)
    {
        double value = (double)__ldg(x + vectors * 4 + j);
        sum += value * value;
    }
    weld_block_sum(sum, partials);
}

extern "C" __global__ void __launch_bounds__(WELD_REDUCE_THREADS) sum_of_abs_f64(const float* __restrict__ x,
    weld_i64 count, double* __restrict__ partials)
{
    double sum = 0.0;
    weld_i64 vectors = weld_aligned16(x) ? count / 4 : 0;
    WELD_GRID_STRIDE(v, vectors)
    {
        float4 p = __ldg(reinterpret_cast<const float4*>(x) + v);
        sum += fabs((double)p.x) + fabs((double)p.y) + fabs((double)p.z) + fabs((double)p.w);
    }
    WELD_GRID_STRIDE(j, count - vectors * 4)
        sum += fabs((double)__ldg(x + vectors * 4 + j));
    weld_block_sum(sum, partials);
}
