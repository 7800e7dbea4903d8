using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Weld.Kernels.Gpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// The core kernels (elementwise, reductions, conversions, tiled GEMM) compiled to PTX by ILGPU's PTX backend, no GPU
/// needed: every one compiles for CUDA, none carries <c>.ftz</c> or <c>.approx</c>, and the only FMA is the tiled
/// GEMM's one (its accumulation is fused on purpose); everything else rounds each product and sum on its own.
/// </summary>
public sealed partial class CorePtxTests
{
    private static readonly string[] s_kernelClasses = ["ElementwiseKernels", "ReductionKernels", "FloatConversionKernels", "GemmKernels"];

    [Fact]
    public void Core_kernels_compile_to_PTX_without_ftz_approx_or_unintended_FMA()
    {
        using var context = Context.Create(builder => builder.Cuda().Math(MathMode.Default));
        using var backend = new PTXBackend(context, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90,
            CudaInstructionSet.ISA_80, null!);
        Assembly assembly = typeof(GpuKernels).Assembly;
        int compiled = 0;
        foreach (string name in s_kernelClasses)
        {
            Type type = assembly.GetType("Weld.Kernels.Gpu." + name, throwOnError: true)!;
            foreach (MethodInfo method in type.GetMethods(BindingFlags.Public | BindingFlags.Static))
            {
                if (method.ReturnType != typeof(void))
                    continue; // helpers (device functions), compiled into the kernels that call them
                var kernel = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(method), new KernelSpecialization());
                string ptx = kernel.PTXAssembly;
                string where = $"{name}.{method.Name}";
                Assert.DoesNotContain(".ftz", ptx, StringComparison.Ordinal);
                Assert.DoesNotContain(".approx", ptx, StringComparison.Ordinal);
                int fused = FusedMultiplyAdd().Count(ptx);
                int expected = where == "GemmKernels.Tiled" ? 1 : 0;
                Assert.True(fused == expected, $"{where}: {fused} fma instructions in the PTX, expected {expected}");
                compiled++;
            }
        }
        Assert.Equal(15, compiled); // 5 elementwise + 1 reduction + 8 conversions + 1 GEMM
    }

    [GeneratedRegex(@"\bfma\.")]
    private static partial Regex FusedMultiplyAdd();
}
