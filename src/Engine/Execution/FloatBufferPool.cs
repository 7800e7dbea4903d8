namespace Weld.Engine.Execution;

/// <summary>
/// The merge's working memory: float32 buffers under a hard byte budget. A rent blocks until the budget has
/// room (freed buffers are reused best-fit, or dropped to make room), so the number of tensors in flight adapts
/// to their size and the budget is never exceeded. <see cref="PeakBytes"/> is what tests assert against.
/// </summary>
public sealed class FloatBufferPool
{
    private readonly object _gate = new();
    private readonly List<float[]> _free = [];
    private long _allocatedBytes;

    /// <summary>Creates a pool that never holds more than <paramref name="limitBytes"/> of buffers.</summary>
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
    public float[] Rent(int count, CancellationToken cancel)
    {
        long bytes = (long)count * sizeof(float);
        if (bytes > LimitBytes)
            throw new WeldException($"a buffer of {bytes:N0} bytes does not fit the memory limit of {LimitBytes:N0} bytes");
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
                    float[] reused = _free[best];
                    _free.RemoveAt(best);
                    return reused;
                }
                bool dropped = false;
                while (_allocatedBytes + bytes > LimitBytes && _free.Count > 0)
                {
                    _allocatedBytes -= (long)_free[0].Length * sizeof(float);
                    _free.RemoveAt(0);
                    dropped = true;
                }
                if (_allocatedBytes + bytes <= LimitBytes)
                {
                    // Give dropped buffers back to the OS before the new one is touched.
                    if (dropped) GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
                    _allocatedBytes += bytes;
                    PeakBytes = Math.Max(PeakBytes, _allocatedBytes);
                    return GC.AllocateUninitializedArray<float>(count);
                }
                Monitor.Wait(_gate, 100);
            }
        }
    }

    /// <summary>Returns a rented buffer.</summary>
    public void Return(float[]? buffer)
    {
        if (buffer is null) return;
        lock (_gate)
        {
            _free.Add(buffer);
            _free.Sort((a, b) => b.Length.CompareTo(a.Length)); // largest first: dropped first when room is needed
            Monitor.PulseAll(_gate);
        }
    }
}
