namespace Weld.Kernels.Cpu;

/// <summary>One row of <see cref="IMergeKernels.SoftmaxDivergenceScores"/>: the softmax of both rows, their KL divergence, the scores.</summary>
internal static class SoftmaxDivergence
{
    private const float ProbabilityFloor = 1e-8f;

    /// <summary>
    /// scores[j] = |model[j] − baseline[j]| · (float)KL(softmax(model) + 1e-8 ‖ softmax(baseline) + 1e-8);
    /// <paramref name="p"/> and <paramref name="q"/> are scratch as long as the row.
    /// </summary>
    public static void ScoreRow(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, Span<float> scores, Span<float> p, Span<float> q)
    {
        Softmax(model, p);
        Softmax(baseline, q);
        double divergence = 0;
        for (int j = 0; j < model.Length; j++)
            divergence += p[j] * Math.Log((double)p[j] / q[j]);
        float d = (float)divergence;
        for (int j = 0; j < model.Length; j++)
            scores[j] = MathF.Abs(model[j] - baseline[j]) * d;
    }

    /// <summary>softmax(x) + 1e-8, computed in float64 and rounded to float32 as torch's float32 softmax gives.</summary>
    private static void Softmax(ReadOnlySpan<float> x, Span<float> probabilities)
    {
        float max = float.NegativeInfinity;
        foreach (float v in x)
            max = MathF.Max(max, v);
        double sum = 0;
        for (int j = 0; j < x.Length; j++)
            sum += Math.Exp(x[j] - (double)max);
        for (int j = 0; j < x.Length; j++)
            probabilities[j] = (float)(Math.Exp(x[j] - (double)max) / sum) + ProbabilityFloor;
    }
}
