using System.Text;

namespace Weld.Kernels.Cuda;

/// <summary>
/// The compiled kernel program on one device: every embedded source in one module (PTX from NVRTC through the
/// disk cache), with each kernel's function handle looked up once.
/// </summary>
internal sealed unsafe class CudaKernelModule : IDisposable
{
    private static readonly Dictionary<string, string[]> s_kernelsByFile = new(StringComparer.Ordinal)
    {
        ["convert.cu"] = ["bf16_to_f32", "f16_to_f32", "f32_to_bf16", "f32_to_f16"],
        ["dare.cu"] = ["drop_and_rescale", "rank_magnitude_sample"],
        ["elementwise.cu"] = ["weighted_sum", "subtract_rows", "scale", "divide", "axpby"],
        ["interpolate.cu"] = ["scale_from_base", "axpby_rows", "keep_important_changes", "softmax_divergence_scores"],
        ["methods.cu"] = ["select_largest_magnitude", "tall_mask", "tall_restore", "consensus_merge", "fisher_merge", "near_swap", "ram_merge",
            "ram_contribution_counts", "variance_across_rows", "clear_rows_where_zero", "sign_erased_mix"],
        ["reduce.cu"] = ["dot_f64", "sum_of_squares_f64", "sum_of_abs_f64"],
        ["select.cu"] = ["radix_histogram", "count_key_per_tile", "magnitude_mask"],
        ["ties.cu"] = ["sign_consensus_merge"],
    };

    private readonly nint _module;
    private readonly Dictionary<string, nint> _functions = new(StringComparer.Ordinal);

    /// <summary>The extern "C" kernels defined in one source file.</summary>
    public static IReadOnlyList<string> KernelsOf(string fileName) => s_kernelsByFile[fileName];

    /// <summary>Every kernel the backend launches.</summary>
    public static IEnumerable<string> AllKernels => s_kernelsByFile.Values.SelectMany(names => names);

    /// <summary>Compiles (or takes from the cache) and loads the program for the current context's device.</summary>
    /// <param name="computeCapability">The device's compute capability ×10.</param>
    /// <param name="deviceDescription">Device name and capability, part of the cache key.</param>
    public CudaKernelModule(int computeCapability, string deviceDescription)
    {
        int architecture = NvrtcCompiler.ArchitectureFor(computeCapability);
        string[] options = NvrtcCompiler.OptionsFor(architecture);
        string source = CudaKernelSources.Combined();
        Architecture = architecture;
        string ptx = PtxCache.GetOrCompile(source, options, deviceDescription + " " + NvrtcCompiler.Describe(),
            () => NvrtcCompiler.CompileToPtx(source, "weld.cu", options));

        byte[] image = Encoding.UTF8.GetBytes(ptx + "\0");
        nint module;
        fixed (byte* imagePointer = image)
            CudaDriverNative.Check(CudaDriverNative.cuModuleLoadData(&module, imagePointer), "cuModuleLoadData");
        _module = module;
        foreach (string name in AllKernels)
        {
            byte[] nameBytes = Encoding.UTF8.GetBytes(name + "\0");
            nint function;
            fixed (byte* namePointer = nameBytes)
                CudaDriverNative.Check(CudaDriverNative.cuModuleGetFunction(&function, module, namePointer), $"cuModuleGetFunction({name})");
            _functions[name] = function;
        }
    }

    /// <summary>The virtual architecture compiled for (×10).</summary>
    public int Architecture { get; }

    /// <summary>The function handle of a kernel.</summary>
    public nint this[string kernel] => _functions[kernel];

    /// <summary>Launches <paramref name="kernel"/> on <paramref name="stream"/>; <paramref name="arguments"/> point at each argument.</summary>
    public void Launch(string kernel, uint gridX, uint gridY, uint blockX, nint stream, void** arguments)
    {
        if (gridX == 0 || gridY == 0)
            return;
        CudaDriverNative.Check(
            CudaDriverNative.cuLaunchKernel(_functions[kernel], gridX, gridY, 1, blockX, 1, 1, 0, stream, arguments, null),
            $"cuLaunchKernel({kernel})");
    }

    /// <inheritdoc />
    public void Dispose() => CudaDriverNative.cuModuleUnload(_module);
}
