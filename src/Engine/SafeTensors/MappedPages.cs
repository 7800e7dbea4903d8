using System.Runtime.InteropServices;

namespace Weld.Engine.SafeTensors;

/// <summary>
/// Maps a range of a memory-mapped file in one call before it is read. Touching mapped pages one fault at a time
/// costs a trap per 64 KiB (fault-around), which on virtual machines is a large share of a merge's system time;
/// <c>madvise(MADV_POPULATE_READ)</c> (Linux 5.14+) fills the page tables for the whole range at once. Anywhere else,
/// or if the kernel refuses, nothing happens and the pages fault in as usual.
/// </summary>
internal static unsafe partial class MappedPages
{
    private const int PopulateRead = 22; // MADV_POPULATE_READ
    private const long PageSize = 4096;

    // Ranges smaller than this fault in cheaply enough.
    private const long MinimumBytes = 1 << 20;

    private static bool s_unsupported = !OperatingSystem.IsLinux();

    /// <summary>Pre-faults the mapped pages of [<paramref name="start"/>, start + <paramref name="length"/>).</summary>
    public static void Populate(byte* start, long length)
    {
        if (s_unsupported || length < MinimumBytes) return;
        long first = (long)start & ~(PageSize - 1);
        long end = (long)start + length;
        try
        {
            if (Madvise((nint)first, (nuint)(end - first), PopulateRead) != 0)
                s_unsupported = true; // an older kernel (EINVAL): stop asking
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            s_unsupported = true;
        }
    }

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static partial int Madvise(nint address, nuint length, int advice);
}
