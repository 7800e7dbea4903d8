using ILGPU;
using ILGPU.Runtime;
using static Weld.Kernels.Gpu.GpuArithmetic;

namespace Weld.Kernels.Gpu;

/// <remarks>Interpolation against the base (<see cref="InterpolationKernels"/>): upload, one launch, download.</remarks>
public sealed partial class GpuKernels
{
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, float, long>? _scaleFromBase;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, long, long>? _axpbyRows;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, float, ArrayView<float>, long>? _keepImportantChanges;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, long, float, ArrayView<float>, long>? _keepImportantRowChanges;

    /// <inheritdoc />
    public void ScaleFromBase(ReadOnlySpan<float> baseline, Span<float> merged, float scale)
    {
        int length = merged.Length;
        RequireMethodLength(length, baseline.Length, nameof(baseline));
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> baseView = call.Upload(baseline);
        ArrayView<float> values = call.Upload(merged);
        LaunchScaleFromBase(baseView, values, scale, length);
        call.Download(values, merged);
    }

    /// <inheritdoc />
    public void AxpbyRows(Span<float> values, ReadOnlySpan<float> valueWeights, ReadOnlySpan<float> baseline, ReadOnlySpan<float> baseWeights)
    {
        int length = values.Length;
        RequireMethodLength(length, baseline.Length, nameof(baseline));
        RequireMethodLength(valueWeights.Length, baseWeights.Length, nameof(baseWeights));
        int rowLength = Cpu.CpuKernels.InterpolationRowLength(length, valueWeights.Length);
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> valueView = call.Upload(values);
        ArrayView<float> valueWeightView = call.Upload(valueWeights);
        ArrayView<float> baseView = call.Upload(baseline);
        ArrayView<float> baseWeightView = call.Upload(baseWeights);
        LaunchAxpbyRows(valueView, valueWeightView, baseView, baseWeightView, rowLength, length);
        call.Download(valueView, values);
    }

    /// <inheritdoc />
    public void KeepImportantChanges(ReadOnlySpan<float> baseline, ReadOnlySpan<float> model, float threshold, Span<float> scores)
    {
        int length = scores.Length;
        RequireMethodLength(length, baseline.Length, nameof(baseline));
        RequireMethodLength(length, model.Length, nameof(model));
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> baseView = call.Upload(baseline);
        ArrayView<float> modelView = call.Upload(model);
        ArrayView<float> scoreView = call.Upload(scores);
        LaunchKeepImportantChanges(baseView, modelView, threshold, scoreView, length);
        call.Download(scoreView, scores);
    }

    /// <inheritdoc />
    public void KeepImportantChanges(ReadOnlySpan<float> baseline, ReadOnlySpan<float> model, ReadOnlySpan<float> divergences, float threshold,
        Span<float> merged)
    {
        int length = merged.Length;
        RequireMethodLength(length, baseline.Length, nameof(baseline));
        RequireMethodLength(length, model.Length, nameof(model));
        int rowLength = Cpu.CpuKernels.InterpolationRowLength(length, divergences.Length);
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> baseView = call.Upload(baseline);
        ArrayView<float> modelView = call.Upload(model);
        ArrayView<float> divergenceView = call.Upload(divergences);
        ArrayView<float> result = call.Rent<float>(length);
        Load(ref _keepImportantRowChanges, InterpolationKernels.KeepImportantRowChanges)(Stream, GridFor(length), baseView, modelView,
            divergenceView, rowLength, threshold, result, length);
        call.Download(result, merged);
    }

    // Launches on device arrays (inside a Call; also for the bench, which times kernels without transfers).

    internal void LaunchScaleFromBase(ArrayView<float> baseline, ArrayView<float> merged, float scale, long length) =>
        Load(ref _scaleFromBase, InterpolationKernels.ScaleFromBase)(Stream, GridFor(length), baseline, merged, scale, length);

    internal void LaunchAxpbyRows(ArrayView<float> values, ArrayView<float> valueWeights, ArrayView<float> baseline,
        ArrayView<float> baseWeights, long rowLength, long length) =>
        Load(ref _axpbyRows, InterpolationKernels.AxpbyRows)(Stream, GridFor(length), values, valueWeights, baseline, baseWeights,
            rowLength, length);

    internal void LaunchKeepImportantChanges(ArrayView<float> baseline, ArrayView<float> model, float threshold, ArrayView<float> scores,
        long length) =>
        Load(ref _keepImportantChanges, InterpolationKernels.KeepImportantChanges)(Stream, GridFor(length), baseline, model, threshold,
            scores, length);
}

/// <summary>
/// LiNeS' layer scaling, Model Stock's per-row mix and Arcee Fusion's gate: grid-stride loops doing the CPU's scalar
/// path (<c>Cpu/InterpolationKernels.cs</c>) with every float32 operation rounded on its own (never an FMA).
/// </summary>
internal static class InterpolationKernels
{
    /// <summary>merged[i] = base[i] + scale·(merged[i] − base[i]).</summary>
    public static void ScaleFromBase(ArrayView<float> baseline, ArrayView<float> merged, float scale, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            float b = baseline[i];
            merged[i] = Add(b, Mul(scale, Sub(merged[i], b)));
        }
    }

    /// <summary>values[i] = a[r]·values[i] + b[r]·base[i] with r = i / rowLength, both products rounded before the sum.</summary>
    public static void AxpbyRows(ArrayView<float> values, ArrayView<float> valueWeights, ArrayView<float> baseline,
        ArrayView<float> baseWeights, long rowLength, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            long row = i / rowLength;
            values[i] = Add(Mul(valueWeights[row], values[i]), Mul(baseWeights[row], baseline[i]));
        }
    }

    /// <summary>merged[i] = base[i] + Δ·(|Δ|·D[i / rowLength] ≥ threshold ? 1 : 0) with Δ = model[i] − base[i].</summary>
    public static void KeepImportantRowChanges(ArrayView<float> baseline, ArrayView<float> model, ArrayView<float> divergences, long rowLength,
        float threshold, ArrayView<float> merged, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            float b = baseline[i];
            float change = Sub(model[i], b);
            float gate = Mul(Math.Abs(change), divergences[i / rowLength]) >= threshold ? 1f : 0f;
            merged[i] = Add(b, Mul(change, gate));
        }
    }

    /// <summary>scores[i] = base[i] + (model[i] − base[i])·(scores[i] ≥ threshold ? 1 : 0); a NaN compares false.</summary>
    public static void KeepImportantChanges(ArrayView<float> baseline, ArrayView<float> model, float threshold, ArrayView<float> scores,
        long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            float b = baseline[i];
            float gate = scores[i] >= threshold ? 1f : 0f;
            scores[i] = Add(b, Mul(Sub(model[i], b), gate));
        }
    }
}
