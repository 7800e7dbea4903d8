using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Weld.Kernels.Random;

namespace Weld.Kernels.Cpu;

/// <summary>
/// DARE's drop done while a bf16 task vector is decoded: δ = bf16(θ) − θ_base, then kept (÷ density when rescaling) or
/// set to +0 by the Philox word of its tensor index, optionally with ‖δ‖₁ and ‖drop(δ)‖₁ of every
/// <see cref="NormChunk"/> chunk: the bits of <see cref="FloatConversions.Bf16ToSingleMinus"/>, then
/// <see cref="DropAndRescaleKernel.ApplyWithNorms(float*, long, int, float, bool, PhiloxKey)"/> per chunk, in one trip
/// (the decoded values are dropped in registers, so the task vector is written once and never read back for the drop).
/// </summary>
/// <remarks>
/// The norms sum |x| in <see cref="ReductionKernels.SumOfAbs"/>'s order: groups of 8 from the chunk's start into two
/// float64 lanes-of-4 accumulators (elements 0–3 of a group into the lower, 4–7 into the upper). The AVX-512 path keeps
/// both as one <c>Vector512&lt;double&gt;</c> (lower in lanes 0–3, upper in 4–7): widening 16 floats gives elements 0–7,
/// then 8–15, so adding the two widened halves in turn is the same two additions per lane in the same order. The
/// accumulators are locals (registers): summing through a <c>ref</c> struct costs a store-to-load round trip per add.
/// </remarks>
internal static unsafe class DecodeDropKernel
{
    /// <summary>Elements per norm partial: <see cref="ChunkedParallel.ChunkLength"/>, the chunks the L1 norms of a row are summed in.</summary>
    public const int NormChunk = ChunkedParallel.ChunkLength;

    /// <summary>
    /// Decodes <paramref name="count"/> elements, tensor elements <paramref name="firstIndex"/> onwards:
    /// destination[i] = drop(bf16(source[i]) − subtrahend[i]). With <paramref name="norms"/> (else null), chunk c of
    /// <see cref="NormChunk"/> elements from the span's start stores (‖δ‖₁, ‖drop(δ)‖₁) of the chunk at
    /// norms[2c], norms[2c + 1]. A <paramref name="density"/> of 1 or more decodes without dropping.
    /// </summary>
    public static void Bf16Minus(ushort* source, float* subtrahend, float* destination, int count, long firstIndex,
        float density, bool rescale, PhiloxKey key, double* norms, PhiloxWidth width)
    {
        for (int done = 0, chunk = 0; done < count; done += NormChunk, chunk++)
        {
            int size = Math.Min(NormChunk, count - done);
            if (norms is null)
            {
                Chunk(source + done, subtrahend + done, destination + done, size, firstIndex + done, density, rescale, key, width);
                continue;
            }
            (norms[2 * chunk], norms[2 * chunk + 1]) = ChunkWithNorms(source + done, subtrahend + done, destination + done, size,
                firstIndex + done, density, rescale, key, width);
        }
    }

    /// <summary>
    /// <see cref="Bf16Minus(ushort*, float*, float*, int, long, float, bool, PhiloxKey, double*, PhiloxWidth)"/> on spans
    /// (for tests: every width gives the same bits); an empty <paramref name="norms"/> sums none.
    /// </summary>
    internal static void Bf16Minus(ReadOnlySpan<ushort> source, ReadOnlySpan<float> subtrahend, Span<float> destination, long firstIndex,
        float density, bool rescale, PhiloxKey key, Span<double> norms, PhiloxWidth width)
    {
        fixed (ushort* from = source)
        fixed (float* minus = subtrahend, to = destination)
        fixed (double* partials = norms)
            Bf16Minus(from, minus, to, source.Length, firstIndex, density, rescale, key, norms.IsEmpty ? null : partials, width);
    }

    /// <summary>One chunk, no norms.</summary>
    private static void Chunk(ushort* source, float* subtrahend, float* destination, int count, long firstIndex,
        float density, bool rescale, PhiloxKey key, PhiloxWidth width)
    {
        int i = 0;
        if (width != PhiloxWidth.Scalar && density < 1f && (firstIndex & 3) == 0 && count >= 16)
        {
            ulong* roundKeys = stackalloc ulong[PhiloxVectorBlocks.RoundKeyEntries];
            PhiloxVectorBlocks.WriteRoundKeys(key, roundKeys);
            uint keepBelow = DropAndRescaleKernel.KeepBelow(density);
            if (width == PhiloxWidth.Avx512)
            {
                Vector512<uint> below = Vector512.Create(keepBelow);
                for (; i + 64 <= count; i += 64)
                {
                    PhiloxVectorBlocks.Sixteen((ulong)(firstIndex + i) >> 2, key, roundKeys, out Vector512<uint> words0,
                        out Vector512<uint> words1, out Vector512<uint> words2, out Vector512<uint> words3);
                    Decode32(source + i, subtrahend + i, out Vector512<float> x0, out Vector512<float> x1);
                    Decode32(source + i + 32, subtrahend + i + 32, out Vector512<float> x2, out Vector512<float> x3);
                    Keep(x0, words0, below, density, rescale).Store(destination + i);
                    Keep(x1, words1, below, density, rescale).Store(destination + i + 16);
                    Keep(x2, words2, below, density, rescale).Store(destination + i + 32);
                    Keep(x3, words3, below, density, rescale).Store(destination + i + 48);
                }
                for (; i + 32 <= count; i += 32)
                {
                    PhiloxVectorBlocks.Eight((ulong)(firstIndex + i) >> 2, key, roundKeys, out Vector512<uint> words0, out Vector512<uint> words1);
                    Decode32(source + i, subtrahend + i, out Vector512<float> x0, out Vector512<float> x1);
                    Keep(x0, words0, below, density, rescale).Store(destination + i);
                    Keep(x1, words1, below, density, rescale).Store(destination + i + 16);
                }
            }
            Vector256<int> below24 = Vector256.Create((int)(keepBelow >> 8));
            for (; i + 16 <= count; i += 16)
            {
                PhiloxVectorBlocks.Four((ulong)(firstIndex + i) >> 2, key, roundKeys, out Vector256<uint> words0, out Vector256<uint> words1);
                Decode16(source + i, subtrahend + i, out Vector256<float> low, out Vector256<float> high);
                Keep(low, words0, below24, density, rescale).Store(destination + i);
                Keep(high, words1, below24, density, rescale).Store(destination + i + 8);
            }
        }

        // The rest (or all, on the scalar path or off a Philox block boundary): decoded as Bf16ToSingleMinus's scalar
        // tail, then dropped in place (fewer than 16 left after the vector steps: the drop's scalar steps).
        DecodeScalar(source + i, subtrahend + i, destination + i, count - i);
        if (density < 1f)
            DropAndRescaleKernel.Apply(destination + i, firstIndex + i, count - i, density, rescale, key, width);
    }

    /// <summary>One chunk with both norms.</summary>
    private static (double Before, double After) ChunkWithNorms(ushort* source, float* subtrahend, float* destination, int count,
        long firstIndex, float density, bool rescale, PhiloxKey key, PhiloxWidth width)
    {
        if (width == PhiloxWidth.Scalar || density >= 1f || (firstIndex & 3) != 0)
        {
            // Decode, then the drop's own three steps on the chunk while it is in cache.
            DecodeScalar(source, subtrahend, destination, count);
            return DropAndRescaleKernel.ApplyWithNorms(destination, firstIndex, count, density, rescale, key, width);
        }

        Vector256<double> beforeLower = Vector256<double>.Zero, beforeUpper = Vector256<double>.Zero;
        Vector256<double> afterLower = Vector256<double>.Zero, afterUpper = Vector256<double>.Zero;
        int i = 0;
        if (count >= 16)
        {
            ulong* roundKeys = stackalloc ulong[PhiloxVectorBlocks.RoundKeyEntries];
            PhiloxVectorBlocks.WriteRoundKeys(key, roundKeys);
            uint keepBelow = DropAndRescaleKernel.KeepBelow(density);
            if (width == PhiloxWidth.Avx512)
            {
                Vector512<uint> below = Vector512.Create(keepBelow);
                Vector512<double> before = Vector512<double>.Zero, after = Vector512<double>.Zero;
                for (; i + 64 <= count; i += 64)
                {
                    PhiloxVectorBlocks.Sixteen((ulong)(firstIndex + i) >> 2, key, roundKeys, out Vector512<uint> words0,
                        out Vector512<uint> words1, out Vector512<uint> words2, out Vector512<uint> words3);
                    Decode32(source + i, subtrahend + i, out Vector512<float> x0, out Vector512<float> x1);
                    Decode32(source + i + 32, subtrahend + i + 32, out Vector512<float> x2, out Vector512<float> x3);
                    Vector512<float> kept0 = Keep(x0, words0, below, density, rescale);
                    Vector512<float> kept1 = Keep(x1, words1, below, density, rescale);
                    Vector512<float> kept2 = Keep(x2, words2, below, density, rescale);
                    Vector512<float> kept3 = Keep(x3, words3, below, density, rescale);
                    kept0.Store(destination + i);
                    kept1.Store(destination + i + 16);
                    kept2.Store(destination + i + 32);
                    kept3.Store(destination + i + 48);
                    before = AddAbs(AddAbs(AddAbs(AddAbs(before, x0), x1), x2), x3);
                    after = AddAbs(AddAbs(AddAbs(AddAbs(after, kept0), kept1), kept2), kept3);
                }
                for (; i + 32 <= count; i += 32)
                {
                    PhiloxVectorBlocks.Eight((ulong)(firstIndex + i) >> 2, key, roundKeys, out Vector512<uint> words0, out Vector512<uint> words1);
                    Decode32(source + i, subtrahend + i, out Vector512<float> x0, out Vector512<float> x1);
                    Vector512<float> kept0 = Keep(x0, words0, below, density, rescale);
                    Vector512<float> kept1 = Keep(x1, words1, below, density, rescale);
                    kept0.Store(destination + i);
                    kept1.Store(destination + i + 16);
                    before = AddAbs(AddAbs(before, x0), x1);
                    after = AddAbs(AddAbs(after, kept0), kept1);
                }
                (beforeLower, beforeUpper) = (before.GetLower(), before.GetUpper());
                (afterLower, afterUpper) = (after.GetLower(), after.GetUpper());
            }
            Vector256<int> below24 = Vector256.Create((int)(keepBelow >> 8));
            for (; i + 16 <= count; i += 16)
            {
                PhiloxVectorBlocks.Four((ulong)(firstIndex + i) >> 2, key, roundKeys, out Vector256<uint> words0, out Vector256<uint> words1);
                Decode16(source + i, subtrahend + i, out Vector256<float> low, out Vector256<float> high);
                Vector256<float> keptLow = Keep(low, words0, below24, density, rescale);
                Vector256<float> keptHigh = Keep(high, words1, below24, density, rescale);
                keptLow.Store(destination + i);
                keptHigh.Store(destination + i + 8);
                AddAbs(ref beforeLower, ref beforeUpper, low);
                AddAbs(ref beforeLower, ref beforeUpper, high);
                AddAbs(ref afterLower, ref afterUpper, keptLow);
                AddAbs(ref afterLower, ref afterUpper, keptHigh);
            }
        }

        // Fewer than 16 left: decoded as Bf16ToSingleMinus's tail; SumOfAbs's last group of 8 (if any) and its scalar
        // tail before and after the drop's scalar steps (DropAndRescaleKernel.ApplyWithNorms' own tail).
        float* rest = destination + i;
        int left = count - i;
        DecodeScalar(source + i, subtrahend + i, rest, left);
        int group = left >= 8 ? 8 : 0;
        if (group != 0) AddAbs(ref beforeLower, ref beforeUpper, Vector256.Load(rest));
        double normBefore = new ReductionKernels.AbsSum(beforeLower, beforeUpper).Finish(rest + group, left - group);
        DropAndRescaleKernel.Apply(rest, firstIndex + i, left, density, rescale, key, PhiloxWidth.Scalar);
        if (group != 0) AddAbs(ref afterLower, ref afterUpper, Vector256.Load(rest));
        return (normBefore, new ReductionKernels.AbsSum(afterLower, afterUpper).Finish(rest + group, left - group));
    }

    /// <summary>32 bf16 values widened (exactly) and minus the subtrahend: Bf16ToSingleMinus's 512-bit step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Decode32(ushort* source, float* subtrahend, out Vector512<float> low, out Vector512<float> high)
    {
        (Vector512<uint> lowBits, Vector512<uint> highBits) = Vector512.Widen(Vector512.Load(source));
        low = Vector512.ShiftLeft(lowBits, 16).AsSingle() - Vector512.Load(subtrahend);
        high = Vector512.ShiftLeft(highBits, 16).AsSingle() - Vector512.Load(subtrahend + 16);
    }

    /// <summary>16 bf16 values widened and minus the subtrahend: Bf16ToSingleMinus's 256-bit step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Decode16(ushort* source, float* subtrahend, out Vector256<float> low, out Vector256<float> high)
    {
        (Vector256<uint> lowBits, Vector256<uint> highBits) = Vector256.Widen(Vector256.Load(source));
        low = Vector256.ShiftLeft(lowBits, 16).AsSingle() - Vector256.Load(subtrahend);
        high = Vector256.ShiftLeft(highBits, 16).AsSingle() - Vector256.Load(subtrahend + 8);
    }

    private static void DecodeScalar(ushort* source, float* subtrahend, float* destination, int count)
    {
        for (int i = 0; i < count; i++)
            destination[i] = FloatConversions.Bf16ToSingle(source[i]) - subtrahend[i];
    }

    /// <summary>x kept (word &lt; below; ÷ density first when rescaling) or +0: DropAndRescaleKernel's 512-bit step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Keep(Vector512<float> x, Vector512<uint> words, Vector512<uint> below, float density, bool rescale)
    {
        if (rescale)
            x /= Vector512.Create(density);
        return Vector512.ConditionalSelect(Vector512.LessThan(words, below).AsSingle(), x, Vector512<float>.Zero);
    }

    /// <summary>The 256-bit step: AVX2 compares signed only, so (word &gt;&gt; 8) &lt; below24, both below 2^24.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Keep(Vector256<float> x, Vector256<uint> words, Vector256<int> below24, float density, bool rescale)
    {
        if (rescale)
            x /= Vector256.Create(density);
        return Vector256.ConditionalSelect(Vector256.LessThan((words >>> 8).AsInt32(), below24).AsSingle(), x, Vector256<float>.Zero);
    }

    /// <summary>Two groups of 8 added into SumOfAbs's accumulators held as one vector (lower lanes 0–3, upper 4–7).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> AddAbs(Vector512<double> sum, Vector512<float> x)
    {
        (Vector512<double> first, Vector512<double> second) = Vector512.Widen(Vector512.Abs(x));
        return sum + first + second;
    }

    /// <summary>One group of 8 added into SumOfAbs's accumulators (<see cref="ReductionKernels.AbsSum.Add"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddAbs(ref Vector256<double> lower, ref Vector256<double> upper, Vector256<float> group)
    {
        (Vector256<double> low, Vector256<double> high) = Vector256.Widen(Vector256.Abs(group));
        lower += low;
        upper += high;
    }
}
