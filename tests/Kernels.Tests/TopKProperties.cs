using FsCheck;
using FsCheck.Xunit;
using Weld.Kernels.Cpu;

namespace Weld.Kernels.Tests;

public class TopKProperties
{
    private static readonly CpuKernels Kernels = new(2);

    [Property(MaxTest = 300)]
    public bool KeepTopK_keeps_exactly_k_and_matches_the_stable_sort(float[] values, NonNegativeInt k)
    {
        long wanted = k.Get % (values.Length + 2);
        float[] actual = (float[])values.Clone();
        TopKSelection selection = Kernels.KeepTopK(actual, wanted);
        (float[] expected, TopKSelection expectedSelection) = ScalarReference.TopK(values, ScalarReference.DescendingOrder(values), wanted);
        bool sameBits = true;
        for (int i = 0; i < values.Length; i++)
            sameBits &= BitAssert.Bits(expected[i]) == BitAssert.Bits(actual[i]);
        return sameBits
            && selection.Kept == Math.Min(wanted, values.Length)
            && selection.KeptAboveThreshold == expectedSelection.KeptAboveThreshold;
    }

    [Property(MaxTest = 300)]
    public bool KeepMagnitudeBand_matches_the_stable_sort(float[] values, NonNegativeInt bottom, NonNegativeInt top)
    {
        long dropBottom = bottom.Get % (values.Length + 2);
        long dropTop = top.Get % (values.Length + 2);
        float[] actual = (float[])values.Clone();
        Kernels.KeepMagnitudeBand(actual, dropBottom, dropTop);
        float[] expected = ScalarReference.Band(values, ScalarReference.AscendingOrder(values), dropBottom, dropTop);
        for (int i = 0; i < values.Length; i++)
        {
            if (BitAssert.Bits(expected[i]) != BitAssert.Bits(actual[i]))
                return false;
        }

        return true;
    }
}
