using ILGPU;
using ILGPU.Runtime;

namespace Weld.Kernels.Gpu;

/// <summary>
/// Device byte buffers reused across calls: a merge asks for the same few sizes tensor after tensor, and a device
/// allocation costs far more than a lookup. Buffers are rounded up to a power of two (at least 64 KiB) so that
/// slightly different sizes share one.
/// </summary>
internal sealed class GpuBufferPool(Accelerator accelerator) : IDisposable
{
    private const long MinimumBytes = 64 * 1024;
    private readonly List<MemoryBuffer1D<byte, Stride1D.Dense>> _free = [];
    private readonly Lock _gate = new();

    public MemoryBuffer1D<byte, Stride1D.Dense> Rent(long bytes)
    {
        long size = Math.Max(MinimumBytes, (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)bytes));
        lock (_gate)
        {
            for (int i = 0; i < _free.Count; i++)
            {
                if (_free[i].Length == size)
                {
                    MemoryBuffer1D<byte, Stride1D.Dense> buffer = _free[i];
                    _free.RemoveAt(i);
                    return buffer;
                }
            }
        }
        return accelerator.Allocate1D<byte>(size);
    }

    public void Return(MemoryBuffer1D<byte, Stride1D.Dense> buffer)
    {
        lock (_gate)
            _free.Add(buffer);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (MemoryBuffer1D<byte, Stride1D.Dense> buffer in _free)
                buffer.Dispose();
            _free.Clear();
        }
    }
}
