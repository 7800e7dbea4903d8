using Weld.Kernels.Cuda;
using Xunit;

namespace Weld.Kernels.Tests.Cuda;

/// <summary>Every embedded kernel source compiles with NVRTC for the architectures Weld targets (no GPU needed).</summary>
public sealed class NvrtcCompileTests
{
    /// <summary>The kernel files with the architectures to compile for.</summary>
    public static TheoryData<string, int> Targets()
    {
        var data = new TheoryData<string, int>();
        foreach (string file in CudaKernelSources.KernelFileNames)
        {
            data.Add(file, 80);
            data.Add(file, 90);
        }
        return data;
    }

    [Fact]
    public void The_sources_are_embedded()
    {
        string[] expected = ["convert.cu", "dare.cu", "elementwise.cu", "interpolate.cu", "methods.cu", "reduce.cu", "select.cu", "ties.cu"];
        Assert.Equal(expected, CudaKernelSources.KernelFileNames);
        Assert.Contains("weld_f32_to_bf16", CudaKernelSources.Read(CudaKernelSources.PreludeName), StringComparison.Ordinal);
    }

    [NvrtcTheory]
    [MemberData(nameof(Targets))]
    public void Each_source_compiles_to_ptx(string file, int architecture)
    {
        string ptx = NvrtcCompiler.CompileToPtx(CudaKernelSources.WithPrelude(file), file, NvrtcCompiler.OptionsFor(architecture));

        Assert.Contains($".target sm_{architecture}", ptx, StringComparison.Ordinal);
        foreach (string kernel in CudaKernelModule.KernelsOf(file))
            Assert.Contains($".entry {kernel}(", ptx, StringComparison.Ordinal);
    }

    [NvrtcFact]
    public void The_combined_program_defines_every_kernel_the_backend_launches()
    {
        string ptx = NvrtcCompiler.CompileToPtx(CudaKernelSources.Combined(), "weld.cu", NvrtcCompiler.OptionsFor(90));

        foreach (string kernel in CudaKernelModule.AllKernels)
            Assert.Contains($".entry {kernel}(", ptx, StringComparison.Ordinal);
    }

    [NvrtcFact]
    public void A_broken_source_throws_with_the_compile_log()
    {
        var error = Assert.Throws<CudaException>(() =>
            NvrtcCompiler.CompileToPtx("extern \"C\" __global__ void broken() { undeclared_name = 1; }", "broken.cu",
                NvrtcCompiler.OptionsFor(90)));

        Assert.Equal("NVRTC_ERROR_COMPILATION", error.ErrorName);
        Assert.Contains("undeclared_name", error.Message, StringComparison.Ordinal);
        Assert.Contains("broken.cu", error.Message, StringComparison.Ordinal);
    }

    [NvrtcFact]
    public void Compute_90_is_supported()
    {
        Assert.Contains(90, NvrtcCompiler.SupportedArchitectures());
        Assert.Equal(90, NvrtcCompiler.ArchitectureFor(90));
        Assert.True(NvrtcCompiler.ArchitectureFor(120) >= 90);
    }
}
