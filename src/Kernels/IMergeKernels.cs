namespace Weld.Kernels;

/// <summary>
/// The arithmetic a merge method needs, over float32 data in host memory.
/// One interface, two backends (CPU SIMD; GPU: ILGPU kernels on CUDA or on the CPU accelerator). Kernels know nothing of files, names or
/// configs: they take spans and numbers.
/// </summary>
/// <remarks>
/// "Stacked" inputs hold <c>count</c> equally long rows back to back (row <c>k</c> is model <c>k</c>),
/// so one buffer carries K tensors — the layout both backends stream best.
/// Every method is deterministic: the same inputs give the same bits on any thread count.
/// Float32 arithmetic is never fused: each product and each sum is rounded on its own (GPU: the <c>.rn</c> PTX forms of
/// <c>Gpu.GpuArithmetic</c>), so elementwise results are bit-identical across backends; float64 reductions are
/// deterministic per backend but may differ between backends in the last bits.
/// Magnitude order uses the key <c>bits(x) &amp; 0x7FFFFFFF</c>: ±0 tie, NaN ranks above +∞.
/// Length mismatches are caller bugs and throw <see cref="ArgumentException"/>.
/// </remarks>
public partial interface IMergeKernels
{
    /// <summary>Backend name for logs ("cpu", "cuda:0").</summary>
    string Name { get; }

    /// <summary>
    /// output[i] = Σ_k weights[k] · stacked[k·n + i] with n = output.Length: <c>acc = +0; acc = acc + w_k·x_k</c> for
    /// k = 0, 1, … in float32, product and sum each rounded (no FMA).
    /// </summary>
    void WeightedSum(ReadOnlySpan<float> stacked, ReadOnlySpan<float> weights, Span<float> output);

    /// <summary>
    /// The linear family's combine onto a base in one pass (task arithmetic, DARE and DELLA linear):
    /// acc = <see cref="WeightedSum"/>'s value over v_k, then acc / <paramref name="divisor"/> when it is not 1 (as
    /// <see cref="Divide"/>), acc·λ when <paramref name="lambda"/> ≠ 1 (as <see cref="Scale"/>), then
    /// output[i] = 1·baseline[i] + 1·acc (as <see cref="Axpby"/>(1, baseline, 1, acc)). v_k is row k as stored or, with
    /// <paramref name="preScales"/> (empty, or one per row), x·s_k rounded, as <see cref="Scale"/>(row k, s_k) stores it.
    /// The same float32 operations in the same order as those calls, so the same bits, in one trip over the data.
    /// </summary>
    void WeightedSumOntoBase(ReadOnlySpan<float> stacked, ReadOnlySpan<float> weights, float divisor, float lambda,
        ReadOnlySpan<float> baseline, Span<float> output, ReadOnlySpan<float> preScales = default);

    /// <summary>rows[k·n + i] -= baseline[i] for every row (task vectors from fine-tunes).</summary>
    void SubtractRows(Span<float> stacked, ReadOnlySpan<float> baseline);

    /// <summary>
    /// Keeps exactly <paramref name="k"/> elements of largest magnitude and zeroes the rest.
    /// Ties at the threshold keep the lowest flat indices (a stable descending sort by |x|).
    /// NaN counts as the largest magnitude; −0 and +0 tie. Dropped elements become +0. k = 0 zeroes all,
    /// k ≥ n keeps all. Exactly min(k, n) elements are kept. Returns the selection made.
    /// </summary>
    TopKSelection KeepTopK(Span<float> values, long k);

    /// <summary>
    /// Orders elements by (|x|, index) ascending, zeroes the first <paramref name="dropBottom"/> and
    /// the last <paramref name="dropTop"/> of that order, keeps the band between (Model Breadcrumbs). Among equal
    /// magnitudes, low indices leave at the bottom cut and high indices at the top cut. Dropped elements become +0;
    /// dropBottom + dropTop ≥ n zeroes everything.
    /// </summary>
    void KeepMagnitudeBand(Span<float> values, long dropBottom, long dropTop);

    /// <summary>
    /// Keeps each element with probability <paramref name="density"/> (Bernoulli mask drawn from
    /// Philox4x32-10 keyed by <paramref name="key"/> and the element index); kept elements are
    /// divided by <paramref name="density"/> when <paramref name="rescale"/> is set.
    /// Element i draws word i % 4 of Philox4x32-10 at counter (low, high 32 bits of i / 4, TensorHash, ModelIndex)
    /// under key (low, high 32 bits of Seed); u = (word &gt;&gt; 8)·2^-24 and the element is kept iff u &lt; density,
    /// becoming x / density (one IEEE division) when rescaling; dropped elements become +0. density ≥ 1 changes
    /// nothing; a NaN or negative density throws <see cref="ArgumentOutOfRangeException"/>.
    /// <paramref name="firstIndex"/> is the tensor index of <c>values[0]</c>, so a tensor processed in chunks draws
    /// the same mask as in one piece.
    /// </summary>
    void DropAndRescale(Span<float> values, float density, bool rescale, PhiloxKey key, long firstIndex = 0);

    /// <summary>
    /// <see cref="DropAndRescale"/> together with the L1 norms mergekit's rescale needs: returns
    /// <see cref="SumOfAbs"/> of <paramref name="values"/> before and after the drop, the same bits as calling
    /// SumOfAbs, DropAndRescale and SumOfAbs in turn (which this default does; a backend may fuse the three so the span
    /// travels from memory once).
    /// </summary>
    (double Before, double After) DropAndRescaleWithNorms(Span<float> values, float density, bool rescale, PhiloxKey key, long firstIndex = 0)
    {
        double before = SumOfAbs(values);
        DropAndRescale(values, density, rescale, key, firstIndex);
        return (before, SumOfAbs(values));
    }

    /// <summary>
    /// Adds to <c>histogram[d]</c> the number of elements whose magnitude key <c>bits(x) &amp; 0x7FFFFFFF</c> has
    /// <c>key &gt;&gt; (shift + width) == prefix</c> and digit <c>(key &gt;&gt; shift) &amp; (2^width − 1) == d</c>.
    /// One pass of a radix select over data seen in chunks (<see cref="MagnitudeThresholdSearch"/>); counts are
    /// exact integers, so the chunks may come in any grouping. <c>histogram</c> has at least 2^width entries.
    /// </summary>
    void MagnitudeHistogram(ReadOnlySpan<float> values, int prefix, int shift, int width, Span<long> histogram);

    /// <summary>
    /// One chunk of a streamed top-k: keeps every element whose magnitude key is above
    /// <paramref name="thresholdKey"/> and the first <paramref name="tiesToKeep"/> (lowest indices) whose key equals
    /// it; zeroes the rest to +0. Returns how many tied elements were kept, so the caller carries the remaining tie
    /// budget to the next chunk in index order — together the chunks keep exactly what <see cref="KeepTopK"/> keeps.
    /// </summary>
    long KeepAboveMagnitude(Span<float> values, int thresholdKey, long tiesToKeep);

    /// <summary>
    /// TIES sign election and disjoint merge over <c>count</c> task vectors in one pass.
    /// elected = sign(Σ_k w_k·δ_k) (or of Σ_k sign(w_k·δ_k) for <see cref="SignElection.Count"/>), 0 counts as +;
    /// output[i] = Σ_k [sign(w_k·δ_k) = elected] w_k·δ_k, divided by Σ_k [agree] w_k when
    /// <paramref name="normalize"/> (a divisor of 0 becomes 1).
    /// </summary>
    /// <remarks>
    /// Exactly, per element with d_k = w_k·δ_k (float32): the Sum election sums d_k from +0 in k order in float32;
    /// the Count election sums sign(d_k) with sign(0) = sign(NaN) = 0; elected = (sum or count) ≥ 0 ? +1 : −1, so a
    /// NaN sum elects −1. agree_k = sign(d_k) == elected: zeros and NaNs never agree, so a NaN input never reaches
    /// the output (it can only flip a Sum election). The output and divisor are float32 sums from +0 in k order of
    /// the agreeing d_k and w_k; output = sum / divisor when normalizing.
    /// </remarks>
    void SignConsensusMerge(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> weights,
        SignElection election, bool normalize, Span<float> output);

    /// <summary>
    /// TIES' last three steps in one pass: m = <see cref="SignConsensusMerge"/>'s value, then m·λ when
    /// <paramref name="lambda"/> ≠ 1 (<see cref="Scale"/>), then output[i] = 1·baseline[i] + 1·m
    /// (<see cref="Axpby"/>(1, baseline, 1, m)). The same float32 operations in the same order as the three calls, so the
    /// same bits, but the output is written once instead of read and written three times. With
    /// <paramref name="preScales"/> (empty, or one per row) δ_k is read as x·s_k rounded, the bits of
    /// <see cref="Scale"/>(row k, s_k) before the merge (DARE's and DELLA's L1 rescale) without that pass over the row.
    /// </summary>
    void SignConsensusMergeOntoBase(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> weights,
        SignElection election, bool normalize, float lambda, ReadOnlySpan<float> baseline, Span<float> output,
        ReadOnlySpan<float> preScales = default);

    /// <summary>Σ a[i]·b[i] accumulated in float64.</summary>
    double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b);

    /// <summary>Σ x[i]² accumulated in float64.</summary>
    double SumOfSquares(ReadOnlySpan<float> x);

    /// <summary>output[i] = a·x[i] + b·y[i] (lerp, slerp's final mix, Model Stock's interpolation).</summary>
    void Axpby(float a, ReadOnlySpan<float> x, float b, ReadOnlySpan<float> y, Span<float> output);

    /// <summary>values[i] *= factor.</summary>
    void Scale(Span<float> values, float factor);

    /// <summary>values[i] /= divisor, one IEEE division each (not a multiply by the reciprocal: mergekit divides).</summary>
    void Divide(Span<float> values, float divisor);

    /// <summary>Σ |x[i]| accumulated in float64 (L1 norm; mergekit's rescale of sparsified task vectors).</summary>
    double SumOfAbs(ReadOnlySpan<float> x);
}

/// <summary>How TIES elects the sign of each element.</summary>
public enum SignElection
{
    /// <summary>Sign of the weighted sum of trimmed deltas (mergekit's "sum", the default).</summary>
    Sum,
    /// <summary>Majority of the signs, each model one vote (mergekit's "count").</summary>
    Count,
}

/// <summary>What a top-k selection kept: the magnitude threshold and how many equal to it.</summary>
/// <param name="Threshold">|x| of the smallest kept magnitude (+∞ when nothing is kept).</param>
/// <param name="KeptAboveThreshold">Elements with |x| strictly above the threshold (all kept).</param>
/// <param name="KeptAtThreshold">Elements with |x| == threshold kept, the lowest indices first.</param>
public readonly record struct TopKSelection(float Threshold, long KeptAboveThreshold, long KeptAtThreshold)
{
    /// <summary>Total kept (== k).</summary>
    public long Kept => KeptAboveThreshold + KeptAtThreshold;
}

/// <summary>
/// Key of the counter-based random stream used by DARE and randomized SVD: the same key gives the
/// same stream on any thread count and on CPU or GPU.
/// </summary>
/// <param name="Seed">The recipe's random seed.</param>
/// <param name="TensorHash">A stable hash of the tensor name (FNV-1a 32 of its UTF-8 bytes).</param>
/// <param name="ModelIndex">Index of the model in the recipe.</param>
public readonly record struct PhiloxKey(ulong Seed, uint TensorHash, uint ModelIndex);
