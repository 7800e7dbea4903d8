namespace Weld.Engine.Methods;

/// <summary>
/// NuSLERP (mergekit): spherical interpolation of exactly two models with t from their weights, optionally of their
/// task vectors against a base:
/// <code>
///   t = w_2 / (w_1 + w_2)   (0.5 when |w_1 + w_2| &lt; 1e-6)
///   cos θ = ⟨v_1, v_2⟩ / (max(‖v_1‖, 1e-7) · max(‖v_2‖, 1e-7)),   |sin θ| &lt; 1e-8 → lerp
///   slerp = (sin((1 − t)θ) v_1 + sin(tθ) v_2) / sin θ
///   θ = slerp(x_1, x_2)   or, with a base,   θ = θ_base + slerp(x_1 − θ_base, x_2 − θ_base)
/// </code>
/// One angle for the whole tensor (<c>nuslerp_flatten</c>, the default), else one per row of the last dimension, or
/// per column (fibers along dim 0) with <c>nuslerp_row_wise</c>.
/// </summary>
public sealed class NuSlerp : IMergeMethod
{
    private const double NormFloor = 1e-7;
    private const double ColinearSine = 1e-8;

    /// <inheritdoc />
    public string Name => "nuslerp";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Optional, 2, 2);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("weight", ParameterScope.PerModel, null),
        ParameterSpec.Flag("nuslerp_row_wise", false),
        ParameterSpec.Flag("nuslerp_flatten", true),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        double w1 = inputs.ModelParameters[0].Number("weight"), w2 = inputs.ModelParameters[1].Number("weight");
        double t = Math.Abs(w1 + w2) < 1e-6 ? 0.5 : w2 / (w1 + w2);
        if (inputs.HasBase) inputs.Kernels.SubtractRows(inputs.Models.Span, inputs.Base.Span);

        Span<float> v1 = inputs.Row(0), v2 = inputs.Row(1);
        int n = inputs.Length;
        long[] shape = inputs.Shape;
        bool flatten = inputs.Global.Flag("nuslerp_flatten") || shape.Length < 2;
        if (flatten)
        {
            var (s1, s2) = Coefficients(t, inputs.Kernels.Dot(v1, v2), inputs.Kernels.SumOfSquares(v1), inputs.Kernels.SumOfSquares(v2));
            inputs.Kernels.Axpby((float)s1, v1, (float)s2, v2, output);
        }
        else if (inputs.Global.Flag("nuslerp_row_wise"))
        {
            int stride = n / (int)shape[0];
            for (int column = 0; column < stride; column++) Fiber(t, v1, v2, output, column, (int)shape[0], stride);
        }
        else
        {
            int length = (int)shape[^1];
            for (int start = 0; start < n; start += length) Fiber(t, v1, v2, output, start, length, 1);
        }
        if (inputs.HasBase) inputs.Kernels.Axpby(1f, inputs.Base.Span, 1f, output, output);
    }

    /// <summary>Slerps one fiber (elements first, first + stride, …) of the two inputs into the output.</summary>
    private static void Fiber(double t, ReadOnlySpan<float> v1, ReadOnlySpan<float> v2, Span<float> output, int first, int length, int stride)
    {
        double dot = 0, sq1 = 0, sq2 = 0;
        for (int j = 0, i = first; j < length; j++, i += stride)
        {
            dot += (double)v1[i] * v2[i];
            sq1 += (double)v1[i] * v1[i];
            sq2 += (double)v2[i] * v2[i];
        }
        var (s1, s2) = Coefficients(t, dot, sq1, sq2);
        float a = (float)s1, b = (float)s2;
        for (int j = 0, i = first; j < length; j++, i += stride) output[i] = a * v1[i] + b * v2[i];
    }

    /// <summary>The mixing coefficients of v1 and v2 from their dot product and squared norms.</summary>
    internal static (double S1, double S2) Coefficients(double t, double dot, double squaredNorm1, double squaredNorm2)
    {
        double cos = dot / (Math.Max(Math.Sqrt(squaredNorm1), NormFloor) * Math.Max(Math.Sqrt(squaredNorm2), NormFloor));
        double theta = Math.Acos(Math.Clamp(cos, -1, 1));
        double sin = Math.Sin(theta);
        if (Math.Abs(sin) < ColinearSine) return (1 - t, t);
        return (Math.Sin((1 - t) * theta) / sin, Math.Sin(t * theta) / sin);
    }
}
