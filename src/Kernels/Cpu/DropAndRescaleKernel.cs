using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Weld.Kernels.Random;

namespace Weld.Kernels.Cpu;

/// <summary>
/// DARE's Bernoulli drop over one chunk: element i is kept iff Philox4x32.ToUniform(word i of the stream) &lt;
/// density; kept elements are divided by density (one IEEE division) when rescaling, dropped ones become +0.
/// </summary>
/// <remarks>
/// The vector paths decide with one integer comparison, <c>word &lt; KeepBelow(density)</c>, which keeps exactly the
/// words the float rule keeps (see <see cref="KeepBelow"/>); the scalar path keeps the float rule itself.
/// </remarks>
internal static unsafe class DropAndRescaleKernel
{
    /// <summary>Processes elements [start, start + count) of the tensor; <paramref name="values"/> points at element start.</summary>
    public static void Apply(float* values, long start, int count, float density, bool rescale, PhiloxKey key) =>
        Apply(values, start, count, density, rescale, key, PhiloxVectorBlocks.Widest);

    /// <summary>One chunk on the paths of <paramref name="width"/> and narrower (for tests: the bits of every width are the same).</summary>
    internal static void Apply(Span<float> values, long start, float density, bool rescale, PhiloxKey key, PhiloxWidth width)
    {
        fixed (float* data = values)
            Apply(data, start, values.Length, density, rescale, key, width);
    }

    /// <summary>
    /// <see cref="Apply(float*, long, int, float, bool, PhiloxKey)"/> on the paths of <paramref name="width"/> and
    /// narrower (tests run each width; the bits are the same). <paramref name="density"/> is in [0, 1).
    /// </summary>
    internal static void Apply(float* values, long start, int count, float density, bool rescale, PhiloxKey key, PhiloxWidth width)
    {
        long element = start;
        long end = start + count;

        // Chunks start on a block boundary; a general start finishes its first block lane by lane.
        for (; element < end && (element & 3) != 0; element++)
            values[element - start] = Keep(values[element - start], Philox4x32.ElementBits(key, element), density, rescale);

        if (width != PhiloxWidth.Scalar && density < 1f && element + 16 <= end)
        {
            ulong* roundKeys = stackalloc ulong[PhiloxVectorBlocks.RoundKeyEntries];
            PhiloxVectorBlocks.WriteRoundKeys(key, roundKeys);
            uint keepBelow = KeepBelow(density);
            if (width == PhiloxWidth.Avx512)
                for (; element + 64 <= end; element += 64)
                    ApplySixtyFour(values + (element - start), (ulong)element >> 2, key, roundKeys, keepBelow, density, rescale);
            if (width == PhiloxWidth.Avx512)
                for (; element + 32 <= end; element += 32)
                    ApplyThirtyTwo(values + (element - start), (ulong)element >> 2, key, roundKeys, keepBelow, density, rescale);
            for (; element + 16 <= end; element += 16)
                ApplySixteen(values + (element - start), (ulong)element >> 2, key, roundKeys, keepBelow, density, rescale);
        }

        for (; element + 4 <= end; element += 4)
        {
            Philox4x32Block block = Philox4x32.StreamBlock(key, (ulong)element >> 2);
            float* at = values + (element - start);
            at[0] = Keep(at[0], block.X0, density, rescale);
            at[1] = Keep(at[1], block.X1, density, rescale);
            at[2] = Keep(at[2], block.X2, density, rescale);
            at[3] = Keep(at[3], block.X3, density, rescale);
        }

        for (; element < end; element++)
            values[element - start] = Keep(values[element - start], Philox4x32.ElementBits(key, element), density, rescale);
    }

    /// <summary>
    /// <see cref="Apply(float*, long, int, float, bool, PhiloxKey)"/> with ‖·‖₁ of the chunk before and after it, the bits
    /// of <see cref="ReductionKernels.SumOfAbs"/> called before and after (both summed in registers as the drop reads and
    /// writes each group of 8: <see cref="ReductionKernels.AbsSum"/>).
    /// </summary>
    public static (double Before, double After) ApplyWithNorms(float* values, long start, int count, float density, bool rescale, PhiloxKey key) =>
        ApplyWithNorms(values, start, count, density, rescale, key, PhiloxVectorBlocks.Widest);

    /// <summary>One chunk with its norms on the paths of <paramref name="width"/> and narrower (for tests).</summary>
    internal static (double Before, double After) ApplyWithNorms(Span<float> values, long start, float density, bool rescale, PhiloxKey key, PhiloxWidth width)
    {
        fixed (float* data = values)
            return ApplyWithNorms(data, start, values.Length, density, rescale, key, width);
    }

    /// <summary>
    /// <see cref="ApplyWithNorms(float*, long, int, float, bool, PhiloxKey)"/> on the paths of <paramref name="width"/> and
    /// narrower. The sums ride along when the vector steps start at the chunk's first element (start on a Philox block
    /// boundary, a vector width, density &lt; 1); otherwise the three steps in turn.
    /// </summary>
    internal static (double Before, double After) ApplyWithNorms(float* values, long start, int count, float density, bool rescale, PhiloxKey key, PhiloxWidth width)
    {
        if (width == PhiloxWidth.Scalar || (start & 3) != 0 || density >= 1f)
        {
            double sumBefore = ReductionKernels.SumOfAbs(values, count);
            if (density < 1f)
                Apply(values, start, count, density, rescale, key, width);
            return (sumBefore, ReductionKernels.SumOfAbs(values, count));
        }

        var before = new ReductionKernels.AbsSum();
        var after = new ReductionKernels.AbsSum();
        long element = start;
        long end = start + count;
        if (element + 16 <= end)
        {
            ulong* roundKeys = stackalloc ulong[PhiloxVectorBlocks.RoundKeyEntries];
            PhiloxVectorBlocks.WriteRoundKeys(key, roundKeys);
            uint keepBelow = KeepBelow(density);
            if (width == PhiloxWidth.Avx512)
                for (; element + 64 <= end; element += 64)
                    ApplySixtyFour(values + (element - start), (ulong)element >> 2, key, roundKeys, keepBelow, density, rescale, ref before, ref after);
            if (width == PhiloxWidth.Avx512)
                for (; element + 32 <= end; element += 32)
                    ApplyThirtyTwo(values + (element - start), (ulong)element >> 2, key, roundKeys, keepBelow, density, rescale, ref before, ref after);
            for (; element + 16 <= end; element += 16)
                ApplySixteen(values + (element - start), (ulong)element >> 2, key, roundKeys, keepBelow, density, rescale, ref before, ref after);
        }

        // Fewer than 16 left: SumOfAbs's last group of 8 (if any) and its scalar tail, before and after the narrow steps.
        float* rest = values + (element - start);
        int left = (int)(end - element);
        int group = left >= 8 ? 8 : 0;
        if (group != 0) before.Add(Vector256.Load(rest));
        double normBefore = before.Finish(rest + group, left - group);
        Apply(rest, element, left, density, rescale, key, PhiloxWidth.Scalar);
        if (group != 0) after.Add(Vector256.Load(rest));
        return (normBefore, after.Finish(rest + group, left - group));
    }

    /// <summary>
    /// The words kept at <paramref name="density"/> in [0, 1): ToUniform(w) = (w &gt;&gt; 8)·2^-24 is exact, so
    /// ToUniform(w) &lt; density ⇔ (w &gt;&gt; 8) &lt; density·2^24 ⇔ (w &gt;&gt; 8) &lt; ⌈density·2^24⌉ = T ⇔ w &lt; T·256.
    /// density·2^24 is exact (a power-of-two scaling), and T ≤ 2^24 − 1 for density &lt; 1, so T·256 fits 32 bits.
    /// </summary>
    internal static uint KeepBelow(float density) => (uint)MathF.Ceiling(density * 16777216f) << 8;

    /// <summary>Elements 4·firstBlock .. 4·firstBlock + 63 (AVX-512): sixteen Philox blocks in two overlapping groups.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ApplySixtyFour(float* values, ulong firstBlock, PhiloxKey key, ulong* roundKeys, uint keepBelow, float density, bool rescale)
    {
        PhiloxVectorBlocks.Sixteen(firstBlock, key, roundKeys, out Vector512<uint> words0, out Vector512<uint> words1,
            out Vector512<uint> words2, out Vector512<uint> words3);
        Vector512<uint> below = Vector512.Create(keepBelow);
        KeepSixteen(values, words0, below, density, rescale);
        KeepSixteen(values + 16, words1, below, density, rescale);
        KeepSixteen(values + 32, words2, below, density, rescale);
        KeepSixteen(values + 48, words3, below, density, rescale);
    }

    /// <summary>16 elements kept (word &lt; <paramref name="below"/>, then divided when rescaling) or set to +0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void KeepSixteen(float* values, Vector512<uint> words, Vector512<uint> below, float density, bool rescale)
    {
        Vector512<float> x = Vector512.Load(values);
        if (rescale)
            x /= Vector512.Create(density);
        Vector512.ConditionalSelect(Vector512.LessThan(words, below).AsSingle(), x, Vector512<float>.Zero).Store(values);
    }

    /// <summary>Elements 4·firstBlock .. 4·firstBlock + 31 (AVX-512): eight Philox blocks, then 32 elements kept or dropped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ApplyThirtyTwo(float* values, ulong firstBlock, PhiloxKey key, ulong* roundKeys, uint keepBelow, float density, bool rescale)
    {
        PhiloxVectorBlocks.Eight(firstBlock, key, roundKeys, out Vector512<uint> first, out Vector512<uint> second);
        Vector512<uint> below = Vector512.Create(keepBelow);
        KeepSixteen(values, first, below, density, rescale);
        KeepSixteen(values + 16, second, below, density, rescale);
    }

    /// <summary>Elements 4·firstBlock .. 4·firstBlock + 15 (AVX2): four Philox blocks, then 16 elements kept or dropped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ApplySixteen(float* values, ulong firstBlock, PhiloxKey key, ulong* roundKeys, uint keepBelow, float density, bool rescale)
    {
        PhiloxVectorBlocks.Four(firstBlock, key, roundKeys, out Vector256<uint> first, out Vector256<uint> second);
        // AVX2 compares signed only: w < T·256 ⇔ (w >> 8) < T, both below 2^24.
        Vector256<int> below = Vector256.Create((int)(keepBelow >> 8));
        Vector256<float> low = Vector256.Load(values), high = Vector256.Load(values + 8);
        if (rescale)
        {
            low /= Vector256.Create(density);
            high /= Vector256.Create(density);
        }
        Vector256.ConditionalSelect(Vector256.LessThan((first >>> 8).AsInt32(), below).AsSingle(), low, Vector256<float>.Zero).Store(values);
        Vector256.ConditionalSelect(Vector256.LessThan((second >>> 8).AsInt32(), below).AsSingle(), high, Vector256<float>.Zero).Store(values + 8);
    }

    // The same steps summing |x| before and after into SumOfAbs's accumulators, group of 8 by group in index order.

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ApplySixtyFour(float* values, ulong firstBlock, PhiloxKey key, ulong* roundKeys, uint keepBelow, float density, bool rescale,
        ref ReductionKernels.AbsSum before, ref ReductionKernels.AbsSum after)
    {
        PhiloxVectorBlocks.Sixteen(firstBlock, key, roundKeys, out Vector512<uint> words0, out Vector512<uint> words1,
            out Vector512<uint> words2, out Vector512<uint> words3);
        Vector512<uint> below = Vector512.Create(keepBelow);
        KeepSixteen(values, words0, below, density, rescale, ref before, ref after);
        KeepSixteen(values + 16, words1, below, density, rescale, ref before, ref after);
        KeepSixteen(values + 32, words2, below, density, rescale, ref before, ref after);
        KeepSixteen(values + 48, words3, below, density, rescale, ref before, ref after);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ApplyThirtyTwo(float* values, ulong firstBlock, PhiloxKey key, ulong* roundKeys, uint keepBelow, float density, bool rescale,
        ref ReductionKernels.AbsSum before, ref ReductionKernels.AbsSum after)
    {
        PhiloxVectorBlocks.Eight(firstBlock, key, roundKeys, out Vector512<uint> first, out Vector512<uint> second);
        Vector512<uint> below = Vector512.Create(keepBelow);
        KeepSixteen(values, first, below, density, rescale, ref before, ref after);
        KeepSixteen(values + 16, second, below, density, rescale, ref before, ref after);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void KeepSixteen(float* values, Vector512<uint> words, Vector512<uint> below, float density, bool rescale,
        ref ReductionKernels.AbsSum before, ref ReductionKernels.AbsSum after)
    {
        Vector512<float> x = Vector512.Load(values);
        before.Add(x.GetLower());
        before.Add(x.GetUpper());
        if (rescale)
            x /= Vector512.Create(density);
        Vector512<float> kept = Vector512.ConditionalSelect(Vector512.LessThan(words, below).AsSingle(), x, Vector512<float>.Zero);
        kept.Store(values);
        after.Add(kept.GetLower());
        after.Add(kept.GetUpper());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ApplySixteen(float* values, ulong firstBlock, PhiloxKey key, ulong* roundKeys, uint keepBelow, float density, bool rescale,
        ref ReductionKernels.AbsSum before, ref ReductionKernels.AbsSum after)
    {
        PhiloxVectorBlocks.Four(firstBlock, key, roundKeys, out Vector256<uint> first, out Vector256<uint> second);
        Vector256<int> below = Vector256.Create((int)(keepBelow >> 8));
        Vector256<float> low = Vector256.Load(values), high = Vector256.Load(values + 8);
        before.Add(low);
        before.Add(high);
        if (rescale)
        {
            low /= Vector256.Create(density);
            high /= Vector256.Create(density);
        }
        low = Vector256.ConditionalSelect(Vector256.LessThan((first >>> 8).AsInt32(), below).AsSingle(), low, Vector256<float>.Zero);
        high = Vector256.ConditionalSelect(Vector256.LessThan((second >>> 8).AsInt32(), below).AsSingle(), high, Vector256<float>.Zero);
        low.Store(values);
        high.Store(values + 8);
        after.Add(low);
        after.Add(high);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Keep(float value, uint bits, float density, bool rescale) =>
        Philox4x32.ToUniform(bits) < density ? (rescale ? value / density : value) : 0f;
}
