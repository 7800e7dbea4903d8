using Weld.Engine.SafeTensors;

namespace Weld.Engine.Models;

/// <summary>A tensor of a model: the file that holds it and its header entry.</summary>
/// <param name="File">The open safetensors file (owned by the <see cref="ModelFolder"/>).</param>
/// <param name="Info">The tensor's header entry.</param>
public readonly record struct ModelTensor(SafeTensorsFile File, TensorInfo Info)
{
    /// <summary>The tensor's name.</summary>
    public string Name => Info.Name;

    /// <summary>The tensor's stored element type.</summary>
    public DType DType => Info.DType;

    /// <summary>The tensor's shape.</summary>
    public long[] Shape => Info.Shape;

    /// <summary>Number of elements.</summary>
    public long ElementCount => Info.ElementCount;

    /// <summary>Converts elements <c>[firstElement, firstElement + destination.Length)</c> to float32.</summary>
    public void ReadFloat32(long firstElement, Span<float> destination) => File.ReadFloat32(Info, firstElement, destination);

    /// <summary>As <see cref="ReadFloat32(long, Span{float})"/>, refusing NaN / ±Inf when <paramref name="rejectNonFinite"/>.</summary>
    public void ReadFloat32(long firstElement, Span<float> destination, bool rejectNonFinite) =>
        File.ReadFloat32(Info, firstElement, destination, rejectNonFinite);

    /// <summary>
    /// As <see cref="ReadFloat32(long, Span{float}, bool)"/>, minus <paramref name="subtrahend"/> element by element
    /// (float32, fused into the conversion: see <see cref="SafeTensorsFile.ReadFloat32(TensorInfo, long, Span{float}, bool, ReadOnlySpan{float})"/>).
    /// </summary>
    public void ReadFloat32(long firstElement, Span<float> destination, bool rejectNonFinite, ReadOnlySpan<float> subtrahend) =>
        File.ReadFloat32(Info, firstElement, destination, rejectNonFinite, subtrahend);

    /// <summary>
    /// As <see cref="ReadFloat32(long, Span{float}, bool, ReadOnlySpan{float})"/>, then DARE's drop done in the same
    /// pass (see <see cref="SafeTensorsFile.ReadFloat32(TensorInfo, long, Span{float}, bool, ReadOnlySpan{float}, Weld.Kernels.RandomDrop?, Span{double})"/>).
    /// </summary>
    public void ReadFloat32(long firstElement, Span<float> destination, bool rejectNonFinite, ReadOnlySpan<float> subtrahend,
        Weld.Kernels.RandomDrop? drop, Span<double> norms) =>
        File.ReadFloat32(Info, firstElement, destination, rejectNonFinite, subtrahend, drop, norms);

    /// <summary>Copies stored bytes of the tensor (positional reads).</summary>
    public void ReadBytes(long byteOffset, Span<byte> destination) => File.ReadBytes(Info, byteOffset, destination);

    /// <summary>Maps the pages of elements <c>[firstElement, firstElement + count)</c> ahead of many small reads.</summary>
    public void Prefetch(long firstElement, long count) => File.Prefetch(Info, firstElement, count);
}
