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
    // Buffers of at least this size are their own 2 MiB-aligned mapping. They get 4 KiB pages unless WELD_HUGE_PAGES=1
    // asks for transparent huge pages (MADV_HUGEPAGE). Huge pages take one fault per 2 MiB instead of 512, but on a VM
    // whose host reclaims the guest's free memory (virtio-balloon free page reporting, as on the bench VM) a fresh
    // 2 MiB page is host memory to fault in: first touch measured 2.4-2.8 s/GiB with huge pages against 0.43 s/GiB with
    // 4 KiB pages, i.e. 1.1 s of system time per 1B-shaped TIES merge (bench/RESULTS.md). Where guest memory is fully
    // backed (bare metal) huge pages can win a little; the opt-in is for those machines.
    private const long HugePageBytes = 2 << 20;
    private const int AdviseHugePage = 14; // MADV_HUGEPAGE
    private static bool s_skipHugePageAdvice = !OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("WELD_HUGE_PAGES") != "1";
    private static bool s_mapUnsupported = !OperatingSystem.IsLinux();

    private const int ProtectReadWrite = 0x3, MapPrivateAnonymous = 0x22, RemapMayMove = 0x1;

    private float* _pointer;
    private long _mappedBytes; // > 0: the buffer is its own anonymous mapping (Linux, large buffers), resizable in place

    /// <summary>Allocates <paramref name="length"/> floats.</summary>
    public NativeFloatBuffer(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        Allocate(length);
    }

    /// <summary>Floats in the buffer.</summary>
    public int Length { get; private set; }

    /// <summary>
    /// Makes the buffer <paramref name="length"/> floats long; the contents are undefined afterwards. A large buffer on
    /// Linux keeps its physical pages (<c>mremap</c> moves them, it neither copies nor zeroes): a pool that resizes a
    /// free buffer for a request of another size pays the kernel's page zeroing only for the growth, where freeing it
    /// and allocating anew would fault in and zero every page again.
    /// </summary>
    public void Resize(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ObjectDisposedException.ThrowIf(_pointer == null, this);
        long bytes = (long)Math.Max(length, 1) * sizeof(float);
        if (_mappedBytes > 0 && bytes >= 2 * HugePageBytes)
        {
            long rounded = RoundToHugePages(bytes);
            if (rounded != _mappedBytes)
            {
                nint moved = Mremap((nint)_pointer, (nuint)_mappedBytes, (nuint)rounded, RemapMayMove);
                if (moved == -1) throw new OutOfMemoryException($"mremap of {_mappedBytes:N0} to {rounded:N0} bytes failed (errno {Marshal.GetLastPInvokeError()})");
                _pointer = (float*)moved;
                _mappedBytes = rounded;
                AdviseHugePages(_pointer, rounded);
            }
            Length = length;
            return;
        }
        Free();
        Length = length;
        Allocate(length);
    }

    private void Allocate(int length)
    {
        long bytes = (long)Math.Max(length, 1) * sizeof(float);
        if (bytes >= 2 * HugePageBytes && !s_mapUnsupported)
        {
            long rounded = RoundToHugePages(bytes);
            try
            {
                nint mapped = Mmap(0, (nuint)rounded, ProtectReadWrite, MapPrivateAnonymous, -1, 0);
                if (mapped != -1)
                {
                    _pointer = (float*)mapped;
                    _mappedBytes = rounded;
                    AdviseHugePages(_pointer, rounded);
                    return;
                }
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                s_mapUnsupported = true;
            }
        }
        if (bytes >= 2 * HugePageBytes)
        {
            long rounded = RoundToHugePages(bytes);
            _pointer = (float*)NativeMemory.AlignedAlloc((nuint)rounded, (nuint)HugePageBytes);
            AdviseHugePages(_pointer, rounded);
        }
        else
        {
            _pointer = (float*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        }
    }

    private static long RoundToHugePages(long bytes) => (bytes + HugePageBytes - 1) & ~(HugePageBytes - 1);

    private void Free()
    {
        if (_mappedBytes > 0) Munmap((nint)_pointer, (nuint)_mappedBytes);
        else NativeMemory.AlignedFree(_pointer);
        _pointer = null;
        _mappedBytes = 0;
    }

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
        Free();
    }

    private static void AdviseHugePages(float* start, long bytes)
    {
        if (s_skipHugePageAdvice) return;
        try
        {
            // Advice only: where THP is off or the kernel refuses, the buffer simply keeps 4 KiB pages.
            if (Madvise((nint)start, (nuint)bytes, AdviseHugePage) != 0) s_skipHugePageAdvice = true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            s_skipHugePageAdvice = true;
        }
    }

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static partial int Madvise(nint address, nuint length, int advice);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "mremap", SetLastError = true)]
    private static partial nint Mremap(nint address, nuint oldLength, nuint newLength, int flags);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(nint address, nuint length);
}
