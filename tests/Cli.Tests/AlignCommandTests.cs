using System.Text.RegularExpressions;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary><c>weld align</c> on the zoo's digits MLPs.</summary>
public sealed class AlignCommandTests
{
    [Fact]
    public void Align_maps_the_permuted_copy_back_to_the_original_file()
    {
        string output = Path.Combine(TestPaths.NewTempDir(), "aligned");
        CliResult result = WeldCli.Run("align", "--reference", TestPaths.Model("mlp-digits-a"),
            "--model", TestPaths.Model("mlp-digits-a-permuted"), "-o", output, "--seed", "5");
        CliAssert.Succeeded(result);
        Assert.Matches(new Regex(@"^iteration 1: objective \S+$", RegexOptions.Multiline), result.Stdout);
        Assert.Contains("converged", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("hidden.0: ", result.Stdout, StringComparison.Ordinal);
        Assert.Equal(File.ReadAllBytes(Path.Combine(TestPaths.Model("mlp-digits-a"), "model.safetensors")),
            File.ReadAllBytes(Path.Combine(output, "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(output, "config.json")));
    }

    [Fact]
    public void Align_on_device_cpu_gives_the_same_file_and_a_bad_device_is_refused()
    {
        string output = Path.Combine(TestPaths.NewTempDir(), "aligned");
        CliResult result = WeldCli.Run("align", "--reference", TestPaths.Model("mlp-digits-a"),
            "--model", TestPaths.Model("mlp-digits-a-permuted"), "-o", output, "--device", "cpu");
        CliAssert.Succeeded(result);
        Assert.Contains("device: cpu (requested)", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(File.ReadAllBytes(Path.Combine(TestPaths.Model("mlp-digits-a"), "model.safetensors")),
            File.ReadAllBytes(Path.Combine(output, "model.safetensors")));

        string other = Path.Combine(TestPaths.NewTempDir(), "aligned");
        CliResult refused = WeldCli.Run("align", "--reference", TestPaths.Model("mlp-digits-a"),
            "--model", TestPaths.Model("mlp-digits-b"), "-o", other, "--device", "tpu");
        CliAssert.InputError(refused, "--device tpu: expected auto, cpu, cuda[:N] or ilgpu-cpu");
        CliAssert.NoOutputLeft(other);
    }

    [Fact]
    public void Align_prints_a_non_decreasing_objective_and_honours_max_iter()
    {
        string output = Path.Combine(TestPaths.NewTempDir(), "aligned");
        CliResult result = WeldCli.Run("align", "--reference", TestPaths.Model("mlp-digits-a"),
            "--model", TestPaths.Model("mlp-digits-b"), "-o", output, "--max-iter", "2");
        CliAssert.Succeeded(result);
        MatchCollection lines = Regex.Matches(result.Stdout, @"^iteration (\d+): objective (\S+)$", RegexOptions.Multiline);
        Assert.Equal(2, lines.Count);
        double first = double.Parse(lines[0].Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
        double second = double.Parse(lines[1].Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(second >= first, result.Stdout);
        Assert.Contains("stopped at --max-iter", result.Stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(output, "model.safetensors")));
    }

    [Fact]
    public void Align_refuses_models_of_different_shapes_and_leaves_no_output()
    {
        string output = Path.Combine(TestPaths.NewTempDir(), "aligned");
        CliResult result = WeldCli.Run("align", "--reference", TestPaths.Model("lm-base"),
            "--model", TestPaths.Model("mlp-digits-b"), "-o", output);
        CliAssert.InputError(result, "lm-base");
        CliAssert.NoOutputLeft(output);
        CliAssert.InputError(WeldCli.Run("align", "--reference", TestPaths.Model("mlp-digits-a"),
            "--model", TestPaths.Model("mlp-digits-b"), "-o", output, "--max-iter", "0"), "--max-iter");
    }
}
