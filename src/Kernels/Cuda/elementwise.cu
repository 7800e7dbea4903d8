// Elementwise float32 kernels. Every product, sum and quotient is rounded on its own (__fmul_rn, __fadd_rn,
// __fdiv_rn: never contracted to FMA), in the same order as CpuKernels, so results are bit-identical to the CPU.
// Rows of a stacked input lie `length` apart; the float4 path is taken only when every row start is 16-byte aligned.

extern "C" __global__ void weighted_sum(const float* __restrict__ stacked, const float* __restrict__ weights, int rows,
    weld_i64 length, float* __restrict__ output)
{
    weld_i64 vectors = ((length & 3) == 0 && weld_aligned16(stacked) && weld_aligned16(output)) ? length / 4 : 0;
    WELD_GRID_STRIDE(v, vectors)
    {
        float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        for (int k = 0; k < rows; k++)
        {
            float w = __ldg(weights + k);
            float4 x = __ldg(reinterpret_cast<const float4*>(stacked + k * length) + v);
            sum.x = __fadd_rn(sum.x, __fmul_rn(w, x.x));
            sum.y = __fadd_rn(sum.y, __fmul_rn(w, x.y));
            sum.z = __fadd_rn(sum.z, __fmul_rn(w, x.z));
            sum.w = __fadd_rn(sum.w, __fmul_rn(w, x.w));
        }
        reinterpret_cast<float4*>(output)[v] = sum;
    }
    WELD_GRID_STRIDE(j, length - vectors * 4)
    {
        weld_i64 i = vectors * 4 + j;
        float sum = 0.0f;
        for (int k = 0; k < rows; k++)
            sum = __fadd_rn(sum, __fmul_rn(__ldg(weights + k), __ldg(stacked + k * length + i)));
        output[i] = sum;
    }
}

// rows[k·length + i] -= baseline[i]; blockIdx.y is the row.
extern "C" __global__ void subtract_rows(float* __restrict__ stacked, const float* __restrict__ baseline, weld_i64 length)
{
    float* row = stacked + (weld_i64)blockIdx.y * length;
    weld_i64 vectors = ((length & 3) == 0 && weld_aligned16(stacked) && weld_aligned16(baseline)) ? length / 4 : 0;
    WELD_GRID_STRIDE(v, vectors)
    {
        float4 x = reinterpret_cast<float4*>(row)[v];
        float4 b = __ldg(reinterpret_cast<const float4*>(baseline) + v);
        x.x = __fsub_rn(x.x, b.x);
        x.y = __fsub_rn(x.y, b.y);
        x.z = __fsub_rn(x.z, b.z);
        x.w = __fsub_rn(x.w, b.w);
        reinterpret_cast<float4*>(row)[v] = x;
    }
    WELD_GRID_STRIDE(j, length - vectors * 4)
    {
        weld_i64 i = vectors * 4 + j;
        row[i] = __fsub_rn(row[i], __ldg(baseline + i));
    }
}

extern "C" __global__ void scale(float* __restrict__ values, float factor, weld_i64 count)
{
    weld_i64 vectors = weld_aligned16(values) ? count / 4 : 0;
    WELD_GRID_STRIDE(v, vectors)
    {
        float4 x = reinterpret_cast<float4*>(values)[v];
        x.x = __fmul_rn(x.x, factor);
        x.y = __fmul_rn(x.y, factor);
        x.z = __fmul_rn(x.z, factor);
        x.w = __fmul_rn(x.w, factor);
        reinterpret_cast<float4*>(values)[v] = x;
    }
    WELD_GRID_STRIDE(j, count - vectors * 4)
        values[vectors * 4 + j] = __fmul_rn(values[vectors * 4 + j], factor);
}

// One IEEE division per element (not a multiply by the reciprocal: mergekit divides).
extern "C" __global__ void divide(float* __restrict__ values, float divisor, weld_i64 count)
{
    weld_i64 vectors = weld_aligned16(values) ? count / 4 : 0;
    WELD_GRID_STRIDE(v, vectors)
    {
        float4 x = reinterpret_cast<float4*>(values)[v];
        x.x = __fdiv_rn(x.x, divisor);
        x.y = __fdiv_rn(x.y, divisor);
        x.z = __fdiv_rn(x.z, divisor);
        x.w = __fdiv_rn(x.w, divisor);
        reinterpret_cast<float4*>(values)[v] = x;
    }
    WELD_GRID_STRIDE(j, count - vectors * 4)
        values[vectors * 4 + j] = __fdiv_rn(values[vectors * 4 + j], divisor);
}

// output[i] = a·x[i] + b·y[i], both products rounded before the sum.
extern "C" __global__ void axpby(float a, const float* __restrict__ x, float b, const float* __restrict__ y,
    float* __restrict__ output, weld_i64 count)
{
    weld_i64 vectors = (weld_aligned16(x) && weld_aligned16(y) && weld_aligned16(output)) ? count / 4 : 0;
    WELD_GRID_STRIDE(v, vectors)
    {
        float4 p = __ldg(reinterpret_cast<const float4*>(x) + v);
        float4 q = __ldg(reinterpret_cast<const float4*>(y) + v);
        float4 r;
        r.x = __fadd_rn(__fmul_rn(a, p.x), __fmul_rn(b, q.x));
        r.y = __fadd_rn(__fmul_rn(a, p.y), __fmul_rn(b, q.y));
        r.z = __fadd_rn(__fmul_rn(a, p.z), __fmul_rn(b, q.z));
        r.w = __fadd_rn(__fmul_rn(a, p.w), __fmul_rn(b, q.w));
        reinterpret_cast<float4*>(output)[v] = r;
    }
    WELD_GRID_STRIDE(j, count - vectors * 4)
    {
        weld_i64 i = vectors * 4 + j;
        output[i] = __fadd_rn(__fmul_rn(a, __ldg(x + i)), __fmul_rn(b, __ldg(y + i)));
    }
}
