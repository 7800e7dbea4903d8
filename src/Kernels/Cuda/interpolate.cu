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
