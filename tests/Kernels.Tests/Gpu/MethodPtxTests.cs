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
/// The method kernels (MagMax … SCE, interpolation, softmax divergence, rank sampling) compiled to PTX by ILGPU's PTX
/// backend, no GPU needed: every one compiles for CUDA in a context without the Algorithms extension (so none leans on
/// its math), none carries <c>.ftz</c> or <c>.approx</c> or any FMA (each product and sum is rounded on its own, as on
/// the CPU), and the softmax kernel calls no CORDIC routine (its exp and log are fdlibm's).
/// </summary>
public sealed partial class MethodPtxTests
{
    private static readonly string[] s_kernelClasses = ["MethodKernels", "InterpolationKernels", "SoftmaxDivergence", "MagnitudeRankSampling"];

    [Fact]
    public void Method_kernels_compile_to_PTX_without_ftz_approx_or_FMA()
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
                Assert.False(ptx.Contains(".ftz", StringComparison.Ordinal), where + " has .ftz");
                Assert.False(ptx.Contains(".approx", StringComparison.Ordinal), where + " has .approx");
                Assert.False(ptx.Contains("Hyperbolic", StringComparison.Ordinal), where + " calls CORDIC");
                int fused = FusedMultiplyAdd().Count(ptx);
                Assert.True(fused == 0, $"{where}: {fused} fma instructions in the PTX, expected none");
                compiled++;
            }
        }
        Assert.Equal(16, compiled); // 11 method kernels + 3 interpolation + the softmax scores + rank sampling
    }

    [GeneratedRegex(@"\bfma\.")]
    private static partial Regex FusedMultiplyAdd();
}
