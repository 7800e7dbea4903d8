using Weld.Kernels;

namespace Weld.Engine.Execution;

/// <summary>
/// The merge's working memory: native float32 buffers under a hard byte budget, kept and reused from tensor to tensor.
/// A rent blocks until the budget has room. A buffer's pages stay with it for the whole run: a rent takes a free
/// buffer at least as large as asked (its <see cref="NativeFloatBuffer.Length"/> may exceed the request; callers
/// slice), else grows a smaller free one in place, else allocates; free buffers are released to the OS only when the
/// budget needs their room for a larger request. Fresh memory costs the kernel a zeroed page per page touched (on
/// the bench VM about 0.3–2 s of CPU per GB), so <see cref="FreshBytes"/> stays near the working set however many
/// tensors pass through. The budget counts every allocated byte, rented or free; <see cref="PeakBytes"/> is what
/// tests assert against.
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

    /// <summary>
    /// Bytes taken fresh from the OS so far (new buffers plus the growth of resized ones): each such page is zeroed by
    /// the kernel when first touched. Reused buffers add nothing.
    /// </summary>
    public long FreshBytes { get; private set; }

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
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        long bytes = (long)count * sizeof(float);
        if (bytes > limitBytes)
            throw new WeldException($"a buffer of {bytes:N0} bytes does not fit the memory limit of {limitBytes:N0} bytes");
        lock (_gate)
        {
            while (true)
            {
                cancel.ThrowIfCancellationRequested();
                if (TryRent(count, bytes, limitBytes) is { } buffer)
                    return buffer;
                Monitor.Wait(_gate, 100);
            }
        }
    }

    /// <summary>
    /// One attempt at a rent, in order of least fresh memory: a free buffer of about the size asked; with room in the
    /// budget, the largest smaller free buffer grown in place (only the growth is fresh) or a new buffer (the larger
    /// free ones stay for larger requests); without room, any larger free buffer as it is (a small tensor briefly
    /// holding a large buffer costs nothing, where shrinking it would give its pages back and zero them again when it
    /// regrows); then the largest smaller free buffer grown after releasing the other free ones. Null: wait.
    /// </summary>
    private NativeFloatBuffer? TryRent(int count, long bytes, long limitBytes)
    {
        int fitting = -1, smaller = -1;
        for (int i = 0; i < _free.Count; i++)
        {
            int length = _free[i].Length;
            if (length >= count) { if (fitting < 0 || length < _free[fitting].Length) fitting = i; }
            else if (smaller < 0 || length > _free[smaller].Length) smaller = i;
        }
        // Reuse at once a buffer not much larger than needed, so a small tensor does not pin a huge one while there is room.
        if (fitting >= 0 && _free[fitting].Length <= Math.Max(2L * count, count + (1 << 20)))
            return TakeFree(fitting);
        bool room = _allocatedBytes + bytes <= limitBytes;
        if (room && smaller >= 0)
            return Grow(TakeFree(smaller), count);
        if (room)
        {
            var fresh = new NativeFloatBuffer(count);
            _allocated.Add(fresh);
            Account(bytes);
            return fresh;
        }
        if (fitting >= 0)
            return TakeFree(fitting);
        if (smaller < 0)
            return null;
        NativeFloatBuffer largest = _free[smaller];
        long growth = bytes - (long)largest.Length * sizeof(float);
        // Release the other free buffers, smallest first, until the growth fits; the rented ones come back later.
        long releasable = 0;
        foreach (NativeFloatBuffer free in _free)
            if (free != largest) releasable += (long)free.Length * sizeof(float);
        if (_allocatedBytes - releasable + growth > limitBytes)
            return null;
        _free.Sort((a, b) => a.Length.CompareTo(b.Length));
        for (int i = 0; _allocatedBytes + growth > limitBytes;)
        {
            if (_free[i] == largest) { i++; continue; }
            Release(_free[i]);
            _free.RemoveAt(i);
        }
        return Grow(TakeFree(_free.IndexOf(largest)), count);
    }

    private NativeFloatBuffer TakeFree(int index)
    {
        NativeFloatBuffer buffer = _free[index];
        _free.RemoveAt(index);
        return buffer;
    }

    /// <summary>Grows a buffer taken from the free list (its pages move with it, <see cref="NativeFloatBuffer.Resize"/>).</summary>
    private NativeFloatBuffer Grow(NativeFloatBuffer buffer, int count)
    {
        long growth = ((long)count - buffer.Length) * sizeof(float);
        buffer.Resize(count);
        Account(growth);
        return buffer;
    }

    private void Account(long freshBytes)
    {
        _allocatedBytes += freshBytes;
        FreshBytes += freshBytes;
        PeakBytes = Math.Max(PeakBytes, _allocatedBytes);
    }

    /// <summary>Returns a rented buffer (ignored after <see cref="ReleaseAll"/> freed it; returning it twice is a bug and throws).</summary>
    public void Return(NativeFloatBuffer? buffer)
    {
        if (buffer is null) return;
        lock (_gate)
        {
            if (!_allocated.Contains(buffer)) return; // already freed by Dispose
            if (_free.Contains(buffer))
                throw new InvalidOperationException("a buffer was returned to the pool twice: two rents would share it");
            _free.Add(buffer);
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Frees every buffer, rented or cached (after a run, when no stage holds one any more).</summary>
    public void Dispose() => ReleaseAll();

    /// <summary>Frees every buffer, rented or cached; the pool stays usable (and keeps <see cref="PeakBytes"/> and <see cref="FreshBytes"/>).</summary>
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

    private void Release(NativeFloatBuffer buffer)
    {
        _allocated.Remove(buffer);
        _allocatedBytes -= (long)buffer.Length * sizeof(float);
        ((IDisposable)buffer).Dispose();
    }
}
