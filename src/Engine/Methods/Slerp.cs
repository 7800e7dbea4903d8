namespace Weld.Engine.Methods;

/// <summary>
/// Spherical linear interpolation between the base v0 and one other model v1 (Shoemake 1985), one angle per
/// whole tensor as mergekit computes it:
/// <code>
///   cos Ω = ⟨v0/‖v0‖, v1/‖v1‖⟩;  |cos Ω| &gt; 0.9995 → lerp
///   θ = s0 v0 + s1 v1,  s0 = sin((1−t)Ω)/sin Ω,  s1 = sin(tΩ)/sin Ω
/// </code>
/// A tensor too large for memory is streamed: one pass gathers ‖v0‖², ‖v1‖² and ⟨v0, v1⟩ (summed in 2²⁰-element
/// blocks in index order on both paths, <see cref="BlockSums"/>), then the apply pass mixes each chunk.
/// </summary>
public sealed class Slerp : IStreamingMergeMethod
{
    private const double DotThreshold = 0.9995;
    private const double NormEpsilon = 1e-8;

    /// <inheritdoc />
    public string Name => "slerp";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, 1);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("t", ParameterScope.Global, null),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        var tensor = new TensorStream(inputs.Global.Number("t"));
        tensor.Observe(0, inputs);
        tensor.EndPass(0);
        tensor.Merge(inputs, output);
    }

    /// <inheritdoc />
    public bool CanStream(IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global) => true;

    /// <inheritdoc />
    public IStreamingTensorMerge BeginTensor(TensorMergeInputs description) => new TensorStream(description.Global.Number("t"));

    /// <summary>The two mixing coefficients for v0 and v1 from their squared norms and dot product.</summary>
    private static (double S0, double S1) Coefficients(double squaredNorm0, double squaredNorm1, double dot, double t)
    {
        double norm0 = Math.Sqrt(squaredNorm0);
        double norm1 = Math.Sqrt(squaredNorm1);
        // mergekit normalises only vectors whose norm exceeds eps; a zero vector stays zero (dot 0).
        double scale0 = norm0 > NormEpsilon ? norm0 : 1;
        double scale1 = norm1 > NormEpsilon ? norm1 : 1;
        double cos = dot / (scale0 * scale1);
        if (Math.Abs(cos) > DotThreshold)
            return (1 - t, t);
        double omega = Math.Acos(cos);
        double sinOmega = Math.Sin(omega);
        return (Math.Sin(omega - omega * t) / sinOmega, Math.Sin(omega * t) / sinOmega);
    }

    /// <summary>One tensor, whole (one chunk) or streamed: the three sums, then the mix.</summary>
    private sealed class TensorStream(double t) : IStreamingTensorMerge
    {
        private double _squaredNorm0, _squaredNorm1, _dot;
        private float _s0, _s1;

        public int StatisticsPasses => 1;

        public void Observe(int pass, TensorMergeInputs chunk)
        {
            ReadOnlySpan<float> v0 = chunk.Base.Span, v1 = chunk.Row(0);
            _squaredNorm0 = BlockSums.SumOfSquares(chunk.Kernels, v0, chunk.Offset, _squaredNorm0);
            _squaredNorm1 = BlockSums.SumOfSquares(chunk.Kernels, v1, chunk.Offset, _squaredNorm1);
            _dot = BlockSums.Dot(chunk.Kernels, v0, v1, chunk.Offset, _dot);
        }

        public void EndPass(int pass)
        {
            var (s0, s1) = Coefficients(_squaredNorm0, _squaredNorm1, _dot, t);
            _s0 = (float)s0;
            _s1 = (float)s1;
        }

        public void Merge(TensorMergeInputs chunk, Span<float> output) =>
            chunk.Kernels.Axpby(_s0, chunk.Base.Span, _s1, chunk.Row(0), output);
    }
}
