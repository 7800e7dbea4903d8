using BenchmarkDotNet.Attributes;
using Weld.Engine.SafeTensors;

namespace Weld.Bench;

/// <summary>A ~1 GB BF16 checkpoint of Llama-7B-like matrices, generated once per benchmark class.</summary>
internal static class Bf16Checkpoint
{
    /// <summary>8 MLP matrices [11008, 4096] and 8 attention matrices [4096, 4096]: 990 MB of BF16.</summary>
    public static IReadOnlyList<TensorHeader> Tensors { get; } = BuildTensors();

    private static List<TensorHeader> BuildTensors()
    {
        var tensors = new List<TensorHeader>();
        for (int layer = 0; layer < 8; layer++)
        {
            tensors.Add(new TensorHeader($"model.layers.{layer}.mlp.up_proj.weight", DType.BF16, [11008, 4096]));
            tensors.Add(new TensorHeader($"model.layers.{layer}.self_attn.q_proj.weight", DType.BF16, [4096, 4096]));
        }

        return tensors;
    }

    /// <summary>One million N(0, 0.02)-ish float32 values (sum of uniforms), reused as the source of all data.</summary>
    public static float[] RandomWeights(int seed)
    {
        var random = new Random(seed);
        var values = new float[1 << 20];
        for (int i = 0; i < values.Length; i++)
            values[i] = (float)((random.NextDouble() + random.NextDouble() + random.NextDouble() - 1.5) * 0.04);
        return values;
    }

    /// <summary>Writes the checkpoint into <paramref name="path"/> from a repeated block of random values.</summary>
    public static void Write(string path, float[] block)
    {
        using var writer = new SafeTensorsWriter(path, Tensors, null);
        foreach (TensorHeader tensor in Tensors)
        {
            for (long done = 0; done < tensor.ElementCount; done += block.Length)
                writer.WriteFloat32(block.AsSpan(0, (int)Math.Min(block.Length, tensor.ElementCount - done)));
        }

        writer.Complete();
    }

    public static string NewTempFolder()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"weld-bench-io-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }
}

/// <summary>
/// Reading a memory-mapped BF16 checkpoint and converting every tensor to float32 in multi-threaded chunks,
/// against a plain multi-threaded copy of the same mapped bytes (page cache warm in both).
/// </summary>
[MemoryDiagnoser]
public class ReadBenchmarks
{
    private const int ChunkElements = 1 << 20;

    private string _folder = "";
    private SafeTensorsFile _file = null!;
    private (TensorInfo Tensor, long First)[] _chunks = [];

    /// <summary>Writes the checkpoint, opens it, and touches every page once so the cache is warm.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _folder = Bf16Checkpoint.NewTempFolder();
        string path = Path.Combine(_folder, "model.safetensors");
        Bf16Checkpoint.Write(path, Bf16Checkpoint.RandomWeights(1));
        _file = SafeTensorsFile.Open(path);
        var chunks = new List<(TensorInfo, long)>();
        foreach (TensorInfo tensor in _file.Tensors)
            for (long first = 0; first < tensor.ElementCount; first += ChunkElements) chunks.Add((tensor, first));
        _chunks = [.. chunks];
        CopyMappedBytes();
    }

    /// <summary>Closes and deletes the checkpoint.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _file.Dispose();
        Directory.Delete(_folder, recursive: true);
    }

    /// <summary>Baseline: copy every mapped byte into a per-thread buffer (memory bandwidth bound).</summary>
    [Benchmark(Baseline = true)]
    public long CopyMappedBytes()
    {
        long total = 0;
        Parallel.For(0, _chunks.Length, () => new byte[ChunkElements * 2], (i, _, buffer) =>
        {
            (TensorInfo tensor, long first) = _chunks[i];
            int count = (int)Math.Min(ChunkElements, tensor.ElementCount - first);
            _file.GetBytes(tensor, first * 2, count * 2).CopyTo(buffer);
            return buffer;
        }, buffer => Interlocked.Add(ref total, buffer[0]));
        return total;
    }

    /// <summary>Convert every tensor to float32 with <see cref="SafeTensorsFile.ReadFloat32"/>.</summary>
    [Benchmark]
    public long ReadAllAsFloat32()
    {
        long total = 0;
        Parallel.For(0, _chunks.Length, () => new float[ChunkElements], (i, _, buffer) =>
        {
            (TensorInfo tensor, long first) = _chunks[i];
            int count = (int)Math.Min(ChunkElements, tensor.ElementCount - first);
            _file.ReadFloat32(tensor, first, buffer.AsSpan(0, count));
            return buffer;
        }, buffer => Interlocked.Add(ref total, (long)buffer[0]));
        return total;
    }
}

/// <summary>
/// Writing a ~1 GB BF16 checkpoint with <see cref="SafeTensorsWriter"/> (float32 in, converted, fsync'ed), against
/// copying a same-sized file with a FileStream copy (also fsync'ed).
/// </summary>
[MemoryDiagnoser]
public class WriteBenchmarks
{
    private string _folder = "";
    private string _source = "";
    private float[] _block = [];

    /// <summary>Creates the source file for the copy baseline and the float32 block the writer converts.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _folder = Bf16Checkpoint.NewTempFolder();
        _block = Bf16Checkpoint.RandomWeights(2);
        _source = Path.Combine(_folder, "source.safetensors");
        Bf16Checkpoint.Write(_source, _block);
    }

    /// <summary>Deletes every file written.</summary>
    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(_folder, recursive: true);

    /// <summary>Baseline: copy the same-sized file with a FileStream copy, flushed to disk.</summary>
    [Benchmark(Baseline = true)]
    public long CopyFile()
    {
        string target = Path.Combine(_folder, "copy.safetensors");
        using var input = new FileStream(_source, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        using var output = new FileStream(target, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        input.CopyTo(output, 1 << 20);
        output.Flush(flushToDisk: true);
        return output.Length;
    }

    /// <summary>Write the checkpoint with <see cref="SafeTensorsWriter.WriteFloat32"/> (bf16 conversion + fsync).</summary>
    [Benchmark]
    public long WriteWithSafeTensorsWriter()
    {
        string target = Path.Combine(_folder, "written.safetensors");
        Bf16Checkpoint.Write(target, _block);
        return new FileInfo(target).Length;
    }
}
