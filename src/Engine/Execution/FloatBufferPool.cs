using Weld.Kernels;

namespace Weld.Engine.Execution;

/// <summary>
/// The merge's working memory: native float32 buffers under a hard byte budget. A rent blocks until the budget has
/// room (freed buffers are reused best-fit, resized in place for another size, or freed to the OS to make room), so the number of tensors in flight
/// adapts to their size and the budget is never exceeded. <see cref="PeakBytes"/> is what tests assert against.
/// </summary>
public sealed class FloatBufferPool : IDisposable
{
    private readonly object _gate = new();
    private readonly List<NativeFloatBuffer> _free = [];
    private readonly HashSet<NativeFloatBuffer> _allocated = [];
    private long _allocatedBytes;

    /// <summary>Creates a pool that never holds more than <paramref name="limitBytes"/> of buffers (or the larger limit a rent names).</summary>
    public FloatBufferPool(long limitBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limitBytes);
        LimitBytes = limitBytes;
    }

    /// <summary>The budget in bytes.</summary>
    public long LimitBytes { get; }

    /// <summary>Bytes of buffers allocated now (rented or cached).</summary>
    public long AllocatedBytes
    {
        get { lock (_gate) return _allocatedBytes; }
    }

    /// <summary>The most bytes ever allocated at once.</summary>
    public long PeakBytes { get; private set; }

    /// <summary>True when a buffer of <paramref name="count"/> floats can ever fit.</summary>
    public bool CanFit(long count) => count * sizeof(float) <= LimitBytes;

    /// <summary>A buffer of at least <paramref name="count"/> floats; blocks until the budget allows it.</summary>
    public NativeFloatBuffer Rent(int count, CancellationToken cancel) => Rent(count, LimitBytes, cancel);

    /// <summary>
    /// A buffer of at least <paramref name="count"/> floats, waiting until all buffers together stay within
    /// <paramref name="limitBytes"/> (above <see cref="LimitBytes"/> only for a tensor that must be merged whole).
    /// </summary>
    public NativeFloatBuffer Rent(int count, long limitBytes, CancellationToken cancel)
    {
        long bytes = (long)count * sizeof(float);
        if (bytes > limitBytes)
            throw new WeldException($"a buffer of {bytes:N0} bytes does not fit the memory limit of {limitBytes:N0} bytes");
        lock (_gate)
        {
            while (true)
            {
                cancel.ThrowIfCancellationRequested();
                int best = -1;
                for (int i = 0; i < _free.Count; i++)
                    if (_free[i].Length >= count && (best < 0 || _free[i].Length < _free[best].Length)) best = i;
                // Reuse only a buffer that is not much larger than needed, so a small tensor does not pin a huge one.
                if (best >= 0 && _free[best].Length <= Math.Max(2L * count, count + (1 << 20)))
                {
                    NativeFloatBuffer reused = _free[best];
                    _free.RemoveAt(best);
                    return reused;
                }
                // A free buffer too small for this request grows to fit (only the growth is fresh memory); a fresh
                // buffer is taken while the budget has room (the larger free ones stay for larger requests); then a
                // larger free buffer shrinks to fit; only then are free buffers released.
                if (TryResizeFree(count, grow: true, limitBytes) is { } grown)
                    return grown;
                if (_allocatedBytes + bytes > limitBytes && TryResizeFree(count, grow: false, limitBytes) is { } shrunk)
                    return shrunk;
                while (_allocatedBytes + bytes > limitBytes && _free.Count > 0)
                {
                    Release(_free[0]);
                    _free.RemoveAt(0);
                }
                if (_allocatedBytes + bytes <= limitBytes)
                {
                    var buffer = new NativeFloatBuffer(count);
                    _allocated.Add(buffer);
                    _allocatedBytes += bytes;
                    PeakBytes = Math.Max(PeakBytes, _allocatedBytes);
                    return buffer;
                }
                Monitor.Wait(_gate, 100);
            }
        }
    }

    /// <summary>Returns a rented buffer.</summary>
    public void Return(NativeFloatBuffer? buffer)
    {
        if (buffer is null) return;
        lock (_gate)
        {
            if (!_allocated.Contains(buffer)) return; // already freed by Dispose
            _free.Add(buffer);
            _free.Sort((a, b) => b.Length.CompareTo(a.Length)); // largest first: freed first when room is needed
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Frees every buffer, rented or cached (after a run, when no stage holds one any more).</summary>
    public void Dispose() => ReleaseAll();

    /// <summary>Frees every buffer, rented or cached; the pool stays usable (and keeps <see cref="PeakBytes"/>).</summary>
    public void ReleaseAll()
    {
        lock (_gate)
        {
            foreach (NativeFloatBuffer buffer in _allocated) ((IDisposable)buffer).Dispose();
            _allocated.Clear();
            _free.Clear();
            _allocatedBytes = 0;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>
    /// Resizes a free buffer to <paramref name="count"/> floats: with <paramref name="grow"/> the largest of those smaller
    /// than the request (releasing other free buffers if the growth needs room), else the smallest of those larger;
    /// null when there is none, or the growth does not fit <paramref name="limitBytes"/>. A resized buffer keeps its pages
    /// (<see cref="NativeFloatBuffer.Resize"/>): only the growth is fresh memory for the kernel to zero, where freeing
    /// the buffer and allocating a new one had every page zeroed again.
    /// </summary>
    private NativeFloatBuffer? TryResizeFree(int count, bool grow, long limitBytes)
    {
        NativeFloatBuffer? buffer = null;
        foreach (NativeFloatBuffer candidate in _free)
        {
            if (grow ? candidate.Length >= count : candidate.Length < count) continue;
            if (buffer is null || (grow ? candidate.Length > buffer.Length : candidate.Length < buffer.Length)) buffer = candidate;
        }
        if (buffer is null) return null;
        long delta = ((long)count - buffer.Length) * sizeof(float);
        for (int i = 0; _allocatedBytes + delta > limitBytes && i < _free.Count;)
        {
            if (_free[i] == buffer) { i++; continue; }
            Release(_free[i]);
            _free.RemoveAt(i);
        }
        if (_allocatedBytes + delta > limitBytes) return null;
        _free.Remove(buffer);
        buffer.Resize(count);
        _allocatedBytes += delta;
        PeakBytes = Math.Max(PeakBytes, _allocatedBytes);
        return buffer;
    }

    private void Release(NativeFloatBuffer buffer)
    {
        _allocated.Remove(buffer);
        _allocatedBytes -= (long)buffer.Length * sizeof(float);
        ((IDisposable)buffer).Dispose();
    }
}
