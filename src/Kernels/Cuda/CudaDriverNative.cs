using System.Runtime.InteropServices;

namespace Weld.Kernels.Cuda;

/// <summary>
/// The CUDA driver API calls Weld uses (cuda.h). Handles are opaque pointers (<see cref="nint"/>), device pointers
/// are 64-bit integers (CUdeviceptr), CUdevice is an int. Every result goes through <see cref="Check"/>.
/// </summary>
internal static unsafe partial class CudaDriverNative
{
    /// <summary>CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT.</summary>
    public const int AttributeMultiprocessorCount = 16;

    /// <summary>CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR.</summary>
    public const int AttributeComputeCapabilityMajor = 75;

    /// <summary>CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR.</summary>
    public const int AttributeComputeCapabilityMinor = 76;

    /// <summary>CU_STREAM_NON_BLOCKING: the stream does not synchronise with the legacy default stream.</summary>
    public const uint StreamNonBlocking = 1;

    /// <summary>CU_EVENT_DISABLE_TIMING: cheaper events for ordering only.</summary>
    public const uint EventDisableTiming = 2;

    /// <summary>CU_EVENT_DEFAULT: events that can be timed.</summary>
    public const uint EventDefault = 0;

    /// <summary>CU_MEMHOSTALLOC_PORTABLE: pinned memory usable from every context.</summary>
    public const uint HostAllocPortable = 1;

    static CudaDriverNative() => CudaLibraries.EnsureResolver();

    [LibraryImport(CudaLibraries.Driver)] public static partial int cuInit(uint flags);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuDriverGetVersion(int* version);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuDeviceGetCount(int* count);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuDeviceGet(int* device, int ordinal);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuDeviceGetAttribute(int* value, int attribute, int device);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuDevicePrimaryCtxRetain(nint* context, int device);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuDevicePrimaryCtxRelease_v2(int device);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuCtxSetCurrent(nint context);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuMemAlloc_v2(ulong* devicePointer, nuint bytes);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuMemFree_v2(ulong devicePointer);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuMemHostAlloc(void** hostPointer, nuint bytes, uint flags);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuMemFreeHost(void* hostPointer);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuMemcpyHtoDAsync_v2(ulong destination, void* source, nuint bytes, nint stream);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuMemcpyDtoHAsync_v2(void* destination, ulong source, nuint bytes, nint stream);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuMemcpyDtoDAsync_v2(ulong destination, ulong source, nuint bytes, nint stream);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuMemsetD32Async(ulong destination, uint value, nuint count, nint stream);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuStreamCreate(nint* stream, uint flags);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuStreamDestroy_v2(nint stream);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuStreamSynchronize(nint stream);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuStreamWaitEvent(nint stream, nint @event, uint flags);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuEventCreate(nint* @event, uint flags);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuEventDestroy_v2(nint @event);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuEventRecord(nint @event, nint stream);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuEventSynchronize(nint @event);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuEventElapsedTime(float* milliseconds, nint start, nint end);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuModuleLoadData(nint* module, void* image);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuModuleUnload(nint module);
    [LibraryImport(CudaLibraries.Driver)] public static partial int cuModuleGetFunction(nint* function, nint module, byte* name);

    [LibraryImport(CudaLibraries.Driver)]
    public static partial int cuLaunchKernel(nint function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY,
        uint blockZ, uint sharedBytes, nint stream, void** parameters, void** extra);

    [LibraryImport(CudaLibraries.Driver)] public static partial int cuGetErrorName(int error, byte** name);

    /// <summary>Throws <see cref="CudaException"/> naming <paramref name="call"/> and the error when <paramref name="result"/> is not CUDA_SUCCESS.</summary>
    public static void Check(int result, string call)
    {
        if (result != 0)
            throw new CudaException(call, ErrorName(result), result);
    }

    /// <summary>The CUresult's name (CUDA_ERROR_…), or a placeholder when the driver does not know it.</summary>
    public static string ErrorName(int result)
    {
        byte* name = null;
        if (cuGetErrorName(result, &name) == 0 && name != null)
            return Marshal.PtrToStringUTF8((nint)name) ?? "CUDA_ERROR_UNKNOWN";
        return "CUDA_ERROR_UNKNOWN";
    }
}
