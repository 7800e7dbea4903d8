using Weld.Kernels.Cuda;
using Xunit;

namespace Weld.Kernels.Tests.Cuda;

/// <summary>cuBLAS sgemm (<see cref="CudaGemm"/>) against a float64 scalar reference and the CPU <see cref="Weld.Kernels.Cpu.Gemm"/>.</summary>
public class CudaGemmTests
{
    [CudaTheory]
    [InlineData(1, 1, 1)]
    [InlineData(37, 129, 53)]
    [InlineData(256, 2048, 384)]
    public void Product_a_times_b_transposed_matches_the_scalar_reference(int m, int k, int n)
    {
        var random = new System.Random(m * 31 + k * 7 + n);
        float[] a = Values(random, m * k), b = Values(random, n * k);
        float[] gpu = new float[m * n], cpu = new float[m * n];
        using (var gemm = new CudaGemm(0))
        {
            gemm.MultiplyTransposed(a, b, gpu, m, k, n);
        }

        Weld.Kernels.Cpu.Gemm.Multiply(a, b, cpu, m, k, n, transposeB: true);
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double expected = 0, scale = 0;
                for (int p = 0; p < k; p++)
                {
                    double product = (double)a[i * k + p] * b[j * k + p];
                    expected += product;
                    scale += Math.Abs(product);
                }

                // Both float32 results are within a few eps·Σ|a·b| of the exact value (cuBLAS may use other orders, never TF32 here).
                double tolerance = 1e-5 * scale + 1e-30;
                Assert.True(Math.Abs(gpu[i * n + j] - expected) <= tolerance, $"gpu C[{i}, {j}] = {gpu[i * n + j]}, expected {expected}");
                Assert.True(Math.Abs(cpu[i * n + j] - expected) <= tolerance, $"cpu C[{i}, {j}] = {cpu[i * n + j]}, expected {expected}");
            }
        }
    }

    private static float[] Values(System.Random random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }
}
