using Weld.Kernels.Cuda;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary>
/// Every example recipe merged with <c>--device cuda</c> writes the same bytes as with <c>--device cpu</c>.
/// Needs a CUDA device; skipped with the reason (for example "no CUDA device: libcuda.so.1 not found") without one.
/// </summary>
public sealed class CudaDeviceMergeTests
{
    public static TheoryData<string> Examples() => new(Recipes.ExampleNames());

    [CudaDeviceTheory]
    [MemberData(nameof(Examples))]
    public void Example_OnCuda_WritesTheCpuBytes(string example)
    {
        string temp = TestPaths.NewTempDir("weld-cli-cuda");
        string recipe = Recipes.WriteExample(example, temp);
        string onCpu = Path.Combine(temp, "cpu"), onCuda = Path.Combine(temp, "cuda");

        CliResult cpu = WeldCli.Run("merge", recipe, "-o", onCpu, "--device", "cpu");
        CliResult cuda = WeldCli.Run("merge", recipe, "-o", onCuda, "--device", "cuda");

        CliAssert.Succeeded(cpu);
        CliAssert.Succeeded(cuda);
        Assert.Contains("device: cuda:0", cuda.Stderr, StringComparison.Ordinal);
        foreach (string file in new[] { "model.safetensors", "config.json" })
        {
            byte[] expected = File.ReadAllBytes(Path.Combine(onCpu, file));
            byte[] actual = File.ReadAllBytes(Path.Combine(onCuda, file));
            Assert.True(expected.AsSpan().SequenceEqual(actual), $"{example}: {file} differs between --device cpu and --device cuda");
        }
    }
}

/// <summary>A theory that needs CUDA device 0; skipped with the reason when there is none.</summary>
public sealed class CudaDeviceTheoryAttribute : TheoryAttribute
{
    private static readonly Lazy<string?> s_unavailable = new(() => CudaKernels.IsAvailable(0, out string reason) ? null : reason);

    /// <summary>Sets <see cref="FactAttribute.Skip"/> when no device is usable.</summary>
    public CudaDeviceTheoryAttribute()
    {
        if (s_unavailable.Value is { } reason)
            Skip = reason;
    }
}
