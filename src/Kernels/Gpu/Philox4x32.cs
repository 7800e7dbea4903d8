using Weld.Kernels.Random;

namespace Weld.Kernels.Gpu;

/// <summary>The four output words of one Philox4x32-10 block, as a kernel computes it.</summary>
internal struct PhiloxWords
{
    public uint X0;
    public uint X1;
    public uint X2;
    public uint X3;

    /// <summary>Word <paramref name="lane"/> (0..3): element 4·block + lane takes it.</summary>
    public readonly uint Lane(int lane) => lane == 0 ? X0 : lane == 1 ? X1 : lane == 2 ? X2 : X3;
}

/// <summary>
/// Philox4x32-10 for kernels: the same rounds, constants and stream layout as <see cref="Philox4x32"/> (the CPU's
/// generator), written with plain integer arithmetic that ILGPU compiles. The 32×32 → 64-bit products are 64-bit
/// multiplies of zero-extended words, exact on every target; their high and low halves are the Philox S-box.
/// </summary>
internal static class GpuPhilox
{
    /// <summary>
    /// The block of Weld's element stream holding elements 4·<paramref name="block"/> .. +3: counter (low, high
    /// 32 bits of the block index, tensor hash, model index) under key (low, high 32 bits of the seed).
    /// </summary>
    public static PhiloxWords StreamBlock(ulong seed, uint tensorHash, uint modelIndex, ulong block)
    {
        uint c0 = (uint)block;
        uint c1 = (uint)(block >> 32);
        uint c2 = tensorHash;
        uint c3 = modelIndex;
        uint key0 = (uint)seed;
        uint key1 = (uint)(seed >> 32);
        for (int round = 0; round < Philox4x32.Rounds; round++)
        {
            // Random123 bumps the key before every round but the first.
            if (round != 0)
            {
                key0 += Philox4x32.KeyIncrement0;
                key1 += Philox4x32.KeyIncrement1;
            }

            ulong product0 = (ulong)Philox4x32.Multiplier0 * c0;
            ulong product1 = (ulong)Philox4x32.Multiplier1 * c2;
            uint next0 = (uint)(product1 >> 32) ^ c1 ^ key0;
            uint next2 = (uint)(product0 >> 32) ^ c3 ^ key1;
            c1 = (uint)product1;
            c3 = (uint)product0;
            c0 = next0;
            c2 = next2;
        }

        PhiloxWords words;
        words.X0 = c0;
        words.X1 = c1;
        words.X2 = c2;
        words.X3 = c3;
        return words;
    }

    /// <summary>A word as a float in [0, 1): (word &gt;&gt; 8)·2^-24, exact (24 significant bits), as the CPU maps it.</summary>
    public static float ToUniform(uint word) => GpuArithmetic.Mul((int)(word >> 8), Philox4x32.UniformScale);
}
