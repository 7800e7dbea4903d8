using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

/// <summary>
/// <see cref="SelectionBits"/>: the bits of a selector (set where it is not ±0, NaN included) with 512-bit and 256-bit
/// compares and the CPU's parallel chunks (the interface default, which the GPU backend takes, is checked in
/// <c>Gpu.MethodKernelsTests</c>), and the selector read back (1 / +0).
/// </summary>
public sealed class SelectionBitsTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(-1)]
    public void Bits_are_set_exactly_where_the_selector_is_not_zero_and_read_back(int threads)
    {
        var cpu = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int n in new[] { 0, 1, 63, 64, 65, 127, 1000, 65536 + 70, 3 * 65536 })
        {
            foreach (string kind in new[] { "plain", "ties+specials", "mostly zero" })
            {
                float[] selector = kind switch
                {
                    "plain" => TestData.Plain(random, n),
                    "ties+specials" => TestData.WithSpecials(random, TestData.TieHeavy(random, n)),
                    _ => Enumerable.Range(0, n).Select(i => random.Next(10) switch { 0 => float.NaN, 1 => 2.5f, 2 => -0f, _ => 0f }).ToArray(),
                };
                string context = $"seed {seed}, n {n}, {kind}";
                var expected = new ulong[SelectionBits.WordCount(n)];
                for (int i = 0; i < n; i++)
                    if (selector[i] != 0f) expected[i / 64] |= 1UL << (i % 64);

                foreach (bool wide in new[] { true, false })
                {
                    var bits = new ulong[expected.Length];
                    Array.Fill(bits, ulong.MaxValue); // every word is written, the unused high bits as 0
                    SelectionBits.Pack(selector, bits, wide);
                    Assert.True(expected.AsSpan().SequenceEqual(bits), $"{context}, {(wide ? 512 : 256)}-bit pack");

                    var back = new float[n];
                    Array.Fill(back, float.NaN);
                    SelectionBits.Unpack(expected, back, wide);
                    for (int i = 0; i < n; i++)
                        Assert.True(BitConverter.SingleToInt32Bits(back[i]) == BitConverter.SingleToInt32Bits(selector[i] != 0f ? 1f : 0f),
                            $"{context}, {(wide ? 512 : 256)}-bit unpack, element {i}: {back[i]}");
                }

                var parallel = new ulong[expected.Length];
                cpu.PackSelection(selector, parallel);
                Assert.True(expected.AsSpan().SequenceEqual(parallel), $"{context}, CPU kernels");

                var fromCpu = new float[n];
                cpu.UnpackSelection(expected, fromCpu);
                for (int i = 0; i < n; i++)
                {
                    float want = selector[i] != 0f ? 1f : 0f;
                    Assert.True(BitConverter.SingleToInt32Bits(fromCpu[i]) == BitConverter.SingleToInt32Bits(want), $"{context}, CPU unpack, element {i}");
                }
            }
        }
    }

    [Fact]
    public void A_word_count_that_does_not_fit_the_selector_is_rejected()
    {
        Assert.Throws<ArgumentException>(() => SelectionBits.Pack(new float[65], new ulong[1]));
        Assert.Throws<ArgumentException>(() => SelectionBits.Unpack(new ulong[1], new float[65]));
        Assert.Throws<ArgumentException>(() => new CpuKernels(1).PackSelection(new float[64], new ulong[2]));
    }
}
