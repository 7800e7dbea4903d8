namespace Weld.Engine.Methods;

/// <summary>
/// Spherical linear interpolation between the base v0 and one other model v1 (Shoemake 1985), one angle per
/// whole tensor as mergekit computes it:
/// <code>
///   cos Ω = ⟨v0/‖v0‖, v1/‖v1‖⟩;  |cos Ω| &gt; 0.9995 → lerp
///   θ = s0 v0 + s1 v1,  s0 = sin((1−t)Ω)/sin Ω,  s1 = sin(tΩ)/sin Ω
/// </code>
/// </summary>
public sealed class Slerp : IMergeMethod
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
        double t = inputs.Global.Number("t");
        ReadOnlySpan<float> v0 = inputs.Base.Span;
        ReadOnlySpan<float> v1 = inputs.Row(0);
        var (s0, s1) = Coefficients(inputs.Kernels, v0, v1, t);
        inputs.Kernels.Axpby((float)s0, v0, (float)s1, v1, output);
    }

    /// <summary>The two mixing coefficients for v0 and v1.</summary>
    internal static (double S0, double S1) Coefficients(Kernels.IMergeKernels kernels, ReadOnlySpan<float> v0, ReadOnlySpan<float> v1, double t)
    {
        double norm0 = Math.Sqrt(kernels.SumOfSquares(v0));
        double norm1 = Math.Sqrt(kernels.SumOfSquares(v1));
        // mergekit normalises only vectors whose norm exceeds eps; a zero vector stays zero (dot 0).
        double scale0 = norm0 > NormEpsilon ? norm0 : 1;
        double scale1 = norm1 > NormEpsilon ? norm1 : 1;
        double dot = kernels.Dot(v0, v1) / (scale0 * scale1);
        if (Math.Abs(dot) > DotThreshold)
            return (1 - t, t);
        double omega = Math.Acos(dot);
        double sinOmega = Math.Sin(omega);
        return (Math.Sin(omega - omega * t) / sinOmega, Math.Sin(omega * t) / sinOmega);
    }
}
