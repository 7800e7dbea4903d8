using System.Text.Json.Nodes;
using Weld.Engine.Compression;
using Weld.Engine.Models;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary><c>weld compress FT --base BASE --error E</c> then <c>weld decompress</c> on zoo fine-tunes.</summary>
public sealed class LowRankCompressTests
{
    /// <summary>‖restored − original‖_F / ‖original‖_F per tensor, by a scalar loop in double over the two folders.</summary>
    private static Dictionary<string, double> MeasuredErrors(string original, string restored)
    {
        using var a = ModelFolder.Open(original);
        using var b = ModelFolder.Open(restored);
        var errors = new Dictionary<string, double>();
        foreach (string name in a.TensorNames)
        {
            Assert.Equal(a.GetTensor(name).DType, b.GetTensor(name).DType);
            var x = new float[a.GetTensor(name).ElementCount];
            var y = new float[x.Length];
            a.GetTensor(name).ReadFloat32(0, x);
            b.GetTensor(name).ReadFloat32(0, y);
            double num = 0, den = 0;
            for (int i = 0; i < x.Length; i++)
            {
                num += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
                den += (double)x[i] * x[i];
            }
            errors[name] = Math.Sqrt(num / den);
        }
        return errors;
    }

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.01)]
    public void Compress_then_decompress_stays_within_the_budget_and_prints_the_table(double budget)
    {
        string dir = TestPaths.NewTempDir();
        string compressed = Path.Combine(dir, "c"), restored = Path.Combine(dir, "r");
        string e = budget.ToString(System.Globalization.CultureInfo.InvariantCulture);
        CliResult result = WeldCli.Run("compress", TestPaths.Model("lm-ft-python"), "--base", TestPaths.Model("lm-base"), "--error", e, "-o", compressed);
        CliAssert.Succeeded(result);
        Assert.Contains("model.layers.0.mlp.down_proj.weight", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("compressed 39 tensors", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("size ratio:", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("max error:", result.Stdout, StringComparison.Ordinal);

        CliResult back = WeldCli.Run("decompress", compressed, "--base", TestPaths.Model("lm-base"), "-o", restored);
        CliAssert.Succeeded(back);
        Assert.Contains("restored 39 tensors", back.Stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(restored, "config.json")));
        foreach (var (name, error) in MeasuredErrors(TestPaths.Model("lm-ft-python"), restored))
            Assert.True(error <= budget, $"{name}: {error} > {budget}");
    }

    [Fact]
    public void Json_reports_every_tensor_and_the_size_ratio()
    {
        string dir = TestPaths.NewTempDir();
        CliResult result = WeldCli.Run("compress", TestPaths.Model("lm-ft-c"), "--base", TestPaths.Model("lm-base"), "--error", "0.1", "-o", Path.Combine(dir, "c"), "--json");
        CliAssert.Succeeded(result);
        JsonObject json = JsonNode.Parse(result.Stdout)!.AsObject();
        JsonArray tensors = json["tensors"]!.AsArray();
        Assert.Equal(39, tensors.Count);
        long stored = tensors.Sum(t => t!["stored_bytes"]!.GetValue<long>());
        long original = tensors.Sum(t => t!["original_bytes"]!.GetValue<long>());
        Assert.Equal(new FileInfo(Path.Combine(dir, "c", LowRankCompressor.DataFileName)).Length, json["compressed_bytes"]!.GetValue<long>());
        Assert.Equal(original, json["original_bytes"]!.GetValue<long>());
        Assert.True(stored < original);
        Assert.Equal((double)json["compressed_bytes"]!.GetValue<long>() / original, json["size_ratio"]!.GetValue<double>(), 12);
        Assert.Equal(tensors.Max(t => t!["relative_error"]!.GetValue<double>()), json["max_relative_error"]!.GetValue<double>());
    }

    [Fact]
    public void A_wrong_base_fails_with_exit_1_naming_it()
    {
        string dir = TestPaths.NewTempDir();
        string compressed = Path.Combine(dir, "c");
        CliAssert.Succeeded(WeldCli.Run("compress", TestPaths.Model("lm-ft-c"), "--base", TestPaths.Model("lm-base"), "--error", "0.1", "-o", compressed, "--quiet"));
        CliResult result = WeldCli.Run("decompress", compressed, "--base", TestPaths.Model("lm-ft-prose"), "-o", Path.Combine(dir, "r"));
        CliAssert.InputError(result, "lm-ft-prose", "wrong base");
        Assert.False(Directory.Exists(Path.Combine(dir, "r")));
    }

    [Fact]
    public void A_folder_without_a_manifest_fails_with_exit_1()
    {
        CliResult result = WeldCli.Run("decompress", TestPaths.Model("lm-ft-c"), "--base", TestPaths.Model("lm-base"), "-o", Path.Combine(TestPaths.NewTempDir(), "r"));
        CliAssert.InputError(result, LowRankManifest.FileName, "missing");
    }

    [Fact]
    public void Error_with_tall_or_two_models_is_a_usage_error()
    {
        string output = Path.Combine(TestPaths.NewTempDir(), "c");
        CliResult tall = WeldCli.Run("compress", "--tall", TestPaths.Model("lm-ft-c"), "--base", TestPaths.Model("lm-base"), "--error", "0.1", "-o", output);
        Assert.Equal(2, tall.ExitCode);
        CliResult two = WeldCli.Run("compress", TestPaths.Model("lm-ft-c"), TestPaths.Model("lm-ft-prose"), "--base", TestPaths.Model("lm-base"), "--error", "0.1", "-o", output);
        Assert.Equal(2, two.ExitCode);
        Assert.Contains("exactly one fine-tune", two.Stderr, StringComparison.Ordinal);
        CliResult negative = WeldCli.Run("compress", TestPaths.Model("lm-ft-c"), "--base", TestPaths.Model("lm-base"), "--error", "-1", "-o", output);
        Assert.NotEqual(0, negative.ExitCode);
        Assert.False(Directory.Exists(output));
    }
}
