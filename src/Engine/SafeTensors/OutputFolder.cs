namespace Weld.Engine.SafeTensors;

/// <summary>
/// An output folder written in a temporary sibling (<c>.&lt;name&gt;.weld-partial-&lt;random&gt;</c>) and renamed into
/// place only by <see cref="Commit"/>, so that an interrupted or failed write never leaves a folder that looks
/// finished. Disposing without committing deletes the temporary folder.
/// </summary>
public sealed class OutputFolder : IDisposable
{
    private readonly bool _overwrite;
    private bool _committed;
    private bool _disposed;

    /// <summary>Creates the temporary folder beside <paramref name="targetPath"/>.</summary>
    /// <param name="targetPath">The folder to produce.</param>
    /// <param name="overwrite">Whether an existing target may be replaced at <see cref="Commit"/>.</param>
    /// <exception cref="WeldException">The target exists and <paramref name="overwrite"/> is false (checked now, before any work).</exception>
    public OutputFolder(string targetPath, bool overwrite)
        : this(targetPath, overwrite, resumable: false)
    {
    }

    private OutputFolder(string targetPath, bool overwrite, bool resumable)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(targetPath);
        TargetPath = Path.TrimEndingDirectorySeparator(Path.GetFullPath(targetPath));
        _overwrite = overwrite;
        ThrowIfTargetExistsAndNotOverwriting();

        string parent = Path.GetDirectoryName(TargetPath)
            ?? throw new WeldException($"{TargetPath}: cannot write a model to a filesystem root.");
        Directory.CreateDirectory(parent);
        WorkPath = resumable ? PartialPathFor(TargetPath) : Path.Combine(parent, $".{Path.GetFileName(TargetPath)}.weld-partial-{Guid.NewGuid():N}");
        Directory.CreateDirectory(WorkPath);
    }

    /// <summary>
    /// Opens the fixed-name partial folder of <paramref name="targetPath"/> (<c>.NAME.weld-partial</c> beside it),
    /// keeping what an interrupted run or other parts left there, so a run can resume and parts can meet.
    /// </summary>
    public static OutputFolder OpenResumable(string targetPath, bool overwrite) => new(targetPath, overwrite, resumable: true);

    /// <summary>The fixed partial folder of a target: <c>.NAME.weld-partial</c> beside it.</summary>
    public static string PartialPathFor(string targetPath)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(targetPath));
        return Path.Combine(Path.GetDirectoryName(full) ?? "/", $".{Path.GetFileName(full)}.weld-partial");
    }

    /// <summary>When set, Dispose without Commit keeps the work folder (finished shards a resume can reuse).</summary>
    public bool KeepOnDispose { get; set; }

    /// <summary>The folder to produce (full path).</summary>
    public string TargetPath { get; }

    /// <summary>The temporary folder to write into (same filesystem as the target, so the final rename is atomic).</summary>
    public string WorkPath { get; }

    /// <summary>
    /// Flushes every file of <see cref="WorkPath"/> to disk and renames the folder to <see cref="TargetPath"/>.
    /// An existing target is refused unless overwriting was allowed; then it is moved aside first and deleted after.
    /// </summary>
    /// <exception cref="WeldException">The target exists and overwriting was not allowed.</exception>
    public void Commit()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed) throw new InvalidOperationException($"{TargetPath}: already committed.");

        foreach (string file in Directory.EnumerateFiles(WorkPath, "*", SearchOption.AllDirectories))
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
            stream.Flush(flushToDisk: true);
        }

        ThrowIfTargetExistsAndNotOverwriting();
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

    /// <summary>Deletes the temporary folder unless <see cref="Commit"/> succeeded.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_committed || KeepOnDispose) return;
        try
        {
            if (Directory.Exists(WorkPath)) Directory.Delete(WorkPath, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Dispose runs on error paths; a leftover hidden temp folder must not mask the original exception.
        }
    }

    private void ThrowIfTargetExistsAndNotOverwriting()
    {
        if (!_overwrite && (Directory.Exists(TargetPath) || File.Exists(TargetPath)))
        {
            throw new WeldException(
                $"{TargetPath}: the output already exists; choose another path or allow overwriting it (weld: --overwrite).");
        }
    }
}
