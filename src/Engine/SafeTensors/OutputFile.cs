namespace Weld.Engine.SafeTensors;

/// <summary>
/// A single-file output (e.g. <c>weld compress --tall</c>'s <c>.safetensors</c>) with the rules of
/// <see cref="OutputFolder"/>: written to a hidden temporary sibling and renamed into place only by
/// <see cref="Commit"/>; locked against a second writer; never an input or inside one; an existing file is replaced
/// only with overwriting allowed and only when it is one Weld wrote (the caller says how to recognise one).
/// </summary>
public sealed class OutputFile : IDisposable
{
    private readonly bool _overwrite;
    private readonly string[] _inputs;
    private readonly Func<string, bool> _isWeldFile;
    private readonly OutputLock _lock;
    private bool _committed;
    private bool _disposed;

    /// <summary>Checks the target and locks it; the temporary file is <see cref="WorkPath"/>.</summary>
    /// <param name="targetPath">The file to produce.</param>
    /// <param name="overwrite">Whether an existing target that Weld wrote may be replaced.</param>
    /// <param name="inputs">The command's inputs: the target may not be one, hold one or lie inside one.</param>
    /// <param name="isWeldFile">Recognises an existing file as Weld's own output of this kind (e.g. by its header metadata).</param>
    /// <exception cref="WeldException">The target may not be written (see above), or another process writes it.</exception>
    public OutputFile(string targetPath, bool overwrite, IEnumerable<string> inputs, Func<string, bool> isWeldFile)
    {
        TargetPath = OutputFolder.CheckedTargetPath(targetPath);
        _overwrite = overwrite;
        _inputs = inputs.Where(i => !string.IsNullOrEmpty(i)).ToArray();
        _isWeldFile = isWeldFile;
        ThrowIfTargetMayNotBeWritten();
        string parent = Path.GetDirectoryName(TargetPath)!;
        Directory.CreateDirectory(parent);
        _lock = OutputLock.Acquire(TargetPath, part: null, log: null);
        WorkPath = Path.Combine(parent, $".{Path.GetFileName(TargetPath)}.weld-partial-{Guid.NewGuid():N}");
    }

    /// <summary>The file to produce (full path).</summary>
    public string TargetPath { get; }

    /// <summary>The temporary file to write (beside the target, so the final rename is atomic).</summary>
    public string WorkPath { get; }

    /// <summary>Flushes <see cref="WorkPath"/> to disk and renames it over <see cref="TargetPath"/>.</summary>
    /// <exception cref="WeldException">The target appeared meanwhile and may not be replaced.</exception>
    public void Commit()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using (var stream = new FileStream(WorkPath, FileMode.Open, FileAccess.ReadWrite, FileShare.Read))
            stream.Flush(flushToDisk: true);
        ThrowIfTargetMayNotBeWritten();
        File.Move(WorkPath, TargetPath, overwrite: true); // rename(2): the old file is replaced in one step
        _committed = true;
    }

    /// <summary>Deletes the temporary file unless committed, and releases the lock.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            if (!_committed && File.Exists(WorkPath)) File.Delete(WorkPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Dispose runs on error paths; a leftover hidden temp file must not mask the original exception.
        }
        finally
        {
            _lock.Dispose();
        }
    }

    private void ThrowIfTargetMayNotBeWritten()
    {
        OutputFolder.ThrowIfOverlapsAnInput(TargetPath, _inputs);
        if (Directory.Exists(TargetPath))
            throw new WeldException($"{TargetPath}: is a folder; this command writes a single file (choose a file path)");
        if (!File.Exists(TargetPath)) return;
        if (!_overwrite)
            throw new WeldException($"{TargetPath}: the output already exists; choose another path or allow overwriting it (weld: --overwrite).");
        if (!_isWeldFile(TargetPath))
            throw new WeldException($"{TargetPath}: not a file Weld wrote; --overwrite replaces only Weld's own outputs (delete it yourself if it should go)");
    }
}
