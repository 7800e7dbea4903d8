using ILGPU;
using ILGPU.Runtime;

namespace Weld.Kernels.Gpu;

/// <summary>
/// The GPU backend: every operation of <see cref="IMergeKernels"/> is an ILGPU kernel (a static C# method in the
/// op family's file, <c>Gpu/*.cs</c>, named as its CPU counterpart in <c>Cpu/</c>). On a CUDA device ILGPU compiles the
/// kernels to PTX; on ILGPU's CPU accelerator the same methods run with emulated groups, shared memory and barriers,
/// so every test runs them without a GPU.
/// </summary>
/// <remarks>
/// Host spans in and out: each call uploads its inputs, runs the kernels on one stream and downloads the result.
/// Device buffers come from a pool and are reused across calls. Calls are serialised by a lock: one backend, one
/// device, one call at a time. Results are bit-identical to <see cref="Cpu.CpuKernels"/> for every deterministic
/// operation: float32 products and sums are rounded one by one (<see cref="GpuArithmetic"/>), and the float64
/// reductions add in the CPU's order.
/// </remarks>
public sealed partial class GpuKernels : IMergeKernels, IDisposable
{
    private readonly GpuDevice _device;
    private readonly bool _ownsDevice;
    private readonly GpuBufferPool _pool;
    private readonly Lock _gate = new();
    private PinnedStaging? _staging;
    private bool _stagingUnavailable;
    private bool _disposed;

    /// <summary>Runs the kernels on <paramref name="device"/>.</summary>
    /// <param name="device">The accelerator.</param>
    /// <param name="ownsDevice">Whether <see cref="Dispose"/> disposes the device too.</param>
    public GpuKernels(GpuDevice device, bool ownsDevice = true)
    {
        ArgumentNullException.ThrowIfNull(device);
        _device = device;
        _ownsDevice = ownsDevice;
        _pool = new GpuBufferPool(device.Accelerator);
        Stream = device.Accelerator.DefaultStream;
    }

    /// <inheritdoc />
    public string Name => _device.Name;

    /// <summary>The accelerator these kernels run on.</summary>
    public GpuDevice Device => _device;

    internal Accelerator Accelerator => _device.Accelerator;

    /// <summary>The stream every kernel of a call is queued on.</summary>
    internal AcceleratorStream Stream { get; }

    /// <summary>A launch shape for a grid-stride pass over <paramref name="work"/> items.</summary>
    internal KernelConfig GridFor(long work, int perThread = 1) =>
        new(_device.GroupsFor(work, perThread), _device.GroupSize);

    /// <summary>Loads (compiles once) an explicitly grouped kernel for launching on a chosen stream.</summary>
    internal TDelegate Load<TDelegate>(ref TDelegate? cache, Delegate kernel) where TDelegate : Delegate
    {
        return cache ??= Accelerator.LoadKernel<TDelegate>(kernel.Method);
    }

    /// <summary>
    /// The pinned staging slots for large transfers on CUDA (allocated on first use, inside a call); null on the
    /// emulator, where device memory is host memory and a plain copy is the fast path, and where page-locked memory
    /// cannot be had (then transfers are plain copies: slower, still correct).
    /// </summary>
    private PinnedStaging? Staging
    {
        get
        {
            if (!_device.IsCuda || _stagingUnavailable)
                return null;
            try
            {
                return _staging ??= new PinnedStaging(Accelerator);
            }
            catch (Exception error) when (error is ILGPU.Runtime.Cuda.CudaException or OutOfMemoryException or NotSupportedException)
            {
                _stagingUnavailable = true;
                return null;
            }
        }
    }

    internal static void RequireStacked(int stackedLength, int rows, int rowLength, string parameter)
    {
        if ((long)rows * rowLength != stackedLength)
            throw new ArgumentException(
                $"Expected {rows} stacked rows of {rowLength} elements ({(long)rows * rowLength}), got {stackedLength}.", parameter);
    }

    internal static void RequirePreScales(int preScales, int rows)
    {
        if (preScales != 0 && preScales != rows)
            throw new ArgumentException($"Expected no pre-scales or one per row ({rows}), got {preScales}.", "preScales");
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            if (_staging is not null)
            {
                Accelerator.Bind(); // the pinned slots and copy streams belong to the device's context
                _staging.Dispose();
            }
            _pool.Dispose();
            if (_ownsDevice)
                _device.Dispose();
        }
    }

    /// <summary>
    /// One backend call: holds the lock, binds the accelerator to this thread, tracks rented buffers, and on
    /// dispose waits for the stream before the buffers go back to the pool.
    /// </summary>
    internal ref struct Call
    {
        private readonly GpuKernels _owner;
        private readonly List<MemoryBuffer1D<byte, Stride1D.Dense>> _rented;

        public Call(GpuKernels owner)
        {
            _owner = owner;
            owner._gate.Enter();
            _rented = [];
            try
            {
                ObjectDisposedException.ThrowIf(owner._disposed, owner);
                owner.Accelerator.Bind();
            }
            catch
            {
                owner._gate.Exit();
                throw;
            }
        }

        /// <summary>A device array of <paramref name="length"/> elements (contents undefined).</summary>
        public readonly ArrayView<T> Rent<T>(long length) where T : unmanaged
        {
            MemoryBuffer1D<byte, Stride1D.Dense> buffer = _owner._pool.Rent(Math.Max(1, length) * Interop.SizeOf<T>());
            _rented.Add(buffer);
            ArrayView<byte> bytes = buffer.View;
            return bytes.SubView(0, length * Interop.SizeOf<T>()).Cast<T>();
        }

        /// <summary>A device array of <paramref name="length"/> elements set to zero.</summary>
        public readonly ArrayView<T> RentZeroed<T>(long length) where T : unmanaged
        {
            ArrayView<T> view = Rent<T>(length);
            if (length > 0)
                view.MemSetToZero(_owner.Stream);
            return view;
        }

        /// <summary>
        /// Copies <paramref name="source"/> to a new device array: through <see cref="PinnedStaging"/> on CUDA from
        /// <see cref="PinnedStaging.MinimumBytes"/> up (returns when the bytes are on the device), else a plain copy.
        /// </summary>
        public readonly ArrayView<T> Upload<T>(ReadOnlySpan<T> source) where T : unmanaged
        {
            ArrayView<T> view = Rent<T>(source.Length);
            if (source.Length == 0)
                return view;
            if ((long)source.Length * Interop.SizeOf<T>() >= PinnedStaging.MinimumBytes && _owner.Staging is { } staging)
                staging.Upload(source, view);
            else
                view.CopyFromCPU(_owner.Stream, source);
            return view;
        }

        /// <summary>Copies <paramref name="source"/> to a new device array.</summary>
        public readonly ArrayView<T> Upload<T>(Span<T> source) where T : unmanaged => Upload((ReadOnlySpan<T>)source);

        /// <summary>Copies a device array back after the queued kernels (waits for the stream); pinned and chunked on CUDA
        /// from <see cref="PinnedStaging.MinimumBytes"/> up.</summary>
        public readonly void Download<T>(ArrayView<T> source, Span<T> destination) where T : unmanaged
        {
            if (destination.Length == 0)
                return;
            if ((long)destination.Length * Interop.SizeOf<T>() >= PinnedStaging.MinimumBytes && _owner.Staging is { } staging)
            {
                staging.Download(source, destination, _owner.Stream);
                return;
            }
            source.SubView(0, destination.Length).CopyToCPU(_owner.Stream, destination);
            _owner.Stream.Synchronize();
        }

        public readonly void Dispose()
        {
            try
            {
                _owner.Stream.Synchronize();
            }
            finally
            {
                foreach (MemoryBuffer1D<byte, Stride1D.Dense> buffer in _rented)
                    _owner._pool.Return(buffer);
                _owner._gate.Exit();
            }
        }
    }
}
