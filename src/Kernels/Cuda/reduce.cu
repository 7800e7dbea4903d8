// Float64 reductions in exactly CpuKernels' order, so results are bit-identical to the CPU (a SLERP or Model Stock
// merge then writes the same bytes on either device). The CPU cuts the input into chunks of 65536 elements; inside
// a chunk, eight float64 accumulators take elements i ≡ 0..7 (mod 8) of the whole 8-element groups in index order,
// are combined as ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)), and the tail elements are added one by one;
// the host adds the chunk partials in chunk order. Here one thread runs one accumulator (8 threads per chunk) and
// lane 0 finishes the chunk. Each product of two floats is exact in float64, so mul+add equals the CPU's.
// The dependent add chain (8192 adds per accumulator) bounds the speed, not the memory; loads are unrolled so
// many are in flight per thread.

#define WELD_REDUCE_THREADS 64
#define WELD_REDUCE_CHUNK 65536
#define WELD_REDUCE_LANES 8

// The eight accumulators of one chunk, combined as ReductionKernels.HorizontalSum(lower + upper) does.
__device__ __forceinline__ double weld_combine_lanes(const double* lanes)
{
    return __dadd_rn(__dadd_rn(__dadd_rn(lanes[0], lanes[4]), __dadd_rn(lanes[1], lanes[5])),
                     __dadd_rn(__dadd_rn(lanes[2], lanes[6]), __dadd_rn(lanes[3], lanes[7])));
}

// term(i): the float64 value element i contributes. MODE 0: a[i]·b[i]; 1: x[i]²; 2: |x[i]|.
template <int MODE>
__device__ __forceinline__ double weld_term(const float* __restrict__ a, const float* __restrict__ b, weld_i64 i)
{
    double x = (double)__ldg(a + i);
    if (MODE == 0)
        return __dmul_rn(x, (double)__ldg(b + i));
    if (MODE == 1)
        return __dmul_rn(x, x);
    return fabs(x);
}

template <int MODE>
__device__ __forceinline__ void weld_chunk_sums(const float* __restrict__ a, const float* __restrict__ b, weld_i64 count,
    double* __restrict__ partials)
{
    __shared__ double lanes[WELD_REDUCE_THREADS];
    weld_i64 thread = (weld_i64)blockIdx.x * blockDim.x + threadIdx.x;
    weld_i64 chunk = thread / WELD_REDUCE_LANES;
    int lane = (int)(thread % WELD_REDUCE_LANES);
    weld_i64 chunks = (count + WELD_REDUCE_CHUNK - 1) / WELD_REDUCE_CHUNK;
    weld_i64 start = chunk * WELD_REDUCE_CHUNK;
    int size = chunk < chunks ? (int)min((weld_i64)WELD_REDUCE_CHUNK, count - start) : 0;
    int grouped = size - size % WELD_REDUCE_LANES; // elements in whole 8-element groups

    double sum = 0.0;
    int i = lane;
    // Unrolled by 8: the loads do not depend on the chain, so they are issued ahead of the adds.
    for (; i + 7 * WELD_REDUCE_LANES < grouped; i += 8 * WELD_REDUCE_LANES)
    {
        double t[8];
        #pragma unroll
        for (int u = 0; u < 8; u++)
            t[u] = weld_term<MODE>(a, b, start + i + u * WELD_REDUCE_LANES);
        #pragma unroll
        for (int u = 0; u < 8; u++)
            sum = __dadd_rn(sum, t[u]);
    }
    for (; i < grouped; i += WELD_REDUCE_LANES)
        sum = __dadd_rn(sum, weld_term<MODE>(a, b, start + i));

    lanes[threadIdx.x] = sum;
    __syncthreads();
    if (lane == 0 && chunk < chunks)
    {
        double total = weld_combine_lanes(lanes + threadIdx.x);
        for (int j = grouped; j < size; j++)
            total = __dadd_rn(total, weld_term<MODE>(a, b, start + j));
        partials[chunk] = total;
    }
}

extern "C" __global__ void __launch_bounds__(WELD_REDUCE_THREADS) dot_f64(const float* __restrict__ a,
    const float* __restrict__ b, weld_i64 count, double* __restrict__ partials)
{
    weld_chunk_sums<0>(a, b, count, partials);
}

extern "C" __global__ void __launch_bounds__(WELD_REDUCE_THREADS) sum_of_squares_f64(const float* __restrict__ x,
    weld_i64 count, double* __restrict__ partials)
{
    weld_chunk_sums<1>(x, x, count, partials);
}

extern "C" __global__ void __launch_bounds__(WELD_REDUCE_THREADS) sum_of_abs_f64(const float* __restrict__ x,
    weld_i64 count, double* __restrict__ partials)
{
    weld_chunk_sums<2>(x, x, count, partials);
}
