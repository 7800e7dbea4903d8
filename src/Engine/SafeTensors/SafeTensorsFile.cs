using System.Buffers.Binary;
using System.Numerics.Tensors;
using Weld.Kernels;

namespace Weld.Engine.SafeTensors;

/// <summary>
/// A safetensors file opened read-only: the header is parsed and validated at <see cref="Open"/>; tensor values are
/// read with positional reads (<c>pread</c>) into small per-thread buffers and converted to float32 on demand, so a
/// file truncated or shrunk while it is read is an <see cref="InvalidModelFileException"/> naming the file, never a
/// SIGBUS (nothing is memory-mapped).
/// </summary>
/// <remarks>
/// Every read method is thread-safe: the map is created once and only read, so many threads may read
/// chunks of the same tensor at once. Disposing while reads are in flight is the caller's error.
/// The format is little-endian; Weld runs on little-endian machines only.
/// </remarks>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    /// <summary>
    /// Elements converted per step in <see cref="ReadFloat32(TensorInfo, long, Span{float}, bool)"/>: the staging buffer
    /// (512 KiB of bf16) stays in the core's L2 cache between the read, the non-finite scan and the conversion.
    /// </summary>
    private const int ConversionChunk = 1 << 18;

    private readonly FileStream _stream;
    private readonly long _dataStart;
    private readonly long _dataLength;
    private readonly Dictionary<string, TensorInfo> _byName;
    private int _disposed;

    private SafeTensorsFile(string path, FileStream stream, long dataStart, long dataLength,
        List<TensorInfo> tensors, Dictionary<string, string> metadata)
    {
        FilePath = path;
        _stream = stream;
        _dataStart = dataStart;
        _dataLength = dataLength;
        Tensors = tensors;
        Metadata = metadata;
        _byName = new Dictionary<string, TensorInfo>(tensors.Count, StringComparer.Ordinal);
        foreach (TensorInfo tensor in tensors) _byName.Add(tensor.Name, tensor);
    }

    /// <summary>The full path of the file.</summary>
    public string FilePath { get; }

    /// <summary>The tensors, sorted by their offset in the data section.</summary>
    public IReadOnlyList<TensorInfo> Tensors { get; }

    /// <summary>The header's <c>__metadata__</c> (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Size of the data section in bytes (the sum of all tensors' bytes).</summary>
    public long DataLength => _dataLength;

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    /// <exception cref="InvalidModelFileException">The file is not a well-formed safetensors file.</exception>
    /// <exception cref="WeldException">The file cannot be opened.</exception>
    public static SafeTensorsFile Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string fullPath = Path.GetFullPath(path);
        FileStream stream;
        try
        {
            stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new WeldException($"{fullPath}: cannot open the file ({e.Message}).", e);
        }

        try
        {
            long fileLength = stream.Length;
            if (fileLength < 8)
            {
                throw new InvalidModelFileException(fullPath,
                    $"the file is {fileLength} bytes long, shorter than the 8-byte header length that starts every safetensors file (truncated, or not a safetensors file).");
            }

            Span<byte> prefix = stackalloc byte[8];
            ReadHeaderBytes(fullPath, stream, 0, prefix);
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerLength > SafeTensorsHeader.MaxHeaderBytes)
            {
                throw new InvalidModelFileException(fullPath,
                    $"the header length {headerLength} exceeds the 100 MB limit (corrupt file, or not a safetensors file).");
            }

            if ((long)headerLength > fileLength - 8)
            {
                throw new InvalidModelFileException(fullPath,
                    $"the header length {headerLength} runs past the end of the file ({fileLength} bytes): the file is truncated.");
            }

            byte[] json = new byte[(int)headerLength];
            ReadHeaderBytes(fullPath, stream, 8, json);
            long dataLength = fileLength - 8 - (long)headerLength;
            (List<TensorInfo> tensors, Dictionary<string, string> metadata) =
                SafeTensorsHeader.Parse(fullPath, json, dataLength);
            return new SafeTensorsFile(fullPath, stream, 8 + (long)headerLength, dataLength, tensors, metadata);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    private static void ReadHeaderBytes(string path, FileStream stream, long position, Span<byte> destination)
    {
        try
        {
            for (int done = 0; done < destination.Length;)
            {
                int read = RandomAccess.Read(stream.SafeFileHandle, destination[done..], position + done);
                if (read <= 0)
                    throw new InvalidModelFileException(path, "the file ended inside its header: it is truncated, or changed while Weld opened it.");
                done += read;
            }
        }
        catch (IOException e)
        {
            throw new InvalidModelFileException(path, $"cannot read the header: {e.Message}");
        }
    }

    /// <summary>Looks up a tensor by name.</summary>
    public bool TryGetTensor(string name, out TensorInfo tensor) => _byName.TryGetValue(name, out tensor!);

    /// <summary>The tensor called <paramref name="name"/>.</summary>
    /// <exception cref="WeldException">The file has no such tensor.</exception>
    public TensorInfo GetTensor(string name) =>
        _byName.TryGetValue(name, out TensorInfo? tensor)
            ? tensor
            : throw new WeldException($"{FilePath}: no tensor named '{name}'.");

    /// <summary>
    /// A copy of the raw bytes <c>[byteOffset, byteOffset + byteCount)</c> of <paramref name="tensor"/> (a new array
    /// per call; <see cref="ReadBytes"/> reads into a buffer of the caller's).
    /// </summary>
    /// <exception cref="InvalidModelFileException">The file is shorter than when it was opened, or cannot be read.</exception>
    public ReadOnlySpan<byte> GetBytes(TensorInfo tensor, long byteOffset, int byteCount)
    {
        CheckTensor(tensor);
        if (byteOffset < 0 || byteCount < 0 || byteOffset > tensor.ByteLength - byteCount)
        {
            throw new ArgumentOutOfRangeException(nameof(byteOffset),
                $"{FilePath}: bytes [{byteOffset}, {byteOffset + byteCount}) are outside tensor '{tensor.Name}' ({tensor.ByteLength} bytes).");
        }

        byte[] copy = GC.AllocateUninitializedArray<byte>(byteCount);
        ReadExactly(tensor, _dataStart + tensor.Offset + byteOffset, copy);
        return copy;
    }

    /// <summary>
    /// Converts elements <c>[firstElement, firstElement + destination.Length)</c> of <paramref name="tensor"/> to
    /// float32 (exact for every dtype except I32/I64 values beyond 2^24 and F64, which round to nearest).
    /// </summary>
    public void ReadFloat32(TensorInfo tensor, long firstElement, Span<float> destination) =>
        ReadFloat32(tensor, firstElement, destination, rejectNonFinite: false);

    /// <summary>
    /// As <see cref="ReadFloat32(TensorInfo, long, Span{float})"/>; with <paramref name="rejectNonFinite"/> the stored
    /// bits are scanned first and a NaN or ±Inf throws <see cref="NonFiniteInputException"/> naming the file and tensor.
    /// </summary>
    /// <exception cref="InvalidModelFileException">The file is shorter than when it was opened (truncated while read) or cannot be read.</exception>
    public void ReadFloat32(TensorInfo tensor, long firstElement, Span<float> destination, bool rejectNonFinite) =>
        ReadFloat32(tensor, firstElement, destination, rejectNonFinite, ReadOnlySpan<float>.Empty);

    /// <summary>
    /// As <see cref="ReadFloat32(TensorInfo, long, Span{float}, bool)"/>, then subtracts <paramref name="subtrahend"/>
    /// (empty: nothing; else as long as <paramref name="destination"/>) element by element in float32: destination =
    /// value − subtrahend, the same bits as subtracting afterwards, but done per staging chunk while it is in cache
    /// (bf16: in the conversion itself). The executor forms task vectors θ − θ_base with it.
    /// </summary>
    public void ReadFloat32(TensorInfo tensor, long firstElement, Span<float> destination, bool rejectNonFinite, ReadOnlySpan<float> subtrahend) =>
        ReadFloat32(tensor, firstElement, destination, rejectNonFinite, subtrahend, null, Span<double>.Empty);

    /// <summary>
    /// As <see cref="ReadFloat32(TensorInfo, long, Span{float}, bool, ReadOnlySpan{float})"/>, then DARE's drop of
    /// element i by its tensor index (<see cref="DecodeDrop"/>; none when <paramref name="drop"/> is null): for bf16 minus
    /// a subtrahend, inside the conversion; otherwise per staging chunk while it is in cache. The same bits as reading,
    /// then dropping. With <see cref="RandomDrop.WithNorms"/>, <paramref name="norms"/> gets the (‖δ‖₁, ‖drop(δ)‖₁)
    /// partials of every <see cref="DecodeDrop.NormChunkLength"/> chunk from the destination's start.
    /// </summary>
    public void ReadFloat32(TensorInfo tensor, long firstElement, Span<float> destination, bool rejectNonFinite, ReadOnlySpan<float> subtrahend,
        RandomDrop? drop, Span<double> norms)
    {
        bool subtract = !subtrahend.IsEmpty;
        if (subtract && subtrahend.Length != destination.Length)
            throw new ArgumentException($"The subtrahend holds {subtrahend.Length} elements, the destination {destination.Length}.", nameof(subtrahend));
        CheckTensor(tensor);
        int elementSize = DTypes.SizeOf(tensor.DType);
        long elementCount = tensor.ByteLength / elementSize;
        if (firstElement < 0 || firstElement > elementCount - destination.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(firstElement),
                $"{FilePath}: elements [{firstElement}, {firstElement + destination.Length}) are outside tensor '{tensor.Name}' ({elementCount} elements).");
        }

        long position = _dataStart + tensor.Offset + firstElement * elementSize;
        if (tensor.DType == DType.F32)
        {
            // Straight into the destination: no staging copy.
            Span<byte> bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(destination);
            ReadExactly(tensor, position, bytes);
            if (rejectNonFinite) CheckFinite(tensor, firstElement, bytes);
            if (subtract) TensorPrimitives.Subtract(destination, subtrahend, destination);
            if (drop is { } dropF32) DecodeDrop.Apply(destination, firstElement, dropF32, norms);
            return;
        }

        byte[] buffer = StagingBuffer(Math.Min(ConversionChunk, destination.Length) * elementSize);
        for (int done = 0; done < destination.Length; done += ConversionChunk)
        {
            int count = Math.Min(ConversionChunk, destination.Length - done);
            Span<byte> bytes = buffer.AsSpan(0, count * elementSize);
            ReadExactly(tensor, position + (long)done * elementSize, bytes);
            if (rejectNonFinite) CheckFinite(tensor, firstElement + done, bytes);
            Span<float> converted = destination.Slice(done, count);
            // The staging chunks start on the norm partials' grid (ConversionChunk is a multiple of NormChunkLength).
            Span<double> chunkNorms = drop is { WithNorms: true } ? norms.Slice(done / DecodeDrop.NormChunkLength * 2) : Span<double>.Empty;
            if (subtract && tensor.DType == DType.BF16)
            {
                fixed (byte* source = bytes)
                {
                    var stored = new ReadOnlySpan<ushort>(source, count);
                    if (drop is { } dropBf16)
                        DecodeDrop.Bf16Minus(stored, subtrahend.Slice(done, count), converted, firstElement + done, dropBf16, chunkNorms);
                    else
                        FloatConversions.Bf16ToSingleMinus(stored, subtrahend.Slice(done, count), converted);
                }
                continue;
            }
            fixed (byte* source = bytes)
                Convert(tensor.DType, source, count, converted);
            if (subtract) TensorPrimitives.Subtract(converted, subtrahend.Slice(done, count), converted);
            if (drop is { } dropOther) DecodeDrop.Apply(converted, firstElement + done, dropOther, chunkNorms);
        }
    }

    /// <summary>
    /// Copies the stored bytes <c>[byteOffset, byteOffset + destination.Length)</c> of <paramref name="tensor"/> into
    /// <paramref name="destination"/> with positional reads (safe against a file truncated meanwhile).
    /// </summary>
    /// <exception cref="InvalidModelFileException">The file is shorter than when it was opened, or cannot be read.</exception>
    public void ReadBytes(TensorInfo tensor, long byteOffset, Span<byte> destination)
    {
        CheckTensor(tensor);
        if (byteOffset < 0 || byteOffset > tensor.ByteLength - destination.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(byteOffset),
                $"{FilePath}: bytes [{byteOffset}, {byteOffset + destination.Length}) are outside tensor '{tensor.Name}' ({tensor.ByteLength} bytes).");
        }
        ReadExactly(tensor, _dataStart + tensor.Offset + byteOffset, destination);
    }

    [ThreadStatic] private static byte[]? t_staging;

    /// <summary>A per-thread staging buffer of at least <paramref name="bytes"/> bytes (grown, never shrunk below 64 KiB).</summary>
    private static byte[] StagingBuffer(int bytes)
    {
        byte[]? buffer = t_staging;
        if (buffer is null || buffer.Length < bytes)
            t_staging = buffer = GC.AllocateUninitializedArray<byte>(Math.Max(bytes, 1 << 16));
        return buffer;
    }

    /// <summary>Test seam: runs before each positional read with the file and the tensor about to be read.</summary>
    internal static Action<SafeTensorsFile, TensorInfo>? BeforeRead { get; set; }

    private void ReadExactly(TensorInfo tensor, long position, Span<byte> destination)
    {
        BeforeRead?.Invoke(this, tensor);
        int done = 0;
        try
        {
            while (done < destination.Length)
            {
                int read = RandomAccess.Read(_stream.SafeFileHandle, destination.Slice(done), position + done);
                if (read <= 0)
                {
                    long now = RandomAccess.GetLength(_stream.SafeFileHandle);
                    throw new InvalidModelFileException(FilePath,
                        $"the file ends at byte {now:N0} but tensor '{tensor.Name}' needs bytes up to {position + destination.Length:N0} " +
                        $"(it was {_dataStart + _dataLength:N0} bytes when opened): it was truncated or replaced while Weld read it.");
                }
                done += read;
            }
        }
        catch (IOException e)
        {
            throw new InvalidModelFileException(FilePath, $"cannot read tensor '{tensor.Name}': {e.Message}");
        }
    }

    private void CheckFinite(TensorInfo tensor, long firstElement, ReadOnlySpan<byte> bytes)
    {
        long bad = NonFiniteScan.IndexOfNonFinite(tensor.DType, bytes);
        if (bad >= 0)
            throw new NonFiniteInputException(FilePath, tensor.Name, firstElement + bad, NonFiniteScan.IsNaN(tensor.DType, bytes, bad));
    }

    /// <summary>
    /// Checks that elements <c>[firstElement, firstElement + count)</c> lie in <paramref name="tensor"/>. Reads are
    /// positional now (the kernel's read-ahead streams the file), so nothing is mapped ahead any more.
    /// </summary>
    public void Prefetch(TensorInfo tensor, long firstElement, long count)
    {
        CheckTensor(tensor);
        int elementSize = DTypes.SizeOf(tensor.DType);
        long elementCount = tensor.ByteLength / elementSize;
        if (firstElement < 0 || count < 0 || firstElement > elementCount - count)
        {
            throw new ArgumentOutOfRangeException(nameof(firstElement),
                $"{FilePath}: elements [{firstElement}, {firstElement + count}) are outside tensor '{tensor.Name}' ({elementCount} elements).");
        }
    }

    private static void Convert(DType dtype, byte* source, int count, Span<float> destination)
    {
        switch (dtype)
        {
            case DType.F32: new ReadOnlySpan<float>(source, count).CopyTo(destination); break;
            case DType.BF16: FloatConversions.Bf16ToSingle(new ReadOnlySpan<ushort>(source, count), destination); break;
            case DType.F16: FloatConversions.HalfToSingle(new ReadOnlySpan<ushort>(source, count), destination); break;
            case DType.F64: FloatConversions.DoubleToSingle(new ReadOnlySpan<double>(source, count), destination); break;
            case DType.F8_E4M3: FloatConversions.Fp8E4M3ToSingle(new ReadOnlySpan<byte>(source, count), destination); break;
            case DType.F8_E5M2: FloatConversions.Fp8E5M2ToSingle(new ReadOnlySpan<byte>(source, count), destination); break;
            case DType.I64: FloatConversions.Int64ToSingle(new ReadOnlySpan<long>(source, count), destination); break;
            case DType.I32: FloatConversions.Int32ToSingle(new ReadOnlySpan<int>(source, count), destination); break;
            case DType.I16: FloatConversions.Int16ToSingle(new ReadOnlySpan<short>(source, count), destination); break;
            case DType.I8: FloatConversions.SByteToSingle(new ReadOnlySpan<sbyte>(source, count), destination); break;
            case DType.U8: FloatConversions.ByteToSingle(new ReadOnlySpan<byte>(source, count), destination); break;
            case DType.BOOL: FloatConversions.BoolToSingle(new ReadOnlySpan<byte>(source, count), destination); break;
            default: throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown dtype.");
        }
    }

    /// <summary>Guards memory safety: the tensor must lie inside this file's data section and the file be open.</summary>
    private void CheckTensor(TensorInfo tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (tensor.Offset < 0 || tensor.ByteLength < 0 || tensor.Offset > _dataLength - tensor.ByteLength)
        {
            throw new ArgumentException(
                $"{FilePath}: tensor '{tensor.Name}' [{tensor.Offset}, {tensor.Offset + tensor.ByteLength}) does not belong to this file.",
                nameof(tensor));
        }
    }

    /// <summary>Unmaps the file and closes it.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stream.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => FilePath;
}
