using MathNet.Numerics.LinearAlgebra;
using Weld.Engine.Compression;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Compression;

/// <summary>
/// <see cref="LowRankCompressor"/> round trips. Errors are re-measured here in double from the original and the
/// decompressed files, never taken from the manifest.
/// </summary>
public class LowRankCompressorTests
{
    private const long NoSharding = 1L << 40;

    private static float[] Read(ModelFolder model, string name)
    {
        ModelTensor t = model.GetTensor(name);
        var values = new float[t.ElementCount];
        t.ReadFloat32(0, values);
        return values;
    }

    private static byte[] Bytes(ModelTensor t) => t.File.GetBytes(t.Info, 0, checked((int)t.Info.ByteLength)).ToArray();

    /// <summary>‖restored − original‖_F / ‖original‖_F by a scalar loop in double.</summary>
    private static double RelativeError(float[] original, float[] restored)
    {
        double num = 0, den = 0;
        for (int i = 0; i < original.Length; i++)
        {
            double d = (double)restored[i] - original[i];
            num += d * d;
            den += (double)original[i] * original[i];
        }
        return den == 0 ? (num == 0 ? 0 : double.PositiveInfinity) : Math.Sqrt(num / den);
    }

    /// <summary>Compresses and decompresses; returns the result, the compressed folder and the restored folder.</summary>
    private static (LowRankCompressionResult Result, string Compressed, string Restored) RoundTrip(string fineTune, string baseModel, double budget, long maxShardBytes = NoSharding)
    {
        string dir = TestPaths.NewTempDir();
        string compressed = Path.Combine(dir, "compressed");
        string restored = Path.Combine(dir, "restored");
        LowRankCompressionResult result = LowRankCompressor.Compress(fineTune, baseModel, compressed, new LowRankCompressionOptions(budget, Seed: 7));
        LowRankCompressor.Decompress(compressed, baseModel, restored, maxShardBytes, overwrite: false);
        return (result, compressed, restored);
    }

    /// <summary>Every tensor of the restored model is in the fine-tune's dtype and shape and within the budget.</summary>
    private static void AssertWithinBudget(string fineTunePath, string restoredPath, LowRankCompressionResult result, double budget)
    {
        using var fineTune = ModelFolder.Open(fineTunePath);
        using var restored = ModelFolder.Open(restoredPath);
        Assert.Equal(fineTune.TensorNames.Order(StringComparer.Ordinal), restored.TensorNames.Order(StringComparer.Ordinal));
        var entries = result.Manifest.Tensors.ToDictionary(e => e.Name);
        foreach (string name in fineTune.TensorNames)
        {
            ModelTensor o = fineTune.GetTensor(name), r = restored.GetTensor(name);
            Assert.Equal(o.DType, r.DType);
            Assert.Equal(o.Shape, r.Shape);
            LowRankTensorEntry entry = entries[name];
            if (entry.Kind != LowRankTensorKind.LowRank)
            {
                Assert.Equal(Bytes(o), Bytes(r));
                continue;
            }
            double error = RelativeError(Read(fineTune, name), Read(restored, name));
            Assert.True(error <= budget, $"{name}: rank {entry.Rank}, measured error {error} > budget {budget}");
            // The manifest must report what decompress really produced.
            Assert.Equal(error, entry.RelativeError, 1e-9);
        }
    }

    [Theory]
    [InlineData("lm-ft-c", 0.01)]
    [InlineData("lm-ft-c", 0.001)]
    [InlineData("lm-ft-prose", 0.01)]
    [InlineData("lm-ft-c-sharded", 0.01)]
    [InlineData("lm-ft-c", 0.1)]
    [InlineData("lm-ft-c-sharded", 0.1)]
    public void Zoo_fine_tunes_restore_within_the_budget(string model, double budget)
    {
        var (result, _, restored) = RoundTrip(TestPaths.Model(model), TestPaths.Model("lm-base"), budget);
        AssertWithinBudget(TestPaths.Model(model), restored, result, budget);
        Assert.Equal(39, result.Manifest.Tensors.Count);
        Assert.All(result.Manifest.Tensors.Where(e => e.Shape.Length == 1), e => Assert.NotEqual(LowRankTensorKind.LowRank, e.Kind));
        // The zoo residuals are full rank with ‖ΔW‖/‖W_ft‖ ≈ 0.1–0.2: at 1% every changed tensor is stored exactly; at 10%
        // every 2-D tensor has a rank small enough to pay.
        if (budget >= 0.1)
        {
            Assert.All(result.Manifest.Tensors.Where(e => e.Shape.Length == 2), e => Assert.Equal(LowRankTensorKind.LowRank, e.Kind));
            Assert.True(result.SizeRatio < 1, $"size ratio {result.SizeRatio}");
        }
    }

    [Fact]
    public void Zero_budget_restores_every_tensor_bit_identical()
    {
        string ft = TestPaths.Model("lm-ft-python");
        var (result, _, restored) = RoundTrip(ft, TestPaths.Model("lm-base"), 0);
        Assert.DoesNotContain(result.Manifest.Tensors, e => e.Kind == LowRankTensorKind.LowRank);
        using var original = ModelFolder.Open(ft);
        using var back = ModelFolder.Open(restored);
        foreach (string name in original.TensorNames)
        {
            Assert.Equal(original.GetTensor(name).DType, back.GetTensor(name).DType);
            Assert.Equal(Bytes(original.GetTensor(name)), Bytes(back.GetTensor(name)));
        }
        Assert.True(File.Exists(Path.Combine(restored, "config.json")));
    }

    [Fact]
    public void A_fine_tune_identical_to_the_base_stores_no_tensor_bytes()
    {
        var (result, _, restored) = RoundTrip(TestPaths.Model("lm-base"), TestPaths.Model("lm-base"), 0.01);
        Assert.All(result.Manifest.Tensors, e => Assert.Equal(LowRankTensorKind.SameAsBase, e.Kind));
        Assert.All(result.Manifest.Tensors, e => Assert.Equal(0, e.StoredBytes));
        AssertWithinBudget(TestPaths.Model("lm-base"), restored, result, 0);
    }

    /// <summary>Orthonormal columns from the QR of a seeded Gaussian matrix.</summary>
    private static Matrix<double> RandomOrthonormal(int rows, int columns, Random random) =>
        Matrix<double>.Build.Dense(rows, columns, (_, _) => Gaussian(random)).QR().Q.SubMatrix(0, rows, 0, columns);

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    private static void WriteSingle(string path, string name, float[] values, int rows, int columns)
    {
        using var writer = new SafeTensorsWriter(path, [new TensorHeader(name, DType.F32, [rows, columns])], null);
        writer.WriteFloat32(values);
        writer.Complete();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(6)]
    public void The_chosen_rank_is_the_smallest_that_meets_the_budget(int targetRank)
    {
        const int M = 40, N = 30;
        var random = new Random(1000 + targetRank);
        Matrix<double> u = RandomOrthonormal(M, N, random), v = RandomOrthonormal(N, N, random);
        var sigma = Matrix<double>.Build.Diagonal(N, N, i => Math.Pow(0.6, i));
        Matrix<double> delta = u * sigma * v.Transpose();
        var baseValues = new float[M * N];
        var ftValues = new float[M * N];
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
            {
                baseValues[i * N + j] = (float)Gaussian(random);
                ftValues[i * N + j] = (float)(baseValues[i * N + j] + delta[i, j]);
            }

        // The exact spectrum of the residual as stored (float32 difference of the two files).
        var stored = new float[M * N];
        for (int i = 0; i < stored.Length; i++) stored[i] = ftValues[i] - baseValues[i];
        double[] s = ExactSvd.SingularValues(stored, M, N);
        double Tail(int rank) => Math.Sqrt(s.Skip(rank).Sum(x => x * x));
        double ftNorm = Math.Sqrt(ftValues.Sum(x => (double)x * x));
        // A budget halfway (geometrically) between the errors of rank targetRank − 1 and targetRank.
        double budget = Math.Sqrt(Tail(targetRank - 1) * Tail(targetRank)) / ftNorm;

        string dir = TestPaths.NewTempDir();
        string basePath = Path.Combine(dir, "base.safetensors"), ftPath = Path.Combine(dir, "ft.safetensors");
        WriteSingle(basePath, "w", baseValues, M, N);
        WriteSingle(ftPath, "w", ftValues, M, N);
        var (result, _, restored) = RoundTrip(ftPath, basePath, budget);

        LowRankTensorEntry entry = Assert.Single(result.Manifest.Tensors);
        Assert.Equal(LowRankTensorKind.LowRank, entry.Kind);
        Assert.True(Tail(entry.Rank - 1) > budget * ftNorm, $"rank {entry.Rank} is not minimal: rank {entry.Rank - 1} already meets the budget");
        Assert.Equal(targetRank, entry.Rank);
        AssertWithinBudget(ftPath, restored, result, budget);
        double keptExpected = s.Take(entry.Rank).Sum(x => x * x) / s.Sum(x => x * x);
        Assert.Equal(keptExpected, entry.EnergyKept, 1e-5);
    }

    /// <summary>lm-base with a seeded rank-4 ΔW added to every 2-D tensor (rms 0.25 of the weight's), stored as BF16.</summary>
    private static string WriteRankFourFineTune(string dir)
    {
        string folder = Path.Combine(dir, "ft-rank4");
        Directory.CreateDirectory(folder);
        using var baseline = ModelFolder.Open(TestPaths.Model("lm-base"));
        var headers = baseline.TensorNames.Select(n => new TensorHeader(n, baseline.GetTensor(n).DType, baseline.GetTensor(n).Shape)).ToArray();
        var random = new Random(4);
        using (var writer = new SafeTensorsWriter(Path.Combine(folder, "model.safetensors"), headers, null))
        {
            foreach (TensorHeader h in headers)
            {
                float[] w = Read(baseline, h.Name);
                if (h.Shape.Length == 2)
                {
                    int m = (int)h.Shape[0], n = (int)h.Shape[1];
                    double[] a = Enumerable.Range(0, m * 4).Select(_ => Gaussian(random)).ToArray();
                    double[] b = Enumerable.Range(0, 4 * n).Select(_ => Gaussian(random)).ToArray();
                    double rms = Math.Sqrt(w.Sum(x => (double)x * x) / w.Length);
                    double scale = 0.25 * rms / 2; // entries of a·b summed over 4 terms have rms 2
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++)
                        {
                            double d = 0;
                            for (int k = 0; k < 4; k++) d += a[i * 4 + k] * b[k * n + j];
                            w[i * n + j] = (float)(w[i * n + j] + scale * d);
                        }
                }
                writer.WriteFloat32(w);
            }
            writer.Complete();
        }
        File.Copy(Path.Combine(TestPaths.Model("lm-base"), "config.json"), Path.Combine(folder, "config.json"));
        return folder;
    }

    [Fact]
    public void A_genuinely_low_rank_residual_compresses_to_less_than_the_fine_tune()
    {
        string ft = WriteRankFourFineTune(TestPaths.NewTempDir());
        var (result, _, restored) = RoundTrip(ft, TestPaths.Model("lm-base"), 0.01);
        AssertWithinBudget(ft, restored, result, 0.01);
        Assert.True(result.SizeRatio < 0.5, $"size ratio {result.SizeRatio}");
        foreach (LowRankTensorEntry e in result.Manifest.Tensors)
        {
            if (e.Shape.Length == 1) Assert.Equal(LowRankTensorKind.SameAsBase, e.Kind);
            else
            {
                Assert.Equal(LowRankTensorKind.LowRank, e.Kind);
                Assert.InRange(e.Rank, 1, 4); // the BF16 rounding noise is below the budget, so rank 4 suffices
            }
        }
        Assert.True(result.CompressedBytes >= result.Manifest.Tensors.Sum(e => e.StoredBytes));
    }

    [Fact]
    public void Decompress_shards_like_the_writer_with_an_index()
    {
        string ft = TestPaths.Model("lm-ft-markup");
        var (result, _, restored) = RoundTrip(ft, TestPaths.Model("lm-base"), 0.01, maxShardBytes: 600_000);
        Assert.True(File.Exists(Path.Combine(restored, ShardIndex.FileName)));
        Assert.True(Directory.GetFiles(restored, "model-*-of-*.safetensors").Length > 1);
        AssertWithinBudget(ft, restored, result, 0.01);
    }

    [Fact]
    public void The_same_seed_gives_the_same_bytes()
    {
        string dir = TestPaths.NewTempDir();
        var options = new LowRankCompressionOptions(0.01, Seed: 3);
        LowRankCompressor.Compress(TestPaths.Model("lm-ft-c"), TestPaths.Model("lm-base"), Path.Combine(dir, "a"), options);
        LowRankCompressor.Compress(TestPaths.Model("lm-ft-c"), TestPaths.Model("lm-base"), Path.Combine(dir, "b"), options);
        foreach (string file in new[] { LowRankCompressor.DataFileName, LowRankManifest.FileName })
            Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "a", file)), File.ReadAllBytes(Path.Combine(dir, "b", file)));
    }

    [Fact]
    public void A_wrong_base_is_refused_naming_it_and_nothing_is_written()
    {
        string dir = TestPaths.NewTempDir();
        string compressed = Path.Combine(dir, "c");
        LowRankCompressor.Compress(TestPaths.Model("lm-ft-c"), TestPaths.Model("lm-base"), compressed, new LowRankCompressionOptions(0.01));
        string output = Path.Combine(dir, "out");
        var e = Assert.ThrowsAny<WeldException>(() => LowRankCompressor.Decompress(compressed, TestPaths.Model("lm-ft-python"), output, NoSharding, false));
        Assert.Contains("lm-ft-python", e.Message, StringComparison.Ordinal);
        Assert.Contains("wrong base", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output));
        Assert.Empty(Directory.GetDirectories(dir, ".out*"));
    }

    [Fact]
    public void A_missing_or_corrupt_manifest_is_a_clear_error()
    {
        string dir = TestPaths.NewTempDir();
        string compressed = Path.Combine(dir, "c");
        LowRankCompressor.Compress(TestPaths.Model("lm-ft-c"), TestPaths.Model("lm-base"), compressed, new LowRankCompressionOptions(0.01));
        string manifest = Path.Combine(compressed, LowRankManifest.FileName);
        string text = File.ReadAllText(manifest);
        string output = Path.Combine(dir, "out");

        void AssertFails(string contents, string expected)
        {
            File.WriteAllText(manifest, contents);
            var e = Assert.Throws<InvalidModelFileException>(() => LowRankCompressor.Decompress(compressed, TestPaths.Model("lm-base"), output, NoSharding, false));
            Assert.Equal(manifest, e.FilePath);
            Assert.Contains(expected, e.Message, StringComparison.Ordinal);
            Assert.False(Directory.Exists(output));
        }

        AssertFails("{ not json", "not valid JSON");
        AssertFails(text.Replace("\"weld-lowrank\"", "\"other\"", StringComparison.Ordinal), "format is 'other'");
        AssertFails(text.Replace("\"version\": 1", "\"version\": 9", StringComparison.Ordinal), "version 9");
        AssertFails(text.Replace("\"sha256\"", "\"sha\"", StringComparison.Ordinal), "'sha256' is missing");
        AssertFails(text.Replace("\"kind\": \"exact\"", "\"kind\": 5", StringComparison.Ordinal), "invalid manifest");
        File.Delete(manifest);
        var missing = Assert.Throws<InvalidModelFileException>(() => LowRankCompressor.Decompress(compressed, TestPaths.Model("lm-base"), output, NoSharding, false));
        Assert.Contains("missing", missing.Message, StringComparison.Ordinal);
        Assert.Equal(manifest, missing.FilePath);
    }

    [Fact]
    public void A_manifest_naming_factors_the_data_file_lacks_names_the_tensor()
    {
        string dir = TestPaths.NewTempDir();
        string compressed = Path.Combine(dir, "c");
        LowRankCompressionResult result = LowRankCompressor.Compress(TestPaths.Model("lm-ft-c"), TestPaths.Model("lm-base"), compressed, new LowRankCompressionOptions(0.1));
        LowRankTensorEntry lowRank = result.Manifest.Tensors.First(t => t.Kind == LowRankTensorKind.LowRank);
        var tampered = result.Manifest.Tensors.Select(t => t == lowRank ? t with { Rank = t.Rank + 1 } : t).ToArray();
        (result.Manifest with { Tensors = tampered }).Write(compressed);
        var e = Assert.Throws<InvalidModelFileException>(() => LowRankCompressor.Decompress(compressed, TestPaths.Model("lm-base"), Path.Combine(dir, "out"), NoSharding, false));
        Assert.Contains(lowRank.Name, e.Message, StringComparison.Ordinal);
        Assert.EndsWith(LowRankCompressor.DataFileName, e.FilePath, StringComparison.Ordinal);
    }

    [Fact]
    public void A_cancelled_run_leaves_nothing_behind()
    {
        string dir = TestPaths.NewTempDir();
        using var cancel = new CancellationTokenSource();
        var progress = new SynchronousProgress(p => { if (p.TensorsDone == 5) cancel.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => LowRankCompressor.Compress(TestPaths.Model("lm-ft-c"), TestPaths.Model("lm-base"),
            Path.Combine(dir, "c"), new LowRankCompressionOptions(0.1), progress, cancel.Token));
        Assert.Empty(Directory.GetFileSystemEntries(dir));
    }

    private sealed class SynchronousProgress(Action<LowRankProgress> report) : IProgress<LowRankProgress>
    {
        public void Report(LowRankProgress value) => report(value);
    }

    [Fact]
    public void A_negative_budget_is_refused()
    {
        var e = Assert.Throws<WeldException>(() => LowRankCompressor.Compress(TestPaths.Model("lm-ft-c"), TestPaths.Model("lm-base"),
            Path.Combine(TestPaths.NewTempDir(), "c"), new LowRankCompressionOptions(-0.1)));
        Assert.Contains("-0.1", e.Message, StringComparison.Ordinal);
    }
}
