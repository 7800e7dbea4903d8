using System.Buffers;
using System.Runtime.InteropServices;

namespace Weld.Kernels;

/// <summary>
/// A float32 buffer in native memory (64-byte aligned, uninitialised), freed the moment it is disposed.
/// Merge working sets are a few huge buffers whose sizes change from tensor to tensor: the GC keeps freed
/// large-object space committed, so managed arrays would hold the process above its memory budget; native
/// buffers give the memory back to the OS at once.
/// </summary>
public sealed unsafe partial class NativeFloatBuffer : MemoryManager<float>
{
    // Buffers of at least this size are 2 MiB aligned and asked to be backed by transparent huge pages: a fresh
    // buffer then takes one page fault per 2 MiB instead of per 4 KiB, which on virtual machines (where every fault
    // is a trap to the hypervisor) was a tenth of a TIES merge's CPU time.
    private const long HugePageBytes = 2 << 20;
    private const int AdviseHugePage = 14; // MADV_HUGEPAGE
    private static bool s_hugePagesUnsupported = !OperatingSystem.IsLinux();

    private float* _pointer;

    /// <summary>Allocates <paramref name="length"/> floats.</summary>
    public NativeFloatBuffer(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        long bytes = (long)Math.Max(length, 1) * sizeof(float);
        if (bytes >= 2 * HugePageBytes)
        {
            long rounded = (bytes + HugePageBytes - 1) & ~(HugePageBytes - 1);
            _pointer = (float*)NativeMemory.AlignedAlloc((nuint)rounded, (nuint)HugePageBytes);
            AdviseHugePages(_pointer, rounded);
        }
        else
        {
            _pointer = (float*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        }
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

    private static void AdviseHugePages(float* start, long bytes)
    {
        if (s_hugePagesUnsupported) return;
        try
        {
            // Advice only: where THP is off or the kernel refuses, the buffer simply keeps 4 KiB pages.
            if (Madvise((nint)start, (nuint)bytes, AdviseHugePage) != 0) s_hugePagesUnsupported = true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            s_hugePagesUnsupported = true;
        }
    }

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static partial int Madvise(nint address, nuint length, int advice);
}
