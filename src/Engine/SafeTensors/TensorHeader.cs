namespace Weld.Engine.SafeTensors;

/// <summary>A tensor to be written: name, element type and shape (its bytes follow from them).</summary>
/// <param name="Name">The tensor's name.</param>
/// <param name="DType">Element type to store.</param>
/// <param name="Shape">Dimensions, outermost first.</param>
public sealed record TensorHeader(string Name, DType DType, long[] Shape)
{
    /// <summary>Number of elements: the product of <see cref="Shape"/>.</summary>
    public long ElementCount
    {
        get
        {
            long count = 1;
            foreach (long dimension in Shape) count = checked(count * dimension);
            return count;
        }
    }

    /// <summary>Bytes the tensor occupies in the data section.</summary>
    public long ByteLength => checked(ElementCount * DTypes.SizeOf(DType));
}
