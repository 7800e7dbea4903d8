namespace Weld.Kernels;

/// <summary>
/// What a magnitude top-k keeps, as a test on each element instead of a mask written over the values: element i, with
/// magnitude key m_i (its float bits with the sign cleared, compared as integers, so a NaN ranks above +∞), is kept when
/// m_i &gt; <see cref="Key"/>, or when m_i = <see cref="Key"/> and i &lt; <see cref="TieEnd"/> (ties keep the lowest
/// flat indices). SCE's energy sweep reads its variances through it, so the top-k never writes a mask pass.
/// </summary>
/// <param name="Key">The magnitude key at the cut.</param>
/// <param name="TieEnd">Index (from the first element the cut is given for) of the first tie that is dropped: ties before it are kept.</param>
public readonly record struct MagnitudeKeep(int Key, long TieEnd)
{
    /// <summary>Keeps every element that is not ±0 (a NaN is kept): the selector a written mask leaves.</summary>
    public static MagnitudeKeep NotZero => new(0, 0);

    /// <summary>Keeps nothing.</summary>
    public static MagnitudeKeep Nothing => new(int.MaxValue, 0);

    /// <summary>The same cut for the elements from index <paramref name="start"/> on (their index 0 is this cut's <paramref name="start"/>).</summary>
    public MagnitudeKeep From(long start) => this with { TieEnd = Math.Max(0, TieEnd - start) };

    /// <summary>Whether element <paramref name="index"/> of value <paramref name="value"/> is kept.</summary>
    public bool Keeps(long index, float value) => (BitConverter.SingleToInt32Bits(value) & int.MaxValue) > LowerExclusive(index);

    /// <summary>Element <paramref name="index"/> is kept when its key is above this (one below <see cref="Key"/> before <see cref="TieEnd"/>).</summary>
    public int LowerExclusive(long index) => index < TieEnd ? Key - 1 : Key;
}
