namespace Weld.Kernels.Tests;

/// <summary>
/// Plain scalar references for the interpolation kernels, written from the <see cref="IMergeKernels"/> contract
/// (float32 operations as float64 rounded once, see <see cref="ScalarReference"/>).
/// </summary>
internal static class InterpolationScalarReference
{
    public static float[] ScaleFromBase(float[] baseline, float[] merged, float scale)
    {
        var output = new float[merged.Length];
        for (int i = 0; i < output.Length; i++)
            output[i] = ScalarReference.Add(baseline[i], ScalarReference.Mul(scale, MethodScalarReference.Sub(merged[i], baseline[i])));
        return output;
    }

    public static float[] KeepImportantChanges(float[] baseline, float[] model, float threshold, float[] scores)
    {
        var output = new float[scores.Length];
        for (int i = 0; i < output.Length; i++)
        {
            float gate = scores[i] >= threshold ? 1f : 0f;
            output[i] = ScalarReference.Add(baseline[i], ScalarReference.Mul(MethodScalarReference.Sub(model[i], baseline[i]), gate));
        }
        return output;
    }

    /// <summary>
    /// Arcee Fusion's scores per row, from the contract (the max written out: any NaN makes it NaN), with .NET's float64
    /// exp and log (the C library's on Linux).
    /// </summary>
    public static float[] SoftmaxDivergenceScores(float[] model, float[] baseline, int rowLength) =>
        SoftmaxDivergenceScores(model, baseline, rowLength, Math.Exp, Math.Log);

    /// <summary>
    /// The same scores with fdlibm's exp and log (<see cref="Weld.Kernels.Gpu.Float64Math"/>), the functions every backend
    /// runs: the backends must give these bits exactly.
    /// </summary>
    public static float[] SoftmaxDivergenceScoresFdlibm(float[] model, float[] baseline, int rowLength) =>
        SoftmaxDivergenceScores(model, baseline, rowLength, Weld.Kernels.Gpu.Float64Math.ExpFdlibm, Weld.Kernels.Gpu.Float64Math.LogFdlibm);

    private static float[] SoftmaxDivergenceScores(float[] model, float[] baseline, int rowLength, Func<double, double> exp,
        Func<double, double> log)
    {
        var scores = new float[model.Length];
        float[] divergences = SoftmaxDivergences(model, baseline, rowLength, exp, log);
        for (int start = 0; start < model.Length; start += rowLength)
        {
            float d = divergences[start / rowLength];
            for (int j = 0; j < rowLength; j++)
                scores[start + j] = ScalarReference.Mul(Math.Abs(MethodScalarReference.Sub(model[start + j], baseline[start + j])), d);
        }
        return scores;
    }

    /// <summary>The D of each row (fdlibm's exp and log): the divergences every backend must give bit for bit.</summary>
    public static float[] SoftmaxDivergencesFdlibm(float[] model, float[] baseline, int rowLength) =>
        SoftmaxDivergences(model, baseline, rowLength, Weld.Kernels.Gpu.Float64Math.ExpFdlibm, Weld.Kernels.Gpu.Float64Math.LogFdlibm);

    private static float[] SoftmaxDivergences(float[] model, float[] baseline, int rowLength, Func<double, double> exp, Func<double, double> log)
    {
        var divergences = new float[model.Length / rowLength];
        for (int start = 0; start < model.Length; start += rowLength)
        {
            double[] p = FlooredSoftmax(model, start, rowLength, exp), q = FlooredSoftmax(baseline, start, rowLength, exp);
            double divergence = 0;
            for (int j = 0; j < rowLength; j++)
                divergence += p[j] * log(p[j] / q[j]);
            divergences[start / rowLength] = (float)divergence;
        }
        return divergences;
    }

    /// <summary>(float)(exp(x − max) / Σ exp(x − max)) + 1e-8f, each probability a float32 held in a double.</summary>
    private static double[] FlooredSoftmax(float[] values, int start, int length, Func<double, double> exp)
    {
        float max = float.NegativeInfinity;
        bool sawNaN = false;
        for (int j = 0; j < length; j++)
        {
            float v = values[start + j];
            sawNaN |= float.IsNaN(v);
            if (v > max)
                max = v;
        }
        if (sawNaN)
            max = float.NaN;
        double sum = 0;
        for (int j = 0; j < length; j++)
            sum += exp((double)values[start + j] - max);
        var probabilities = new double[length];
        for (int j = 0; j < length; j++)
            probabilities[j] = ScalarReference.Add((float)(exp((double)values[start + j] - max) / sum), 1e-8f);
        return probabilities;
    }

    public static float[] AxpbyRows(float[] values, float[] valueWeights, float[] baseline, float[] baseWeights)
    {
        var output = new float[values.Length];
        int rowLength = valueWeights.Length == 0 ? 0 : values.Length / valueWeights.Length;
        for (int r = 0; r < valueWeights.Length; r++)
        {
            for (int j = 0; j < rowLength; j++)
            {
                int i = r * rowLength + j;
                output[i] = ScalarReference.Add(ScalarReference.Mul(valueWeights[r], values[i]), ScalarReference.Mul(baseWeights[r], baseline[i]));
            }
        }
        return output;
    }
}

/// <summary>Inputs shared by the CPU and CUDA interpolation tests.</summary>
internal static class InterpolationInputs
{
    /// <summary>Scales LiNeS uses (below 1), the identity, an extrapolation, and the edge values.</summary>
    public static readonly float[] Scales = [0.37f, 1f, 2.5f, 0f, -0f, float.NaN, float.PositiveInfinity];

    /// <summary>Logit rows: ordinary values, a shifted copy (same softmax), and rows with NaN/±∞ (the kinds' specials).</summary>
    public static void ForEachScoreRows(int seed, Action<string, float[], float[], int> check)
    {
        var random = new System.Random(seed);
        foreach ((int rows, int rowLength) in new[] { (1, 1), (3, 7), (5, 13), (2, 4099), (40, 1024) })
        {
            foreach (string kind in new[] { "plain", "ties", "plain+specials", "ties+specials" })
            {
                int n = rows * rowLength;
                float[] stacked = MethodKernelInputs.Stacked(random, kind, 2, n);
                check($"seed {seed}, rows {rows}, row length {rowLength}, {kind}", stacked[..n], stacked[n..], rowLength);
            }
        }
    }

    /// <summary>
    /// Rows like a model's and its fine-tune's (bf16 weights of spread 0.02, changes of ±0.001): the softmax arguments
    /// stay within ln 2 / 2 and the probability ratios near 1, the inputs of the exp and log fast paths; one row in five
    /// unchanged (ratios exactly 1: log's tiny branch), one in five with an outlier weight (exp's reduced branch).
    /// </summary>
    public static (float[] Model, float[] Baseline) WeightRows(System.Random random, int rows, int rowLength)
    {
        var model = new float[rows * rowLength];
        var baseline = new float[rows * rowLength];
        for (int row = 0; row < rows; row++)
        {
            for (int j = 0; j < rowLength; j++)
            {
                int i = row * rowLength + j;
                double normal = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
                baseline[i] = Bf16(0.02 * normal);
                model[i] = row % 5 == 1 ? baseline[i] : Bf16(baseline[i] + (random.NextDouble() - 0.5) * 0.002);
            }
            if (row % 5 == 3)
                model[row * rowLength + random.Next(rowLength)] = 3f;
        }
        return (model, baseline);
    }

    private static float Bf16(double value) => BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits((float)value) & unchecked((int)0xFFFF0000));

    /// <summary>Gate thresholds: ordinary, zero (every +0/−0 score passes), the edges.</summary>
    public static readonly float[] Thresholds = [0.001f, 0f, float.NegativeInfinity, float.PositiveInfinity, float.NaN];

    /// <summary>(rows, row length) pairs: single elements, scalar tails, rows across a 64K chunk boundary.</summary>
    public static readonly (int Rows, int RowLength)[] Shapes = [(0, 5), (1, 1), (3, 7), (5, 13), (1, 200003), (3, 65537)];

    /// <summary>Per-row weights with ±0, NaN and ±∞ among ordinary ratios.</summary>
    public static float[] Weights(System.Random random, int rows)
    {
        float[] specials = [0f, -0f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, 1f];
        var weights = new float[rows];
        for (int r = 0; r < rows; r++)
            weights[r] = random.Next(4) == 0 ? specials[random.Next(specials.Length)] : (float)(random.NextDouble() * 3 - 1);
        return weights;
    }

    /// <summary>Calls <paramref name="check"/>(context, values, baseline, valueWeights, baseWeights) for every shape and kind.</summary>
    public static void ForEachRowMix(int seed, Action<string, float[], float[], float[], float[]> check)
    {
        var random = new System.Random(seed);
        foreach ((int rows, int rowLength) in Shapes)
        {
            foreach (string kind in new[] { "plain", "ties", "plain+specials", "ties+specials" })
            {
                int n = rows * rowLength;
                float[] stacked = MethodKernelInputs.Stacked(random, kind, 2, n);
                check($"seed {seed}, rows {rows}, row length {rowLength}, {kind}", stacked[..n], stacked[n..],
                    Weights(random, rows), Weights(random, rows));
            }
        }
    }
}
