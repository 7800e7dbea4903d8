using Weld.Engine.Methods;
using Xunit;

namespace Weld.Engine.Tests.Methods;

/// <summary>
/// <see cref="OrderStatistic.Select"/> (Arcee Fusion's quantiles) against <c>Array.Sort</c>: every
/// position of samples with many ties, NaNs, both zeros and ±∞, sorted and reversed runs (bad pivots for a naive
/// quickselect) and sizes around the insertion-sort cutoff; the value equals the sorted one (a zero in either sign), the
/// part before it is no larger and the part after no smaller; and quantiles taken one after the other, as Arcee Fusion does.
/// </summary>
public sealed class OrderStatisticTests
{
    public static TheoryData<int> Sizes => new() { 1, 2, 3, 15, 16, 17, 33, 100, 1000 };

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Select_gives_the_sorted_value_at_every_position(int size)
    {
        foreach (string kind in new[] { "random", "ties", "specials", "ascending", "descending", "equal" })
        {
            float[] values = Sample(new Random(size * 31 + kind.Length), kind, size);
            float[] sorted = (float[])values.Clone();
            Array.Sort(sorted);
            for (int k = 0; k < size; k++)
            {
                float[] work = (float[])values.Clone();
                float selected = OrderStatistic.Select(work, k);
                string where = $"{kind}, size {size}, k {k}";
                Assert.True(SameValue(sorted[k], selected), $"{where}: {selected:R}, sorted {sorted[k]:R}");
                Assert.True(SameValue(selected, work[k]), where);
                for (int i = 0; i < k; i++)
                    Assert.True(!(Rank(work[i]) > Rank(selected)), $"{where}: position {i} above");
                for (int i = k + 1; i < size; i++)
                    Assert.True(!(Rank(work[i]) < Rank(selected)), $"{where}: position {i} below");
                float[] check = (float[])work.Clone();
                Array.Sort(check);
                Assert.Equal(sorted.Select(Bits0), check.Select(Bits0)); // a permutation: nothing lost or duplicated
            }
        }
    }

    [Fact]
    public void Quantiles_selected_one_after_the_other_equal_the_sorted_ones()
    {
        var random = new Random(7);
        foreach (string kind in new[] { "random", "ties", "specials" })
        {
            float[] values = Sample(random, kind, 100_003);
            float[] sorted = (float[])values.Clone();
            Array.Sort(sorted);
            int[] positions = [25_000, 50_001, 75_002];
            Span<float> rest = values;
            int offset = 0;
            foreach (int k in positions)
            {
                float selected = OrderStatistic.Select(rest, k - offset);
                Assert.True(SameValue(sorted[k], selected), $"{kind}, k {k}: {selected:R}, sorted {sorted[k]:R}");
                rest = values.AsSpan(k + 1);
                offset = k + 1;
            }
        }
    }

    [Fact]
    public void A_position_outside_the_values_is_refused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => OrderStatistic.Select(new float[3], 3));

    private static float[] Sample(Random random, string kind, int size)
    {
        var values = new float[size];
        for (int i = 0; i < size; i++)
        {
            values[i] = kind switch
            {
                "ties" => random.Next(5) * 0.5f,
                "specials" => random.Next(8) switch
                {
                    0 => float.NaN,
                    1 => -0f,
                    2 => 0f,
                    3 => float.PositiveInfinity,
                    4 => float.NegativeInfinity,
                    _ => (float)(random.NextDouble() - 0.5),
                },
                "ascending" => i,
                "descending" => size - i,
                "equal" => 1f,
                _ => (float)(random.NextDouble() - 0.5),
            };
        }
        return values;
    }

    /// <summary>Array.Sort's order as a double: NaN below everything (−∞ included), −0 equal to +0.</summary>
    private static double Rank(float value) =>
        float.IsNaN(value) ? double.NegativeInfinity : float.IsNegativeInfinity(value) ? double.MinValue : value == 0 ? 0 : value;

    private static bool SameValue(float expected, float actual) =>
        float.IsNaN(expected) ? float.IsNaN(actual) : expected == actual;

    private static uint Bits0(float value) => float.IsNaN(value) ? 0x7FC00000u : value == 0 ? 0u : BitConverter.SingleToUInt32Bits(value);
}
