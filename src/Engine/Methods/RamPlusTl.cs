namespace Weld.Engine.Methods;

/// <summary>
/// RAM+ tensor-local (mergekit's <c>ramplus_tl</c>): RAM, with each model's unshared entries amplified by how much of
/// that model's task vector overlaps the others':
/// <code>
///   ρ_k = #{i : k touches i, c_i &gt; 1} / max(#{i : k touches i, c_i = 1}, ε),   λ_k = 1 + r · clamp(ρ_k, 0, α)
///   θ_i = θ_base,i + Σ_{k touches i} (c_i = 1 ? λ_k δ_k,i : δ_k,i / c_i)
/// </code>
/// "k touches i" means |δ_k,i| &gt; ε; c_i counts the models touching i.
/// A tensor too large for memory is streamed: one pass counts, a second merges (the counts are exact integers, so
/// the bits are those of one piece).
/// </summary>
public sealed class RamPlusTl : IStreamingMergeMethod
{
    /// <inheritdoc />
    public string Name => "ramplus_tl";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, int.MaxValue);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("r", ParameterScope.Global, 0.1),
        ParameterSpec.Number("alpha", ParameterScope.Global, 0.2),
        ParameterSpec.Number("epsilon", ParameterScope.Global, 1e-5, 0),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        inputs.Kernels.SubtractRows(inputs.Models.Span, inputs.Base.Span);
        float epsilon = (float)inputs.Global.Number("epsilon");
        int count = inputs.Count;
        var sharedCounts = new long[count];
        var uniqueCounts = new long[count];
        inputs.Kernels.RamContributionCounts(inputs.Models.Span, epsilon, sharedCounts, uniqueCounts);

        float[] amplification = Amplification(inputs.Global, sharedCounts, uniqueCounts);
        inputs.Kernels.RamMerge(inputs.Models.Span, inputs.Base.Span, amplification, epsilon, output);
    }

    /// <summary>λ_k = 1 + r · clamp(ρ_k, 0, α) from the whole tensor's counts.</summary>
    private static float[] Amplification(ResolvedParameters global, long[] sharedCounts, long[] uniqueCounts)
    {
        float epsilon = (float)global.Number("epsilon");
        float r = (float)global.Number("r"), alpha = (float)global.Number("alpha");
        var amplification = new float[sharedCounts.Length];
        for (int k = 0; k < amplification.Length; k++)
        {
            // float32 as torch computes it: the integer counts are promoted, the clamp bound is ε.
            float rho = sharedCounts[k] / Math.Max((float)uniqueCounts[k], epsilon);
            amplification[k] = 1f + r * MathF.Min(MathF.Max(rho, 0f), alpha); // torch.clamp: max wins when min > max
        }
        return amplification;
    }

    /// <inheritdoc />
    public bool CanStream(IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global) => true;

    /// <inheritdoc />
    public IStreamingTensorMerge BeginTensor(TensorMergeInputs description) => new TensorStream(description);

    /// <summary>One streamed tensor: a pass counting each model's shared and unique entries, then the merge.</summary>
    private sealed class TensorStream(TensorMergeInputs description) : IStreamingTensorMerge
    {
        private readonly long[] _shared = new long[description.Count];
        private readonly long[] _unique = new long[description.Count];
        private readonly float _epsilon = (float)description.Global.Number("epsilon");
        private float[]? _amplification;

        public int StatisticsPasses => 1;

        public void Observe(int pass, TensorMergeInputs chunk)
        {
            chunk.Kernels.SubtractRows(chunk.Models.Span, chunk.Base.Span);
            chunk.Kernels.RamContributionCounts(chunk.Models.Span, _epsilon, _shared, _unique);
        }

        public void EndPass(int pass) => _amplification = Amplification(description.Global, _shared, _unique);

        public void Merge(TensorMergeInputs chunk, Span<float> output)
        {
            chunk.Kernels.SubtractRows(chunk.Models.Span, chunk.Base.Span);
            chunk.Kernels.RamMerge(chunk.Models.Span, chunk.Base.Span, _amplification!, _epsilon, output);
        }
    }
}
