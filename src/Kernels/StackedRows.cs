namespace Weld.Kernels;

/// <summary>Argument checks shared by the backends for K inputs stacked as K rows of one length.</summary>
internal static class StackedRows
{
    /// <summary>
    /// The number of whole rows of <paramref name="rowLength"/> in <paramref name="stackedLength"/> elements
    /// (0 when both are empty); throws when the stack is not a whole number of rows.
    /// </summary>
    public static int Count(int stackedLength, int rowLength, string parameter)
    {
        if (rowLength == 0 ? stackedLength != 0 : stackedLength % rowLength != 0)
            throw new ArgumentException(
                $"The stacked rows hold {stackedLength} elements, not a whole number of rows of {rowLength}.", parameter);
        return rowLength == 0 ? 0 : stackedLength / rowLength;
    }
}
