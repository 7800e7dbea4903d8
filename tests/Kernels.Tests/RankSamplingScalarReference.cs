namespace Weld.Kernels.Tests;

/// <summary>
/// A plain scalar reference for <see cref="IMergeKernels.SampleByMagnitudeRank"/>, written from its contract: the rank
/// of an element is counted (no sort), float32 operations are float64 rounded once (see <see cref="ScalarReference"/>).
/// </summary>
internal static class RankSamplingScalarReference
{
    /// <summary>Each element's position in its fiber's (magnitude key, position) order, counted.</summary>
    public static int[] SortedPositions(float[] values, int length, int stride)
    {
        var positions = new int[values.Length];
        int fibers = values.Length == 0 ? 0 : values.Length / length;
        for (int fiber = 0; fiber < fibers; fiber++)
        {
            int first = fiber / stride * length * stride + fiber % stride;
            for (int r = 0; r < length; r++)
            {
                uint own = ScalarReference.Key(values[first + r * stride]);
                int position = 0;
                for (int q = 0; q < length; q++)
                {
                    uint other = ScalarReference.Key(values[first + q * stride]);
                    if (other < own || (other == own && q < r))
                        position++;
                }
                positions[first + r * stride] = position;
            }
        }
        return positions;
    }

    public static float[] Sample(float[] values, int[] positions, int length, float low, float epsilon, float single, bool divide,
        PhiloxKey key)
    {
        var output = new float[values.Length];
        for (int index = 0; index < values.Length; index++)
        {
            float p = length == 1
                ? single
                : ScalarReference.Add(low, ScalarReference.Mul(ScalarReference.Mul(ScalarReference.Div(positions[index], length - 1), 2f), epsilon));
            double uniform = (ScalarReference.StreamWord(key, index) >> 8) / 16777216.0;
            output[index] = uniform < p ? (divide ? ScalarReference.Div(values[index], p) : values[index]) : 0f;
        }
        return output;
    }
}

/// <summary>Fiber layouts shared by the CPU and CUDA rank-sampling tests.</summary>
internal static class RankSamplingInputs
{
    /// <summary>(fibers before, fiber length, stride): empty, single elements, 1-D, strided 3-D, many rows.</summary>
    public static readonly (int Outer, int Length, int Stride)[] Layouts =
        [(0, 4, 1), (1, 1, 1), (5, 1, 3), (1, 7, 1), (3, 5, 4), (2, 33, 3), (40, 1100, 1)];

    /// <summary>Fibers of the GPU's shared-memory tile size and past it (ranked by counting there).</summary>
    public static readonly (int Outer, int Length, int Stride)[] LongLayouts = [(1, 4096, 1), (2, 4097, 2), (1, 9000, 1)];

    /// <summary>(low, ε, single, divide) settings: della's usual spread, a wide one, and rescaling off and on.</summary>
    public static readonly (float Low, float Epsilon, float Single, bool Divide)[] Settings =
        [(0.4f, 0.1f, 0.5f, true), (0.05f, 0.85f, 0.9f, false), (0.3f, 0.2f, 0.5f, false)];

    /// <summary>Calls <paramref name="check"/>(context, values, length, stride) for every layout and kind of data.</summary>
    public static void ForEach(int seed, (int Outer, int Length, int Stride)[] layouts, Action<string, float[], int, int> check)
    {
        var random = new System.Random(seed);
        foreach ((int outer, int length, int stride) in layouts)
        {
            foreach ((string kind, float[] values) in TestData.Kinds(random, outer * length * stride))
                check($"seed {seed}, [{outer}, {length}, {stride}], {kind}", values, length, stride);
        }
    }
}
