// Interpolation against the base model: LiNeS' layer scaling, Model Stock's per-row mix and Arcee Fusion's gate. Each does
// InterpolationKernels' scalar path with every operation rounded on its own (__fsub_rn, __fmul_rn, __fadd_rn: never
// contracted to FMA), so the results are bit-identical to the CPU. One thread per element.

// merged[i] = base[i] + scale·(merged[i] − base[i]).
extern "C" __global__ void scale_from_base(const float* __restrict__ baseline, float* __restrict__ merged, float scale,
    weld_i64 length)
{
    WELD_GRID_STRIDE(i, length)
    {
        float b = __ldg(baseline + i);
        merged[i] = __fadd_rn(b, __fmul_rn(scale, __fsub_rn(merged[i], b)));
    }
}

// values[i] = a[r]·values[i] + b[r]·base[i] with r = i / row_length, the two products rounded before the sum.
extern "C" __global__ void axpby_rows(float* __restrict__ values, const float* __restrict__ value_weights,
    const float* __restrict__ baseline, const float* __restrict__ base_weights, weld_i64 row_length, weld_i64 length)
{
    WELD_GRID_STRIDE(i, length)
    {
        weld_i64 row = i / row_length;
        values[i] = __fadd_rn(__fmul_rn(__ldg(value_weights + row), values[i]), __fmul_rn(__ldg(base_weights + row), __ldg(baseline + i)));
    }
}

// scores[i] = base[i] + (model[i] − base[i])·(scores[i] >= threshold ? 1 : 0); a NaN compares false.
extern "C" __global__ void keep_important_changes(const float* __restrict__ baseline, const float* __restrict__ model,
    float threshold, float* __restrict__ scores, weld_i64 length)
{
    WELD_GRID_STRIDE(i, length)
    {
        float b = __ldg(baseline + i);
        float gate = scores[i] >= threshold ? 1.0f : 0.0f;
        scores[i] = __fadd_rn(b, __fmul_rn(__fsub_rn(__ldg(model + i), b), gate));
    }
}

// MathF.Max: a NaN on either side gives NaN (fmaxf would drop it).
__device__ __forceinline__ float weld_max_keep_nan(float a, float b) { return (a != a || b != b) ? __int_as_float(0x7FC00000) : fmaxf(a, b); }

// softmax(x)[j] + 1e-8 as SoftmaxDivergence computes it: float64 quotient rounded to float32, then the float32 floor.
__device__ __forceinline__ float weld_floored_probability(float x, float max, double sum)
{
    return __fadd_rn((float)__ddiv_rn(exp(__dsub_rn((double)x, (double)max)), sum), 1e-8f);
}

// Arcee Fusion's importance: one thread per row, every sum in row order (the CPU's order), no FMA; exp and log are
// CUDA's float64 functions, so a score may differ from the CPU's in the last bits.
extern "C" __global__ void softmax_divergence_scores(const float* __restrict__ model, const float* __restrict__ baseline,
    weld_i64 row_length, weld_i64 rows, float* __restrict__ scores)
{
    WELD_GRID_STRIDE(row, rows)
    {
        const float* p_row = model + row * row_length;
        const float* q_row = baseline + row * row_length;
        float max_p = __int_as_float(0xFF800000), max_q = __int_as_float(0xFF800000);
        for (weld_i64 j = 0; j < row_length; j++)
        {
            max_p = weld_max_keep_nan(max_p, __ldg(p_row + j));
            max_q = weld_max_keep_nan(max_q, __ldg(q_row + j));
        }
        double sum_p = 0.0, sum_q = 0.0;
        for (weld_i64 j = 0; j < row_length; j++)
        {
            sum_p = __dadd_rn(sum_p, exp(__dsub_rn((double)__ldg(p_row + j), (double)max_p)));
            sum_q = __dadd_rn(sum_q, exp(__dsub_rn((double)__ldg(q_row + j), (double)max_q)));
        }
        double divergence = 0.0;
        for (weld_i64 j = 0; j < row_length; j++)
        {
            double p = weld_floored_probability(__ldg(p_row + j), max_p, sum_p);
            double q = weld_floored_probability(__ldg(q_row + j), max_q, sum_q);
            divergence = __dadd_rn(divergence, __dmul_rn(p, log(__ddiv_rn(p, q))));
        }
        float d = (float)divergence;
        for (weld_i64 j = 0; j < row_length; j++)
            scores[row * row_length + j] = __fmul_rn(fabsf(__fsub_rn(__ldg(p_row + j), __ldg(q_row + j))), d);
    }
}
