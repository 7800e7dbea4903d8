namespace Weld.Kernels.Cuda;

/// <summary>
/// Moves host spans to and from the device through two pinned (page-locked) buffers, double-buffered: while the DMA
/// engine copies one slot, the CPU fills or drains the other. Uploads run on the copy stream and end with an event
/// the compute stream waits on; downloads run on the compute stream behind the kernels that produce the data.
/// </summary>
internal sealed unsafe class PinnedStaging : IDisposable
{
    /// <summary>Bytes per slot: large enough to reach full PCIe / NVLink bandwidth, small enough to overlap.</summary>
    public const int SlotBytes = 8 << 20;

    private readonly CudaDevice _device;
    private readonly byte*[] _slots = new byte*[2];
    private readonly nint[] _slotFree = new nint[2];
    private readonly bool[] _slotBusy = new bool[2];
    private readonly nint _uploaded;

    /// <summary>Allocates the two pinned slots and their events (the device's context must be current).</summary>
    public PinnedStaging(CudaDevice device)
    {
        _device = device;
        for (int slot = 0; slot < 2; slot++)
        {
            void* memory;
            CudaDriverNative.Check(CudaDriverNative.cuMemHostAlloc(&memory, SlotBytes, CudaDriverNative.HostAllocPortable), "cuMemHostAlloc");
            _slots[slot] = (byte*)memory;
            nint done;
            CudaDriverNative.Check(CudaDriverNative.cuEventCreate(&done, CudaDriverNative.EventDisableTiming), "cuEventCreate");
            _slotFree[slot] = done;
        }
        nint uploaded;
        CudaDriverNative.Check(CudaDriverNative.cuEventCreate(&uploaded, CudaDriverNative.EventDisableTiming), "cuEventCreate");
        _uploaded = uploaded;
    }

    /// <summary>Queues a copy of <paramref name="bytes"/> from host <paramref name="source"/> to the device; the compute
    /// stream will not run past this point until the copy is done. Returns once the host memory may be reused.</summary>
    public void Upload(void* source, long bytes, ulong destination)
    {
        int slot = 0;
        for (long offset = 0; offset < bytes; offset += SlotBytes, slot ^= 1)
        {
            int size = (int)Math.Min(SlotBytes, bytes - offset);
            WaitForSlot(slot);
            Buffer.MemoryCopy((byte*)source + offset, _slots[slot], SlotBytes, size);
            CudaDriverNative.Check(CudaDriverNative.cuMemcpyHtoDAsync_v2(destination + (ulong)offset, _slots[slot], (nuint)size, _device.CopyStream), "cuMemcpyHtoDAsync_v2");
            CudaDriverNative.Check(CudaDriverNative.cuEventRecord(_slotFree[slot], _device.CopyStream), "cuEventRecord");
            _slotBusy[slot] = true;
        }
        CudaDriverNative.Check(CudaDriverNative.cuEventRecord(_uploaded, _device.CopyStream), "cuEventRecord");
        CudaDriverNative.Check(CudaDriverNative.cuStreamWaitEvent(_device.ComputeStream, _uploaded, 0), "cuStreamWaitEvent");
    }

    /// <summary>Copies <paramref name="bytes"/> from the device to host <paramref name="destination"/> after all work queued
    /// on the compute stream; returns when the data is in place.</summary>
    public void Download(ulong source, void* destination, long bytes)
    {
        if (bytes <= 0)
            return;
        long chunks = (bytes + SlotBytes - 1) / SlotBytes;
        Enqueue(0);
        for (long chunk = 0; chunk < chunks; chunk++)
        {
            if (chunk + 1 < chunks)
                Enqueue(chunk + 1); // the other slot: its previous chunk was drained last iteration
            int slot = (int)(chunk & 1);
            CudaDriverNative.Check(CudaDriverNative.cuEventSynchronize(_slotFree[slot]), "cuEventSynchronize");
            _slotBusy[slot] = false;
            long offset = chunk * SlotBytes;
            int size = (int)Math.Min(SlotBytes, bytes - offset);
            Buffer.MemoryCopy(_slots[slot], (byte*)destination + offset, size, size);
        }

        void Enqueue(long chunk)
        {
            int slot = (int)(chunk & 1);
            WaitForSlot(slot);
            long offset = chunk * SlotBytes;
            int size = (int)Math.Min(SlotBytes, bytes - offset);
            CudaDriverNative.Check(CudaDriverNative.cuMemcpyDtoHAsync_v2(_slots[slot], source + (ulong)offset, (nuint)size, _device.ComputeStream), "cuMemcpyDtoHAsync_v2");
            CudaDriverNative.Check(CudaDriverNative.cuEventRecord(_slotFree[slot], _device.ComputeStream), "cuEventRecord");
            _slotBusy[slot] = true;
        }
    }

    private void WaitForSlot(int slot)
    {
        if (!_slotBusy[slot])
            return;
        CudaDriverNative.Check(CudaDriverNative.cuEventSynchronize(_slotFree[slot]), "cuEventSynchronize");
        _slotBusy[slot] = false;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        for (int slot = 0; slot < 2; slot++)
        {
            if (_slotBusy[slot])
                CudaDriverNative.cuEventSynchronize(_slotFree[slot]);
            CudaDriverNative.cuEventDestroy_v2(_slotFree[slot]);
            CudaDriverNative.cuMemFreeHost(_slots[slot]);
        }
        CudaDriverNative.cuEventDestroy_v2(_uploaded);
    }
}
