using System.Buffers;
using System.Diagnostics;
using Weld.Engine.Methods;
using Weld.Engine.Models;
using Weld.Engine.Planning;
using Weld.Engine.SafeTensors;
using Weld.Kernels;

namespace Weld.Engine.Execution;

/// <summary>Progress of a running merge, reported after each output tensor.</summary>
/// <param name="TensorsDone">Output tensors finished.</param>
/// <param name="TensorCount">Output tensors in all.</param>
/// <param name="BytesRead">Input bytes read so far.</param>
/// <param name="BytesWritten">Output bytes written so far.</param>
/// <param name="CurrentTensor">The tensor just finished.</param>
public readonly record struct MergeProgress(int TensorsDone, int TensorCount, long BytesRead, long BytesWritten, string CurrentTensor);

/// <summary>What a finished merge did.</summary>
/// <param name="Tensors">Output tensors written.</param>
/// <param name="BytesRead">Input bytes read.</param>
/// <param name="BytesWritten">Output tensor bytes written.</param>
/// <param name="Elapsed">Wall time.</param>
/// <param name="Shards">Output shards written.</param>
public sealed record MergeSummary(int Tensors, long BytesRead, long BytesWritten, TimeSpan Elapsed, IReadOnlyList<ShardPlan> Shards);

/// <summary>
/// Runs a <see cref="MergePlan"/>: for each output tensor, reads the inputs as float32, runs the method
/// through the kernels, converts to the output dtype and appends it to the current shard.
/// </summary>
public sealed class MergeExecutor
{
    private readonly IMergeKernels _kernels;
    private readonly int _readParallelism;

    /// <summary>Creates an executor over a kernel backend.</summary>
    /// <param name="kernels">The arithmetic backend.</param>
    /// <param name="readParallelism">Threads converting input chunks (-1: all cores).</param>
    public MergeExecutor(IMergeKernels kernels, int readParallelism = -1)
    {
        _kernels = kernels;
        _readParallelism = readParallelism;
    }

    /// <summary>Writes every tensor of <paramref name="plan"/> into <paramref name="folder"/> as safetensors shards.</summary>
    public MergeSummary Execute(MergePlan plan, IReadOnlyList<ModelFolder> models, string folder, long maxShardBytes,
        IProgress<MergeProgress>? progress = null, CancellationToken cancel = default)
    {
        var clock = Stopwatch.StartNew();
        var headers = new TensorHeader[plan.Tensors.Count];
        for (int i = 0; i < headers.Length; i++) headers[i] = plan.Tensors[i].Header;
        IReadOnlyList<ShardPlan> shards = ShardLayout.Plan(headers, maxShardBytes);

        var scratch = new Scratch();
        long bytesRead = 0, bytesWritten = 0;
        int done = 0;
        try
        {
            foreach (ShardPlan shard in shards)
            {
                using var writer = new SafeTensorsWriter(Path.Combine(folder, shard.FileName), shard.Tensors, null);
                foreach (TensorHeader header in shard.Tensors)
                {
                    cancel.ThrowIfCancellationRequested();
                    TensorTask task = plan.Tensors[done];
                    Debug.Assert(task.Header.Name == header.Name);
                    bytesRead += MergeOne(plan, task, models, scratch, out ReadOnlyMemory<float> result);
                    writer.WriteFloat32(result.Span);
                    bytesWritten += header.ByteLength;
                    done++;
                    progress?.Report(new MergeProgress(done, plan.Tensors.Count, bytesRead, bytesWritten, header.Name));
                }
                writer.Complete();
            }
        }
        finally
        {
            scratch.Dispose();
        }
        return new MergeSummary(done, bytesRead, bytesWritten, clock.Elapsed, shards);
    }

    private long MergeOne(MergePlan plan, TensorTask task, IReadOnlyList<ModelFolder> models, Scratch scratch, out ReadOnlyMemory<float> result)
    {
        long count = task.ElementCount;
        if (count > Array.MaxLength / Math.Max(1, task.Inputs.Count))
            throw new WeldException($"{task.Header.Name}: {count:N0} elements × {task.Inputs.Count} models is larger than one in-memory tensor stack can hold");
        int n = (int)count;
        int k = task.Inputs.Count;
        Memory<float> stacked = scratch.Stacked(k * n);
        long bytes = 0;
        for (int i = 0; i < k; i++)
            bytes += Read(models, task.Inputs[i], stacked.Slice(i * n, n), task.Header.Name);
        ReadOnlyMemory<float> baseline = ReadOnlyMemory<float>.Empty;
        if (task.Base is { } baseSource)
        {
            Memory<float> b = scratch.Base(n);
            bytes += Read(models, baseSource, b, task.Header.Name);
            baseline = b;
        }
        Memory<float> output = scratch.Output(n);
        var indices = new int[k];
        for (int i = 0; i < k; i++) indices[i] = task.Inputs[i].RecipeIndex;
        plan.Method.Merge(new TensorMergeInputs
        {
            Kernels = _kernels,
            TensorName = task.Header.Name,
            Shape = task.Header.Shape,
            Models = stacked,
            Base = baseline,
            ModelParameters = task.ModelParameters,
            Global = task.Global,
            ModelIndices = indices,
            Seed = plan.Seed,
            TensorHash = TensorNameHash.Compute(task.Header.Name),
        }, output.Span);
        result = output;
        return bytes;
    }

    /// <summary>Reads the first <c>destination.Length</c> elements of a source tensor as float32, in parallel chunks.</summary>
    private long Read(IReadOnlyList<ModelFolder> models, TensorSource source, Memory<float> destination, string outputName)
    {
        ModelTensor tensor = models[source.Model].GetTensor(source.TensorName);
        if (tensor.Info.ElementCount < destination.Length)
            throw new WeldException($"{models[source.Model].Path}: tensor {source.TensorName} has {tensor.Info.ElementCount:N0} elements, {outputName} needs {destination.Length:N0}");
        const int Chunk = 1 << 20;
        int length = destination.Length;
        int chunks = (length + Chunk - 1) / Chunk;
        if (chunks <= 1)
            tensor.ReadFloat32(0, destination.Span);
        else
            Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = _readParallelism }, c =>
            {
                int start = c * Chunk;
                tensor.ReadFloat32(start, destination.Span.Slice(start, Math.Min(Chunk, length - start)));
            });
        return (long)destination.Length * DTypes.SizeOf(tensor.Info.DType);
    }

    /// <summary>Reused buffers: one stack of K inputs, one base, one output (grown, never shrunk).</summary>
    private sealed class Scratch : IDisposable
    {
        private float[] _stacked = [], _base = [], _output = [];

        public Memory<float> Stacked(int length) => Ensure(ref _stacked, length);
        public Memory<float> Base(int length) => Ensure(ref _base, length);
        public Memory<float> Output(int length) => Ensure(ref _output, length);

        private static Memory<float> Ensure(ref float[] buffer, int length)
        {
            if (buffer.Length < length)
            {
                if (buffer.Length > 0) ArrayPool<float>.Shared.Return(buffer);
                buffer = ArrayPool<float>.Shared.Rent(length);
            }
            return buffer.AsMemory(0, length);
        }

        public void Dispose()
        {
            foreach (var b in new[] { _stacked, _base, _output })
                if (b.Length > 0) ArrayPool<float>.Shared.Return(b);
        }
    }
}
