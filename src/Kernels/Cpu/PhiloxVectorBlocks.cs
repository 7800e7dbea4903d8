using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Weld.Kernels.Random;

namespace Weld.Kernels.Cpu;

/// <summary>How many Philox4x32-10 blocks the CPU kernels compute at once: the vector width they use.</summary>
internal enum PhiloxWidth
{
    /// <summary>One block at a time (<see cref="Philox4x32.StreamBlock"/>).</summary>
    Scalar,
    /// <summary>Four blocks in the 64-bit lanes of a 256-bit vector (AVX2).</summary>
    Avx2,
    /// <summary>Eight blocks in the 64-bit lanes of a 512-bit vector (AVX-512F).</summary>
    Avx512,
}

/// <summary>
/// Philox4x32-10 blocks of Weld's element stream (<see cref="Philox4x32"/>) computed in vector lanes, one block per
/// 64-bit lane: the same words as <see cref="Philox4x32.StreamBlock"/>, in element order.
/// </summary>
/// <remarks>
/// Only the low 32 bits of a lane are ever state: <c>vpmuludq</c> reads just the low halves of its factors, and a
/// round's XOR and shift never carry the high half into the low one. So the masks that would clear the high halves
/// are left out, and the words are taken from the low halves at the end.
/// </remarks>
internal static unsafe class PhiloxVectorBlocks
{
    /// <summary>The widest path this CPU runs: AVX-512 where the runtime accelerates 512-bit vectors.</summary>
    public static PhiloxWidth Widest { get; } =
        Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? PhiloxWidth.Avx512
        : Avx2.IsSupported ? PhiloxWidth.Avx2
        : PhiloxWidth.Scalar;

    /// <summary>Whether <paramref name="width"/> runs on this CPU.</summary>
    public static bool IsSupported(PhiloxWidth width) => width switch
    {
        PhiloxWidth.Avx512 => Avx512F.IsSupported,
        PhiloxWidth.Avx2 => Avx2.IsSupported,
        _ => true,
    };

    /// <summary>Entries of a round-key table (<see cref="WriteRoundKeys"/>): key words 0 and 1 of each of the 10 rounds.</summary>
    public const int RoundKeyEntries = 2 * Philox4x32.Rounds;

    /// <summary>
    /// Writes the key of every round (Random123 bumps the key before every round but the first) as
    /// <c>keys[2·round]</c> = word 0, <c>keys[2·round + 1]</c> = word 1: computed once per call, not once per vector.
    /// </summary>
    public static void WriteRoundKeys(PhiloxKey key, ulong* keys)
    {
        uint key0 = (uint)key.Seed, key1 = (uint)(key.Seed >> 32);
        for (int round = 0; round < Philox4x32.Rounds; round++)
        {
            if (round != 0)
            {
                key0 += Philox4x32.KeyIncrement0;
                key1 += Philox4x32.KeyIncrement1;
            }
            keys[2 * round] = key0;
            keys[2 * round + 1] = key1;
        }
    }

    /// <summary>
    /// Blocks <paramref name="firstBlock"/> .. + 7 (AVX-512F): <paramref name="first"/> gets the 16 words of blocks 0–3,
    /// <paramref name="second"/> those of blocks 4–7; element 4·(firstBlock + b) + w takes word w of block b.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Eight(ulong firstBlock, PhiloxKey key, ulong* roundKeys, out Vector512<uint> first, out Vector512<uint> second)
    {
        Vector512<ulong> c0 = Vector512.Create(firstBlock) + Vector512.Create(0UL, 1UL, 2UL, 3UL, 4UL, 5UL, 6UL, 7UL);
        Vector512<ulong> c1 = c0 >>> 32;
        Vector512<ulong> c2 = Vector512.Create((ulong)key.TensorHash);
        Vector512<ulong> c3 = Vector512.Create((ulong)key.ModelIndex);
        Vector512<uint> m0 = Vector512.Create((ulong)Philox4x32.Multiplier0).AsUInt32();
        Vector512<uint> m1 = Vector512.Create((ulong)Philox4x32.Multiplier1).AsUInt32();
        for (int round = 0; round < Philox4x32.Rounds; round++)
        {
            // Both factors are below 2^32 (low halves): vpmuludq gives the whole 64-bit product per lane.
            Vector512<ulong> product0 = Avx512F.Multiply(c0.AsUInt32(), m0);
            Vector512<ulong> product1 = Avx512F.Multiply(c2.AsUInt32(), m1);
            // 0x96 = a ^ b ^ c: hi(product) ^ counter ^ round key in one instruction.
            Vector512<ulong> next0 = Avx512F.TernaryLogic(product1 >>> 32, c1, Vector512.Create(roundKeys[2 * round]), 0x96);
            Vector512<ulong> next2 = Avx512F.TernaryLogic(product0 >>> 32, c3, Vector512.Create(roundKeys[2 * round + 1]), 0x96);
            c1 = product1;
            c3 = product0;
            c0 = next0;
            c2 = next2;
        }
        Interleave(c0, c1, c2, c3, out first, out second);
    }

    /// <summary>
    /// Blocks <paramref name="firstBlock"/> .. + 15 (AVX-512) as two groups of eight whose rounds run side by side: a
    /// round is a chain of multiply, shift and XOR, so one group alone leaves the vector units waiting on latency.
    /// <paramref name="words0"/> .. <paramref name="words3"/> get the 64 words in element order (<see cref="Eight"/>'s
    /// layout, twice).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sixteen(ulong firstBlock, PhiloxKey key, ulong* roundKeys, out Vector512<uint> words0,
        out Vector512<uint> words1, out Vector512<uint> words2, out Vector512<uint> words3)
    {
        Vector512<ulong> a0 = Vector512.Create(firstBlock) + Vector512.Create(0UL, 1UL, 2UL, 3UL, 4UL, 5UL, 6UL, 7UL);
        Vector512<ulong> b0 = a0 + Vector512.Create(8UL);
        Vector512<ulong> a1 = a0 >>> 32, b1 = b0 >>> 32;
        Vector512<ulong> a2 = Vector512.Create((ulong)key.TensorHash), b2 = a2;
        Vector512<ulong> a3 = Vector512.Create((ulong)key.ModelIndex), b3 = a3;
        Vector512<uint> m0 = Vector512.Create((ulong)Philox4x32.Multiplier0).AsUInt32();
        Vector512<uint> m1 = Vector512.Create((ulong)Philox4x32.Multiplier1).AsUInt32();
        for (int round = 0; round < Philox4x32.Rounds; round++)
        {
            Vector512<ulong> key0 = Vector512.Create(roundKeys[2 * round]), key1 = Vector512.Create(roundKeys[2 * round + 1]);
            Vector512<ulong> aProduct0 = Avx512F.Multiply(a0.AsUInt32(), m0), bProduct0 = Avx512F.Multiply(b0.AsUInt32(), m0);
            Vector512<ulong> aProduct1 = Avx512F.Multiply(a2.AsUInt32(), m1), bProduct1 = Avx512F.Multiply(b2.AsUInt32(), m1);
            a0 = Avx512F.TernaryLogic(aProduct1 >>> 32, a1, key0, 0x96);
            b0 = Avx512F.TernaryLogic(bProduct1 >>> 32, b1, key0, 0x96);
            a2 = Avx512F.TernaryLogic(aProduct0 >>> 32, a3, key1, 0x96);
            b2 = Avx512F.TernaryLogic(bProduct0 >>> 32, b3, key1, 0x96);
            a1 = aProduct1;
            b1 = bProduct1;
            a3 = aProduct0;
            b3 = bProduct0;
        }
        Interleave(a0, a1, a2, a3, out words0, out words1);
        Interleave(b0, b1, b2, b3, out words2, out words3);
    }

    /// <summary>The words of eight blocks (counter words c0..c3 in the low halves of the lanes) in element order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Interleave(Vector512<ulong> c0, Vector512<ulong> c1, Vector512<ulong> c2, Vector512<ulong> c3,
        out Vector512<uint> first, out Vector512<uint> second)
    {
        // Low halves of c0, c1 interleaved per block (words 0, 1), likewise c2, c3 (words 2, 3); then the pairs of
        // blocks 0–3 and 4–7 put side by side in block order.
        Vector512<uint> pairIndex = Vector512.Create(0u, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
        Vector512<ulong> words01 = Avx512F.PermuteVar16x32x2(c0.AsUInt32(), pairIndex, c1.AsUInt32()).AsUInt64();
        Vector512<ulong> words23 = Avx512F.PermuteVar16x32x2(c2.AsUInt32(), pairIndex, c3.AsUInt32()).AsUInt64();
        first = Avx512F.PermuteVar8x64x2(words01, Vector512.Create(0UL, 8, 1, 9, 2, 10, 3, 11), words23).AsUInt32();
        second = Avx512F.PermuteVar8x64x2(words01, Vector512.Create(4UL, 12, 5, 13, 6, 14, 7, 15), words23).AsUInt32();
    }

    /// <summary>
    /// Blocks <paramref name="firstBlock"/> .. + 3 (AVX2): <paramref name="first"/> gets the 8 words of blocks 0–1,
    /// <paramref name="second"/> those of blocks 2–3; element 4·(firstBlock + b) + w takes word w of block b.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Four(ulong firstBlock, PhiloxKey key, ulong* roundKeys, out Vector256<uint> first, out Vector256<uint> second)
    {
        Vector256<ulong> c0 = Vector256.Create(firstBlock) + Vector256.Create(0UL, 1UL, 2UL, 3UL);
        Vector256<ulong> c1 = c0 >>> 32;
        Vector256<ulong> c2 = Vector256.Create((ulong)key.TensorHash);
        Vector256<ulong> c3 = Vector256.Create((ulong)key.ModelIndex);
        Vector256<uint> m0 = Vector256.Create((ulong)Philox4x32.Multiplier0).AsUInt32();
        Vector256<uint> m1 = Vector256.Create((ulong)Philox4x32.Multiplier1).AsUInt32();
        for (int round = 0; round < Philox4x32.Rounds; round++)
        {
            Vector256<ulong> product0 = Avx2.Multiply(c0.AsUInt32(), m0);
            Vector256<ulong> product1 = Avx2.Multiply(c2.AsUInt32(), m1);
            Vector256<ulong> next0 = (product1 >>> 32) ^ c1 ^ Vector256.Create(roundKeys[2 * round]);
            Vector256<ulong> next2 = (product0 >>> 32) ^ c3 ^ Vector256.Create(roundKeys[2 * round + 1]);
            c1 = product1;
            c3 = product0;
            c0 = next0;
            c2 = next2;
        }
        // Words 0,1 and 2,3 of each block paired in 64-bit lanes (the low half from one vector, the high half from the
        // other, shifted up), interleaved per 128-bit lane, then the halves put in block order: blocks 0,1 then 2,3.
        Vector256<ulong> words01 = Avx2.Blend(c0.AsUInt32(), (c1 << 32).AsUInt32(), 0b1010_1010).AsUInt64();
        Vector256<ulong> words23 = Avx2.Blend(c2.AsUInt32(), (c3 << 32).AsUInt32(), 0b1010_1010).AsUInt64();
        Vector256<ulong> even = Avx2.UnpackLow(words01, words23), odd = Avx2.UnpackHigh(words01, words23);
        first = Avx2.Permute2x128(even, odd, 0x20).AsUInt32();
        second = Avx2.Permute2x128(even, odd, 0x31).AsUInt32();
    }
}
