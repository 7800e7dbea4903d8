using System.Runtime.CompilerServices;

namespace Weld.Kernels.Random;

/// <summary>One output block of Philox4x32: four independent 32-bit random words.</summary>
/// <param name="X0">Output word 0 (the lane of elements with index % 4 == 0).</param>
/// <param name="X1">Output word 1.</param>
/// <param name="X2">Output word 2.</param>
/// <param name="X3">Output word 3.</param>
public readonly record struct Philox4x32Block(uint X0, uint X1, uint X2, uint X3)
{
    /// <summary>The output word of lane <paramref name="lane"/> (0..3).</summary>
    public uint this[int lane] => lane switch
    {
        0 => X0,
        1 => X1,
        2 => X2,
        3 => X3,
        _ => throw new ArgumentOutOfRangeException(nameof(lane), lane, "A Philox4x32 block has lanes 0..3."),
    };
}

/// <summary>
/// Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw, "Parallel random numbers:
/// as easy as 1, 2, 3" (SC 2011), as in Random123. The output is a pure function of (counter, key), so any
/// element of a stream can be drawn independently — on any thread, in any order, on CPU or GPU.
/// </summary>
/// <remarks>
/// Weld's element stream for a <see cref="PhiloxKey"/>: key words k0 = low 32 bits of the seed, k1 = high 32 bits;
/// element <c>i</c> uses the block at counter (c0, c1) = low / high 32 bits of <c>i / 4</c>, c2 = tensor hash,
/// c3 = model index, and takes output word <c>i % 4</c>. A word becomes a uniform float in [0, 1) as
/// <c>(r &gt;&gt; 8) · 2^-24</c>, which is exact (24 significant bits).
/// </remarks>
public static class Philox4x32
{
    /// <summary>Multiplier of counter word 0 (PHILOX_M4x32_0).</summary>
    public const uint Multiplier0 = 0xD2511F53;

    /// <summary>Multiplier of counter word 2 (PHILOX_M4x32_1).</summary>
    public const uint Multiplier1 = 0xCD9E8D57;

    /// <summary>Weyl increment of key word 0 between rounds (the golden ratio, PHILOX_W32_0).</summary>
    public const uint KeyIncrement0 = 0x9E3779B9;

    /// <summary>Weyl increment of key word 1 between rounds (√3 − 1, PHILOX_W32_1).</summary>
    public const uint KeyIncrement1 = 0xBB67AE85;

    /// <summary>Number of rounds (10, the variant with the published statistical margin).</summary>
    public const int Rounds = 10;

    /// <summary>2^-24: scales a 24-bit integer to a float in [0, 1) without rounding.</summary>
    public const float UniformScale = 1.0f / 16777216.0f;

    /// <summary>Runs Philox4x32-10 on one 128-bit counter under one 64-bit key.</summary>
    /// <param name="counter0">Counter word 0.</param>
    /// <param name="counter1">Counter word 1.</param>
    /// <param name="counter2">Counter word 2.</param>
    /// <param name="counter3">Counter word 3.</param>
    /// <param name="key0">Key word 0.</param>
    /// <param name="key1">Key word 1.</param>
    /// <returns>The four output words.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Philox4x32Block Generate(uint counter0, uint counter1, uint counter2, uint counter3, uint key0, uint key1)
    {
        for (int round = 0; round < Rounds; round++)
        {
            // Random123 bumps the key before every round but the first.
            if (round != 0)
            {
                key0 += KeyIncrement0;
                key1 += KeyIncrement1;
            }

            ulong product0 = (ulong)Multiplier0 * counter0;
            ulong product1 = (ulong)Multiplier1 * counter2;
            uint next0 = (uint)(product1 >> 32) ^ counter1 ^ key0;
            uint next2 = (uint)(product0 >> 32) ^ counter3 ^ key1;
            counter1 = (uint)product1;
            counter3 = (uint)product0;
            counter0 = next0;
            counter2 = next2;
        }

        return new Philox4x32Block(counter0, counter1, counter2, counter3);
    }

    /// <summary>
    /// Runs Philox4x32-10 with the counter given as a 64-bit block index (words 0 and 1, low word first) plus two
    /// stream words, and the key as one 64-bit value (word 0 = low 32 bits).
    /// </summary>
    /// <param name="blockIndex">Counter words 0 (low) and 1 (high).</param>
    /// <param name="counter2">Counter word 2.</param>
    /// <param name="counter3">Counter word 3.</param>
    /// <param name="key">Key words 0 (low) and 1 (high).</param>
    /// <returns>The four output words.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Philox4x32Block Generate(ulong blockIndex, uint counter2, uint counter3, ulong key) =>
        Generate((uint)blockIndex, (uint)(blockIndex >> 32), counter2, counter3, (uint)key, (uint)(key >> 32));

    /// <summary>The block of Weld's element stream that holds elements 4·<paramref name="blockIndex"/> .. +3.</summary>
    /// <param name="key">The stream's key.</param>
    /// <param name="blockIndex">Element index / 4.</param>
    /// <returns>The four output words; element <c>i</c> takes word <c>i % 4</c>.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Philox4x32Block StreamBlock(PhiloxKey key, ulong blockIndex) =>
        Generate(blockIndex, key.TensorHash, key.ModelIndex, key.Seed);

    /// <summary>The random word of element <paramref name="elementIndex"/> of Weld's element stream.</summary>
    /// <param name="key">The stream's key.</param>
    /// <param name="elementIndex">The element's flat index (non-negative).</param>
    /// <returns>Word <c>elementIndex % 4</c> of block <c>elementIndex / 4</c>.</returns>
    public static uint ElementBits(PhiloxKey key, long elementIndex)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
        return StreamBlock(key, (ulong)elementIndex >> 2)[(int)(elementIndex & 3)];
    }

    /// <summary>Maps a random word to a float in [0, 1): <c>(bits &gt;&gt; 8) · 2^-24</c>, exact.</summary>
    /// <param name="bits">A random 32-bit word.</param>
    /// <returns>A multiple of 2^-24 in [0, 1).</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToUniform(uint bits) => (bits >> 8) * UniformScale;

    /// <summary>
    /// Fills <paramref name="destination"/> with the uniforms of elements
    /// <paramref name="firstElement"/> .. <paramref name="firstElement"/> + length − 1 of Weld's element stream.
    /// </summary>
    /// <param name="key">The stream's key.</param>
    /// <param name="firstElement">Flat index of the element that lands in destination[0] (non-negative).</param>
    /// <param name="destination">Receives one uniform in [0, 1) per element.</param>
    public static void FillUniform(PhiloxKey key, long firstElement, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstElement);
        int written = 0;
        ulong element = (ulong)firstElement;
        while (written < destination.Length)
        {
            Philox4x32Block block = StreamBlock(key, element >> 2);
            // Start mid-block when firstElement is not a multiple of 4, then whole blocks.
            for (int lane = (int)(element & 3); lane < 4 && written < destination.Length; lane++)
            {
                destination[written++] = ToUniform(block[lane]);
                element++;
            }
        }
    }
}
