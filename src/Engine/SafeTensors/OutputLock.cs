using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Weld.Engine.SafeTensors;

/// <summary>
/// One writer per output: an advisory lock on <c>.NAME.weld-lock</c> beside the output folder, holding the PID and
/// host of the process that writes it. .NET takes it with <c>flock</c> (a <see cref="FileShare.None"/> open), which
/// the kernel drops when the process dies, so the lock of a killed run is taken over by the next one. A second
/// writer fails at once (never waits) and the message names the holder. Parts of a <c>--part</c> merge share the
/// output's lock and each hold their own part lock (<c>.NAME.weld-lock-I-of-N</c>), so parts run side by side but
/// not beside a whole merge or a finalize of the same output, nor twice the same part.
/// </summary>
public sealed partial class OutputLock : IDisposable
{
    private readonly string _path;
    private FileStream? _main;
    private FileStream? _part;
    private readonly string? _partPath;

    private OutputLock(string path, FileStream main, FileStream? part, string? partPath)
    {
        _path = path;
        _main = main;
        _part = part;
        _partPath = partPath;
    }

    /// <summary>The lock file of an output: <c>.NAME.weld-lock</c> beside it.</summary>
    public static string PathFor(string targetPath)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(targetPath));
        return Path.Combine(Path.GetDirectoryName(full) ?? "/", $".{Path.GetFileName(full)}.weld-lock");
    }

    /// <summary>
    /// Takes the lock of <paramref name="targetPath"/>: exclusive, or shared plus the exclusive lock of one part
    /// (<paramref name="part"/>, e.g. <c>2-of-8</c>).
    /// </summary>
    /// <exception cref="WeldException">Another process holds it (the message names its PID).</exception>
    public static OutputLock Acquire(string targetPath, string? part = null, Action<string>? log = null)
    {
        string path = PathFor(targetPath);
        for (int attempt = 0; ; attempt++)
        {
            FileStream main = part is null ? OpenExclusive(path, targetPath, log) : OpenShared(path, targetPath);
            // The file may have been deleted by the holder releasing it between our open and our lock: then we hold
            // a lock on a file nobody else can find. Check that the path still names what we locked.
            if (!StillNamed(path, main, part is null) && attempt < 5)
            {
                main.Dispose();
                continue;
            }
            if (part is null) return new OutputLock(path, main, null, null);
            string partPath = path + "-" + part;
            try
            {
                FileStream partStream = OpenExclusive(partPath, targetPath, log);
                return new OutputLock(path, main, partStream, partPath);
            }
            catch
            {
                main.Dispose();
                throw;
            }
        }
    }

    /// <summary>"PID n on HOST": what a lock file says about its holder (empty when unreadable).</summary>
    public static string DescribeHolder(string lockPath)
    {
        string text = ReadUnlocked(lockPath).Trim();
        string[] fields = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return fields.Length >= 2 ? $"PID {fields[0]} on {fields[1]}" : "";
    }

    /// <summary>Releases the lock and removes the lock files.</summary>
    public void Dispose()
    {
        if (_part is not null)
        {
            TryDelete(_partPath!);
            _part.Dispose();
            _part = null;
        }
        if (_main is null) return;
        if (_main.CanWrite)
        {
            TryDelete(_path);
            _main.Dispose();
        }
        else
        {
            // A shared holder: the last one out removes the file (only an exclusive open proves it is the last).
            _main.Dispose();
            try
            {
                using var last = new FileStream(_path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
                TryDelete(_path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Still shared by another part, or gone already.
            }
        }
        _main = null;
    }

    private static FileStream OpenExclusive(string path, string target, Action<string>? log)
    {
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (File.Exists(path) && e is not PathTooLongException)
        {
            throw Held(path, target);
        }
        try
        {
            if (stream.Length > 0)
            {
                // The file is left by a process that died without releasing it (the kernel dropped its lock).
                string stale = DescribeHolder(path);
                log?.Invoke($"{target}: taking over the lock {path} of a process that no longer runs{(stale.Length > 0 ? $" ({stale})" : "")}");
            }
            byte[] owner = Encoding.UTF8.GetBytes($"{Environment.ProcessId} {Environment.MachineName} {Guid.NewGuid():N}\n");
            stream.SetLength(0);
            stream.Write(owner);
            stream.Flush();
            return stream;
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    private static FileStream OpenShared(string path, string target)
    {
        // A read-only open takes flock(LOCK_SH): it coexists with the other parts, not with an exclusive holder.
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                if (!File.Exists(path))
                    using (new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite)) { }
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another part created it first.
            }
            catch (IOException) when (attempt < 5)
            {
                continue;
            }
            try
            {
                return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            }
            catch (FileNotFoundException) when (attempt < 5)
            {
                // Removed by a holder that just released it: create it again.
            }
            catch (IOException e) when (e is not FileNotFoundException)
            {
                throw Held(path, target);
            }
        }
    }

    private static WeldException Held(string path, string target)
    {
        string holder = DescribeHolder(path);
        return new WeldException(
            $"{Path.TrimEndingDirectorySeparator(Path.GetFullPath(target))}: another weld process {(holder.Length > 0 ? $"({holder}) " : "")}is writing this output (lock {path}); wait for it to finish or stop it");
    }

    private static bool StillNamed(string path, FileStream locked, bool exclusive)
    {
        if (!File.Exists(path)) return false;
        if (!exclusive) return true;
        // Our line (PID, host, a random token) is what the path shows, or someone else's file replaced ours.
        locked.Position = 0;
        var mine = new byte[locked.Length];
        locked.ReadExactly(mine);
        return ReadUnlocked(path) == Encoding.UTF8.GetString(mine);
    }

    /// <summary>Reads a file without taking .NET's <c>flock</c> (which the holder's exclusive lock would refuse).</summary>
    private static string ReadUnlocked(string path)
    {
        try
        {
            if (!OperatingSystem.IsWindows())
            {
                int fd = OpenRaw(path, 0 /* O_RDONLY */, 0);
                if (fd < 0) return "";
                using var handle = new SafeFileHandle(fd, ownsHandle: true);
                var buffer = new byte[512];
                int read = RandomAccess.Read(handle, buffer, 0);
                return Encoding.UTF8.GetString(buffer, 0, read);
            }
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DllNotFoundException or EntryPointNotFoundException)
        {
            return "";
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A lock file left behind is harmless: the next run takes it over.
        }
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int OpenRaw(string path, int flags, int mode);
}
