using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

/// <summary>
/// The chunk kernels of streamed Breadcrumbs and DELLA: applied to a tensor cut into chunks, in index order, they give
/// the whole-tensor references bit for bit.
/// </summary>
public class StreamedChunkKernelsTests
{
    public static TheoryData<int> Sizes => new(TestData.Sizes);

    private static List<(int Start, int Length)> RandomChunks(System.Random random, int length)
    {
        var chunks = new List<(int, int)>();
        for (int start = 0; start < length;)
        {
            int size = Math.Min(length - start, 1 + random.Next(Math.Max(1, length / 3)));
            chunks.Add((start, size));
            start += size;
        }
        return chunks;
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Band_chunks_with_carried_tie_budgets_match_the_stable_sort_reference(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var kernels = new CpuKernels();
        foreach ((string kind, float[] values) in TestData.Kinds(random, length))
        {
            int[] ascending = ScalarReference.AscendingOrder(values);
            (long Bottom, long Top)[] cuts =
            [
                (0, 0), (1, 0), (0, 1), (length / 3, length / 10), (length - 1, 0), (0, length - 1),
                (length / 2, length / 2 - 1), (random.Next(length / 2 + 1), random.Next(length / 2)),
            ];
            foreach ((long bottom, long top) in cuts)
            {
                if (bottom < 0 || top < 0 || bottom + top >= length)
                    continue; // the caller clears such a band without cuts
                string context = $"seed {seed}, {kind}, n {length}, dropBottom {bottom}, dropTop {top}";
                float[] expected = ScalarReference.Band(values, ascending, bottom, top);

                // The cuts from the contract: the key at the first kept and at the first dropped rank, ties by rank.
                int lowerKey = 0, upperKey = int.MaxValue;
                long lowerTies = 0, upperTies = long.MaxValue;
                if (bottom > 0)
                {
                    lowerKey = (int)ScalarReference.Key(values[ascending[bottom]]);
                    lowerTies = bottom - values.Count(v => ScalarReference.Key(v) < (uint)lowerKey);
                }
                if (top > 0)
                {
                    upperKey = (int)ScalarReference.Key(values[ascending[length - top]]);
                    upperTies = length - top - values.Count(v => ScalarReference.Key(v) < (uint)upperKey);
                }

                float[] actual = (float[])values.Clone();
                foreach (var (start, size) in RandomChunks(random, length))
                {
                    var (dropped, kept) = kernels.KeepMagnitudeBandChunk(actual.AsSpan(start, size), lowerKey, lowerTies, upperKey, upperTies);
                    Assert.InRange(dropped, 0, lowerTies);
                    Assert.InRange(kept, 0, upperTies);
                    lowerTies -= dropped;
                    upperTies -= kept;
                }
                BitAssert.Identical(expected, actual, context);
            }
        }
    }

    [Fact]
    public void Rank_sampling_of_whole_slices_at_an_offset_draws_as_the_whole_tensor()
    {
        int seed = TestData.NewSeed();
        var kernels = new CpuKernels();
        var key = new PhiloxKey(99, 1234, 3);
        RankSamplingInputs.ForEach(seed, RankSamplingInputs.Layouts, (context, values, length, stride) =>
        {
            int slice = length * stride;
            if (values.Length == 0) return;
            float[] whole = (float[])values.Clone();
            kernels.SampleByMagnitudeRank(whole, length, stride, 0.3f, 0.2f, 0.5f, true, key);
            // Slice by slice (and a run of two slices), each at its tensor index.
            float[] pieces = (float[])values.Clone();
            for (int start = 0; start < values.Length;)
            {
                int size = Math.Min(values.Length - start, (start / slice % 2 + 1) * slice);
                kernels.SampleByMagnitudeRank(pieces.AsSpan(start, size), length, stride, 0.3f, 0.2f, 0.5f, true, key, start);
                start += size;
            }
            BitAssert.Identical(whole, pieces, context);
        });
    }
}
