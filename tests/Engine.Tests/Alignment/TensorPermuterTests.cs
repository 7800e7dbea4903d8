using Weld.Engine.Alignment;
using Xunit;

namespace Weld.Engine.Tests.Alignment;

/// <summary>Element reordering against a plain index reference, for every element size.</summary>
public class TensorPermuterTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(8)]
    public void Two_dimensional_permutation_matches_the_index_definition(int elementSize)
    {
        const int rows = 5, columns = 7;
        var random = new Random(60 + elementSize);
        var source = new byte[rows * columns * elementSize];
        random.NextBytes(source);
        int[] rowOrder = [.. Enumerable.Range(0, rows)], columnOrder = [.. Enumerable.Range(0, columns)];
        random.Shuffle(rowOrder);
        random.Shuffle(columnOrder);
        var destination = new byte[source.Length];
        TensorPermuter.Permute(source, destination, [rows, columns], [rowOrder, columnOrder], elementSize);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < columns; j++)
                for (int e = 0; e < elementSize; e++)
                    Assert.Equal(source[((rowOrder[i] * columns) + columnOrder[j]) * elementSize + e], destination[((i * columns) + j) * elementSize + e]);

        // Rows only, and a 1-D tensor.
        TensorPermuter.Permute(source, destination, [rows, columns], [rowOrder, null], elementSize);
        for (int i = 0; i < rows; i++)
            Assert.Equal(source.AsSpan(rowOrder[i] * columns * elementSize, columns * elementSize), destination.AsSpan(i * columns * elementSize, columns * elementSize));
        float[] vector = [10, 11, 12, 13];
        Assert.Equal([13f, 10f, 12f, 11f], TensorPermuter.Permute(vector, [4], [[3, 0, 2, 1]]));
    }

    [Fact]
    public void Rejects_permutations_that_do_not_fit()
    {
        var source = new byte[24];
        var destination = new byte[24];
        Assert.Throws<ArgumentException>(() => TensorPermuter.Permute(source, destination, [2, 3], [[0, 1, 2], null], 4));
        Assert.Throws<ArgumentException>(() => TensorPermuter.Permute(source, destination, [2, 3], [null, [0, 1, 7]], 4));
        Assert.Throws<ArgumentException>(() => TensorPermuter.Permute(source, destination, [2, 3, 1], [null, null, null], 4));
        Assert.False(TensorPermuter.IsPermutation([0, 0, 1]));
        Assert.True(TensorPermuter.IsPermutation([2, 0, 1]));
    }
}
