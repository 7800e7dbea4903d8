using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Weld.Kernels.Cpu;

/// <summary>
/// A <see cref="MagnitudeKeep"/> over one chunk, as the kernels test it on the fly: an element is kept when its key
/// (float bits &amp; 0x7FFFFFFF) is above <see cref="Before"/> for chunk indices below <see cref="Split"/> and above
/// <see cref="After"/> from there on (the two differ by one: the tie boundary). A chunk that holds no boundary has
/// <see cref="Split"/> 0 or its length, so its vectors compare against one broadcast threshold.
/// </summary>
internal readonly unsafe struct KeptByKey
{
    private const int KeyMask = MagnitudeSelect.KeyMask;

    public readonly int Before;
    public readonly int Split;
    public readonly int After;

    public KeptByKey(MagnitudeKeep keep, long chunkStart, int count)
    {
        Before = keep.Key - 1;
        After = keep.Key;
        Split = (int)Math.Clamp(keep.TieEnd - chunkStart, 0, count);
    }

    /// <summary>Whether the key of the element at chunk index <paramref name="i"/> with float bits <paramref name="bits"/> is dropped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Drops(int i, int bits) => (bits & KeyMask) <= (i < Split ? Before : After);

    /// <summary>All-ones lanes where the 8 elements from chunk index <paramref name="i"/> are dropped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Drops256(int* keys, int i)
    {
        Vector256<int> key = Vector256.Load(keys + i) & Vector256.Create(KeyMask);
        Vector256<int> threshold = i + Vector256<int>.Count <= Split ? Vector256.Create(Before)
            : i >= Split ? Vector256.Create(After)
            : Vector256.ConditionalSelect(Vector256.LessThan(Vector256<int>.Indices + Vector256.Create(i), Vector256.Create(Split)),
                Vector256.Create(Before), Vector256.Create(After));
        return Vector256.LessThanOrEqual(key, threshold).AsSingle();
    }
}

/// <summary>Selection bits (bit i of byte ⌊i / 8⌋ = element i, the little-endian bytes of <see cref="SelectionBits"/>' words) as lane masks.</summary>
internal static unsafe class KeptBitLanes
{
    private static readonly int[] s_laneBits = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768];
    private static readonly Vector512<int> s_lanes512 = Vector512.Create(s_laneBits);
    private static readonly Vector<int> s_lanes = new(s_laneBits);

    /// <summary>All-ones lanes where the 16 elements from index <paramref name="i"/> (a multiple of 8) are dropped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Drops512(byte* bits, int i)
    {
        Vector512<int> word = Vector512.Create((int)Unsafe.ReadUnaligned<ushort>(bits + (i >> 3)));
        return Vector512.Equals(word & s_lanes512, Vector512<int>.Zero).AsSingle();
    }

    /// <summary>All-ones lanes where the <see cref="Vector{T}.Count"/> elements from index <paramref name="i"/> are dropped (at most 16 lanes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<int> Drops(byte* bits, int i)
    {
        int lanes = Vector<int>.Count, shift = i & 7;
        uint word = bits[i >> 3];
        if (shift + lanes > 8) word |= (uint)bits[(i >> 3) + 1] << 8;
        if (shift + lanes > 16) word |= (uint)bits[(i >> 3) + 2] << 16;
        var spread = new Vector<int>((int)(word >> shift));
        return Vector.Equals(spread & s_lanes, Vector<int>.Zero);
    }

    /// <summary>Whether element <paramref name="i"/> is dropped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Drops1(byte* bits, int i) => (bits[i >> 3] & (1 << (i & 7))) == 0;
}
