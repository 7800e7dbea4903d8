namespace Weld.Kernels.Cpu;

/// <summary>One row of <see cref="IMergeKernels.SoftmaxDivergenceScores"/>: the softmax of both rows, their KL divergence, the scores.</summary>
internal static class SoftmaxDivergence
{
    private const float ProbabilityFloor = 1e-8f;

    /// <summary>
    /// scores[j] = |model[j] − baseline[j]| · (float)KL(softmax(model) + 1e-8 ‖ softmax(baseline) + 1e-8);
    /// <paramref name="p"/>, <paramref name="q"/> and <paramref name="exponentials"/> are scratch as long as the row.
    /// </summary>
    public static void ScoreRow(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, Span<float> scores, Span<float> p, Span<float> q,
        Span<double> exponentials)
    {
        Softmax(model, p, exponentials);
        Softmax(baseline, q, exponentials);
        double divergence = 0;
        for (int j = 0; j < model.Length; j++)
            divergence += p[j] * Math.Log((double)p[j] / q[j]);
        float d = (float)divergence;
        for (int j = 0; j < model.Length; j++)
            scores[j] = MathF.Abs(model[j] - baseline[j]) * d;
    }

    /// <summary>
    /// softmax(x) + 1e-8, computed in float64 and rounded to float32 as torch's float32 softmax gives. Each exponential
    /// is computed once and kept for the division (the function is deterministic, so the bits are those of computing it
    /// twice, as the GPU kernel does; the exponentials are most of the method's time).
    /// </summary>
    private static void Softmax(ReadOnlySpan<float> x, Span<float> probabilities, Span<double> exponentials)
    {
        float max = float.NegativeInfinity;
        foreach (float v in x)
            max = MathF.Max(max, v);
        double sum = 0;
        for (int j = 0; j < x.Length; j++)
            sum += exponentials[j] = Math.Exp(x[j] - (double)max);
        for (int j = 0; j < x.Length; j++)
            probabilities[j] = (float)(exponentials[j] / sum) + ProbabilityFloor;
    }
}
