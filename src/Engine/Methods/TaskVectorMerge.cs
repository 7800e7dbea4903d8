using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>How each task vector is thinned before the task vectors are combined.</summary>
public enum Sparsification
{
    /// <summary>Keep every element.</summary>
    None,
    /// <summary>Keep the top <c>density</c> fraction by magnitude (TIES' trim step).</summary>
    Magnitude,
    /// <summary>Keep each element with probability <c>density</c>, optionally rescaled by 1/density (DARE).</summary>
    Random,
    /// <summary>Drop the largest <c>gamma</c> and the smallest magnitudes, keep <c>density</c> (Model Breadcrumbs).</summary>
    MagnitudeOutliers,
    /// <summary>
    /// Keep each element with a probability that grows with its magnitude rank, density ± epsilon (DELLA's MagPrune,
    /// mergekit's <c>della_magprune</c>).
    /// </summary>
    RankMagnitude,
}

/// <summary>
/// mergekit's "generalized task arithmetic", the family behind task_arithmetic, TIES, DARE and Breadcrumbs:
/// <code>
///   δ_k = θ_k − θ_base                          (task vectors)
///   δ̂_k = sparsify(δ_k; density_k, gamma_k)     (trim / drop / two-sided cut)
///   m   = Σ_k [sign(w_k δ̂_k) = elected] w_k δ̂_k  (sign consensus; every k without consensus)
///   m  /= Σ_k [agree] w_k                      (when normalize; a divisor of 0 becomes 1)
///   θ   = θ_base + λ · m
/// </code>
/// Each concrete method is a few lines choosing the sparsification, the consensus and the defaults.
/// A tensor too large for memory is streamed (<see cref="IStreamingMergeMethod"/>): the top-k threshold and the L1
/// norms are gathered in passes over chunks, then every chunk is sparsified and combined exactly as in one piece.
/// </summary>
public abstract partial class TaskVectorMerge : IStreamingMergeMethod, IDropsWhileDecoding
{
    private readonly Sparsification _sparsification;
    private readonly bool _signConsensus;

    /// <summary>Sets the method's sparsification, whether it elects signs, and normalize's default.</summary>
    protected TaskVectorMerge(string name, Sparsification sparsification, bool signConsensus, bool normalizeByDefault, bool rescaleByDefault = false)
    {
        Name = name;
        _sparsification = sparsification;
        _signConsensus = signConsensus;
        var parameters = new List<ParameterSpec>
        {
            ParameterSpec.Number("weight", ParameterScope.PerModel, null),
            ParameterSpec.Flag("normalize", normalizeByDefault),
            ParameterSpec.Number("lambda", ParameterScope.Global, 1.0),
            ParameterSpec.Flag("int8_mask", false), // mergekit's memory saving for masks: accepted, no effect on values
        };
        if (sparsification != Sparsification.None)
            parameters.Add(ParameterSpec.Number("density", ParameterScope.PerModel, 1.0, 0, 1, minExclusive: true));
        if (sparsification != Sparsification.None)
        {
            parameters.Add(ParameterSpec.Flag("rescale", rescaleByDefault));
            // mergekit rescales a sparsified task vector to its original L1 norm; the DARE paper and PEFT
            // divide the kept entries by density instead (Weld extension, "inverse_density").
            parameters.Add(ParameterSpec.Choice("rescale_norm", "l1", "l1", "inverse_density"));
        }
        if (sparsification == Sparsification.MagnitudeOutliers)
            parameters.Add(ParameterSpec.Number("gamma", ParameterScope.PerModel, 0.01, 0, 1));
        if (sparsification == Sparsification.RankMagnitude)
            parameters.Add(ParameterSpec.Number("epsilon", ParameterScope.PerModel, 0.15, 0, 1));
        if (signConsensus)
        {
            // Weld extensions for the TIES paper / PEFT variants (mergekit's behaviour is the default).
            parameters.Add(ParameterSpec.Choice("consensus", "sum", "sum", "count"));
            parameters.Add(ParameterSpec.Choice("disjoint_mean", "weighted", "weighted", "count"));
        }
        Parameters = parameters;
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
public MethodTraits Traits => new(BaseModelUse.Required, 1, int.MaxValue,
        _sparsification is Sparsification.Random or Sparsification.RankMagnitude,
        Elementwise: _sparsification == Sparsification.None, TakesTaskVectors: true);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; }

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        inputs.FormTaskVectors();
        var l1Factors = new float?[inputs.Count];
        var selections = new MagnitudeSelection?[inputs.Count];
        for (int k = 0; k < inputs.Count; k++)
            l1Factors[k] = Sparsify(inputs, k, out selections[k]);
        Combine(inputs, l1Factors, selections, output);
    }

    /// <summary>
    /// Sign consensus or plain sum of the sparsified task vectors, λ, and the base added back, in one pass over the
    /// output. Each task vector's L1 rescale factor (null: none) rides along as the combine kernel's pre-scale: row k is
    /// read as δ_k·factor_k, rounded as a <c>Scale</c> pass over the row would have stored it (the same bits, one pass
    /// fewer per task vector).
    /// </summary>
    private void Combine(TensorMergeInputs inputs, ReadOnlySpan<float?> l1Factors, Span<float> output) =>
        Combine(inputs, l1Factors, [], output);

    /// <summary>
    /// <see cref="Combine(TensorMergeInputs, ReadOnlySpan{float?}, Span{float})"/> over task vectors whose magnitude
    /// selections may still be deferred (empty, or one per task vector; null: none): the combine drops what the
    /// selection drops as it reads each row, with the bits of masking the rows first.
    /// </summary>
    private void Combine(TensorMergeInputs inputs, ReadOnlySpan<float?> l1Factors, MagnitudeSelection?[] selections, Span<float> output)
    {
        IMergeKernels kernels = inputs.Kernels;
        float[] weights = inputs.PerModel("weight");
        bool normalize = inputs.Global.Flag("normalize");
        float lambda = (float)inputs.Global.Number("lambda");
        if (_signConsensus)
        {
            MergeWithSignConsensus(inputs, weights, l1Factors, selections, normalize, lambda, output);
            return;
        }
        kernels.WeightedSumOntoBase(inputs.Models.Span, weights, normalize ? SumDivisor(weights) : 1f, lambda,
            inputs.Base.Span, output, PreScales(l1Factors), selections);
    }

    /// <summary>
    /// The combine kernels' pre-scales: empty when no task vector is rescaled, else factor_k, or 1 for a task vector
    /// left unscaled (x·1 = x but for a signalling NaN, which the kernel's w_k·x quiets just the same).
    /// </summary>
    private static float[] PreScales(ReadOnlySpan<float?> l1Factors)
    {
        bool any = false;
        foreach (float? factor in l1Factors) any |= factor.HasValue;
        if (!any) return [];
        var scales = new float[l1Factors.Length];
        for (int k = 0; k < scales.Length; k++) scales[k] = l1Factors[k] ?? 1f;
        return scales;
    }

    /// <summary>
    /// Sparsifies task vector k in place, or, for a magnitude selection with nothing to do after it (no rescale), finds
    /// the selection and leaves it to the combine (<paramref name="deferred"/>; the kernels may apply it at once);
    /// returns its L1 rescale factor, to be applied by the combine (null: none).
    /// </summary>
    private float? Sparsify(TensorMergeInputs inputs, int k, out MagnitudeSelection? deferred)
    {
        deferred = null;
        if (_sparsification == Sparsification.None) return null;
        ResolvedParameters p = inputs.ModelParameters[k];
        double density = p.Number("density");
        if (density >= 1) return null; // mergekit returns the task vector untouched at density 1
        IMergeKernels kernels = inputs.Kernels;
        Span<float> row = inputs.Row(k);
        RescaleMode rescale = Rescale(inputs.Global);
        if (inputs.IsDroppedInDecode(k))
        {
            // The executor dropped the row as it decoded it (DecodeDrop): only the L1 factor is left, from its partials.
            if (rescale != RescaleMode.L1) return null;
            var (decodedBefore, decodedAfter) = DecodedL1Norms(inputs.DecodedDrops!.NormPartials(k));
            return L1RescaleFactor(decodedBefore, decodedAfter);
        }
        if (_sparsification == Sparsification.Random && rescale == RescaleMode.L1)
        {
            // The drop and both norms in one trip over the row: the bits of the three passes below.
            var (before, after) = DropWithL1Norms(kernels, row, (float)density, inputs.RandomKey(k), 0);
            return L1RescaleFactor(before, after);
        }
        if (_sparsification == Sparsification.RankMagnitude && rescale == RescaleMode.L1
            && RankMagnitudeSampling.TryApplyWithL1Norms(inputs, k, density, p.Number("epsilon"), out double sampledBefore, out double sampledAfter))
        {
            // The sampling between both norms, block by block while the block is in cache: the bits of the steps below.
            return L1RescaleFactor(sampledBefore, sampledAfter);
        }
        long n = row.Length;
        if (rescale == RescaleMode.None && _sparsification is Sparsification.Magnitude or Sparsification.MagnitudeOutliers)
        {
            // Nothing reads the masked row but the combine: let it drop the unselected elements as it reads them.
            if (_sparsification == Sparsification.Magnitude)
                deferred = kernels.SelectTopK(row, MagnitudeCounts.KeepCount(density, n));
            else
            {
                var (bottom, top) = MagnitudeCounts.BreadcrumbsCuts(density, p.Number("gamma"), n);
                deferred = kernels.SelectMagnitudeBand(row, bottom, top);
            }
            return null;
        }
        double normBefore = rescale == RescaleMode.L1 ? L1Norm(kernels, row) : 0;
        switch (_sparsification)
        {
            case Sparsification.Magnitude:
                kernels.KeepTopK(row, MagnitudeCounts.KeepCount(density, n));
                if (rescale == RescaleMode.InverseDensity) kernels.Divide(row, (float)density);
                break;
            case Sparsification.Random:
                kernels.DropAndRescale(row, (float)density, rescale == RescaleMode.InverseDensity, inputs.RandomKey(k));
                break;
            case Sparsification.MagnitudeOutliers:
                var (dropBottom, dropTop) = MagnitudeCounts.BreadcrumbsCuts(density, p.Number("gamma"), n);
                kernels.KeepMagnitudeBand(row, dropBottom, dropTop);
                if (rescale == RescaleMode.InverseDensity) kernels.Divide(row, (float)density);
                break;
            case Sparsification.RankMagnitude:
                // inverse_density divides each kept entry by its own keep probability (the DELLA paper's rescale).
                RankMagnitudeSampling.Apply(inputs, k, density, p.Number("epsilon"), rescale == RescaleMode.InverseDensity);
                break;
        }
        return rescale == RescaleMode.L1 ? L1RescaleFactor(normBefore, L1Norm(kernels, row)) : null;
    }

    /// <summary>How sparsified task vectors are rescaled.</summary>
    private enum RescaleMode { None, L1, InverseDensity }

    private RescaleMode Rescale(ResolvedParameters global)
    {
        if (_sparsification == Sparsification.None || !global.Flag("rescale")) return RescaleMode.None;
        return global.Text("rescale_norm") == "inverse_density" ? RescaleMode.InverseDensity : RescaleMode.L1;
    }

    /// <summary>
    /// mergekit's rescaled_masked_tensor: masked · (‖δ‖₁ / ‖masked‖₁), skipped (null) when either norm is below 1e-7.
    /// </summary>
    private static float? L1RescaleFactor(double normBefore, double normAfter)
    {
        float before = (float)normBefore, after = (float)normAfter;
        return before >= 1e-7f && after >= 1e-7f ? before / after : null;
    }

    /// <summary>
    /// ‖x‖₁ summed block by block (<see cref="TensorMergeInputs.ChunkAlignment"/>) in index order: a streamed
    /// tensor adds the same blocks in the same order, so both paths round identically.
    /// </summary>
    private static double L1Norm(IMergeKernels kernels, ReadOnlySpan<float> values)
    {
        double sum = 0;
        for (int start = 0; start < values.Length; start += TensorMergeInputs.ChunkAlignment)
            sum += kernels.SumOfAbs(values.Slice(start, Math.Min(TensorMergeInputs.ChunkAlignment, values.Length - start)));
        return sum;
    }

    /// <summary>
    /// DARE's drop (kept values unchanged) of a span starting at tensor element <paramref name="firstIndex"/>, with
    /// ‖δ‖₁ before and after it summed block by block as <see cref="L1Norm"/> sums them (same bits).
    /// </summary>
    internal static (double Before, double After) DropWithL1Norms(IMergeKernels kernels, Span<float> values, float density, PhiloxKey key, long firstIndex)
    {
        double before = 0, after = 0;
        for (int start = 0; start < values.Length; start += TensorMergeInputs.ChunkAlignment)
        {
            var (blockBefore, blockAfter) = kernels.DropAndRescaleWithNorms(
                values.Slice(start, Math.Min(TensorMergeInputs.ChunkAlignment, values.Length - start)), density, false, key, firstIndex + start);
            before += blockBefore;
            after += blockAfter;
        }
        return (before, after);
    }

    /// <summary>
    /// ‖δ‖₁ and ‖drop(δ)‖₁ from the norm partials the executor summed while dropping in the decode (one pair per
    /// <see cref="DecodeDrop.NormChunkLength"/> chunk), added as <see cref="DropWithL1Norms"/> adds the CPU kernel's:
    /// each <see cref="TensorMergeInputs.ChunkAlignment"/> block's partials in chunk order from +0, then the blocks in
    /// index order (same bits).
    /// </summary>
    internal static (double Before, double After) DecodedL1Norms(ReadOnlySpan<double> partials)
    {
        const int chunksPerBlock = TensorMergeInputs.ChunkAlignment / DecodeDrop.NormChunkLength;
        int chunks = partials.Length / 2;
        double before = 0, after = 0;
        for (int first = 0; first < chunks; first += chunksPerBlock)
        {
            double blockBefore = 0, blockAfter = 0;
            for (int chunk = first; chunk < Math.Min(chunks, first + chunksPerBlock); chunk++)
            {
                blockBefore += partials[2 * chunk];
                blockAfter += partials[2 * chunk + 1];
            }
            before += blockBefore;
            after += blockAfter;
        }
        return (before, after);
    }

    /// <inheritdoc />
    /// <remarks>
    /// DARE's drop of every δ_k whose density is below 1, exactly as <see cref="Sparsify"/> would run it: divided by the
    /// density for <c>rescale_norm: inverse_density</c>, with the norm partials for the L1 rescale.
    /// </remarks>
    public RandomDrop? DropInDecode(TensorMergeInputs tensor, int row)
    {
        if (_sparsification != Sparsification.Random) return null;
        double density = tensor.ModelParameters[row].Number("density");
        if (density >= 1) return null;
        RescaleMode rescale = Rescale(tensor.Global);
        return new RandomDrop((float)density, rescale == RescaleMode.InverseDensity, tensor.RandomKey(row), WithNorms: rescale == RescaleMode.L1);
    }

    private static void MergeWithSignConsensus(TensorMergeInputs inputs, float[] weights, ReadOnlySpan<float?> l1Factors,
        MagnitudeSelection?[] selections, bool normalize, float lambda, Span<float> output)
    {
        SignElection election = inputs.Global.Text("consensus") == "count" ? SignElection.Count : SignElection.Sum;
        float[] preScales;
        if (inputs.Global.Text("disjoint_mean") == "count")
        {
            // TIES paper / PEFT: the disjoint mean divides by the number of agreeing models. Folding the
            // weights into the rows ((δ·factor)·w, each product rounded) and voting with unit weights gives exactly
            // that divisor. The weights are the pre-scales, so the L1 factor, where there is one, takes its own pass.
            for (int k = 0; k < inputs.Count; k++)
            {
                if (l1Factors[k] is not float factor) continue;
                // The scale changes the keys a deferred selection compares: apply the selection first.
                if (k < selections.Length && selections[k] is { } selection)
                {
                    inputs.Kernels.ApplySelection(inputs.Row(k), selection);
                    selections[k] = null;
                }
                inputs.Kernels.Scale(inputs.Row(k), factor);
            }
            preScales = (float[])weights.Clone();
            Array.Fill(weights, 1f);
        }
        else
        {
            preScales = PreScales(l1Factors);
        }
        inputs.Kernels.SignConsensusMergeOntoBase(inputs.Models.Span, weights, election, normalize, lambda, inputs.Base.Span, output, preScales, selections);
    }

    /// <summary>normalize's divisor for the plain sum: Σ w_k in float32, k order; mergekit guards |Σw| &lt; 1e-8 -> 1.</summary>
    private static float SumDivisor(float[] weights)
    {
        float divisor = 0;
        foreach (float w in weights) divisor += w;
        return MathF.Abs(divisor) < 1e-8f ? 1f : divisor;
    }
}
