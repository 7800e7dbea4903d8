using Weld.Kernels.Cpu;
using Weld.Kernels.Cuda;
using Xunit;

namespace Weld.Kernels.Tests.Cuda;

/// <summary>Device selection: auto | cpu | cuda[:N], with a one-line reason.</summary>
public sealed class KernelBackendsTests
{
    [Fact]
    public void Cpu_is_the_cpu_backend()
    {
        IMergeKernels kernels = KernelBackends.Select("cpu", 1, out string reason);

        Assert.IsType<CpuKernels>(kernels);
        Assert.Equal("cpu (requested)", reason);
    }

    [Fact]
    public void Auto_takes_cuda_when_a_device_is_usable_else_the_cpu_with_the_reason()
    {
        bool available = CudaKernels.IsAvailable(0, out string missing);

        IMergeKernels kernels = KernelBackends.Select("auto", 1, out string reason);
        try
        {
            if (available)
            {
                Assert.IsType<CudaKernels>(kernels);
                Assert.StartsWith("cuda:0 (", reason, StringComparison.Ordinal);
            }
            else
            {
                Assert.IsType<CpuKernels>(kernels);
                Assert.Equal($"cpu (auto: {missing})", reason);
                Assert.DoesNotContain('\n', reason);
            }
        }
        finally
        {
            (kernels as IDisposable)?.Dispose();
        }
    }

    [Fact]
    public void A_cuda_device_that_is_not_there_throws_saying_why()
    {
        var error = Assert.Throws<CudaException>(() => KernelBackends.Select("cuda:9999", 1, out _));

        Assert.Contains("no CUDA device", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("CUDA")]
    [InlineData("cuda:")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:1x")]
    [InlineData("")]
    public void Other_names_are_refused(string device)
    {
        var error = Assert.Throws<ArgumentException>(() => KernelBackends.Select(device, 1, out _));

        Assert.Contains($"'{device}'", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cuda", 0)]
    [InlineData("cuda:0", 0)]
    [InlineData("cuda:3", 3)]
    public void Cuda_names_parse_to_the_ordinal(string device, int expected)
    {
        Assert.True(KernelBackends.TryParseCuda(device, out int ordinal));
        Assert.Equal(expected, ordinal);
    }
}
