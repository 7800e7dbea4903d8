using Weld.Kernels.Cpu;
using Weld.Kernels.Gpu;
using Xunit;
using System.Runtime.Intrinsics;

namespace Weld.Kernels.Tests;

/// <summary>
/// <see cref="Float64MathVector"/> (the CPU softmax kernel's four- and eight-lane exp and log) against the scalar fdlibm functions
/// it mirrors (<see cref="Float64Math"/>): the same bits on every lane, over the arguments Arcee Fusion meets (softmax
/// arguments, probability ratios, ratios near 1), every branch of both functions, the range edges and the special values,
/// and vectors mixing special and ordinary lanes.
/// </summary>
public sealed class Float64MathVectorTests
{
    [Fact]
    public void Exp_and_log_equal_the_scalar_fdlibm_functions_lane_by_lane()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var arguments = new List<double> { 0.0, -0.0, 1.0, -1.0, 0.5, 0.34657359, 0.3465736, 1.0397207708, -1.0397208, 3e-9, -3e-9, 3.7252902984e-09,
            709.78, 709.782712893384, 709.8, -745.1, -745.2, -708.5, -707.0, -730.0, 1e-300, double.Epsilon, 2.2250738585072014E-308,
            double.MaxValue, double.MinValue, double.PositiveInfinity, double.NegativeInfinity, double.NaN, 1 + 1e-7, 1 - 1e-7, Math.Sqrt(2), 0.70710678 };
        for (int i = 0; i < 20000; i++)
        {
            arguments.Add(-random.NextDouble() * 60); // softmax: x − max ≤ 0
            arguments.Add(-random.NextDouble() * 0.4); // softmax of small weights: below 0.5·ln 2, the k = 0 branch
            arguments.Add((random.NextDouble() - 0.5) * 1460);
            arguments.Add(Math.Exp((random.NextDouble() - 0.5) * 40)); // ratios of probabilities
            arguments.Add(1 + (random.NextDouble() - 0.5) * 1e-5); // near 1
            arguments.Add(1 + (random.NextDouble() - 0.5) * 1e-12); // |f| < 2^-20
            arguments.Add(BitConverter.Int64BitsToDouble(random.NextInt64(1, 0x7FF0000000000000))); // any positive double
        }
        var lanes = new double[4];
        for (int i = 0; i < arguments.Count; i++)
        {
            // Mostly neighbours, sometimes a random partner: special lanes share vectors with ordinary ones.
            for (int lane = 0; lane < 4; lane++)
                lanes[lane] = arguments[lane == 3 ? random.Next(arguments.Count) : (i + lane) % arguments.Count];
            CheckBothWidths(lanes, $"seed {seed}");
        }
    }

    [Fact]
    public void Whole_vectors_of_one_kind_take_the_fast_paths_with_the_scalar_bits()
    {
        // Every lane from one kind of argument, so a vector whose lanes all take exp's k = 0 branch, or log's k = 0
        // branch outside the bands and away from 1, computes that branch alone; neighbouring kinds check the edges.
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        Func<double>[] kinds =
        [
            () => -random.NextDouble() * 0.3465735902799726, // softmax of small weights: |x| ≤ ln 2 / 2
            () => (random.NextDouble() - 0.5) * 0.6931471805599453, // either sign, same range
            () => (random.NextDouble() - 0.5) * 1e-8, // below 2^-28 on some lanes: 1 + x
            () => -0.34657359027997 - random.NextDouble() * 1e-3, // just past ln 2 / 2: k = −1
            () => 1 + (random.NextDouble() - 0.5) * 1e-3, // ratios of similar probabilities
            () => 0.72 + random.NextDouble() * 0.68, // k = 0 for log, into the bands near √2/2 and √2
            () => 0.69 + random.NextDouble() * 0.04, // around √2/2: k flips between 0 and −1
            () => 1 + (random.NextDouble() - 0.5) * 4e-6, // |f| < 2^-20 on some lanes
            () => random.Next(3) == 0 ? 1.0 : 1 + (random.NextDouble() - 0.5) * 1e-4, // exactly 1 among near-1 ratios
        ];
        var lanes = new double[8];
        foreach (Func<double> kind in kinds)
        {
            for (int i = 0; i < 5000; i++)
            {
                for (int lane = 0; lane < lanes.Length; lane++)
                    lanes[lane] = kind();
                CheckBothWidths(lanes, $"seed {seed}");
            }
        }
    }

    /// <summary>The four-lane functions on lanes[0..4] and the eight-lane ones on lanes[0..8] (filled from lanes[0..4] if shorter).</summary>
    private static void CheckBothWidths(double[] lanes, string context)
    {
        var x = Vector256.Create(lanes.AsSpan(0, 4));
        Vector256<double> exp = Float64MathVector.Exp(x), log = Float64MathVector.Log(x);
        for (int lane = 0; lane < 4; lane++)
        {
            Same(Float64Math.ExpFdlibm(lanes[lane]), exp[lane], $"{context}: exp({lanes[lane]:R}), Vector256");
            Same(Float64Math.LogFdlibm(lanes[lane]), log[lane], $"{context}: log({lanes[lane]:R}), Vector256");
        }
        double[] wideLanes = lanes.Length >= 8 ? lanes : [.. lanes[..4], .. lanes[..4]];
        var wide = Vector512.Create(wideLanes.AsSpan(0, 8));
        Vector512<double> wideExp = Float64MathVector.Exp(wide), wideLog = Float64MathVector.Log(wide);
        for (int lane = 0; lane < 8; lane++)
        {
            Same(Float64Math.ExpFdlibm(wideLanes[lane]), wideExp[lane], $"{context}: exp({wideLanes[lane]:R}), Vector512");
            Same(Float64Math.LogFdlibm(wideLanes[lane]), wideLog[lane], $"{context}: log({wideLanes[lane]:R}), Vector512");
        }
    }

    private static void Same(double expected, double actual, string context) =>
        Assert.True(BitConverter.DoubleToInt64Bits(expected) == BitConverter.DoubleToInt64Bits(actual) || (double.IsNaN(expected) && double.IsNaN(actual)),
            $"{context} is {actual:R}, expected {expected:R}");
}
