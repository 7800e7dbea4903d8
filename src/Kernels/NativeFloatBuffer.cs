using System.Buffers;
using System.Runtime.InteropServices;

namespace Weld.Kernels;

/// <summary>
/// A float32 buffer in native memory (64-byte aligned, uninitialised), freed the moment it is disposed.
/// Merge working sets are a few huge buffers whose sizes change from tensor to tensor: the GC keeps freed
/// large-object space committed, so managed arrays would hold the process above its memory budget; native
/// buffers give the memory back to the OS at once.
/// </summary>
public sealed unsafe class NativeFloatBuffer : MemoryManager<float>
{
    private float* _pointer;

    /// <summary>Allocates <paramref name="length"/> floats.</summary>
    public NativeFloatBuffer(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        _pointer = (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(length, 1) * sizeof(float), 64);
    }

    /// <summary>Floats in the buffer.</summary>
    public int Length { get; }

    /// <summary>The whole buffer.</summary>
    public Span<float> Span => GetSpan();

    /// <inheritdoc />
    public override Span<float> GetSpan()
    {
        ObjectDisposedException.ThrowIf(_pointer == null, this);
        return new Span<float>(_pointer, Length);
    }

    /// <inheritdoc />
    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ObjectDisposedException.ThrowIf(_pointer == null, this);
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)elementIndex, (uint)Length);
        return new MemoryHandle(_pointer + elementIndex);
    }

    /// <inheritdoc />
    public override void Unpin()
    {
        // Native memory never moves.
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (_pointer == null) return;
        NativeMemory.AlignedFree(_pointer);
        _pointer = null;
    }
}
