using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Weld.Kernels.Random;

namespace Weld.Kernels.Cpu;

/// <summary>
/// DARE's Bernoulli drop over one chunk: element i is kept iff Philox4x32.ToUniform(word i of the stream) &lt;
/// density; kept elements are divided by density (one IEEE division) when rescaling, dropped ones become +0.
/// </summary>
internal static unsafe class DropAndRescaleKernel
{
    /// <summary>Processes elements [start, start + count) of the tensor; <paramref name="values"/> points at element start.</summary>
    public static void Apply(float* values, long start, int count, float density, bool rescale, PhiloxKey key)
    {
        long element = start;
        long end = start + count;

        // Chunks start on a block boundary; a general start finishes its first block lane by lane.
        for (; element < end && (element & 3) != 0; element++)
            values[element - start] = Keep(values[element - start], Philox4x32.ElementBits(key, element), density, rescale);

        // Four Philox blocks at once in 64-bit vector lanes (a 32×32-bit product fits), then 16 elements kept or dropped.
        if (Vector256.IsHardwareAccelerated)
            for (; element + 16 <= end; element += 16)
                ApplySixteen(values + (element - start), (ulong)element >> 2, key, density, rescale);

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

    /// <summary>Elements 4·firstBlock .. 4·firstBlock + 15: the scalar path's Philox4x32-10 and keep rule, vectorized.</summary>
    private static void ApplySixteen(float* values, ulong firstBlock, PhiloxKey key, float density, bool rescale)
    {
        Vector256<ulong> low32 = Vector256.Create(0xFFFF_FFFFUL);
        Vector256<ulong> block = Vector256.Create(firstBlock) + Vector256.Create(0UL, 1UL, 2UL, 3UL);
        Vector256<ulong> c0 = block & low32;
        Vector256<ulong> c1 = block >>> 32;
        Vector256<ulong> c2 = Vector256.Create((ulong)key.TensorHash);
        Vector256<ulong> c3 = Vector256.Create((ulong)key.ModelIndex);
        Vector256<ulong> m0 = Vector256.Create((ulong)Philox4x32.Multiplier0);
        Vector256<ulong> m1 = Vector256.Create((ulong)Philox4x32.Multiplier1);
        uint key0 = (uint)key.Seed, key1 = (uint)(key.Seed >> 32);
        for (int round = 0; round < Philox4x32.Rounds; round++)
        {
            if (round != 0)
            {
                key0 += Philox4x32.KeyIncrement0;
                key1 += Philox4x32.KeyIncrement1;
            }
            // Both factors are below 2^32: vpmuludq (32 × 32 → 64 bits per lane) is the whole product, where the generic
            // 64-bit multiply costs several instructions.
            Vector256<ulong> product0 = Avx2.IsSupported ? Avx2.Multiply(c0.AsUInt32(), m0.AsUInt32()) : c0 * m0;
            Vector256<ulong> product1 = Avx2.IsSupported ? Avx2.Multiply(c2.AsUInt32(), m1.AsUInt32()) : c2 * m1;
            Vector256<ulong> next0 = (product1 >>> 32) ^ c1 ^ Vector256.Create((ulong)key0);
            Vector256<ulong> next2 = (product0 >>> 32) ^ c3 ^ Vector256.Create((ulong)key1);
            c1 = product1 & low32;
            c3 = product0 & low32;
            c0 = next0;
            c2 = next2;
        }

        // Element 4·(firstBlock + b) + w takes word w of block b.
        uint* words = stackalloc uint[16];
        if (Avx2.IsSupported)
        {
            // Words 0,1 and 2,3 of each block paired in 64-bit lanes, interleaved per 128-bit lane, then the halves put
            // in block order: blocks 0,1 then 2,3.
            Vector256<ulong> words01 = c0 | (c1 << 32), words23 = c2 | (c3 << 32);
            Vector256<ulong> even = Avx2.UnpackLow(words01, words23), odd = Avx2.UnpackHigh(words01, words23);
            Avx2.Permute2x128(even, odd, 0x20).AsUInt32().Store(words);
            Avx2.Permute2x128(even, odd, 0x31).AsUInt32().Store(words + 8);
        }
        else
        {
            for (int b = 0; b < 4; b++)
            {
                words[4 * b] = (uint)c0.GetElement(b);
                words[4 * b + 1] = (uint)c1.GetElement(b);
                words[4 * b + 2] = (uint)c2.GetElement(b);
                words[4 * b + 3] = (uint)c3.GetElement(b);
            }
        }

        Vector256<float> scale = Vector256.Create(Philox4x32.UniformScale);
        Vector256<float> keepBelow = Vector256.Create(density);
        for (int half = 0; half < 16; half += 8)
        {
            // (word >> 8) has 24 bits: the int -> float conversion and the scaling are exact, as in ToUniform.
            Vector256<float> uniform = Vector256.ConvertToSingle((Vector256.Load(words + half) >>> 8).AsInt32()) * scale;
            Vector256<float> x = Vector256.Load(values + half);
            Vector256<float> kept = rescale ? x / keepBelow : x;
            Vector256.ConditionalSelect(Vector256.LessThan(uniform, keepBelow), kept, Vector256<float>.Zero).Store(values + half);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Keep(float value, uint bits, float density, bool rescale) =>
        Philox4x32.ToUniform(bits) < density ? (rescale ? value / density : value) : 0f;
}
