using Weld.Kernels.Cpu;
using Weld.Kernels.Gpu;
using Xunit;
using System.Runtime.Intrinsics;

namespace Weld.Kernels.Tests;

/// <summary>
/// <see cref="Float64MathVector"/> (the CPU softmax kernel's four-lane exp and log) against the scalar fdlibm functions
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
            var x = Vector256.Create(lanes);
            Vector256<double> exp = Float64MathVector.Exp(x), log = Float64MathVector.Log(x);
            for (int lane = 0; lane < 4; lane++)
            {
                Same(Float64Math.ExpFdlibm(lanes[lane]), exp[lane], $"seed {seed}: exp({lanes[lane]:R})");
                Same(Float64Math.LogFdlibm(lanes[lane]), log[lane], $"seed {seed}: log({lanes[lane]:R})");
            }
        }
    }

    private static void Same(double expected, double actual, string context) =>
        Assert.True(BitConverter.DoubleToInt64Bits(expected) == BitConverter.DoubleToInt64Bits(actual) || (double.IsNaN(expected) && double.IsNaN(actual)),
            $"{context} is {actual:R}, expected {expected:R}");
}
