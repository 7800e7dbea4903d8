namespace Weld.Engine.SafeTensors;

/// <summary>One tensor of a safetensors file as its header describes it.</summary>
/// <param name="Name">The tensor's name ("model.layers.0.mlp.up_proj.weight").</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Dimensions, outermost first (empty for a scalar).</param>
/// <param name="Offset">Start of the tensor's bytes, relative to the data section.</param>
/// <param name="ByteLength">Length of the tensor's bytes (may exceed 2^31).</param>
public sealed record TensorInfo(string Name, DType DType, long[] Shape, long Offset, long ByteLength)
{
    /// <summary>Number of elements: the product of <see cref="Shape"/> (1 for a scalar).</summary>
    public long ElementCount
    {
        get
        {
            long count = 1;
            foreach (long dimension in Shape) count *= dimension;
            return count;
        }
    }

    /// <summary>The shape as PyTorch prints it, e.g. "[384, 128]".</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
