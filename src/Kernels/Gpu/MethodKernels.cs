using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using static Weld.Kernels.Gpu.GpuArithmetic;

namespace Weld.Kernels.Gpu;

/// <remarks>
/// The newer methods' kernels (MagMax, TALL, Consensus, Fisher, NearSwap, RAM, SCE): <see cref="MethodKernels"/>.
/// Each call uploads its inputs, runs one kernel and downloads the result; counts come back through one device
/// counter that the groups add their block sums to (integers, so the order of the atomics never matters).
/// </remarks>
public sealed partial class GpuKernels
{
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, int, long, ArrayView<float>>? _selectLargestMagnitude;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, float, long, ArrayView<byte>, ArrayView<long>>? _tallMask;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<byte>, long, ArrayView<float>>? _tallRestore;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, long, int, ArrayView<float>>? _consensusMerge;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, long, float, ArrayView<float>>? _fisherMerge;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, float, long, ArrayView<float>>? _nearSwap;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, long, float, ArrayView<float>>? _ramMerge;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, int, long, float, ArrayView<long>>? _ramContributionCounts;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, int, long, ArrayView<float>, ArrayView<long>>? _varianceAcrossRows;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, long>? _clearRowsWhereZero;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, long, float, ArrayView<float>>? _signErasedMix;

    /// <inheritdoc />
    public void SelectLargestMagnitude(ReadOnlySpan<float> stacked, Span<float> output)
    {
        int length = output.Length;
        int rows = Cpu.CpuKernels.RowsOf(stacked.Length, length, nameof(stacked));
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> source = call.Upload(stacked);
        ArrayView<float> result = call.Rent<float>(length);
        LaunchSelectLargestMagnitude(source, rows, length, result);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public long TallMask(ReadOnlySpan<float> task, ReadOnlySpan<float> multiTask, float lambda, Span<byte> packed)
    {
        int length = task.Length;
        RequireMethodLength(length, multiTask.Length, nameof(multiTask));
        if (packed.Length != (length + 7L) / 8)
            throw new ArgumentException($"A mask of {length} elements packs into {(length + 7L) / 8} bytes, got {packed.Length}.", nameof(packed));
        if (length == 0)
            return 0;
        using var call = new Call(this);
        ArrayView<float> own = call.Upload(task);
        ArrayView<float> all = call.Upload(multiTask);
        ArrayView<byte> bits = call.Rent<byte>(packed.Length);
        ArrayView<long> set = call.RentZeroed<long>(1);
        LaunchTallMask(own, all, lambda, length, bits, set);
        call.Download(bits, packed);
        Span<long> count = stackalloc long[1];
        call.Download(set, count);
        return count[0];
    }

    /// <inheritdoc />
    public void TallRestore(ReadOnlySpan<float> baseline, ReadOnlySpan<float> multiTask, ReadOnlySpan<byte> packed, Span<float> output)
    {
        int length = output.Length;
        RequireMethodLength(length, baseline.Length, nameof(baseline));
        RequireMethodLength(length, multiTask.Length, nameof(multiTask));
        if (packed.Length != (length + 7L) / 8)
            throw new ArgumentException($"A mask of {length} elements packs into {(length + 7L) / 8} bytes, got {packed.Length}.", nameof(packed));
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> baseView = call.Upload(baseline);
        ArrayView<float> all = call.Upload(multiTask);
        ArrayView<byte> bits = call.Upload(packed);
        ArrayView<float> result = call.Rent<float>(length);
        LaunchTallRestore(baseView, all, bits, length, result);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void ConsensusMerge(ReadOnlySpan<float> stackedTaskVectors, ReadOnlySpan<float> lambdas, int minAgreeing, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stackedTaskVectors.Length, lambdas.Length, length, nameof(stackedTaskVectors));
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> source = call.Upload(stackedTaskVectors);
        ArrayView<float> lambdaView = call.Upload(lambdas);
        ArrayView<float> result = call.Rent<float>(length);
        LaunchConsensusMerge(source, lambdaView, lambdas.Length, length, minAgreeing, result);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void FisherMerge(ReadOnlySpan<float> stackedModels, ReadOnlySpan<float> stackedFisher, ReadOnlySpan<float> weights,
        float epsilon, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stackedModels.Length, weights.Length, length, nameof(stackedModels));
        RequireStacked(stackedFisher.Length, weights.Length, length, nameof(stackedFisher));
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> models = call.Upload(stackedModels);
        ArrayView<float> fisher = call.Upload(stackedFisher);
        ArrayView<float> weightView = call.Upload(weights);
        ArrayView<float> result = call.Rent<float>(length);
        LaunchFisherMerge(models, fisher, weightView, weights.Length, length, epsilon, result);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void NearSwap(ReadOnlySpan<float> baseline, ReadOnlySpan<float> other, float t, Span<float> output)
    {
        int length = output.Length;
        RequireMethodLength(length, baseline.Length, nameof(baseline));
        RequireMethodLength(length, other.Length, nameof(other));
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> v0 = call.Upload(baseline);
        ArrayView<float> v1 = call.Upload(other);
        ArrayView<float> result = call.Rent<float>(length);
        LaunchNearSwap(v0, v1, t, length, result);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void RamMerge(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> baseline, ReadOnlySpan<float> uniqueScales,
        float epsilon, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stackedDeltas.Length, uniqueScales.Length, length, nameof(stackedDeltas));
        RequireMethodLength(length, baseline.Length, nameof(baseline));
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> deltas = call.Upload(stackedDeltas);
        ArrayView<float> baseView = call.Upload(baseline);
        ArrayView<float> scales = call.Upload(uniqueScales);
        ArrayView<float> result = call.Rent<float>(length);
        LaunchRamMerge(deltas, baseView, scales, uniqueScales.Length, length, epsilon, result);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void RamContributionCounts(ReadOnlySpan<float> stackedDeltas, float epsilon, Span<long> shared, Span<long> unique)
    {
        int rows = shared.Length;
        RequireMethodLength(rows, unique.Length, nameof(unique));
        if (rows == 0)
        {
            if (stackedDeltas.Length != 0)
                throw new ArgumentException("Deltas without models to count them for.", nameof(stackedDeltas));
            return;
        }
        if (stackedDeltas.Length % rows != 0)
            throw new ArgumentException($"The stacked rows hold {stackedDeltas.Length} elements, not {rows} equal rows.", nameof(stackedDeltas));
        int length = stackedDeltas.Length / rows;
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> deltas = call.Upload(stackedDeltas);
        // rows shared counts, then rows unique counts
        ArrayView<long> counts = call.RentZeroed<long>(2L * rows);
        LaunchRamContributionCounts(deltas, rows, length, epsilon, counts);
        long[] totals = new long[2 * rows];
        call.Download(counts, totals);
        for (int k = 0; k < rows; k++)
        {
            shared[k] += totals[k];
            unique[k] += totals[rows + k];
        }
    }

    /// <inheritdoc />
    public long VarianceAcrossRows(ReadOnlySpan<float> stacked, Span<float> output)
    {
        int length = output.Length;
        int rows = Cpu.CpuKernels.RowsOf(stacked.Length, length, nameof(stacked));
        if (length == 0)
            return 0;
        using var call = new Call(this);
        ArrayView<float> source = call.Upload(stacked);
        ArrayView<float> result = call.Rent<float>(length);
        ArrayView<long> nonzero = call.RentZeroed<long>(1);
        LaunchVarianceAcrossRows(source, rows, length, result, nonzero);
        call.Download(result, output);
        Span<long> count = stackalloc long[1];
        call.Download(nonzero, count);
        return count[0];
    }

    /// <inheritdoc />
    public void ClearRowsWhereZero(Span<float> stacked, ReadOnlySpan<float> selector)
    {
        int length = selector.Length;
        int rows = StackedRows.Count(stacked.Length, length, nameof(stacked));
        if (rows == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> values = call.Upload(stacked);
        ArrayView<float> selectorView = call.Upload(selector);
        LaunchClearRowsWhereZero(values, selectorView, rows, length);
        call.Download(values, stacked);
    }

    /// <inheritdoc />
    public void SignErasedMix(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> weights, float divisorFloor, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stackedDeltas.Length, weights.Length, length, nameof(stackedDeltas));
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> deltas = call.Upload(stackedDeltas);
        ArrayView<float> weightView = call.Upload(weights);
        ArrayView<float> result = call.Rent<float>(length);
        LaunchSignErasedMix(deltas, weightView, weights.Length, length, divisorFloor, result);
        call.Download(result, output);
    }

    // Launches on device arrays (inside a Call; also for the bench, which times kernels without transfers). Stacked
    // rows lie `length` apart; the counters (setCount, counts, nonzeroCount) are added to, so zero them first.

    internal void LaunchSelectLargestMagnitude(ArrayView<float> stacked, int rows, long length, ArrayView<float> output) =>
        Load(ref _selectLargestMagnitude, MethodKernels.SelectLargestMagnitude)(Stream, GridFor(length), stacked, rows, length, output);

    internal void LaunchTallMask(ArrayView<float> task, ArrayView<float> multiTask, float lambda, long length, ArrayView<byte> packed,
        ArrayView<long> setCount) =>
        Load(ref _tallMask, MethodKernels.TallMask)(Stream, GridFor((length + 7) / 8), task, multiTask, lambda, length, packed, setCount);

    internal void LaunchTallRestore(ArrayView<float> baseline, ArrayView<float> multiTask, ArrayView<byte> packed, long length,
        ArrayView<float> output) =>
        Load(ref _tallRestore, MethodKernels.TallRestore)(Stream, GridFor(length), baseline, multiTask, packed, length, output);

    internal void LaunchConsensusMerge(ArrayView<float> stacked, ArrayView<float> lambdas, int rows, long length, int minAgreeing,
        ArrayView<float> output) =>
        Load(ref _consensusMerge, MethodKernels.ConsensusMerge)(Stream, GridFor(length), stacked, lambdas, rows, length, minAgreeing, output);

    internal void LaunchFisherMerge(ArrayView<float> models, ArrayView<float> fisher, ArrayView<float> weights, int rows, long length,
        float epsilon, ArrayView<float> output) =>
        Load(ref _fisherMerge, MethodKernels.FisherMerge)(Stream, GridFor(length), models, fisher, weights, rows, length, epsilon, output);

    internal void LaunchNearSwap(ArrayView<float> v0, ArrayView<float> v1, float t, long length, ArrayView<float> output) =>
        Load(ref _nearSwap, MethodKernels.NearSwap)(Stream, GridFor(length), v0, v1, t, length, output);

    internal void LaunchRamMerge(ArrayView<float> deltas, ArrayView<float> baseline, ArrayView<float> uniqueScales, int rows, long length,
        float epsilon, ArrayView<float> output) =>
        Load(ref _ramMerge, MethodKernels.RamMerge)(Stream, GridFor(length), deltas, baseline, uniqueScales, rows, length, epsilon, output);

    internal void LaunchRamContributionCounts(ArrayView<float> deltas, int rows, long length, float epsilon, ArrayView<long> counts) =>
        Load(ref _ramContributionCounts, MethodKernels.RamContributionCounts)(Stream, GridFor(length), deltas, rows, length, epsilon, counts);

    internal void LaunchVarianceAcrossRows(ArrayView<float> stacked, int rows, long length, ArrayView<float> output,
        ArrayView<long> nonzeroCount) =>
        Load(ref _varianceAcrossRows, MethodKernels.VarianceAcrossRows)(Stream, GridFor(length), stacked, rows, length, output, nonzeroCount);

    internal void LaunchClearRowsWhereZero(ArrayView<float> stacked, ArrayView<float> selector, int rows, long length) =>
        Load(ref _clearRowsWhereZero, MethodKernels.ClearRowsWhereZero)(Stream, GridFor(length), stacked, selector, rows, length);

    internal void LaunchSignErasedMix(ArrayView<float> deltas, ArrayView<float> weights, int rows, long length, float divisorFloor,
        ArrayView<float> output) =>
        Load(ref _signErasedMix, MethodKernels.SignErasedMix)(Stream, GridFor(length), deltas, weights, rows, length, divisorFloor, output);

    /// <summary>The length checks of the method and interpolation kernels (the CPU backend's message).</summary>
    private static void RequireMethodLength(int expected, int actual, string parameter)
    {
        if (expected != actual)
            throw new ArgumentException($"Expected {expected} elements, got {actual}.", parameter);
    }
}

/// <summary>
/// The newer methods' per-element kernels: grid-stride loops doing the CPU's scalar path (<c>Cpu/MethodKernels.cs</c>)
/// in the same order, every float32 product, sum and quotient rounded on its own (<see cref="GpuArithmetic"/>), IEEE
/// comparisons (a NaN compares false). Rows of a stacked input lie <c>length</c> apart. Counts are summed per group
/// in shared memory and added to one device counter.
/// </summary>
internal static class MethodKernels
{
    /// <summary>The largest group any device launches (the shared scratch of the block sums is sized for it).</summary>
    public const int MaxGroupSize = 256;

    /// <summary>output[i] = the row value of largest magnitude key; an equal key keeps the earlier row.</summary>
    public static void SelectLargestMagnitude(ArrayView<float> stacked, int rows, long length, ArrayView<float> output)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            float best = stacked[i];
            uint bestKey = MagnitudeKey(best);
            for (int k = 1; k < rows; k++)
            {
                float candidate = stacked[k * length + i];
                uint key = MagnitudeKey(candidate);
                if (key > bestKey)
                {
                    best = candidate;
                    bestKey = key;
                }
            }
            output[i] = best;
        }
    }

    /// <summary>
    /// One thread per packed byte: bit j of byte b is [ |τ| ≥ λ·|τ_MTL − τ| ] of element 8b + j (0 past the end); the
    /// bits set are summed per group and added to <paramref name="setCount"/>[0].
    /// </summary>
    public static void TallMask(ArrayView<float> task, ArrayView<float> multiTask, float lambda, long length, ArrayView<byte> packed,
        ArrayView<long> setCount)
    {
        ArrayView<long> scratch = SharedMemory.Allocate<long>(MaxGroupSize);
        long bytes = (length + 7) / 8;
        long stride = (long)Grid.DimX * Group.DimX;
        long set = 0;
        for (long b = (long)Grid.IdxX * Group.DimX + Group.IdxX; b < bytes; b += stride)
        {
            long first = b * 8;
            int valid = length - first < 8 ? (int)(length - first) : 8;
            int bits = 0;
            for (int j = 0; j < valid; j++)
            {
                float own = task[first + j];
                if (Math.Abs(own) >= Mul(lambda, Math.Abs(Sub(multiTask[first + j], own))))
                {
                    bits |= 1 << j;
                    set++;
                }
            }
            packed[b] = (byte)bits;
        }
        AddGroupSum(scratch, set, setCount, 0);
    }

    /// <summary>output[i] = bit i of the packed mask ? base[i] + τ_MTL[i] : base[i].</summary>
    public static void TallRestore(ArrayView<float> baseline, ArrayView<float> multiTask, ArrayView<byte> packed, long length,
        ArrayView<float> output)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            float b = baseline[i];
            output[i] = ((packed[i >> 3] >> (int)(i & 7)) & 1) != 0 ? Add(b, multiTask[i]) : b;
        }
    }

    /// <summary>output[i] = (#{k : |τ_k| ≥ λ_k·|s − τ_k|} ≥ minAgreeing) ? s : +0, s = ((+0 + τ_0) + τ_1) + ….</summary>
    public static void ConsensusMerge(ArrayView<float> stacked, ArrayView<float> lambdas, int rows, long length, int minAgreeing,
        ArrayView<float> output)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            float sum = 0f;
            for (int k = 0; k < rows; k++)
                sum = Add(sum, stacked[k * length + i]);
            int agreeing = 0;
            for (int k = 0; k < rows; k++)
            {
                float own = stacked[k * length + i];
                if (Math.Abs(own) >= Mul(lambdas[k], Math.Abs(Sub(sum, own))))
                    agreeing++;
            }
            output[i] = agreeing >= minAgreeing ? sum : 0f;
        }
    }

    /// <summary>output[i] = Σ_k f_k·θ_k / (den &lt; ε ? ε : den), f_k = w_k·F_k, den = Σ_k f_k (a NaN den stays NaN).</summary>
    public static void FisherMerge(ArrayView<float> models, ArrayView<float> fisher, ArrayView<float> weights, int rows, long length,
        float epsilon, ArrayView<float> output)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            float numerator = 0f, denominator = 0f;
            for (int k = 0; k < rows; k++)
            {
                float f = Mul(weights[k], fisher[k * length + i]);
                numerator = Add(numerator, Mul(f, models[k * length + i]));
                denominator = Add(denominator, f);
            }
            output[i] = Div(numerator, denominator < epsilon ? epsilon : denominator);
        }
    }

    /// <summary>w = (1 / |v0 − v1|)·t, 1 when not finite, else clamped to [0, 1]; output = w·v1 + (1 − w)·v0.</summary>
    public static void NearSwap(ArrayView<float> v0, ArrayView<float> v1, float t, long length, ArrayView<float> output)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            float a = v0[i], b = v1[i];
            float w = Mul(Div(1f, Math.Abs(Sub(a, b))), t);
            // Finite: NaN and ±∞ compare false. Math.Clamp(w, 0, 1) keeps −0 (it is not below +0).
            if (Math.Abs(w) < float.PositiveInfinity)
                w = w < 0f ? 0f : (w > 1f ? 1f : w);
            else
                w = 1f;
            output[i] = Add(Mul(w, b), Mul(Sub(1f, w), a));
        }
    }

    /// <summary>RAM: output = base + Σ_k ((z_k·u)·a_k + (z_k·s) / max(c, 1)), z_k = δ_k·[|δ_k| &gt; ε], c = #{k : |δ_k| &gt; ε}.</summary>
    public static void RamMerge(ArrayView<float> deltas, ArrayView<float> baseline, ArrayView<float> uniqueScales, int rows, long length,
        float epsilon, ArrayView<float> output)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            int contributors = 0;
            for (int k = 0; k < rows; k++)
            {
                if (Math.Abs(deltas[k * length + i]) > epsilon)
                    contributors++;
            }
            float unique = contributors == 1 ? 1f : 0f;
            float shared = contributors > 1 ? 1f : 0f;
            float divisor = contributors > 1 ? contributors : 1;
            float merged = 0f;
            for (int k = 0; k < rows; k++)
            {
                float delta = deltas[k * length + i];
                float z = Mul(delta, Math.Abs(delta) > epsilon ? 1f : 0f);
                merged = Add(merged, Add(Mul(Mul(z, unique), uniqueScales[k]), Div(Mul(z, shared), divisor)));
            }
            output[i] = Add(baseline[i], merged);
        }
    }

    /// <summary>
    /// RAM+ counts: counts[k] += elements where model k contributes and c &gt; 1 (shared), counts[rows + k] += those where
    /// k is the only contributor (unique). One pass over the elements per model; each thread adds its counts to two
    /// shared-memory totals (two barriers a model, where a tree sum would take 2 + log2(group) each) and thread 0 adds
    /// those to the device counters. Integer sums, so the order of the atomics never matters.
    /// </summary>
    public static void RamContributionCounts(ArrayView<float> deltas, int rows, long length, float epsilon, ArrayView<long> counts)
    {
        ArrayView<long> totals = SharedMemory.Allocate<long>(2);
        int thread = Group.IdxX;
        long stride = (long)Grid.DimX * Group.DimX;
        for (int model = 0; model < rows; model++)
        {
            long shared = 0, unique = 0;
            for (long i = (long)Grid.IdxX * Group.DimX + thread; i < length; i += stride)
            {
                if (!(Math.Abs(deltas[model * length + i]) > epsilon))
                    continue;
                int contributors = 0;
                for (int k = 0; k < rows; k++)
                {
                    if (Math.Abs(deltas[k * length + i]) > epsilon)
                        contributors++;
                }
                if (contributors == 1)
                    unique++;
                else
                    shared++;
            }
            // Thread 0 resets the totals only after it has read the previous model's (below), and nobody adds to them
            // before this barrier; the model loop is uniform, so every thread meets every barrier.
            if (thread == 0)
            {
                totals[0] = 0;
                totals[1] = 0;
            }
            Group.Barrier();
            if (shared != 0)
                Atomic.Add(ref totals[0], shared);
            if (unique != 0)
                Atomic.Add(ref totals[1], unique);
            Group.Barrier();
            if (thread == 0)
            {
                if (totals[0] != 0)
                    Atomic.Add(ref counts[model], totals[0]);
                if (totals[1] != 0)
                    Atomic.Add(ref counts[rows + model], totals[1]);
            }
        }
    }

    /// <summary>
    /// SCE's variance across rows in float64, every operation rounded on its own (no DFMA), rounded once to float32;
    /// the outputs that are not ±0 (NaN included) are summed per group into <paramref name="nonzeroCount"/>[0].
    /// </summary>
    public static void VarianceAcrossRows(ArrayView<float> stacked, int rows, long length, ArrayView<float> output,
        ArrayView<long> nonzeroCount)
    {
        ArrayView<long> scratch = SharedMemory.Allocate<long>(MaxGroupSize);
        long stride = (long)Grid.DimX * Group.DimX;
        double count = rows;
        long nonzero = 0;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            double mean = 0;
            for (int k = 0; k < rows; k++)
                mean = Add(mean, (double)stacked[k * length + i]);
            mean = RoundedFloat64.Div(mean, count);
            double sum = 0;
            for (int k = 0; k < rows; k++)
            {
                double deviation = RoundedFloat64.Sub(stacked[k * length + i], mean);
                sum = Add(sum, Mul(deviation, deviation));
            }
            float variance = (float)RoundedFloat64.Div(sum, count);
            output[i] = variance;
            if (!(variance == 0f))
                nonzero++;
        }
        AddGroupSum(scratch, nonzero, nonzeroCount, 0);
    }

    /// <summary>stacked[k·length + i] = +0 in every row k where selector[i] is ±0 (a NaN selector is not zero).</summary>
    public static void ClearRowsWhereZero(ArrayView<float> stacked, ArrayView<float> selector, int rows, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            if (selector[i] != 0f)
                continue;
            for (int k = 0; k < rows; k++)
                stacked[k * length + i] = 0f;
        }
    }

    /// <summary>
    /// SCE's erase and mix: elected = (Σ δ_k ≥ 0) ? + : − (NaN: −); e_k = sign(δ_k) == elected ? w_k : 0;
    /// output = Σ δ_k·e_k / (Σ e_k &lt; floor ? floor : Σ e_k).
    /// </summary>
    public static void SignErasedMix(ArrayView<float> deltas, ArrayView<float> weights, int rows, long length, float divisorFloor,
        ArrayView<float> output)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            float sum = 0f;
            for (int k = 0; k < rows; k++)
                sum = Add(sum, deltas[k * length + i]);
            bool positive = sum >= 0f;
            float mixed = 0f, divisor = 0f;
            for (int k = 0; k < rows; k++)
            {
                float delta = deltas[k * length + i];
                float erased = (positive ? delta > 0f : delta < 0f) ? weights[k] : 0f;
                mixed = Add(mixed, Mul(delta, erased));
                divisor = Add(divisor, erased);
            }
            output[i] = Div(mixed, divisor < divisorFloor ? divisorFloor : divisor);
        }
    }

    /// <summary>
    /// Sums <paramref name="value"/> over the group in shared memory (a tree over the power-of-two group) and lets
    /// thread 0 add a non-zero total to <paramref name="target"/>[<paramref name="index"/>]. Every thread of the group
    /// must call it (barriers); <paramref name="scratch"/> is free again when it returns.
    /// </summary>
    private static void AddGroupSum(ArrayView<long> scratch, long value, ArrayView<long> target, long index)
    {
        int thread = Group.IdxX;
        scratch[thread] = value;
        Group.Barrier();
        for (int half = Group.DimX / 2; half > 0; half >>= 1)
        {
            if (thread < half)
                scratch[thread] += scratch[thread + half];
            Group.Barrier();
        }
        long total = scratch[0];
        if (thread == 0 && total != 0)
            Atomic.Add(ref target[index], total);
        // The next call overwrites the scratch: every thread must have read the total first.
        Group.Barrier();
    }
}

/// <summary>
/// Float64 subtraction and division with the rounding spelled out (<c>.rn</c> on CUDA, plain C# on the emulator), for
/// the kernels that follow the CPU's float64 arithmetic; float64 products and sums are <see cref="GpuArithmetic"/>'s.
/// </summary>
internal static class RoundedFloat64
{
    /// <summary>a − b in float64, rounded to nearest even.</summary>
    public static double Sub(double a, double b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("sub.rn.f64 %0, %1, %2;", out double difference, a, b);
            return difference;
        }
        return a - b;
    }

    /// <summary>a / b in float64, one IEEE division.</summary>
    public static double Div(double a, double b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("div.rn.f64 %0, %1, %2;", out double quotient, a, b);
            return quotient;
        }
        return a / b;
    }
}
