using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>
/// Model Breadcrumbs at the paper's semantics (Davari &amp; Belilovsky 2024): per tensor, mask out the bottom β and the
/// top γ fraction of each task vector by magnitude, then task arithmetic:
/// <code>
///   m_k = [⌊β n⌋ &lt; rank(|δ_k|) ≤ n − ⌊γ n⌋],   θ = θ_base + λ Σ_k w_k (m_k ⊙ δ_k)
/// </code>
/// Unlike mergekit's <c>breadcrumbs</c> (which keeps a <c>density</c> below the top cut), both cuts are given directly;
/// β + γ ≥ 1 masks everything. Ranks break ties by position (Weld's magnitude band rule). A tensor too large for
/// memory is streamed: both cuts are found in two counting passes (<see cref="MagnitudeBand"/>).
/// </summary>
public sealed class BreadcrumbsPaper : IStreamingMergeMethod
{
    /// <inheritdoc />
    public string Name => "breadcrumbs_paper";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, int.MaxValue, TakesTaskVectors: true);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("beta", ParameterScope.PerModel, null, 0, 1),
        ParameterSpec.Number("gamma", ParameterScope.PerModel, 0.01, 0, 1),
        ParameterSpec.Number("weight", ParameterScope.PerModel, 1.0),
        ParameterSpec.Number("lambda", ParameterScope.Global, 1.0),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        IMergeKernels kernels = inputs.Kernels;
        inputs.FormTaskVectors();
        long n = inputs.Length;
        var selections = new MagnitudeSelection?[inputs.Count];
        for (int k = 0; k < inputs.Count; k++)
        {
            ResolvedParameters p = inputs.ModelParameters[k];
            selections[k] = kernels.SelectMagnitudeBand(inputs.Row(k), (long)(p.Number("beta") * n), (long)(p.Number("gamma") * n));
        }
        // The band applied as the sum reads each row; the bits of WeightedSum, Scale and Axpby over masked rows (below).
        kernels.WeightedSumOntoBase(inputs.Models.Span, inputs.PerModel("weight"), 1f, (float)inputs.Global.Number("lambda"),
            inputs.Base.Span, output, [], selections);
    }

    /// <summary>θ_base + λ Σ_k w_k δ̂_k from the masked task vectors.</summary>
    private static void Combine(TensorMergeInputs inputs, Span<float> output)
    {
        IMergeKernels kernels = inputs.Kernels;
        kernels.WeightedSum(inputs.Models.Span, inputs.PerModel("weight"), output);
        float lambda = (float)inputs.Global.Number("lambda");
        if (lambda != 1f) kernels.Scale(output, lambda);
        kernels.Axpby(1f, inputs.Base.Span, 1f, output, output);
    }

    /// <inheritdoc />
    public bool CanStream(IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global) => true;

    /// <inheritdoc />
    public IStreamingTensorMerge BeginTensor(TensorMergeInputs description) => new TensorStream(description);

    /// <summary>One streamed tensor: the band's counting passes (one when the sampled brackets hold both cuts, else three), then the apply pass.</summary>
    private sealed class TensorStream : IStreamingTensorMerge
    {
        private readonly MagnitudeBand[] _bands;

        public TensorStream(TensorMergeInputs description)
        {
            long n = description.TensorLength;
            _bands = new MagnitudeBand[description.Count];
            for (int k = 0; k < _bands.Length; k++)
            {
                ResolvedParameters p = description.ModelParameters[k];
                _bands[k] = new MagnitudeBand(n, (long)(p.Number("beta") * n), (long)(p.Number("gamma") * n));
            }
            StatisticsPasses = PassesLeft();
        }

        /// <summary>Drops after the first pass when every band's sampled searches found their cuts.</summary>
        public int StatisticsPasses { get; private set; }

        private int PassesLeft()
        {
            int left = 0;
            foreach (MagnitudeBand band in _bands) left = Math.Max(left, band.PassesLeft);
            return left;
        }

        public void Observe(int pass, TensorMergeInputs chunk)
        {
            chunk.FormTaskVectors();
            for (int k = 0; k < _bands.Length; k++)
                _bands[k].Observe(chunk.Kernels, chunk.Row(k));
        }

        public void EndPass(int pass)
        {
            foreach (MagnitudeBand band in _bands)
                band.EndPass();
            StatisticsPasses = pass + 1 + PassesLeft();
        }

        public void Merge(TensorMergeInputs chunk, Span<float> output)
        {
            chunk.FormTaskVectors();
            for (int k = 0; k < _bands.Length; k++)
                _bands[k].Apply(chunk.Kernels, chunk.Row(k), chunk.Offset);
            Combine(chunk, output);
        }
    }
}
