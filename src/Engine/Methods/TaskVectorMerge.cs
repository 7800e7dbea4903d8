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
public abstract partial class TaskVectorMerge : IStreamingMergeMethod
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
        for (int k = 0; k < inputs.Count; k++)
            Sparsify(inputs, k);
        Combine(inputs, output);
    }

    /// <summary>Sign consensus or plain sum of the sparsified task vectors, λ, and the base added back.</summary>
    private void Combine(TensorMergeInputs inputs, Span<float> output)
    {
        IMergeKernels kernels = inputs.Kernels;
        float[] weights = inputs.PerModel("weight");
        bool normalize = inputs.Global.Flag("normalize");
        float lambda = (float)inputs.Global.Number("lambda");
        if (_signConsensus)
        {
            // Election, λ and the base in one pass over the output (the same steps as below, fused).
            MergeWithSignConsensus(inputs, weights, normalize, lambda, output);
            return;
        }
        MergeBySum(kernels, inputs.Models.Span, weights, normalize, output);
        if (lambda != 1f) kernels.Scale(output, lambda);
        kernels.Axpby(1f, inputs.Base.Span, 1f, output, output);
    }

    private void Sparsify(TensorMergeInputs inputs, int k)
    {
        if (_sparsification == Sparsification.None) return;
        ResolvedParameters p = inputs.ModelParameters[k];
        double density = p.Number("density");
        if (density >= 1) return; // mergekit returns the task vector untouched at density 1
        IMergeKernels kernels = inputs.Kernels;
        Span<float> row = inputs.Row(k);
        RescaleMode rescale = Rescale(inputs.Global);
        if (_sparsification == Sparsification.Random && rescale == RescaleMode.L1)
        {
            // The drop and both norms in one trip over the row: the bits of the three passes below.
            var (before, after) = DropWithL1Norms(kernels, row, (float)density, inputs.RandomKey(k), 0);
            if (L1RescaleFactor(before, after) is float l1Factor)
                kernels.Scale(row, l1Factor);
            return;
        }
        if (_sparsification == Sparsification.RankMagnitude && rescale == RescaleMode.L1
            && RankMagnitudeSampling.TryApplyWithL1Norms(inputs, k, density, p.Number("epsilon"), out double sampledBefore, out double sampledAfter))
        {
            // The sampling between both norms, block by block while the block is in cache: the bits of the steps below.
            if (L1RescaleFactor(sampledBefore, sampledAfter) is float sampledFactor)
                kernels.Scale(row, sampledFactor);
            return;
        }
        double normBefore = rescale == RescaleMode.L1 ? L1Norm(kernels, row) : 0;
        long n = row.Length;
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
        if (rescale == RescaleMode.L1 && L1RescaleFactor(normBefore, L1Norm(kernels, row)) is float factor)
            kernels.Scale(row, factor);
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
    private static (double Before, double After) DropWithL1Norms(IMergeKernels kernels, Span<float> values, float density, PhiloxKey key, long firstIndex)
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

    private static void MergeWithSignConsensus(TensorMergeInputs inputs, float[] weights, bool normalize, float lambda, Span<float> output)
    {
        SignElection election = inputs.Global.Text("consensus") == "count" ? SignElection.Count : SignElection.Sum;
        if (inputs.Global.Text("disjoint_mean") == "count")
        {
            // TIES paper / PEFT: the disjoint mean divides by the number of agreeing models. Folding the
            // weights into the rows and voting with unit weights gives exactly that divisor.
            for (int k = 0; k < inputs.Count; k++)
                inputs.Kernels.Scale(inputs.Row(k), weights[k]);
            Array.Fill(weights, 1f);
        }
        inputs.Kernels.SignConsensusMergeOntoBase(inputs.Models.Span, weights, election, normalize, lambda, inputs.Base.Span, output);
    }

    private static void MergeBySum(IMergeKernels kernels, ReadOnlySpan<float> deltas, float[] weights, bool normalize, Span<float> output)
    {
        kernels.WeightedSum(deltas, weights, output);
        if (!normalize) return;
        float divisor = 0;
        foreach (float w in weights) divisor += w;
        // mergekit guards the plain sum with |Σw| < 1e-8 -> 1.
        if (MathF.Abs(divisor) < 1e-8f) divisor = 1;
        if (divisor != 1f) kernels.Divide(output, divisor);
    }
}
