using System.Runtime.InteropServices;

namespace Weld.Kernels.Cuda;

/// <summary>
/// One CUDA device through its primary context, with a compute stream and a copy stream (so an upload can run
/// while a kernel does). Every public entry of the backend makes the context current on the calling thread first.
/// </summary>
internal sealed unsafe class CudaDevice : IDisposable
{
    private readonly nint _context;
    private bool _disposed;

    /// <summary>Initialises the driver, retains the primary context of device <paramref name="ordinal"/> and creates the streams.</summary>
    public CudaDevice(int ordinal)
    {
        if (!Probe(ordinal, out string reason))
            throw new CudaException(reason);
        Ordinal = ordinal;
        int device;
        CudaDriverNative.Check(CudaDriverNative.cuDeviceGet(&device, ordinal), "cuDeviceGet");
        Handle = device;
        nint context;
        CudaDriverNative.Check(CudaDriverNative.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
        _context = context;
        MakeCurrent();

        byte* name = stackalloc byte[256];
        CudaDriverNative.Check(CudaDriverNative.cuDeviceGetName(name, 256, device), "cuDeviceGetName");
        Name = Marshal.PtrToStringUTF8((nint)name) ?? $"device {ordinal}";
        int major, minor, multiprocessors;
        CudaDriverNative.Check(CudaDriverNative.cuDeviceGetAttribute(&major, CudaDriverNative.AttributeComputeCapabilityMajor, device), "cuDeviceGetAttribute(major)");
        CudaDriverNative.Check(CudaDriverNative.cuDeviceGetAttribute(&minor, CudaDriverNative.AttributeComputeCapabilityMinor, device), "cuDeviceGetAttribute(minor)");
        CudaDriverNative.Check(CudaDriverNative.cuDeviceGetAttribute(&multiprocessors, CudaDriverNative.AttributeMultiprocessorCount, device), "cuDeviceGetAttribute(multiprocessors)");
        ComputeCapability = major * 10 + minor;
        MultiprocessorCount = multiprocessors;

        nint compute, copy;
        CudaDriverNative.Check(CudaDriverNative.cuStreamCreate(&compute, CudaDriverNative.StreamNonBlocking), "cuStreamCreate");
        CudaDriverNative.Check(CudaDriverNative.cuStreamCreate(&copy, CudaDriverNative.StreamNonBlocking), "cuStreamCreate");
        ComputeStream = compute;
        CopyStream = copy;
    }

    /// <summary>The device ordinal (N of cuda:N).</summary>
    public int Ordinal { get; }

    /// <summary>The CUdevice handle.</summary>
    public int Handle { get; }

    /// <summary>The device's marketing name.</summary>
    public string Name { get; }

    /// <summary>Compute capability ×10 (90 for an H100).</summary>
    public int ComputeCapability { get; }

    /// <summary>Streaming multiprocessors (sizes grid-stride launches).</summary>
    public int MultiprocessorCount { get; }

    /// <summary>The stream kernels and downloads run on.</summary>
    public nint ComputeStream { get; }

    /// <summary>The stream uploads run on.</summary>
    public nint CopyStream { get; }

    /// <summary>
    /// Whether device <paramref name="ordinal"/> can be used: libcuda.so.1 loads, cuInit succeeds, the ordinal exists.
    /// </summary>
    /// <param name="ordinal">Device index.</param>
    /// <param name="reason">Why not, in one line, starting "no CUDA device: " ("" when usable).</param>
    public static bool Probe(int ordinal, out string reason)
    {
        if (!CudaLibraries.TryLoadDriver(out string problem))
        {
            reason = $"no CUDA device: {problem}";
            return false;
        }
        try
        {
            int result = CudaDriverNative.cuInit(0);
            if (result != 0)
            {
                reason = $"no CUDA device: cuInit failed: {CudaDriverNative.ErrorName(result)} ({result})";
                return false;
            }
            int count;
            CudaDriverNative.Check(CudaDriverNative.cuDeviceGetCount(&count), "cuDeviceGetCount");
            if (ordinal < 0 || ordinal >= count)
            {
                reason = count == 0 ? "no CUDA device: the driver reports 0 devices" : $"no CUDA device: cuda:{ordinal} requested, the driver reports {count}";
                return false;
            }
        }
        catch (Exception error) when (error is CudaException or EntryPointNotFoundException or DllNotFoundException)
        {
            reason = $"no CUDA device: {error.Message}";
            return false;
        }
        reason = "";
        return true;
    }

    /// <summary>Makes the primary context current on the calling thread.</summary>
    public void MakeCurrent() => CudaDriverNative.Check(CudaDriverNative.cuCtxSetCurrent(_context), "cuCtxSetCurrent");

    /// <summary>Waits until all work on the compute stream has finished.</summary>
    public void SynchronizeCompute() => CudaDriverNative.Check(CudaDriverNative.cuStreamSynchronize(ComputeStream), "cuStreamSynchronize");

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        CudaDriverNative.cuCtxSetCurrent(_context);
        CudaDriverNative.cuStreamDestroy_v2(ComputeStream);
        CudaDriverNative.cuStreamDestroy_v2(CopyStream);
        CudaDriverNative.cuDevicePrimaryCtxRelease_v2(Handle);
    }
}
