namespace Weld.Engine.Evaluation;

/// <summary>The loss of the model <c>(1 − α)·A + α·B</c>.</summary>
/// <param name="Alpha">The interpolation weight of B.</param>
/// <param name="Loss">Mean NLL (language models) or mean cross-entropy (classifiers).</param>
/// <param name="Metric">Perplexity (language models) or accuracy (classifiers) at this α.</param>
public readonly record struct InterpolationPoint(double Alpha, double Loss, double Metric);

/// <summary>A loss curve along the straight line between two checkpoints, and its barrier.</summary>
/// <param name="Points">One point per α, in increasing α from 0 to 1.</param>
public sealed record InterpolationCurve(IReadOnlyList<InterpolationPoint> Points)
{
    /// <summary>
    /// max over α of <c>loss(α) − ((1 − α)·loss(0) + α·loss(1))</c>: how far the path rises above the chord between
    /// the end losses (0 when it never does, since the end points themselves contribute 0).
    /// </summary>
    public double BarrierHeight => LossInterpolation.BarrierHeight(Points);
}

/// <summary>Linear mode connectivity: evaluates the interpolated models at evenly spaced α.</summary>
public static class LossInterpolation
{
    /// <summary>The α values of <paramref name="steps"/> evenly spaced points from 0 to 1 inclusive (i / (steps − 1)).</summary>
    /// <exception cref="WeldException">Fewer than 2 steps.</exception>
    public static double[] Alphas(int steps)
    {
        if (steps < 2) throw new WeldException($"--steps must be at least 2 (both end points), not {steps}.");
        var alphas = new double[steps];
        for (int i = 0; i < steps; i++) alphas[i] = (double)i / (steps - 1);
        return alphas;
    }

    /// <summary>
    /// Evaluates <paramref name="evaluate"/> (loss, metric) on <c>(1 − α)·a + α·b</c> for each α of <see cref="Alphas"/>.
    /// </summary>
    /// <exception cref="WeldException">The sets differ in tensor names or shapes, or fewer than 2 steps.</exception>
    public static InterpolationCurve Scan(TensorSet a, TensorSet b, int steps, Func<TensorSet, (double Loss, double Metric)> evaluate)
    {
        ArgumentNullException.ThrowIfNull(evaluate);
        double[] alphas = Alphas(steps);
        var points = new InterpolationPoint[alphas.Length];
        for (int i = 0; i < alphas.Length; i++)
        {
            (double loss, double metric) = evaluate(TensorSet.Interpolate(a, b, alphas[i]));
            points[i] = new InterpolationPoint(alphas[i], loss, metric);
        }

        return new InterpolationCurve(points);
    }

    /// <summary>
    /// max over the points of <c>loss(α) − ((1 − α)·loss₀ + α·loss₁)</c> with loss₀, loss₁ the first and last points.
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than 2 points.</exception>
    public static double BarrierHeight(IReadOnlyList<InterpolationPoint> points)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.Count < 2) throw new ArgumentException("a curve needs at least its two end points.", nameof(points));
        double start = points[0].Loss, end = points[^1].Loss, barrier = double.NegativeInfinity;
        foreach (InterpolationPoint p in points)
            barrier = Math.Max(barrier, p.Loss - ((1 - p.Alpha) * start + p.Alpha * end));
        return barrier;
    }
}
