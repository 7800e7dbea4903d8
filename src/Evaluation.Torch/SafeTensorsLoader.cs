using TorchSharp;
using Weld.Engine;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using static TorchSharp.torch;

namespace Weld.Evaluation.Torch;

/// <summary>
/// Reads safetensors tensors straight into libtorch tensors of the stored element type: BF16 stays bfloat16, F16
/// float16, F32 float32 (the bytes are copied as they are); F64 is read as float64. Other types are refused.
/// </summary>
internal static class SafeTensorsLoader
{
    /// <summary>The tensor <paramref name="name"/> of <paramref name="model"/>, which must have the shape <paramref name="expected"/>.</summary>
    /// <exception cref="InvalidModelFileException">Missing tensor, another shape, or an element type that is not a float.</exception>
    public static Tensor Load(ModelFolder model, string name, params long[] expected)
    {
        if (!model.Contains(name)) throw new InvalidModelFileException(model.Path, $"the model has no tensor named '{name}'.");
        ModelTensor source = model.GetTensor(name);
        // Checked here: a shape error inside a native matmul aborts the whole process.
        if (!source.Shape.AsSpan().SequenceEqual(expected))
        {
            throw new InvalidModelFileException(model.Path,
                $"tensor '{name}' has shape [{string.Join(", ", source.Shape)}]; the config implies [{string.Join(", ", expected)}].");
        }

        ScalarType type = source.DType switch
        {
            DType.BF16 => ScalarType.BFloat16,
            DType.F16 => ScalarType.Float16,
            DType.F32 => ScalarType.Float32,
            DType.F64 => ScalarType.Float64,
            _ => throw new InvalidModelFileException(model.Path, $"tensor '{name}' is {source.DType}; the torch engine reads float tensors only."),
        };
        long bytes = source.ElementCount * DTypes.SizeOf(source.DType);
        if (bytes > Array.MaxLength)
            throw new InvalidModelFileException(model.Path, $"tensor '{name}' has {bytes} bytes, more than one read can hold.");
        var buffer = new byte[bytes];
        source.ReadBytes(0, buffer);
        Tensor tensor = empty(expected, type);
        tensor.bytes = buffer;
        return tensor;
    }
}
