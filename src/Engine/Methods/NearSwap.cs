namespace Weld.Engine.Methods;

/// <summary>
/// NearSwap (mergekit, after alchemonaut's QuartetAnemoi): take the other model's value where it is close to the
/// base's, keep the base where they differ much:
/// <code>
///   w_i = clamp(nan_to_num(t / |v0_i − v1_i|, nan = ±inf = 1), 0, 1),   θ_i = w_i v1_i + (1 − w_i) v0_i
/// </code>
/// v0 is the base, v1 the other model. As in torch, t / d is evaluated as (1 / d) · t in float32.
/// </summary>
public sealed class NearSwap : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "nearswap";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, 1, Elementwise: true);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("t", ParameterScope.Global, null, 0, minExclusive: true),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        float t = (float)inputs.Global.Number("t");
        ReadOnlySpan<float> v0 = inputs.Base.Span;
        ReadOnlySpan<float> v1 = inputs.Row(0);
        for (int i = 0; i < output.Length; i++)
        {
            float w = 1f / MathF.Abs(v0[i] - v1[i]) * t;
            w = float.IsFinite(w) ? Math.Clamp(w, 0f, 1f) : 1f;
            output[i] = w * v1[i] + (1f - w) * v0[i];
        }
    }
}
