using Weld.Kernels.Cpu;
using Weld.Kernels.Gpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>Device selection: auto | cpu | cuda[:N] | ilgpu-cpu, with a one-line reason.</summary>
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
    public void Ilgpu_cpu_runs_the_gpu_kernels_on_the_cpu_accelerator_and_gives_the_cpu_bits()
    {
        IMergeKernels kernels = KernelBackends.Select("ilgpu-cpu", 1, out string reason);
        try
        {
            var gpu = Assert.IsType<GpuKernels>(kernels);
            Assert.False(gpu.Device.IsCuda);
            Assert.Equal("ilgpu-cpu", gpu.Name);
            Assert.Equal(KernelBackends.EmulatedWarpSize, gpu.Device.WarpSize);
            Assert.Equal(KernelBackends.EmulatedWarpSize * KernelBackends.EmulatedWarpsPerGroup, gpu.Device.GroupSize);
            Assert.StartsWith("ilgpu-cpu (requested; ILGPU's CPU accelerator", reason, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', reason);

            // A kernel really runs there: more elements than one grid stride, against the CPU backend's bits.
            const int n = 1000;
            var random = new System.Random(5);
            var stacked = new float[2 * n];
            for (int i = 0; i < stacked.Length; i++)
                stacked[i] = (float)(random.NextDouble() * 2 - 1);
            float[] weights = [0.3f, 1.7f];
            var expected = new float[n];
            var actual = new float[n];
            new CpuKernels(1).WeightedSum(stacked, weights, expected);
            gpu.WeightedSum(stacked, weights, actual);
            BitAssert.Equal(expected, actual, "ilgpu-cpu WeightedSum");
        }
        finally
        {
            (kernels as IDisposable)?.Dispose();
        }
    }

    [Fact]
    public void Auto_takes_cuda_when_ilgpu_finds_a_device_else_the_cpu_with_the_reason()
    {
        bool available = GpuDevice.ProbeCuda(0, out string missing);

        IMergeKernels kernels = KernelBackends.Select("auto", 1, out string reason);
        try
        {
            if (available)
            {
                var gpu = Assert.IsType<GpuKernels>(kernels);
                Assert.True(gpu.Device.IsCuda);
                Assert.StartsWith("cuda:0 (", reason, StringComparison.Ordinal);
            }
            else
            {
                Assert.IsType<CpuKernels>(kernels);
                Assert.Equal($"cpu (auto: {missing})", reason);
                Assert.NotEqual("", missing);
            }
            Assert.DoesNotContain('\n', reason);
        }
        finally
        {
            (kernels as IDisposable)?.Dispose();
        }
    }

    [Fact]
    public void A_cuda_device_that_is_not_there_throws_saying_why()
    {
        var error = Assert.Throws<InvalidOperationException>(() => KernelBackends.Select("cuda:9999", 1, out _));

        Assert.Contains("CUDA", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Cuda_without_a_device_throws_the_probe_reason()
    {
        if (GpuDevice.ProbeCuda(0, out string missing))
        {
            // With a device, cuda opens it.
            IMergeKernels kernels = KernelBackends.Select("cuda", 1, out string reason);
            using var owned = (IDisposable)kernels;
            Assert.StartsWith("cuda:0 (", reason, StringComparison.Ordinal);
            return;
        }

        var error = Assert.Throws<InvalidOperationException>(() => KernelBackends.Select("cuda", 1, out _));

        Assert.Equal(missing, error.Message);
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("CUDA")]
    [InlineData("cuda:")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:1x")]
    [InlineData("ilgpu")]
    [InlineData("ILGPU-CPU")]
    [InlineData("")]
    public void Other_names_are_refused(string device)
    {
        var error = Assert.Throws<ArgumentException>(() => KernelBackends.Select(device, 1, out _));

        Assert.Contains($"'{device}'", error.Message, StringComparison.Ordinal);
        Assert.Contains(KernelBackends.Names, error.Message, StringComparison.Ordinal);
        Assert.False(KernelBackends.IsDeviceName(device));
    }

    [Theory]
    [InlineData("auto")]
    [InlineData("cpu")]
    [InlineData("cuda")]
    [InlineData("cuda:2")]
    [InlineData("ilgpu-cpu")]
    public void Device_names_are_recognised_without_opening_anything(string device)
    {
        Assert.True(KernelBackends.IsDeviceName(device));
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

    [Fact]
    public void Gemm_backends_give_the_cpu_gemm_for_cpu_and_refuse_other_names()
    {
        IGemm gemm = GemmBackends.Select("cpu", 2, out string reason);

        Assert.IsType<CpuGemm>(gemm);
        Assert.Equal("cpu (requested)", reason);
        Assert.Throws<ArgumentException>(() => GemmBackends.Select("gpu", 2, out _));
    }

    [Fact]
    public void Gemm_backends_run_products_on_ilgpu_cpu_within_float_rounding_of_the_cpu()
    {
        IGemm gemm = GemmBackends.Select("ilgpu-cpu", 1, out string reason);
        try
        {
            Assert.StartsWith("ilgpu-cpu (", reason, StringComparison.Ordinal);
            var random = new System.Random(3);
            const int m = 19, k = 37, n = 23;
            var a = new float[m * k];
            var b = new float[n * k];
            for (int i = 0; i < a.Length; i++) a[i] = (float)random.NextDouble() - 0.5f;
            for (int i = 0; i < b.Length; i++) b[i] = (float)random.NextDouble() - 0.5f;
            foreach (bool transposeB in new[] { false, true })
            {
                var expected = new double[m * n];
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                        for (int p = 0; p < k; p++)
                            expected[i * n + j] += (double)a[i * k + p] * (transposeB ? b[j * k + p] : b[p * n + j]);
                var c = new float[m * n];
                gemm.Multiply(a, b, c, m, k, n, transposeB);
                for (int i = 0; i < c.Length; i++)
                    Assert.True(Math.Abs(expected[i] - c[i]) <= 1e-4, $"transposeB {transposeB}, element {i}: {expected[i]} vs {c[i]}");
            }
        }
        finally
        {
            (gemm as IDisposable)?.Dispose();
        }
    }
}
