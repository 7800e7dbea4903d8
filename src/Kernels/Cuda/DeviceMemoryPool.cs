namespace Weld.Kernels.Cuda;

/// <summary>A block of device memory: its address (CUdeviceptr) and capacity in bytes.</summary>
/// <param name="Pointer">The device address.</param>
/// <param name="Bytes">Capacity.</param>
internal readonly record struct DeviceBuffer(ulong Pointer, long Bytes);

/// <summary>
/// Reuses device allocations across calls: merges run the same tensor shapes over and over, and cuMemAlloc /
/// cuMemFree synchronise the device. Sizes are rounded up to 2 MiB so near sizes share buffers; when an allocation
/// fails, the cached buffers are freed and it is tried once more.
/// </summary>
internal sealed unsafe class DeviceMemoryPool : IDisposable
{
    private const long Granularity = 2L << 20;
    private readonly List<DeviceBuffer> _free = [];
    private readonly List<DeviceBuffer> _all = [];

    /// <summary>Bytes allocated on the device by the pool (free and in use).</summary>
    public long AllocatedBytes { get; private set; }

    /// <summary>A buffer of at least <paramref name="bytes"/>; the smallest cached one that fits, else a new one.</summary>
    public DeviceBuffer Rent(long bytes)
    {
        long size = Math.Max(Granularity, (bytes + Granularity - 1) / Granularity * Granularity);
        int best = -1;
        for (int i = 0; i < _free.Count; i++)
            if (_free[i].Bytes >= size && _free[i].Bytes <= 2 * size && (best < 0 || _free[i].Bytes < _free[best].Bytes))
                best = i;
        if (best >= 0)
        {
            DeviceBuffer found = _free[best];
            _free.RemoveAt(best);
            return found;
        }

        ulong pointer;
        int result = CudaDriverNative.cuMemAlloc_v2(&pointer, (nuint)size);
        if (result != 0 && _free.Count > 0)
        {
            Trim();
            result = CudaDriverNative.cuMemAlloc_v2(&pointer, (nuint)size);
        }
        if (result != 0)
            throw new CudaException("cuMemAlloc_v2", CudaDriverNative.ErrorName(result), result, $"{size:N0} bytes requested, {AllocatedBytes:N0} held by the pool");
        var buffer = new DeviceBuffer(pointer, size);
        _all.Add(buffer);
        AllocatedBytes += size;
        return buffer;
    }

    /// <summary>Gives a buffer back for reuse (only once the work using it has finished).</summary>
    public void Return(DeviceBuffer buffer) => _free.Add(buffer);

    /// <summary>Frees every cached (not rented) buffer.</summary>
    public void Trim()
    {
        foreach (DeviceBuffer buffer in _free)
        {
            CudaDriverNative.cuMemFree_v2(buffer.Pointer);
            _all.Remove(buffer);
            AllocatedBytes -= buffer.Bytes;
        }
        _free.Clear();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (DeviceBuffer buffer in _all)
            CudaDriverNative.cuMemFree_v2(buffer.Pointer);
        _all.Clear();
        _free.Clear();
        AllocatedBytes = 0;
    }
}
