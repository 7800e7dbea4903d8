using System.Text;
using System.Text.Json.Nodes;

namespace Weld.Engine.SafeTensors;

/// <summary>
/// An output folder written in a temporary sibling (<c>.&lt;name&gt;.weld-partial-&lt;random&gt;</c>) and renamed into
/// place only by <see cref="Commit"/>, so that an interrupted or failed write never leaves a folder that looks
/// finished. Disposing without committing deletes the temporary folder.
/// <para>
/// Data safety: the output is locked for its whole life (<see cref="OutputLock"/>: one writer per output); every
/// committed folder carries a <see cref="MarkerFileName"/> marker; overwriting replaces only an empty folder or one
/// with that marker, never a foreign folder or file, and never a path that is, holds or lies inside an input. The old
/// folder is moved aside only once the new one is complete and deleted only after the new one is in place.
/// </para>
/// </summary>
public sealed class OutputFolder : IDisposable
{
    /// <summary>The marker every folder Weld writes carries (a small JSON record); <c>--overwrite</c> looks for it.</summary>
    public const string MarkerFileName = ".weld";

    private readonly bool _overwrite;
    private readonly string[] _inputs;
    private readonly OutputLock _lock;
    private bool _committed;
    private bool _disposed;

    /// <summary>Creates the temporary folder beside <paramref name="targetPath"/>.</summary>
    /// <param name="targetPath">The folder to produce.</param>
    /// <param name="overwrite">Whether an existing target may be replaced at <see cref="Commit"/> (only an empty folder or one Weld wrote).</param>
    /// <param name="inputs">The command's inputs (model folders, files, adapters, the recipe): the target may not be, hold or lie inside one.</param>
    /// <exception cref="WeldException">The target exists and may not be replaced, overlaps an input, or another process writes it (checked now, before any work).</exception>
    public OutputFolder(string targetPath, bool overwrite, IEnumerable<string>? inputs = null)
        : this(targetPath, overwrite, resumable: false, inputs, part: null, log: null, heldLock: null)
    {
    }

    private OutputFolder(string targetPath, bool overwrite, bool resumable, IEnumerable<string>? inputs, string? part, Action<string>? log,
        OutputLock? heldLock)
    {
        try
        {
            TargetPath = CheckedTargetPath(targetPath);
            _overwrite = overwrite;
            _inputs = (inputs ?? []).Where(i => !string.IsNullOrEmpty(i)).ToArray();
            ThrowIfTargetMayNotBeWritten();
        }
        catch
        {
            heldLock?.Dispose();
            throw;
        }

        string parent = Path.GetDirectoryName(TargetPath)
            ?? throw new WeldException($"{TargetPath}: cannot write a model to a filesystem root.");
        try
        {
            CreateParent(parent);
        }
        catch
        {
            heldLock?.Dispose();
            throw;
        }
        _lock = heldLock ?? OutputLock.Acquire(TargetPath, part, log);
        try
        {
            WorkPath = resumable ? PartialPathFor(TargetPath) : Path.Combine(parent, $".{Path.GetFileName(TargetPath)}.weld-partial-{Guid.NewGuid():N}");
            Directory.CreateDirectory(WorkPath);
        }
        catch
        {
            _lock.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens the fixed-name partial folder of <paramref name="targetPath"/> (<c>.NAME.weld-partial</c> beside it),
    /// keeping what an interrupted run or other parts left there, so a run can resume and parts can meet.
    /// </summary>
    /// <param name="targetPath">The folder to produce.</param>
    /// <param name="overwrite">Whether an existing target may be replaced (see the constructor).</param>
    /// <param name="inputs">The run's inputs (see the constructor).</param>
    /// <param name="part">For one part of a <c>--part</c> run (e.g. <c>2-of-8</c>): share the output's lock with the other parts.</param>
    /// <param name="log">Where a taken-over stale lock is reported.</param>
    /// <param name="heldLock">The output's lock, taken earlier by the caller (before a long planning); the folder owns it from now on.</param>
    public static OutputFolder OpenResumable(string targetPath, bool overwrite, IEnumerable<string>? inputs = null, string? part = null,
        Action<string>? log = null, OutputLock? heldLock = null) => new(targetPath, overwrite, resumable: true, inputs, part, log, heldLock);

    /// <summary>The fixed partial folder of a target: <c>.NAME.weld-partial</c> beside it.</summary>
    public static string PartialPathFor(string targetPath)
    {
        string full = CheckedTargetPath(targetPath);
        return Path.Combine(Path.GetDirectoryName(full) ?? "/", $".{Path.GetFileName(full)}.weld-partial");
    }

    /// <summary>When set, Dispose without Commit keeps the work folder (finished shards a resume can reuse).</summary>
    public bool KeepOnDispose { get; set; }

    /// <summary>The folder to produce (full path).</summary>
    public string TargetPath { get; }

    /// <summary>The temporary folder to write into (same filesystem as the target, so the final rename is atomic).</summary>
    public string WorkPath { get; } = "";

    /// <summary>Removes everything in <see cref="WorkPath"/> (a stale partial folder of an earlier run; the lock is held).</summary>
    public void ClearWork()
    {
        foreach (string dir in Directory.GetDirectories(WorkPath)) Directory.Delete(dir, recursive: true);
        foreach (string file in Directory.GetFiles(WorkPath)) File.Delete(file);
    }

    /// <summary>
    /// Checks an output path given on a command line or by an embedder: not empty, no control characters, not a
    /// file-system root. Returns the full path without a trailing separator.
    /// </summary>
    /// <exception cref="WeldException">The path cannot name an output folder.</exception>
    public static string CheckedTargetPath(string? targetPath)
    {
        if (string.IsNullOrWhiteSpace(targetPath))
            throw new WeldException($"output path '{targetPath}': empty; name the folder to create (e.g. -o out/merged)");
        if (targetPath.Any(char.IsControl))
            throw new WeldException($"output path '{targetPath.Replace("\0", "\\0")}': contains control characters");
        string full;
        try
        {
            full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(targetPath));
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new WeldException($"output path '{targetPath}': {e.Message}");
        }
        if (Path.GetDirectoryName(full) is null)
            throw new WeldException($"{full}: cannot write a model to a filesystem root.");
        return full;
    }

    /// <summary>
    /// Flushes every file of <see cref="WorkPath"/> to disk, writes the marker and renames the folder to
    /// <see cref="TargetPath"/>. An existing target is refused unless overwriting was allowed and it is Weld's or
    /// empty; then it is moved aside only now and deleted once the new folder is in place.
    /// </summary>
    /// <exception cref="WeldException">The target exists and may not be replaced.</exception>
    public void Commit()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed) throw new InvalidOperationException($"{TargetPath}: already committed.");

        WriteMarker(WorkPath);
        foreach (string file in Directory.EnumerateFiles(WorkPath, "*", SearchOption.AllDirectories))
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
            stream.Flush(flushToDisk: true);
        }

        ThrowIfTargetMayNotBeWritten();
        string? aside = null;
        if (Directory.Exists(TargetPath) || File.Exists(TargetPath))
        {
            // Rename the old target aside rather than deleting it first: if the final rename fails, it can be restored.
            aside = Path.Combine(Path.GetDirectoryName(TargetPath)!, $".{Path.GetFileName(TargetPath)}.weld-old-{Guid.NewGuid():N}");
            if (Directory.Exists(TargetPath)) Directory.Move(TargetPath, aside);
            else File.Move(TargetPath, aside);
        }

        try
        {
            Directory.Move(WorkPath, TargetPath);
        }
        catch
        {
            if (aside is not null)
            {
                if (Directory.Exists(aside)) Directory.Move(aside, TargetPath);
                else File.Move(aside, TargetPath);
            }

            throw;
        }

        _committed = true;
        if (aside is not null)
        {
            if (Directory.Exists(aside)) Directory.Delete(aside, recursive: true);
            else File.Delete(aside);
        }
    }

    /// <summary>Deletes the temporary folder unless <see cref="Commit"/> succeeded, and releases the lock.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            if (!_committed && !KeepOnDispose && Directory.Exists(WorkPath)) Directory.Delete(WorkPath, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Dispose runs on error paths; a leftover hidden temp folder must not mask the original exception.
        }
        finally
        {
            _lock.Dispose();
        }
    }

    /// <summary>True when <paramref name="folder"/> carries the marker of a folder Weld wrote.</summary>
    public static bool IsWeldOutput(string folder)
    {
        string marker = Path.Combine(folder, MarkerFileName);
        if (!File.Exists(marker)) return false;
        try
        {
            return JsonNode.Parse(File.ReadAllText(marker)) is JsonObject json && (string?)json["written_by"] == "weld";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>Writes the marker (deterministic content, so two runs of the same merge give the same bytes).</summary>
    public static void WriteMarker(string folder) =>
        File.WriteAllText(Path.Combine(folder, MarkerFileName), "{\"written_by\": \"weld\", \"format\": 1}\n", new UTF8Encoding(false));

    private void ThrowIfTargetMayNotBeWritten()
    {
        ThrowIfOverlapsAnInput();
        bool isDirectory = Directory.Exists(TargetPath);
        if (!isDirectory && !File.Exists(TargetPath)) return;
        if (!_overwrite)
        {
            throw new WeldException(
                $"{TargetPath}: the output already exists; choose another path or allow overwriting it (weld: --overwrite).");
        }
        if (!isDirectory)
            throw new WeldException($"{TargetPath}: is a file, not a folder Weld wrote; --overwrite replaces only Weld's own outputs (delete it yourself if it should go)");
        if (IsWeldOutput(TargetPath) || !Directory.EnumerateFileSystemEntries(TargetPath).Any()) return;
        throw new WeldException(
            $"{TargetPath}: not a folder Weld wrote (no {MarkerFileName} marker) and not empty; --overwrite replaces only Weld's own outputs (delete it yourself if it should go)");
    }

    private void ThrowIfOverlapsAnInput() => ThrowIfOverlapsAnInput(TargetPath, _inputs);

    /// <summary>Refuses an output path that is, holds or lies inside one of <paramref name="inputs"/> (symbolic links resolved).</summary>
    internal static void ThrowIfOverlapsAnInput(string TargetPath, IReadOnlyList<string> inputs)
    {
        if (inputs.Count == 0) return;
        string target = RealPath(TargetPath);
        foreach (string input in inputs)
        {
            string real = RealPath(input);
            string shown = Path.GetFullPath(input);
            if (PathsEqual(target, real))
                throw new WeldException($"{TargetPath}: is an input of this command ({shown}); choose an output path outside the inputs");
            if (IsInside(real, target))
                throw new WeldException($"{TargetPath}: holds an input of this command ({shown}); choose an output path outside the inputs");
            if (Directory.Exists(real) && IsInside(target, real))
                throw new WeldException($"{TargetPath}: lies inside an input of this command ({shown}); choose an output path outside the inputs");
        }
    }

    /// <summary>
    /// The path with every symbolic link along it resolved (the longest existing prefix; the rest appended), so that
    /// two spellings of one folder compare equal.
    /// </summary>
    public static string RealPath(string path) => Resolve(Path.TrimEndingDirectorySeparator(Path.GetFullPath(path)), 0);

    private static string Resolve(string full, int depth)
    {
        string root = Path.GetPathRoot(full) ?? "/";
        string[] parts = full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        string current = root;
        for (int i = 0; i < parts.Length; i++)
        {
            string next = Path.Combine(current, parts[i]);
            string? link = null;
            if (depth < 40)
            {
                try
                {
                    link = new FileInfo(next).LinkTarget;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                }
            }
            if (link is not null)
            {
                string resolved = Path.GetFullPath(link, current);
                string rest = string.Join(Path.DirectorySeparatorChar, parts[(i + 1)..]);
                return Resolve(Path.TrimEndingDirectorySeparator(Path.GetFullPath(rest.Length == 0 ? resolved : Path.Combine(resolved, rest))), depth + 1);
            }
            current = next;
        }
        return current;
    }

    private static StringComparison PathComparison => OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase;

    private static bool PathsEqual(string a, string b) => string.Equals(a, b, PathComparison);

    private static bool IsInside(string path, string folder)
    {
        string prefix = folder.EndsWith(Path.DirectorySeparatorChar) ? folder : folder + Path.DirectorySeparatorChar;
        return path.StartsWith(prefix, PathComparison);
    }

    private static void CreateParent(string parent)
    {
        try
        {
            Directory.CreateDirectory(parent);
        }
        catch (IOException e) when (File.Exists(parent) || e is PathTooLongException)
        {
            throw new WeldException($"{parent}: cannot create the output's parent folder ({(File.Exists(parent) ? "a file has that name" : e.Message)})");
        }
    }
}
