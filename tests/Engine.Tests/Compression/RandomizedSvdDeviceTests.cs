using MathNet.Numerics.LinearAlgebra;
using Weld.Engine.Compression;
using Weld.Kernels;
using Weld.Kernels.Cpu;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Compression;

/// <summary>
/// RandomizedSvd's products behind <see cref="IGemm"/>: the CPU path unchanged; the GPU GEMM (on <c>ilgpu-cpu</c> in
/// every run, on <c>cuda</c> when present) within float tolerance of it.
/// </summary>
public class RandomizedSvdDeviceTests
{
    /// <summary>Counts the products and forwards them to the CPU GEMM.</summary>
    private sealed class CountingGemm : IGemm
    {
        public int Calls { get; private set; }

        public string Name => "counting";

        public void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, bool transposeB = false)
        {
            Calls++;
            Gemm.Multiply(a, b, c, m, k, n, transposeB);
        }
    }

    /// <summary>A row-major m × n matrix of rank σ.Length with singular values σ (random orthonormal factors).</summary>
    private static float[] WithSpectrum(int m, int n, double[] sigma, int seed)
    {
        var random = new Random(seed);
        Matrix<double> Gaussian(int rows, int cols) => Matrix<double>.Build.Dense(rows, cols, (_, _) => random.NextDouble() - 0.5);
        Matrix<double> u = Gaussian(m, sigma.Length).QR().Q.SubMatrix(0, m, 0, sigma.Length);
        Matrix<double> v = Gaussian(n, sigma.Length).QR().Q.SubMatrix(0, n, 0, sigma.Length);
        Matrix<double> a = u * Matrix<double>.Build.DenseOfDiagonalArray(sigma) * v.Transpose();
        var result = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                result[i * n + j] = (float)a[i, j];
        return result;
    }

    [Fact]
    public void Every_product_goes_through_the_given_gemm_and_the_cpu_gemm_gives_the_same_bits()
    {
        float[] a = WithSpectrum(90, 70, [5, 4, 3, 2, 1, 0.5], seed: 4);
        var counting = new CountingGemm();
        TruncatedSvd viaInterface = RandomizedSvd.Compute(a, 90, 70, 6, seed: 9, counting, powerIterations: 3);
        Assert.Equal(1 + 2 * 3 + 1 + 2, counting.Calls); // sketch, two per power iteration, B = QᵀA, Vᵀ and Uᵀ
        TruncatedSvd direct = RandomizedSvd.Compute(a, 90, 70, 6, seed: 9, powerIterations: 3);
        Assert.Equal(direct.U, viaInterface.U);
        Assert.Equal(direct.S, viaInterface.S);
        Assert.Equal(direct.Vt, viaInterface.Vt);
        TruncatedSvd cpu = RandomizedSvd.Compute(a, 90, 70, 6, seed: 9, new CpuGemm(1), powerIterations: 3);
        Assert.Equal(direct.U, cpu.U);
        Assert.Equal(direct.Vt, cpu.Vt);
    }

    [Fact]
    public void Gemm_backends_parse_device_names_and_give_the_cpu_for_cpu()
    {
        IGemm gemm = GemmBackends.Select("cpu", 2, out string reason);
        Assert.IsType<CpuGemm>(gemm);
        Assert.Equal("cpu (requested)", reason);
        Assert.Throws<ArgumentException>(() => GemmBackends.Select("gpu", 2, out _));
    }

    [Theory]
    [MemberData(nameof(GpuTestDevices.All), MemberType = typeof(GpuTestDevices))]
    public void Gpu_rsvd_agrees_with_the_cpu(string device)
    {
        // The emulator runs every GPU thread as an OS thread: a smaller matrix there, rank 64 of 512 × 384 on CUDA.
        (int m, int n, int rank) = device == GpuTestDevices.Emulated ? (96, 72, 12) : (512, 384, 64);
        var sigma = new double[rank];
        for (int i = 0; i < rank; i++) sigma[i] = 100.0 * Math.Pow(0.93, i);
        float[] a = WithSpectrum(m, n, sigma, seed: 64);
        TruncatedSvd cpu = RandomizedSvd.Compute(a, m, n, rank, seed: 5);
        IGemm gemm = GemmBackends.Select(device, 1, out _);
        TruncatedSvd gpu;
        try
        {
            gpu = RandomizedSvd.Compute(a, m, n, rank, seed: 5, gemm);
        }
        finally
        {
            (gemm as IDisposable)?.Dispose();
        }

        for (int k = 0; k < rank; k++)
        {
            Assert.True(Math.Abs(cpu.S[k] - gpu.S[k]) <= 1e-4 * cpu.S[0], $"σ_{k}: cpu {cpu.S[k]}, gpu {gpu.S[k]}");
            double dotU = 0, dotV = 0;
            for (int i = 0; i < m; i++) dotU += (double)cpu.U[i * rank + k] * gpu.U[i * rank + k];
            for (int j = 0; j < n; j++) dotV += (double)cpu.Vt[k * n + j] * gpu.Vt[k * n + j];
            Assert.True(Math.Abs(dotU) >= 1 - 1e-3 && Math.Abs(dotV) >= 1 - 1e-3, $"triplet {k}: |⟨u⟩| {dotU}, |⟨v⟩| {dotV}");
        }
        var fromCpu = new float[m * n];
        var fromGpu = new float[m * n];
        cpu.Reconstruct(fromCpu);
        gpu.Reconstruct(fromGpu);
        double difference = 0, norm = 0;
        for (int i = 0; i < fromCpu.Length; i++)
        {
            difference += Math.Pow(fromCpu[i] - fromGpu[i], 2);
            norm += (double)a[i] * a[i];
        }
        Assert.True(Math.Sqrt(difference / norm) <= 1e-4, $"relative difference of the reconstructions {Math.Sqrt(difference / norm)}");
    }

    [Theory]
    [MemberData(nameof(GpuTestDevices.All), MemberType = typeof(GpuTestDevices))]
    public void Gpu_gemm_matches_the_cpu_gemm_with_and_without_transpose(string device)
    {
        var random = new Random(3);
        const int m = 37, k = 53, n = 29;
        float[] a = Enumerable.Range(0, m * k).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        float[] b = Enumerable.Range(0, k * n).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        IGemm gemm = GemmBackends.Select(device, 1, out _);
        using var owned = gemm as IDisposable;
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
}
