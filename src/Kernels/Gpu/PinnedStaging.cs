using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;

namespace Weld.Kernels.Gpu;

/// <summary>
/// Large host ↔ device copies on CUDA through two page-locked (pinned) slots, double-buffered: while the DMA engine
/// copies one slot, the CPU fills or drains the other. A merge is bound by how fast bytes reach the card, and a copy
/// from pageable memory goes through the driver's own small staging buffer at a fraction of the bus speed.
/// </summary>
/// <remarks>
/// <para>Each slot has its own copy stream, so "is slot s free again" is "has stream s finished", which ILGPU can
/// answer (<see cref="AcceleratorStream.Synchronize"/>) without CUDA events. Uploads run on the copy streams, so
/// they overlap kernels already queued on the compute stream; <see cref="Upload{T}"/> returns when the bytes are on
/// the device, so kernels queued afterwards see them. <see cref="Download{T}"/> first waits for the compute stream
/// (the kernels that produce the data), then drains chunk by chunk.</para>
/// <para>Used on CUDA only, and only from inside a <see cref="GpuKernels.Call"/> (which holds the backend's lock, so
/// the two slots are never shared by two calls). On ILGPU's CPU accelerator device memory is host memory and a
/// plain copy is already the fastest path.</para>
/// </remarks>
internal sealed class PinnedStaging : IDisposable
{
    /// <summary>Default bytes per slot: large enough to reach full PCIe / NVLink bandwidth, small enough to overlap.</summary>
    public const int DefaultSlotBytes = 8 << 20;

    /// <summary>Below this many bytes a plain copy is used: the detour through a slot costs a host memcpy for little gain.</summary>
    public const long MinimumBytes = 1 << 20;

    private readonly PageLockedArray1D<byte>[] _slots = new PageLockedArray1D<byte>[2];
    private readonly AcceleratorStream[] _streams = new AcceleratorStream[2];

    /// <summary>Bytes per slot.</summary>
    public int SlotBytes { get; }

    /// <summary>Allocates the two pinned slots and their copy streams (the accelerator must be bound to this thread).</summary>
    /// <param name="accelerator">The device.</param>
    /// <param name="slotBytes">Bytes per slot (small in tests, to cross many slot boundaries).</param>
    public PinnedStaging(Accelerator accelerator, int slotBytes = DefaultSlotBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slotBytes, 1);
        SlotBytes = slotBytes;
        try
        {
            for (int slot = 0; slot < 2; slot++)
            {
                _slots[slot] = accelerator.AllocatePageLocked1D<byte>(SlotBytes);
                _streams[slot] = accelerator.CreateStream();
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Copies <paramref name="source"/> to <paramref name="destination"/>; returns when the bytes are on the device.</summary>
    /// <param name="source">Host elements.</param>
    /// <param name="destination">A device view of at least as many elements, not in use by queued kernels (a fresh
    /// buffer of the call).</param>
    public unsafe void Upload<T>(ReadOnlySpan<T> source, ArrayView<T> destination) where T : unmanaged
    {
        long total = (long)source.Length * sizeof(T); // may pass 2 GiB: byte offsets are long, spans are cut per slot
        ArrayView<byte> target = destination.SubView(0, source.Length).Cast<byte>();
        fixed (T* start = source)
        {
            byte* bytes = (byte*)start;
            try
            {
                int chunk = 0;
                for (long offset = 0; offset < total; offset += SlotBytes, chunk++)
                {
                    int slot = chunk & 1;
                    int size = (int)Math.Min(SlotBytes, total - offset);
                    if (chunk >= 2)
                        _streams[slot].Synchronize(); // the slot's previous chunk has left host memory
                    Span<byte> staged = _slots[slot].Span[..size];
                    new ReadOnlySpan<byte>(bytes + offset, size).CopyTo(staged);
                    target.SubView(offset, size).CopyFromCPUUnsafeAsync(_streams[slot], ref MemoryMarshal.GetReference(staged), size);
                }
            }
            finally
            {
                // Kernels run on the compute stream, which cannot wait on these streams without CUDA events (ILGPU
                // exposes none): the host waits, so the data is on the device before any later launch.
                _streams[0].Synchronize();
                _streams[1].Synchronize();
            }
        }
    }

    /// <summary>Copies <paramref name="source"/> to <paramref name="destination"/> after all work queued on
    /// <paramref name="compute"/>; returns when the data is in place.</summary>
    public unsafe void Download<T>(ArrayView<T> source, Span<T> destination, AcceleratorStream compute) where T : unmanaged
    {
        long total = (long)destination.Length * sizeof(T);
        ArrayView<byte> origin = source.SubView(0, destination.Length).Cast<byte>();
        compute.Synchronize(); // the kernels that produce the data
        long chunks = (total + SlotBytes - 1) / SlotBytes;
        fixed (T* start = destination)
        {
            byte* bytes = (byte*)start;
            try
            {
                Enqueue(origin, total, 0);
                for (long chunk = 0; chunk < chunks; chunk++)
                {
                    if (chunk + 1 < chunks)
                        Enqueue(origin, total, chunk + 1); // the other slot: drained in the previous iteration
                    int slot = (int)(chunk & 1);
                    _streams[slot].Synchronize();
                    long offset = chunk * SlotBytes;
                    int size = (int)Math.Min(SlotBytes, total - offset);
                    _slots[slot].Span[..size].CopyTo(new Span<byte>(bytes + offset, size));
                }
            }
            finally
            {
                _streams[0].Synchronize();
                _streams[1].Synchronize();
            }
        }
    }

    private void Enqueue(ArrayView<byte> origin, long length, long chunk)
    {
        int slot = (int)(chunk & 1);
        long offset = chunk * SlotBytes;
        int size = (int)Math.Min(SlotBytes, length - offset);
        origin.SubView(offset, size).CopyToCPUUnsafeAsync(_streams[slot], ref MemoryMarshal.GetReference(_slots[slot].Span), size);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        for (int slot = 0; slot < 2; slot++)
        {
            _streams[slot]?.Synchronize();
            _streams[slot]?.Dispose();
            _slots[slot]?.Dispose();
        }
    }
}
