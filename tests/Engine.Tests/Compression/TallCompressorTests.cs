using Weld.Engine.Compression;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Engine.Tests.Merging;
using Weld.Engine.Tests.Methods;
using Weld.Kernels;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Compression;

/// <summary>TALL-mask compression of zoo fine-tunes and restoring one of them, against a scalar reference.</summary>
public class TallCompressorTests
{
    private static readonly string[] s_tasks = ["lm-ft-c", "lm-ft-python", "lm-ft-markup"];

    [Fact]
    public void Restored_task_is_base_plus_its_mask_times_the_multi_task_vector()
    {
        string dir = TestPaths.NewTempDir();
        string file = Path.Combine(dir, "tall.safetensors");
        double[] lambdas = [0.4, 0.3, 0.6];
        TallCompressionSummary summary = TallCompressor.Compress(TestPaths.Model("lm-base"), s_tasks.Select(TestPaths.Model).ToArray(), lambdas, file);
        Assert.Equal(s_tasks, TallCompressor.TaskNames(file));

        string restored = Path.Combine(dir, "python");
        TallCompressor.Restore(TestPaths.Model("lm-base"), file, "lm-ft-python", restored);
        var baseline = RecipeHarness.ReadAll(TestPaths.Model("lm-base"));
        var tuned = s_tasks.Select(t => RecipeHarness.ReadAll(TestPaths.Model(t))).ToArray();
        var actual = RecipeHarness.ReadAll(restored);
        Assert.Equal(baseline.Keys.Order(), actual.Keys.Order());
        long kept = 0, total = 0;
        foreach (var (name, b) in baseline)
        {
            var expected = new float[b.Length];
            for (int i = 0; i < b.Length; i++)
            {
                float[] tau = tuned.Select(m => m[name][i] - b[i]).ToArray();
                float mtl = 0f;
                foreach (float x in tau) mtl += x;
                bool keep = Math.Abs(tau[1]) >= (float)lambdas[1] * Math.Abs(mtl - tau[1]);
                if (keep) kept++;
                // The restored folder keeps the base's BF16 dtype.
                expected[i] = FloatConversions.Bf16ToSingle(FloatConversions.SingleToBf16(keep ? b[i] + mtl : b[i]));
            }
            total += b.Length;
            MethodHarness.AssertBits(expected, actual[name], name);
        }
        Assert.Equal(kept, summary.KeptPerTask[1]);
        Assert.Equal(total, summary.Elements);
        Assert.InRange(kept, 1, total - 1);
        using var folder = ModelFolder.Open(restored);
        Assert.Equal(DType.BF16, folder.GetTensor("lm_head.weight").DType);
        Assert.NotNull(folder.Config);
    }

    [Fact]
    public void Masks_take_one_bit_per_element_per_task()
    {
        string file = Path.Combine(TestPaths.NewTempDir(), "tall.safetensors");
        TallCompressor.Compress(TestPaths.Model("lm-base"), s_tasks.Select(TestPaths.Model).ToArray(), [0.4, 0.4, 0.4], file);
        using var compressed = SafeTensorsFile.Open(file);
        TensorInfo mask = compressed.GetTensor("model.layers.0.mlp.down_proj.weight.tall_mask.2");
        Assert.Equal(DType.U8, mask.DType);
        Assert.Equal((128L * 384 + 7) / 8, mask.ByteLength);
        Assert.Equal(DType.F32, compressed.GetTensor("model.layers.0.mlp.down_proj.weight").DType);
    }

    [Fact]
    public void Unknown_task_and_foreign_files_are_refused()
    {
        string file = Path.Combine(TestPaths.NewTempDir(), "tall.safetensors");
        TallCompressor.Compress(TestPaths.Model("lm-base"), [TestPaths.Model("lm-ft-c")], [0.4], file);
        var e = Assert.Throws<WeldException>(() => TallCompressor.Restore(TestPaths.Model("lm-base"), file, "lm-ft-prose", Path.Combine(TestPaths.NewTempDir(), "x")));
        Assert.Contains("no task 'lm-ft-prose'", e.Message, StringComparison.Ordinal);
        string notTall = Path.Combine(TestPaths.Model("lm-base"), "model.safetensors");
        Assert.Throws<InvalidModelFileException>(() => TallCompressor.TaskNames(notTall));
    }
}
