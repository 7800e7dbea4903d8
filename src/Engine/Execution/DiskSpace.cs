using System.Globalization;

namespace Weld.Engine.Execution;

/// <summary>Free space checks and the "disk full" message (the path and the bytes needed, never a stack trace).</summary>
internal static class DiskSpace
{
    private const int Enospc = 28, WindowsDiskFull = unchecked((int)0x80070070), WindowsHandleDiskFull = unchecked((int)0x80070027);

    /// <summary>True when <paramref name="error"/> is (or wraps) "no space left on device".</summary>
    public static bool IsDiskFull(Exception? error)
    {
        for (; error is not null; error = error.InnerException)
            if (error is IOException io && (io.HResult is Enospc or WindowsDiskFull or WindowsHandleDiskFull
                || io.Message.Contains("No space left on device", StringComparison.OrdinalIgnoreCase)))
                return true;
        return false;
    }

    /// <summary>Bytes free to this user on the file system holding <paramref name="path"/>; null when unknown.</summary>
    public static long? FreeBytes(string path)
    {
        try
        {
            return new DriveInfo(path).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>Refuses, before anything is written, a run whose shards cannot fit the free space.</summary>
    public static void EnsureRoomFor(string target, string folder, long bytes)
    {
        if (FreeBytes(folder) is not long free || free >= bytes) return;
        throw new WeldException(string.Create(CultureInfo.InvariantCulture,
            $"{target}: not enough disk space: {bytes:N0} bytes of shards to write, {free:N0} free on the file system of {folder} ({bytes - free:N0} more needed); free space or choose another output"));
    }

    /// <summary>The one-line error for a disk that filled up during the run.</summary>
    public static WeldException Full(string target, string folder, Exception error, long bytesLeft, string aftermath)
    {
        long? free = FreeBytes(folder);
        string need = bytesLeft > 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytesLeft:N0} bytes of shards were still to write")
              + (free is long f ? string.Create(CultureInfo.InvariantCulture, $", {f:N0} are free ({Math.Max(0, bytesLeft - f):N0} more needed)") : "")
            : "";
        string file = error is IOException io ? FileOf(io.Message) : "";
        return new WeldException($"{target}: the disk is full (no space left on device{(file.Length > 0 ? $" writing {file}" : $" under {folder}")}){(need.Length > 0 ? "; " + need : "")}; {aftermath}", error);
    }

    /// <summary>The path .NET puts in an I/O message (<c>... : 'PATH'</c>), if any.</summary>
    private static string FileOf(string message)
    {
        int end = message.LastIndexOf('\'');
        int start = end > 0 ? message.LastIndexOf('\'', end - 1) : -1;
        return start >= 0 ? message[(start + 1)..end] : "";
    }
}
