namespace Weld.Kernels;

/// <remarks>
/// The per-element kernels of the newer merge methods (MagMax, TALL masks and Consensus, Fisher, NearSwap, RAM).
/// Like the rest of the interface they are exact element by element: each product, sum and quotient is rounded to
/// float32 on its own (no FMA), comparisons are IEEE (a NaN compares false), so both backends give the same bits on
/// any thread count.
/// </remarks>
public partial interface IMergeKernels
{
    /// <summary>
    /// MagMax's selection: output[i] = stacked[k*·n + i] with k* the first row of largest magnitude key
    /// <c>bits(x) &amp; 0x7FFFFFFF</c> (n = output.Length, rows = stacked.Length / n ≥ 1). Equal magnitudes go to the
    /// lowest row (so +0 beats a later −0), NaN ranks above ±∞, and the chosen value is copied with its sign.
    /// </summary>
    void SelectLargestMagnitude(ReadOnlySpan<float> stacked, Span<float> output);

    /// <summary>
    /// A TALL mask packed one bit per element: bit i (bit i mod 8 of byte ⌊i / 8⌋, least significant first) is
    /// <c>|τ_i| ≥ λ · |τ_MTL,i − τ_i|</c> with the difference and the product each rounded to float32; a NaN on
    /// either side clears the bit. Trailing bits of the last byte are 0. <paramref name="packed"/> holds exactly
    /// ⌈n / 8⌉ bytes. Returns how many bits are set.
    /// </summary>
    long TallMask(ReadOnlySpan<float> task, ReadOnlySpan<float> multiTask, float lambda, Span<byte> packed);

    /// <summary>
    /// Restores a task from a packed TALL mask (layout of <see cref="TallMask"/>): output[i] = baseline[i] + multiTask[i]
    /// (one float32 sum) where bit i is set, else baseline[i]. <paramref name="packed"/> holds exactly ⌈n / 8⌉ bytes;
    /// its trailing bits are ignored.
    /// </summary>
    void TallRestore(ReadOnlySpan<float> baseline, ReadOnlySpan<float> multiTask, ReadOnlySpan<byte> packed, Span<float> output);

    /// <summary>
    /// Consensus (TALL) merge over <c>count</c> stacked task vectors τ_k (count = lambdas.Length):
    /// s = Σ_k τ_k summed from +0 in k order in float32; agreeing = #{k : |τ_k| ≥ λ_k · |s − τ_k|} (float32
    /// difference and product, NaN never agrees); output[i] = agreeing ≥ <paramref name="minAgreeing"/> ? s : +0.
    /// </summary>
    void ConsensusMerge(ReadOnlySpan<float> stackedTaskVectors, ReadOnlySpan<float> lambdas, int minAgreeing, Span<float> output);

    /// <summary>
    /// Fisher-weighted average over <c>count</c> stacked models θ_k and Fisher tensors F_k (count = weights.Length):
    /// f_k = w_k · F_k, num = Σ_k f_k · θ_k, den = Σ_k f_k (both from +0 in k order, float32, no FMA);
    /// output[i] = num / (den &lt; ε ? ε : den), one IEEE division (a NaN den stays NaN, as <see cref="MathF.Max(float, float)"/>
    /// would keep it; for ε &gt; 0 this is exactly max(den, ε)).
    /// </summary>
    void FisherMerge(ReadOnlySpan<float> stackedModels, ReadOnlySpan<float> stackedFisher, ReadOnlySpan<float> weights,
        float epsilon, Span<float> output);

    /// <summary>
    /// NearSwap: w = (1 / |v0 − v1|) · t in float32 (torch's order); w = 1 when not finite, else clamped to [0, 1]
    /// as <see cref="Math.Clamp(float, float, float)"/>; output[i] = w · v1 + (1 − w) · v0, products rounded before
    /// the sum.
    /// </summary>
    void NearSwap(ReadOnlySpan<float> baseline, ReadOnlySpan<float> other, float t, Span<float> output);

    /// <summary>
    /// RAM (Reinforced Agent Merging) combine over <c>count</c> stacked task vectors δ_k (count =
    /// uniqueScales.Length): c = #{k : |δ_k| &gt; ε}, z_k = δ_k · [|δ_k| &gt; ε] (so a NaN δ gives NaN·0 = NaN),
    /// u = [c = 1], s = [c &gt; 1], d = max(c, 1) as float32;
    /// output[i] = baseline[i] + Σ_k ((z_k·u)·a_k + (z_k·s) / d), the sum from +0 in k order, each operation rounded.
    /// a_k is 1 for RAM and RAM+'s amplification 1 + r·clamp(ρ_k) for RAM+TL.
    /// </summary>
    void RamMerge(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> baseline, ReadOnlySpan<float> uniqueScales,
        float epsilon, Span<float> output);

    /// <summary>
    /// RAM+'s contribution counts: for every element with c = #{k : |δ_k| &gt; ε} ≥ 1, each contributing model k
    /// adds 1 to <c>unique[k]</c> when c = 1 and to <c>shared[k]</c> when c &gt; 1. Adds to the spans (count =
    /// shared.Length = unique.Length); counts are exact integers.
    /// </summary>
    void RamContributionCounts(ReadOnlySpan<float> stackedDeltas, float epsilon, Span<long> shared, Span<long> unique);

    /// <summary>
    /// SCE's selection score: the population variance across the <c>count</c> stacked rows (count = stacked.Length / n,
    /// n = output.Length), in float64: μ = (Σ_k x_k) / count and v = (Σ_k (x_k − μ)²) / count, each sum from +0 in k order,
    /// every operation rounded to float64 (no FMA); output[i] = (float)v. Returns how many outputs are not ±0 (NaN counts).
    /// </summary>
    long VarianceAcrossRows(ReadOnlySpan<float> stacked, Span<float> output);

    /// <summary>
    /// stacked[k·n + i] = +0 in every row wherever <c>selector[i]</c> is ±0 (a NaN selector is not zero), n = selector.Length.
    /// SCE zeroes the elements its variance top-k did not select.
    /// </summary>
    void ClearRowsWhereZero(Span<float> stacked, ReadOnlySpan<float> selector);

    /// <summary>
    /// SCE's erase and mix over <c>count</c> stacked task vectors (count = weights.Length): s = Σ_k δ_k (float32 from +0
    /// in k order), elected = s ≥ 0 ? +1 : −1 (a NaN sum elects −1); e_k = sign(δ_k) == elected ? w_k : 0 with
    /// sign(0) = sign(NaN) = 0; mixed = Σ_k δ_k·e_k, divisor = Σ_k e_k (float32 from +0 in k order, no FMA);
    /// output[i] = mixed / (divisor &lt; floor ? floor : divisor), one IEEE division.
    /// </summary>
    void SignErasedMix(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> weights, float divisorFloor, Span<float> output);

    /// <summary>
    /// SCE's energy of a selected task vector: Σ x[i]² in float64 with x[i] taken as +0 wherever <c>selector[i]</c> is ±0
    /// (a NaN selector is not zero): the bits of <see cref="SumOfSquares"/> after <see cref="ClearRowsWhereZero"/>.
    /// <paramref name="x"/> is scratch: an implementation may clear it so (the default does; the CPU one reads it only).
    /// </summary>
    double SumOfSquaresWhereSelected(Span<float> x, ReadOnlySpan<float> selector)
    {
        ClearRowsWhereZero(x, selector);
        return SumOfSquares(x);
    }

    /// <summary>
    /// SCE's energies of every task vector in one sweep: sums[k] += <see cref="SumOfSquaresWhereSelected"/> of row k,
    /// the <c>selector.Length</c> elements of <paramref name="stacked"/> from k·<paramref name="rowStride"/>, each with
    /// the bits of that call (its own lanes and order; the selector is read once for all rows on the CPU).
    /// <paramref name="stacked"/> is scratch as for <see cref="SumOfSquaresWhereSelected"/>.
    /// </summary>
    void AddSumsOfSquaresWhereSelected(Span<float> stacked, int rowStride, ReadOnlySpan<float> selector, Span<double> sums)
    {
        for (int k = 0; k < sums.Length; k++)
            sums[k] += SumOfSquaresWhereSelected(stacked.Slice(k * rowStride, selector.Length), selector);
    }

    /// <summary>
    /// A selection kept as bits between the passes of a streamed tensor: <see cref="SelectionBits.Pack(ReadOnlySpan{float}, Span{ulong})"/> of
    /// <paramref name="selector"/> into ⌈n / 64⌉ words (the CPU packs its chunks in parallel).
    /// </summary>
    void PackSelection(ReadOnlySpan<float> selector, Span<ulong> bits) => SelectionBits.Pack(selector, bits);

    /// <summary>The selector back from its bits: <see cref="SelectionBits.Unpack(ReadOnlySpan{ulong}, Span{float})"/> (1 where kept, +0 where dropped).</summary>
    void UnpackSelection(ReadOnlySpan<ulong> bits, Span<float> selector) => SelectionBits.Unpack(bits, selector);

    /// <summary>
    /// SCE's variance top-k without a mask pass: what <see cref="IMergeKernels.KeepTopK"/>(values, k) keeps and leaves
    /// non-zero (a kept ±0 reads as dropped through a selector), as a cut on the keys of <paramref name="values"/> (index 0
    /// is values[0]). An implementation may also mask the values as KeepTopK does and answer
    /// <see cref="MagnitudeKeep.NotZero"/> (the default does); the CPU leaves them as they are.
    /// </summary>
    MagnitudeKeep SelectTopKCut(Span<float> values, long k)
    {
        KeepTopK(values, k);
        return MagnitudeKeep.NotZero;
    }

    /// <summary>
    /// One chunk of a streamed top-k as a cut: what <see cref="IMergeKernels.KeepAboveMagnitude"/>(values, thresholdKey,
    /// tiesToKeep) would keep and leave non-zero (keys above the threshold key, and the first <paramref name="tiesToKeep"/>
    /// ties in index order), without writing it; <paramref name="tiesKept"/> = the ties kept (KeepAboveMagnitude's
    /// answer), to carry the budget to the next chunk.
    /// </summary>
    MagnitudeKeep CutAboveMagnitude(ReadOnlySpan<float> values, int thresholdKey, long tiesToKeep, out long tiesKept)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(thresholdKey);
        ArgumentOutOfRangeException.ThrowIfNegative(tiesToKeep);
        tiesKept = 0;
        for (int i = 0; i < values.Length; i++)
        {
            if ((BitConverter.SingleToInt32Bits(values[i]) & int.MaxValue) != thresholdKey)
                continue;
            if (tiesKept == tiesToKeep)
                return thresholdKey == 0 ? MagnitudeKeep.NotZero : new MagnitudeKeep(thresholdKey, i);
            tiesKept++;
        }
        return thresholdKey == 0 ? MagnitudeKeep.NotZero : new MagnitudeKeep(thresholdKey, values.Length);
    }

    /// <summary>
    /// SCE's energies with the selection given as a cut: sums[k] += <see cref="AddSumsOfSquaresWhereSelected"/>'s sum of
    /// row k with the selector "kept by <paramref name="keep"/>" (the key of <c>keys[i]</c>, index i), and
    /// <paramref name="keptBits"/> (⌈n / 64⌉ words, n = keys.Length) receives that selection as
    /// <see cref="SelectionBits"/> do, for the mix. The bits of selecting, summing and packing in three calls.
    /// </summary>
    void AddSumsOfSquaresWhereKept(Span<float> stacked, int rowStride, ReadOnlySpan<float> keys, MagnitudeKeep keep,
        Span<double> sums, Span<ulong> keptBits)
    {
        var selector = new float[keys.Length];
        for (int i = 0; i < selector.Length; i++) selector[i] = keep.Keeps(i, keys[i]) ? 1f : 0f;
        AddSumsOfSquaresWhereSelected(stacked, rowStride, selector, sums);
        PackSelection(selector, keptBits);
    }

    /// <summary>
    /// <see cref="SignErasedMixOntoBase"/> with the selection read from its bits (bit i set: δ_k[i] kept; n = output.Length
    /// bits of ⌈n / 64⌉ words): the bits of unpacking them into a selector and mixing through it.
    /// </summary>
    void SignErasedMixOntoBaseWhereKept(Span<float> stackedDeltas, ReadOnlySpan<ulong> keptBits, ReadOnlySpan<float> weights,
        float divisorFloor, ReadOnlySpan<float> baseline, Span<float> output)
    {
        var selector = new float[output.Length];
        UnpackSelection(keptBits, selector);
        SignErasedMixOntoBase(stackedDeltas, selector, weights, divisorFloor, baseline, output);
    }

    /// <summary>
    /// SCE's erase and mix onto the base in one pass: <see cref="SignErasedMix"/> of the task vectors with +0 wherever
    /// <c>selector[i]</c> is ±0 (all of them when <paramref name="selector"/> is empty), then
    /// output[i] = 1·baseline[i] + 1·mixed[i] as <see cref="Axpby"/> gives it: the bits of those three calls.
    /// <paramref name="output"/> may be the selector itself (every element is read before it is written);
    /// <paramref name="stackedDeltas"/> is scratch an implementation may clear (the default does; the CPU one reads it only).
    /// </summary>
    void SignErasedMixOntoBase(Span<float> stackedDeltas, ReadOnlySpan<float> selector, ReadOnlySpan<float> weights,
        float divisorFloor, ReadOnlySpan<float> baseline, Span<float> output)
    {
        if (!selector.IsEmpty) ClearRowsWhereZero(stackedDeltas, selector);
        SignErasedMix(stackedDeltas, weights, divisorFloor, output);
        Axpby(1f, baseline, 1f, output, output);
    }
}
