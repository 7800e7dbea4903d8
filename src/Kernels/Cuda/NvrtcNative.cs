using System.Runtime.InteropServices;

namespace Weld.Kernels.Cuda;

/// <summary>The NVRTC calls Weld uses (nvrtc.h); a program handle is an opaque pointer.</summary>
internal static unsafe partial class NvrtcNative
{
    /// <summary>NVRTC_ERROR_COMPILATION: the source did not compile (the log says why).</summary>
    public const int ErrorCompilation = 6;

    static NvrtcNative() => CudaLibraries.EnsureResolver();

    [LibraryImport(CudaLibraries.Nvrtc)] public static partial int nvrtcVersion(int* major, int* minor);
    [LibraryImport(CudaLibraries.Nvrtc)] public static partial int nvrtcGetNumSupportedArchs(int* count);
    [LibraryImport(CudaLibraries.Nvrtc)] public static partial int nvrtcGetSupportedArchs(int* architectures);

    [LibraryImport(CudaLibraries.Nvrtc)]
    public static partial int nvrtcCreateProgram(nint* program, byte* source, byte* name, int headerCount, byte** headers, byte** includeNames);

    [LibraryImport(CudaLibraries.Nvrtc)] public static partial int nvrtcDestroyProgram(nint* program);
    [LibraryImport(CudaLibraries.Nvrtc)] public static partial int nvrtcCompileProgram(nint program, int optionCount, byte** options);
    [LibraryImport(CudaLibraries.Nvrtc)] public static partial int nvrtcGetProgramLogSize(nint program, nuint* size);
    [LibraryImport(CudaLibraries.Nvrtc)] public static partial int nvrtcGetProgramLog(nint program, byte* log);
    [LibraryImport(CudaLibraries.Nvrtc)] public static partial int nvrtcGetPTXSize(nint program, nuint* size);
    [LibraryImport(CudaLibraries.Nvrtc)] public static partial int nvrtcGetPTX(nint program, byte* ptx);
    [LibraryImport(CudaLibraries.Nvrtc)] public static partial byte* nvrtcGetErrorString(int result);

    /// <summary>Throws <see cref="CudaException"/> naming <paramref name="call"/> and the NVRTC error when the call failed.</summary>
    public static void Check(int result, string call, string? detail = null)
    {
        if (result != 0)
            throw new CudaException(call, ErrorName(result), result, detail);
    }

    /// <summary>NVRTC's name of a result code (NVRTC_ERROR_…).</summary>
    public static string ErrorName(int result)
    {
        byte* text = nvrtcGetErrorString(result);
        return text == null ? "NVRTC_ERROR_UNKNOWN" : Marshal.PtrToStringUTF8((nint)text) ?? "NVRTC_ERROR_UNKNOWN";
    }
}
