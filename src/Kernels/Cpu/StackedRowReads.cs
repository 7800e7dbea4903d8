using System.Numerics;
using System.Runtime.CompilerServices;

namespace Weld.Kernels.Cpu;

/// <summary>
/// How a combine kernel reads element i of stacked row k: as stored, or pre-scaled by s_k. A struct type argument, so
/// the JIT compiles each kernel once per kind and the unscaled path pays nothing for the option.
/// </summary>
internal unsafe interface IStackedRowRead
{
    /// <summary>The vector of row <paramref name="k"/> at <paramref name="at"/>.</summary>
    Vector<float> Load(float* at, int k);

    /// <summary>The element of row <paramref name="k"/> at <paramref name="at"/>.</summary>
    float Read(float* at, int k);

    /// <summary>
    /// Whether a kernel that uses a row twice per vector should keep what it read (a read that masks costs more than
    /// reloading the vector from cache). A constant per type, so the JIT keeps only one branch.
    /// </summary>
    bool KeepsReads { get; }
}

/// <summary>Rows as stored.</summary>
internal readonly unsafe struct RowsAsStored : IStackedRowRead
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector<float> Load(float* at, int k) => Vector.Load(at);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Read(float* at, int k) => *at;

    public bool KeepsReads => false;
}

/// <summary>
/// Row k times s_k, rounded to float32: x·s_k with x first, the bits a <c>Scale</c> pass (TensorPrimitives.Multiply)
/// over the row would have stored, computed in registers instead of read, multiplied, written and read again.
/// </summary>
internal readonly unsafe struct RowsPreScaled(float* scales) : IStackedRowRead
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector<float> Load(float* at, int k) => Vector.Load(at) * new Vector<float>(scales[k]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Read(float* at, int k) => *at * scales[k];

    public bool KeepsReads => false;
}

/// <summary>
/// Row k through its deferred magnitude selection (<see cref="DeferredSelectionChunk"/>): an element whose magnitude key
/// lies outside (bounds[2k], bounds[2k + 1]] reads as +0, the bits <see cref="MagnitudeMask"/> would have stored there,
/// and a kept element reads as stored. The mask is two integer compares in registers instead of a pass that reads and
/// writes the row; <paramref name="wide"/> holds the same bounds broadcast to vectors, so each compare takes its bound
/// straight from memory.
/// </summary>
internal readonly unsafe struct RowsSelected(int* bounds, Vector<int>* wide) : IStackedRowRead
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector<float> Load(float* at, int k) => SelectedRow.Load(at, wide + 2 * k);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Read(float* at, int k) => SelectedRow.Read(at, bounds + 2 * k);

    public bool KeepsReads => true;
}

/// <summary>
/// Row k through its deferred selection, then times s_k rounded (<see cref="RowsPreScaled"/>): the bits of the mask pass
/// followed by a <c>Scale</c> pass — a dropped element reads +0·s_k, as the masked row would have been scaled.
/// </summary>
internal readonly unsafe struct RowsSelectedPreScaled(int* bounds, Vector<int>* wide, float* scales) : IStackedRowRead
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector<float> Load(float* at, int k) => SelectedRow.Load(at, wide + 2 * k) * new Vector<float>(scales[k]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Read(float* at, int k) => SelectedRow.Read(at, bounds + 2 * k) * scales[k];

    public bool KeepsReads => true;
}

/// <summary>
/// <see cref="RowsSelected"/> when no row has an upper cut (top-k): keys at or below bounds[2k] read as +0, one compare
/// instead of two.
/// </summary>
internal readonly unsafe struct RowsAboveKey(int* bounds, Vector<int>* wide) : IStackedRowRead
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector<float> Load(float* at, int k)
    {
        Vector<float> x = Vector.Load(at);
        Vector<int> key = Vector.AsVectorInt32(x) & new Vector<int>(MagnitudeSelect.KeyMask);
        return x & Vector.AsVectorSingle(Vector.GreaterThan(key, wide[2 * k]));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Read(float* at, int k) => (*(int*)at & MagnitudeSelect.KeyMask) > bounds[2 * k] ? *at : 0f;

    public bool KeepsReads => true;
}

/// <summary>The key-range read shared by <see cref="RowsSelected"/> and <see cref="RowsSelectedPreScaled"/>.</summary>
internal static unsafe class SelectedRow
{
    /// <summary>The vector at <paramref name="at"/> with every lane whose key is outside (range[0], range[1]] set to +0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<float> Load(float* at, Vector<int>* range)
    {
        Vector<float> x = Vector.Load(at);
        Vector<int> key = Vector.AsVectorInt32(x) & new Vector<int>(MagnitudeSelect.KeyMask);
        // key > low and not key > high: two compares and one and-not.
        Vector<int> keep = Vector.AndNot(Vector.GreaterThan(key, range[0]), Vector.GreaterThan(key, range[1]));
        return x & Vector.AsVectorSingle(keep);
    }

    /// <summary>The element at <paramref name="at"/>, or +0 when its key is outside (range[0], range[1]].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Read(float* at, int* range)
    {
        int key = *(int*)at & MagnitudeSelect.KeyMask;
        return key > range[0] && key <= range[1] ? *at : 0f;
    }

    /// <summary>Span form of <see cref="Load(float*, Vector{int}*)"/> at <paramref name="index"/> (for tests).</summary>
    internal static Vector<float> Load(ReadOnlySpan<float> values, int index, int lowerExclusive, int upperInclusive)
    {
        Vector<int>* range = stackalloc Vector<int>[2];
        range[0] = new Vector<int>(lowerExclusive);
        range[1] = new Vector<int>(upperInclusive);
        fixed (float* data = values[index..(index + Vector<float>.Count)])
            return Load(data, range);
    }

    /// <summary>Span form of <see cref="Read(float*, int*)"/> at <paramref name="index"/> (for tests).</summary>
    internal static float Read(ReadOnlySpan<float> values, int index, int lowerExclusive, int upperInclusive)
    {
        int* range = stackalloc int[] { lowerExclusive, upperInclusive };
        fixed (float* data = values[index..])
            return Read(data, range);
    }
}
