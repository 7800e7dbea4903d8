using System.Buffers;

namespace Weld.Engine.SafeTensors;

/// <summary>
/// Where a <see cref="SafeTensorsWriter"/>'s bytes go: a sequential byte stream from offset 0 that the writer fills
/// through <see cref="IBufferWriter{T}"/> (so narrowing conversions write straight into the sink's buffer), then
/// completes (flushed to disk) or abandons.
/// </summary>
internal abstract class ShardFileSink : IBufferWriter<byte>, IDisposable
{
    /// <summary>Opens <paramref name="path"/> for writing (created or truncated): direct I/O when asked and the file system allows it.</summary>
    public static ShardFileSink Create(string path, bool directIo) =>
        StreamFactory.Value is { } factory ? new BufferedShardFileSink(factory(path))
        : (directIo ? DirectShardFileSink.TryCreate(path) : null) ?? (ShardFileSink)new BufferedShardFileSink(path);

    /// <summary>
    /// Tests only: when set (for the current async flow), shards are written through the stream it returns for a
    /// path, e.g. one that fails with "no space left on device" after a number of bytes.
    /// </summary>
    internal static readonly AsyncLocal<Func<string, Stream>?> StreamFactory = new();

    /// <summary>Checksum of the bytes written, in order (header and data; fed by the sinks as they write).</summary>
    protected ShardChecksum Hash { get; } = new();

    /// <summary>Checksum of the whole file (<see cref="ShardChecksum"/>'s text form), available after <see cref="Complete"/>.</summary>
    public string? Checksum { get; protected set; }

    /// <inheritdoc />
    public abstract Span<byte> GetSpan(int sizeHint = 0);

    /// <inheritdoc />
    public Memory<byte> GetMemory(int sizeHint = 0) => throw new NotSupportedException("Shard sinks hand out spans only.");

    /// <inheritdoc />
    public abstract void Advance(int count);

    /// <summary>
    /// Bytes handed to <see cref="Advance"/> at a time by <see cref="Write"/> and the writer's conversions: a sink
    /// hashes what is advanced, and pieces this size are still in the core's cache when it does.
    /// </summary>
    public const int PieceBytes = 1 << 17;

    /// <summary>Writes all of <paramref name="data"/>.</summary>
    public void Write(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            Span<byte> target = GetSpan();
            int take = Math.Min(Math.Min(target.Length, data.Length), PieceBytes);
            data[..take].CopyTo(target);
            Advance(take);
            data = data[take..];
        }
    }

    /// <summary>Writes what is buffered, makes the file durable (fsync) and closes it.</summary>
    public abstract void Complete();

    /// <summary>Closes the file without completing it.</summary>
    public abstract void Dispose();
}

/// <summary>Through the page cache: a <see cref="FileStream"/> and a 64 KiB staging span (small writes copy fastest).</summary>
internal sealed class BufferedShardFileSink : ShardFileSink
{
    private const int StagingBytes = 1 << 16;
    private readonly Stream _stream;
    private readonly byte[] _staging = new byte[StagingBytes];

    public BufferedShardFileSink(string path)
        : this(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0))
    {
    }

    public BufferedShardFileSink(Stream stream) => _stream = stream;

    public override Span<byte> GetSpan(int sizeHint = 0) => _staging;

    public override void Advance(int count)
    {
        Hash.Append(_staging.AsSpan(0, count));
        _stream.Write(_staging, 0, count);
    }

    public override void Complete()
    {
        if (_stream is FileStream file) file.Flush(flushToDisk: true);
        else _stream.Flush();
        _stream.Dispose();
        Checksum = Hash.GetTextAndReset();
    }

    public override void Dispose()
    {
        _stream.Dispose();
    }
}
