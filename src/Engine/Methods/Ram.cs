namespace Weld.Engine.Methods;

/// <summary>
/// RAM, Reinforced Agent Merging (mergekit, arXiv 2601.13572): an entry of a task vector counts when |δ_k,i| &gt; ε;
/// entries only one model touches are added as they are, entries several touch are averaged over those models:
/// <code>
///   c_i = #{k : |δ_k,i| &gt; ε},   θ_i = θ_base,i + Σ_{k : |δ_k,i| &gt; ε} (c_i = 1 ? δ_k,i : δ_k,i / c_i)
/// </code>
/// </summary>
public sealed class Ram : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "ram";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, int.MaxValue, Elementwise: true);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("epsilon", ParameterScope.Global, 1e-5, 0),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        inputs.Kernels.SubtractRows(inputs.Models.Span, inputs.Base.Span);
        var uniqueScale = new float[inputs.Count];
        Array.Fill(uniqueScale, 1f);
        Combine(inputs, (float)inputs.Global.Number("epsilon"), uniqueScale, output);
    }

    /// <summary>
    /// θ_i = θ_base,i + Σ_k [(z_k,i · unique_i) · scale_k + (z_k,i · shared_i) / max(c_i, 1)] with z = δ·[|δ| &gt; ε],
    /// in mergekit's float32 operation order (a NaN entry stays NaN, as NaN · 0 does in torch).
    /// </summary>
    internal static void Combine(TensorMergeInputs inputs, float epsilon, float[] uniqueScale, Span<float> output)
    {
        int n = inputs.Length, count = inputs.Count;
        ReadOnlySpan<float> deltas = inputs.Models.Span;
        ReadOnlySpan<float> baseline = inputs.Base.Span;
        for (int i = 0; i < n; i++)
        {
            int contributors = Contributors(deltas, n, count, i, epsilon);
            float unique = contributors == 1 ? 1f : 0f, shared = contributors > 1 ? 1f : 0f;
            float divisor = Math.Max(contributors, 1);
            float merged = 0;
            for (int k = 0; k < count; k++)
            {
                float delta = deltas[k * n + i];
                float z = delta * (MathF.Abs(delta) > epsilon ? 1f : 0f);
                merged += z * unique * uniqueScale[k] + z * shared / divisor;
            }
            output[i] = baseline[i] + merged;
        }
    }

    /// <summary>How many task vectors have |δ_k,i| &gt; ε at element <paramref name="i"/>.</summary>
    internal static int Contributors(ReadOnlySpan<float> deltas, int n, int count, int i, float epsilon)
    {
        int contributors = 0;
        for (int k = 0; k < count; k++)
            if (MathF.Abs(deltas[k * n + i]) > epsilon) contributors++;
        return contributors;
    }
}
