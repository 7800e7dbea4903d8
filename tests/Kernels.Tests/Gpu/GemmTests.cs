using Weld.Kernels.Gpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// <see cref="GpuGemm"/> against a float64 triple loop (within the float32 rounding bound) and the CPU
/// <see cref="Cpu.Gemm"/>; the tiled ILGPU kernel also bit for bit against its own order (one fused multiply-add per
/// p, ascending), on odd sizes that leave partial tiles and partial k-slices, with B plain and transposed.
/// </summary>
public sealed class GemmTests
{
    public static TheoryData<string, int, int, int, bool> Cases
    {
        get
        {
            var data = new TheoryData<string, int, int, int, bool>();
            (int M, int K, int N, bool TransposeB)[] sizes =
            [
                (1, 1, 1, false), (1, 1, 1, true), (3, 5, 7, false), (7, 13, 5, true), (33, 17, 65, false),
                (37, 129, 71, true), (16, 16, 16, false), (5, 300, 131, false), (130, 7, 3, true),
            ];
            foreach (string shape in GpuShapes.All)
                foreach ((int m, int k, int n, bool transposeB) in sizes)
                    data.Add(shape, m, k, n, transposeB);
            if (GpuShapes.CudaMissing is null)
                data.Add(GpuShapes.Cuda, 256, 2048, 384, true); // the old cuBLAS test's size: too slow for the emulator
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_the_float64_reference_and_the_cpu_on_odd_sizes(string shape, int m, int k, int n, bool transposeB)
    {
        float[] a = Random(m * k, m * 1000 + k);
        float[] b = Random(k * n, n * 7 + 3);
        (double[] expected, double[] bound) = Gemm.GemmTests.Reference(a, b, m, k, n, transposeB);
        var cpu = new float[m * n];
        Cpu.Gemm.Multiply(a, b, cpu, m, k, n, transposeB, maxDegreeOfParallelism: 2);
        // On CUDA both cuBLAS and the tiled kernel; elsewhere the two are the same tiled kernel, run once.
        bool[] variants = GpuShapes.Get(shape).Device.IsCuda ? [true, false] : [true];
        foreach (bool useCublas in variants)
        {
            using var gemm = new GpuGemm(GpuShapes.Get(shape), useCublas: useCublas);
            var c = new float[m * n];
            Array.Fill(c, float.NaN); // every element must be written
            gemm.Multiply(a, b, c, m, k, n, transposeB);
            string context = $"{shape} {gemm.Implementation} m={m} k={k} n={n} transposeB={transposeB}";
            for (int i = 0; i < c.Length; i++)
            {
                Assert.True(Math.Abs(c[i] - expected[i]) <= bound[i],
                    $"{context}: C[{i / n},{i % n}] = {c[i]:R}, expected {expected[i]:R} ± {bound[i]:E2}");
                Assert.True(Math.Abs(c[i] - cpu[i]) <= 2 * bound[i], $"{context}: C[{i / n},{i % n}] = {c[i]:R}, cpu {cpu[i]:R}");
            }
            if (!gemm.UsesCublas)
                BitAssert.Identical(FusedOrder(a, b, m, k, n, transposeB), c, context + " vs the fused order");
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Transposed_and_plain_B_agree_and_the_tiled_kernel_is_deterministic(string shape)
    {
        const int m = 19, k = 77, n = 23;
        float[] a = Random(m * k, 1);
        float[] b = Random(k * n, 2);
        var bt = new float[n * k];
        for (int p = 0; p < k; p++)
            for (int j = 0; j < n; j++)
                bt[j * k + p] = b[p * n + j];
        using var gemm = new GpuGemm(GpuShapes.Get(shape), useCublas: false);
        var plain = new float[m * n];
        var transposed = new float[m * n];
        var again = new float[m * n];
        gemm.Multiply(a, b, plain, m, k, n);
        gemm.MultiplyTransposed(a, bt, transposed, m, k, n);
        gemm.Multiply(a, b, again, m, k, n);
        BitAssert.Identical(plain, transposed, shape + " plain vs transposed");
        BitAssert.Identical(plain, again, shape + " run to run");
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Zero_inner_dimension_clears_C_and_bad_sizes_throw(string shape)
    {
        using var gemm = new GpuGemm(GpuShapes.Get(shape));
        var c = new float[] { 1, 2, 3, 4 };
        gemm.Multiply([], [], c, 2, 0, 2);
        Assert.All(c, value => Assert.Equal(0f, value));
        gemm.Multiply([], [], [], 0, 3, 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => gemm.Multiply(new float[5], new float[6], new float[4], 2, 3, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => gemm.Multiply(new float[6], new float[5], new float[4], 2, 3, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => gemm.Multiply(new float[6], new float[6], new float[3], 2, 3, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => gemm.Multiply([], [], [], -1, 0, 0));
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Says_which_implementation_runs_and_why(string shape)
    {
        GpuKernels kernels = GpuShapes.Get(shape);
        using var gemm = new GpuGemm(kernels);
        Assert.Equal(kernels.Name, gemm.Name);
        if (kernels.Device.IsCuda)
        {
            // cuBLAS where it loads; otherwise the reason names what failed.
            Assert.Equal(gemm.UsesCublas ? "cublas" : "ilgpu-tiled", gemm.Implementation);
            Assert.Contains(gemm.UsesCublas ? "cuBLAS sgemm" : "cuBLAS did not load", gemm.Reason, StringComparison.Ordinal);
        }
        else
        {
            Assert.False(gemm.UsesCublas);
            Assert.Equal("ilgpu-tiled", gemm.Implementation);
            Assert.Contains("not a CUDA device", gemm.Reason, StringComparison.Ordinal);
        }
        using var forced = new GpuGemm(kernels, useCublas: false);
        Assert.False(forced.UsesCublas);
    }

    [Fact]
    public void Tile_shapes_cover_one_group()
    {
        Assert.Equal((4, 4), GemmKernels.TileShape(16));
        Assert.Equal((8, 4), GemmKernels.TileShape(32));
        Assert.Equal((16, 16), GemmKernels.TileShape(256));
        Assert.Equal((1, 1), GemmKernels.TileShape(1));
        Assert.Throws<NotSupportedException>(() => GemmKernels.TileShape(48));
    }

    /// <summary>The tiled kernel's order: c = fma(a[i,p], b[p,j], c) for p ascending from +0.</summary>
    private static float[] FusedOrder(float[] a, float[] b, int m, int k, int n, bool transposeB)
    {
        var c = new float[m * n];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                float sum = 0f;
                for (int p = 0; p < k; p++)
                    sum = MathF.FusedMultiplyAdd(a[i * k + p], transposeB ? b[j * k + p] : b[p * n + j], sum);
                c[i * n + j] = sum;
            }
        }
        return c;
    }

    private static float[] Random(int count, int seed)
    {
        var random = new System.Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
            values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }
}
