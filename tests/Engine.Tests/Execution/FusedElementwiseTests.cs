using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Execution;

/// <summary>
/// The fused elementwise path (tiles decoded, merged and encoded in cache) must give exactly the bytes of the plain
/// path (whole chunks converted to float32), on any thread count, for every elementwise method and output dtype.
/// </summary>
public class FusedElementwiseTests
{
    private const string ThreeModels = """
        models:
          - model: {zoo}/lm-ft-prose
            parameters: {weight: 0.3}
          - model: {zoo}/lm-ft-c
            parameters: {weight: 0.5}
          - model: {zoo}/lm-ft-python
            parameters: {weight: 0.7}
        """ + "\n";

    // magmax, consensus and ram read no per-model weight (the parameter check refuses one).
    private const string ThreeModelsUnweighted = """
        models:
          - model: {zoo}/lm-ft-prose
          - model: {zoo}/lm-ft-c
          - model: {zoo}/lm-ft-python
        """ + "\n";

    public static TheoryData<string, string> Recipes => new()
    {
        { "linear", ThreeModels + "merge_method: linear\n" },
        { "linear-unnormalized-f32", ThreeModels + "merge_method: linear\nparameters: {normalize: false}\nout_dtype: float32\n" },
        { "linear-f16", ThreeModels + "merge_method: linear\nout_dtype: float16\n" },
        { "task_arithmetic", ThreeModels + "base_model: {zoo}/lm-base\nmerge_method: task_arithmetic\nparameters: {lambda: 0.8}\n" },
        { "task_arithmetic-lines", ThreeModels + "base_model: {zoo}/lm-base\nmerge_method: task_arithmetic\nlines: {alpha: 0.2, beta: 0.9}\n" },
        { "magmax", ThreeModelsUnweighted + "base_model: {zoo}/lm-base\nmerge_method: magmax\n" },
        { "consensus", ThreeModelsUnweighted + "base_model: {zoo}/lm-base\nmerge_method: consensus\n" },
        { "ram", ThreeModelsUnweighted + "base_model: {zoo}/lm-base\nmerge_method: ram\n" },
        { "nearswap", """
            models:
              - model: {zoo}/lm-ft-c
            base_model: {zoo}/lm-base
            merge_method: nearswap
            parameters: {t: 0.001}
            """ },
    };

    [Theory]
    [MemberData(nameof(Recipes))]
    public void Fused_tiles_give_the_plain_paths_bytes_on_any_thread_count(string name, string yaml)
    {
        MergeRecipe recipe = RecipeParser.Parse(yaml.Replace("{zoo}", TestPaths.SharedModels), $"{name}.yml");
        string plain = Output(), fused = Output(), fusedOneThread = Output();
        MergeRunner.Run(recipe, new MergeOptions { OutputPath = plain, FuseElementwise = false });
        MergeRunner.Run(recipe, new MergeOptions { OutputPath = fused });
        MergeRunner.Run(recipe, new MergeOptions { OutputPath = fusedOneThread, Threads = 1 });
        AssertSameTensorFiles(plain, fused);
        AssertSameTensorFiles(plain, fusedOneThread);
    }

    [Fact]
    public void A_tensor_cut_into_items_and_tiles_with_odd_ends_gives_the_plain_bytes_within_budget()
    {
        // 2,500,003 elements: three items of 1M-aligned chunks under a small budget, each cut into 16K tiles,
        // the last tile odd-sized; NaN, ±Inf and exact bf16 rounding ties included.
        string folder = TestPaths.NewTempDir();
        var random = new Random(Random.Shared.Next());
        const int n = 2_500_003;
        foreach (string m in new[] { "base", "a", "b" })
        {
            Directory.CreateDirectory(Path.Combine(folder, m));
            var header = new TensorHeader("big.weight", DType.BF16, [n]);
            using var writer = new SafeTensorsWriter(Path.Combine(folder, m, "model.safetensors"), [header], null);
            var values = new float[n];
            for (int i = 0; i < n; i++) values[i] = (float)(random.NextDouble() - 0.5);
            values[17] = float.NaN;
            values[n - 2] = float.PositiveInfinity;
            values[40_000] = float.NegativeInfinity;
            writer.WriteFloat32(values);
            writer.Complete();
        }
        string yaml = $$"""
            models:
              - model: {{folder}}/a
                parameters: {weight: 0.3}
              - model: {{folder}}/b
                parameters: {weight: 0.9}
            base_model: {{folder}}/base
            merge_method: task_arithmetic
            """;
        MergeRecipe recipe = RecipeParser.Parse(yaml, "big.yml");
        string plain = Output(), fused = Output();
        // The non-finite values are the point here: let them through (by default they are refused).
        MergeRunner.Run(recipe, new MergeOptions { OutputPath = plain, FuseElementwise = false, MemoryLimitBytes = 500_000_000, AllowNonFinite = true });
        MergeSummary summary = MergeRunner.Run(recipe, new MergeOptions { OutputPath = fused, MemoryLimitBytes = 9_000_000, AllowNonFinite = true });
        Assert.True(summary.PeakBufferBytes <= 9_000_000, $"peak {summary.PeakBufferBytes} above the budget");
        AssertSameTensorFiles(plain, fused);
    }

    private static string Output() => Path.Combine(TestPaths.NewTempDir(), "out");

    private static void AssertSameTensorFiles(string expected, string actual)
    {
        string[] files = Directory.GetFiles(expected, "*.safetensors").Select(Path.GetFileName).OfType<string>().Order().ToArray();
        Assert.NotEmpty(files);
        Assert.Equal(files, Directory.GetFiles(actual, "*.safetensors").Select(Path.GetFileName).OfType<string>().Order().ToArray());
        foreach (string file in files)
            Assert.True(File.ReadAllBytes(Path.Combine(expected, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(actual, file))),
                $"{file} differs");
    }
}
