using System.Reflection;
using System.Runtime.InteropServices;

namespace Weld.Kernels.Cuda;

/// <summary>
/// Finds the CUDA libraries at run time: the driver (libcuda.so.1), NVRTC (newest versioned name first) and cuBLAS.
/// Nothing is loaded until first asked for, so the CPU path never needs CUDA. The interop declarations use the
/// logical names below; one <see cref="NativeLibrary.SetDllImportResolver"/> maps them to what was found.
/// </summary>
internal static class CudaLibraries
{
    /// <summary>Logical library name of the CUDA driver API in the interop declarations.</summary>
    public const string Driver = "weld-cuda-driver";

    /// <summary>Logical library name of NVRTC.</summary>
    public const string Nvrtc = "weld-nvrtc";

    /// <summary>Logical library name of cuBLAS.</summary>
    public const string Cublas = "weld-cublas";

    /// <summary>Environment variable naming an NVRTC library to use instead of the search (path or file name).</summary>
    public const string NvrtcOverrideVariable = "WELD_NVRTC_LIBRARY";

    private static readonly string[] s_driverNames = OperatingSystem.IsWindows() ? ["nvcuda.dll"] : ["libcuda.so.1", "libcuda.so"];

    // Newest first: a GPU machine with CUDA 12/13 gets the NVRTC that knows its architecture; Debian bookworm's
    // libnvrtc11.2 package (NVRTC 11.8) is the fallback that also runs on machines without a GPU.
    private static readonly string[] s_nvrtcNames = OperatingSystem.IsWindows()
        ? ["nvrtc64_130_0.dll", "nvrtc64_120_0.dll", "nvrtc64_112_0.dll"]
        : ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"];

    private static readonly string[] s_cublasNames = OperatingSystem.IsWindows()
        ? ["cublas64_13.dll", "cublas64_12.dll", "cublas64_11.dll"]
        : ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"];

    private static readonly Lock s_gate = new();
    private static readonly Dictionary<string, LoadedLibrary> s_loaded = new(StringComparer.Ordinal);
    private static bool s_resolverInstalled;

    /// <summary>A library found (or not) and the name it was found under.</summary>
    private readonly record struct LoadedLibrary(nint Handle, string? FileName, string? Problem);

    /// <summary>Loads the driver library; false with the reason when it is missing.</summary>
    public static bool TryLoadDriver(out string reason) => TryLoad(Driver, out _, out reason);

    /// <summary>Loads NVRTC; false with the reason when no version is found. <paramref name="fileName"/> is the one loaded.</summary>
    public static bool TryLoadNvrtc(out string? fileName, out string reason) => TryLoad(Nvrtc, out fileName, out reason);

    /// <summary>Loads cuBLAS; false with the reason when it is missing.</summary>
    public static bool TryLoadCublas(out string reason) => TryLoad(Cublas, out _, out reason);

    /// <summary>Installs the resolver (once per process); every interop class calls this from its static constructor.</summary>
    public static void EnsureResolver()
    {
        lock (s_gate)
        {
            if (s_resolverInstalled)
                return;
            NativeLibrary.SetDllImportResolver(typeof(CudaLibraries).Assembly, Resolve);
            s_resolverInstalled = true;
        }
    }

    private static bool TryLoad(string logicalName, out string? fileName, out string reason)
    {
        EnsureResolver();
        LoadedLibrary library = Load(logicalName);
        fileName = library.FileName;
        reason = library.Problem ?? "";
        return library.Handle != 0;
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        libraryName is Driver or Nvrtc or Cublas ? Load(libraryName).Handle : 0;

    private static LoadedLibrary Load(string logicalName)
    {
        lock (s_gate)
        {
            if (s_loaded.TryGetValue(logicalName, out LoadedLibrary known))
                return known;

            string[] candidates = logicalName switch
            {
                Driver => s_driverNames,
                Nvrtc => Environment.GetEnvironmentVariable(NvrtcOverrideVariable) is { Length: > 0 } chosen ? [chosen] : s_nvrtcNames,
                _ => s_cublasNames,
            };
            LoadedLibrary result = new(0, null, $"{candidates[0]} not found (also tried: {string.Join(", ", candidates.Skip(1))})");
            if (candidates.Length == 1)
                result = result with { Problem = $"{candidates[0]} not found" };
            foreach (string candidate in candidates)
            {
                if (NativeLibrary.TryLoad(candidate, out nint handle))
                {
                    result = new LoadedLibrary(handle, candidate, null);
                    break;
                }
            }

            s_loaded[logicalName] = result;
            return result;
        }
    }
}
