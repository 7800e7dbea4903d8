using System.Runtime.InteropServices;

namespace Weld.Engine.Alignment;

/// <summary>
/// Reorders the elements of a 1-D or 2-D tensor: <c>out[i, j] = in[rows[i], columns[j]]</c>. Works on raw
/// elements of any size, so a permuted tensor holds exactly the stored bits of the original whatever its dtype.
/// </summary>
public static class TensorPermuter
{
    /// <summary>
    /// Writes the permuted tensor to <paramref name="destination"/>.
    /// </summary>
    /// <param name="source">The tensor's elements, row-major.</param>
    /// <param name="destination">Receives the permuted elements; the same length as <paramref name="source"/>, not overlapping it.</param>
    /// <param name="shape">The tensor's shape: one or two dimensions.</param>
    /// <param name="axisPermutations">One entry per dimension: <c>p[i]</c> is the source index placed at <c>i</c>; null keeps the axis.</param>
    /// <param name="elementSize">Bytes per element.</param>
    /// <exception cref="ArgumentException">The shape, lengths or permutations do not fit each other.</exception>
    public static void Permute(ReadOnlySpan<byte> source, Span<byte> destination, ReadOnlySpan<long> shape,
        ReadOnlySpan<int[]?> axisPermutations, int elementSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(elementSize, 1);
        if (shape.Length is < 1 or > 2) throw new ArgumentException($"only 1-D and 2-D tensors can be permuted, not {shape.Length}-D.", nameof(shape));
        if (axisPermutations.Length != shape.Length) throw new ArgumentException("one permutation (or null) per dimension is needed.", nameof(axisPermutations));
        int rows = checked((int)shape[0]);
        int columns = shape.Length == 2 ? checked((int)shape[1]) : 1;
        long bytes = (long)rows * columns * elementSize;
        if (source.Length != bytes || destination.Length != bytes)
            throw new ArgumentException($"a [{string.Join(", ", shape.ToArray())}] tensor of {elementSize}-byte elements has {bytes} bytes.", nameof(source));
        int[]? rowOrder = axisPermutations[0];
        int[]? columnOrder = shape.Length == 2 ? axisPermutations[1] : null;
        CheckLength(rowOrder, rows);
        CheckLength(columnOrder, columns);

        int rowBytes = columns * elementSize;
        for (int i = 0; i < rows; i++)
        {
            int sourceRow = rowOrder is null ? i : rowOrder[i];
            if ((uint)sourceRow >= (uint)rows) throw new ArgumentException($"row permutation entry {i} is {sourceRow}, outside 0..{rows - 1}.", nameof(axisPermutations));
            ReadOnlySpan<byte> from = source.Slice(sourceRow * rowBytes, rowBytes);
            Span<byte> to = destination.Slice(i * rowBytes, rowBytes);
            if (columnOrder is null)
            {
                from.CopyTo(to);
                continue;
            }

            switch (elementSize)
            {
                // The common dtypes (BF16/F16, F32, F64) gather whole elements; other sizes go byte block by block.
                case 2: Gather(MemoryMarshal.Cast<byte, ushort>(from), MemoryMarshal.Cast<byte, ushort>(to), columnOrder); break;
                case 4: Gather(MemoryMarshal.Cast<byte, uint>(from), MemoryMarshal.Cast<byte, uint>(to), columnOrder); break;
                case 8: Gather(MemoryMarshal.Cast<byte, ulong>(from), MemoryMarshal.Cast<byte, ulong>(to), columnOrder); break;
                default:
                    for (int j = 0; j < columns; j++)
                    {
                        int sourceColumn = columnOrder[j];
                        CheckIndex(sourceColumn, columns, j);
                        from.Slice(sourceColumn * elementSize, elementSize).CopyTo(to.Slice(j * elementSize, elementSize));
                    }

                    break;
            }
        }
    }

    private static void Gather<T>(ReadOnlySpan<T> from, Span<T> to, int[] order)
    {
        for (int j = 0; j < to.Length; j++)
        {
            int source = order[j];
            CheckIndex(source, from.Length, j);
            to[j] = from[source];
        }
    }

    private static void CheckIndex(int source, int length, int position)
    {
        if ((uint)source >= (uint)length)
            throw new ArgumentException($"column permutation entry {position} is {source}, outside 0..{length - 1}.", "axisPermutations");
    }

    /// <summary>The float32 form of <see cref="Permute(ReadOnlySpan{byte}, Span{byte}, ReadOnlySpan{long}, ReadOnlySpan{int[]}, int)"/>; returns a new array.</summary>
    public static float[] Permute(float[] source, ReadOnlySpan<long> shape, ReadOnlySpan<int[]?> axisPermutations)
    {
        ArgumentNullException.ThrowIfNull(source);
        var result = new float[source.Length];
        Permute(MemoryMarshal.AsBytes(source.AsSpan()),
            MemoryMarshal.AsBytes(result.AsSpan()), shape, axisPermutations, sizeof(float));
        return result;
    }

    /// <summary>Whether <paramref name="permutation"/> holds each of 0..n−1 exactly once.</summary>
    public static bool IsPermutation(ReadOnlySpan<int> permutation)
    {
        var seen = new bool[permutation.Length];
        foreach (int p in permutation)
        {
            if ((uint)p >= (uint)seen.Length || seen[p]) return false;
            seen[p] = true;
        }

        return true;
    }

    private static void CheckLength(int[]? permutation, int length)
    {
        if (permutation is not null && permutation.Length != length)
            throw new ArgumentException($"a permutation of {permutation.Length} entries cannot reorder an axis of {length}.", nameof(permutation));
    }
}
