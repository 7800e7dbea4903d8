using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using Weld.Kernels;

namespace Weld.Engine.SafeTensors;

/// <summary>
/// Writes one safetensors file as a stream: the header (every tensor's name, dtype, shape and offsets) goes out
/// at construction, then the tensors' data is appended in the declared order. Never holds a tensor in memory.
/// </summary>
/// <remarks>
/// Tensors are laid out back to back in the order given. The header JSON is padded with spaces to a multiple
/// of 8 bytes, as the Hugging Face library does, so the data section starts 8-byte aligned.
/// </remarks>
public sealed class SafeTensorsWriter : IDisposable
{
    private static readonly IReadOnlyDictionary<string, string> s_defaultMetadata =
        new Dictionary<string, string> { ["format"] = "pt" };

    private readonly string _path;
    private readonly IReadOnlyList<TensorHeader> _tensors;
    private readonly ShardFileSink _sink;
    private int _current;          // index of the tensor the next byte belongs to
    private long _writtenInCurrent; // bytes of that tensor already written
    private bool _completed;
    private bool _disposed;

    /// <summary>
    /// Creates (or replaces) <paramref name="path"/> and writes the header for <paramref name="tensors"/>.
    /// </summary>
    /// <param name="path">The file to write.</param>
    /// <param name="tensors">The tensors, in the order their data will be written.</param>
    /// <param name="metadata">The header's <c>__metadata__</c>; null writes <c>{"format":"pt"}</c>, empty writes none.</param>
    /// <param name="directIo">
    /// Write with <c>O_DIRECT</c> (Linux), bypassing the page cache, where the file system allows it; otherwise, and
    /// when false, write through the page cache.
    /// </param>
    /// <exception cref="WeldException">A name is empty, reserved or repeated, or a shape is invalid.</exception>
    public SafeTensorsWriter(string path, IReadOnlyList<TensorHeader> tensors, IReadOnlyDictionary<string, string>? metadata,
        bool directIo = false)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(tensors);
        _path = Path.GetFullPath(path);
        _tensors = tensors;
        byte[] header = BuildHeader(_path, tensors, metadata ?? s_defaultMetadata);
        _sink = ShardFileSink.Create(_path, directIo);
        try
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            _sink.Write(prefix);
            _sink.Write(header);
            SkipEmptyTensors();
        }
        catch
        {
            _sink.Dispose();
            throw;
        }
    }

    /// <summary>Checksum of the whole file as written (header and data; <see cref="ShardChecksum"/>'s text form), once <see cref="Complete"/> has run.</summary>
    public string? Checksum => _sink.Checksum;

    /// <summary>The full path of the file being written.</summary>
    public string FilePath => _path;

    /// <summary>Name of the tensor the next byte belongs to; empty once every tensor is written.</summary>
    public string CurrentTensor => _current < _tensors.Count ? _tensors[_current].Name : string.Empty;

    /// <summary>Appends raw bytes; a call may run across tensor boundaries.</summary>
    /// <exception cref="WeldException">More bytes than the header declares.</exception>
    public void WriteBytes(ReadOnlySpan<byte> data)
    {
        ThrowIfClosed();
        while (!data.IsEmpty)
        {
            if (_current >= _tensors.Count)
            {
                throw new WeldException(
                    $"{_path}: {data.Length} bytes written after the last tensor; the header declares fewer bytes.");
            }

            long left = _tensors[_current].ByteLength - _writtenInCurrent;
            int take = (int)Math.Min(left, data.Length);
            _sink.Write(data[..take]);
            Advance(take);
            data = data[take..];
        }
    }

    /// <summary>
    /// Appends float32 values to the current tensor, converted to its dtype (rounding to nearest even).
    /// The values must fit in the current tensor: this call does not cross tensor boundaries.
    /// </summary>
    /// <exception cref="WeldException">
    /// The values run past the current tensor, the tensor is not at an element boundary, or its dtype is not
    /// a floating-point type.
    /// </exception>
    public void WriteFloat32(ReadOnlySpan<float> values)
    {
        ThrowIfClosed();
        if (values.IsEmpty) return;
        if (_current >= _tensors.Count)
            throw new WeldException($"{_path}: {values.Length} values written after the last tensor.");

        TensorHeader tensor = _tensors[_current];
        int size = DTypes.SizeOf(tensor.DType);
        if (!DTypes.IsFloatingPoint(tensor.DType))
        {
            throw new WeldException(
                $"{_path}: tensor '{tensor.Name}' is {DTypes.ToName(tensor.DType)}; float32 values can only be written to floating-point tensors.");
        }

        if (_writtenInCurrent % size != 0)
            throw new WeldException($"{_path}: tensor '{tensor.Name}' is not at an element boundary ({_writtenInCurrent} bytes written).");

        long elementsLeft = (tensor.ByteLength - _writtenInCurrent) / size;
        if (values.Length > elementsLeft)
        {
            throw new WeldException(
                $"{_path}: {values.Length} values written to tensor '{tensor.Name}', which has only {elementsLeft} elements left.");
        }

        long totalBytes = (long)values.Length * size;
        Span<byte> one = stackalloc byte[8];
        while (!values.IsEmpty)
        {
            // Convert straight into the sink's buffer.
            Span<byte> target = _sink.GetSpan(size);
            int take = Math.Min(Math.Min(target.Length, ShardFileSink.PieceBytes) / size, values.Length);
            if (take == 0)
            {
                // A value straddles the end of the sink's buffer (an odd-sized tensor came before this one).
                FloatEncoding.Encode(tensor.DType, values[..1], one[..size]);
                _sink.Write(one[..size]);
                values = values[1..];
                continue;
            }
            FloatEncoding.Encode(tensor.DType, values[..take], target[..(take * size)]);
            _sink.Advance(take * size);
            values = values[take..];
        }

        // Advance once at the end: the conversion loop stays within this tensor.
        Advance(totalBytes);
    }

    /// <summary>
    /// Checks that every declared byte was written, then flushes the file to disk (fsync) and closes it.
    /// </summary>
    /// <exception cref="WeldException">A tensor is missing bytes (the message names it).</exception>
    public void Complete()
    {
        ThrowIfClosed();
        if (_current < _tensors.Count)
        {
            TensorHeader tensor = _tensors[_current];
            throw new WeldException(
                $"{_path}: incomplete: tensor '{tensor.Name}' has {_writtenInCurrent} of {tensor.ByteLength} bytes written" +
                (_current + 1 < _tensors.Count ? $" and {_tensors.Count - _current - 1} more tensors follow it." : "."));
        }

        _sink.Complete();
        _completed = true;
    }

    /// <summary>Closes the file; a file not completed is left incomplete (the caller's output folder discards it).</summary>
    public void Dispose()
    {
        _disposed = true;
        _sink.Dispose();
    }

    private void Advance(long bytes)
    {
        _writtenInCurrent += bytes;
        if (_writtenInCurrent == _tensors[_current].ByteLength)
        {
            _current++;
            _writtenInCurrent = 0;
            SkipEmptyTensors();
        }
    }

    private void SkipEmptyTensors()
    {
        while (_current < _tensors.Count && _tensors[_current].ByteLength == 0) _current++;
    }

    private void ThrowIfClosed()
    {
        if (_completed) throw new InvalidOperationException($"{_path}: the file is already complete.");
        ObjectDisposedException.ThrowIf(_disposed, this);
    }

    private static byte[] BuildHeader(string path, IReadOnlyList<TensorHeader> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        var buffer = new MemoryStream();
        // Relaxed escaping keeps names readable ('+', '<' and non-ASCII as themselves); the JSON stays valid.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata.Count > 0)
            {
                json.WriteStartObject(SafeTensorsHeader.MetadataKey);
                foreach (KeyValuePair<string, string> entry in metadata) json.WriteString(entry.Key, entry.Value);
                json.WriteEndObject();
            }

            var names = new HashSet<string>(StringComparer.Ordinal);
            long offset = 0;
            foreach (TensorHeader tensor in tensors)
            {
                if (string.IsNullOrEmpty(tensor.Name) || tensor.Name == SafeTensorsHeader.MetadataKey)
                    throw new WeldException($"{path}: '{tensor.Name}' cannot be used as a tensor name.");
                if (!names.Add(tensor.Name))
                    throw new WeldException($"{path}: tensor '{tensor.Name}' is listed twice.");
                long byteLength;
                try
                {
                    foreach (long dimension in tensor.Shape)
                        if (dimension < 0) throw new OverflowException();
                    byteLength = tensor.ByteLength;
                }
                catch (OverflowException)
                {
                    throw new WeldException(
                        $"{path}: tensor '{tensor.Name}' has an invalid shape [{string.Join(", ", tensor.Shape)}].");
                }

                json.WriteStartObject(tensor.Name);
                json.WriteString("dtype", DTypes.ToName(tensor.DType));
                json.WriteStartArray("shape");
                foreach (long dimension in tensor.Shape) json.WriteNumberValue(dimension);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + byteLength);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += byteLength;
            }

            json.WriteEndObject();
        }

        int length = (int)buffer.Length;
        int padded = (length + 7) & ~7;
        for (int i = length; i < padded; i++) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }
}
