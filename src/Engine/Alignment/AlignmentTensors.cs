using Weld.Engine.Evaluation;
using Weld.Engine.Models;

namespace Weld.Engine.Alignment;

/// <summary>
/// Where weight matching reads tensors from: element ranges converted to float32 on demand, so a model can stay in
/// its stored dtype (a mapped bf16/f16 safetensors folder) and only the slices a step needs become float32.
/// </summary>
internal abstract class AlignmentTensors
{
    /// <summary>Names the model in messages.</summary>
    public abstract string SourceName { get; }

    /// <summary>The tensor's shape, or null when the model has no such tensor.</summary>
    public abstract long[]? ShapeOf(string name);

    /// <summary>Converts elements <c>[firstElement, firstElement + destination.Length)</c> (row-major) to float32.</summary>
    public abstract void Read(string name, long firstElement, Span<float> destination);

    /// <summary>A model folder read in place (each call converts only the requested elements).</summary>
    public static AlignmentTensors Of(ModelFolder model) => new FolderTensors(model);

    /// <summary>Tensors already held as float32.</summary>
    public static AlignmentTensors Of(TensorSet tensors) => new SetTensors(tensors);

    private sealed class FolderTensors(ModelFolder model) : AlignmentTensors
    {
        public override string SourceName => model.Path;

        public override long[]? ShapeOf(string name) => model.Contains(name) ? model.GetTensor(name).Shape : null;

        public override void Read(string name, long firstElement, Span<float> destination) =>
            model.GetTensor(name).ReadFloat32(firstElement, destination);
    }

    private sealed class SetTensors(TensorSet tensors) : AlignmentTensors
    {
        public override string SourceName => tensors.SourceName;

        public override long[]? ShapeOf(string name) => tensors.Contains(name) ? tensors.GetShape(name) : null;

        public override void Read(string name, long firstElement, Span<float> destination) =>
            tensors.Get(name).AsSpan(checked((int)firstElement), destination.Length).CopyTo(destination);
    }
}
