using System.Text.Json.Nodes;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary><c>weld combine-lora</c> and <c>weld extract-lora --device</c> on the zoo's lm-lora-python and an extracted adapter.</summary>
public sealed class CombineLoraCommandTests
{
    [Fact]
    public void Combine_writes_a_peft_adapter_that_folds_into_the_base()
    {
        string dir = TestPaths.NewTempDir();
        string mlp = Path.Combine(dir, "mlp"), combined = Path.Combine(dir, "combined");
        CliAssert.Succeeded(WeldCli.Run("extract-lora", "--model", TestPaths.Model("lm-ft-c"), "--base", TestPaths.Model("lm-base"),
            "--rank", "4", "--include", "mlp", "--device", "cpu", "-o", mlp));

        CliResult result = WeldCli.Run("combine-lora", TestPaths.Model("lm-lora-python"), mlp, "--weights", "0.5", "1.5", "--rank", "6",
            "--clamp", "0.99", "-o", combined);
        CliAssert.Succeeded(result);
        string[] lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("module", lines[0], StringComparison.Ordinal);
        Assert.Equal(12, lines.Count(l => l.Contains(".mlp.", StringComparison.Ordinal) && l.Contains("  2  ", StringComparison.Ordinal)));
        Assert.Equal(16, lines.Count(l => l.Contains(".self_attn.", StringComparison.Ordinal) && l.Contains("  1  ", StringComparison.Ordinal)));
        Assert.Contains("wrote 28 module(s) at rank 6", result.Stdout, StringComparison.Ordinal);

        JsonObject config = JsonNode.Parse(File.ReadAllText(Path.Combine(combined, "adapter_config.json")))!.AsObject();
        Assert.Equal(6, config["r"]!.GetValue<int>());
        Assert.Equal(6, config["lora_alpha"]!.GetValue<int>());
        CliAssert.Succeeded(WeldCli.Run("apply-lora", TestPaths.Model("lm-base"), combined, "-o", Path.Combine(dir, "folded")));
    }

    [Fact]
    public void Bad_inputs_fail_with_exit_1_and_name_the_problem()
    {
        string dir = TestPaths.NewTempDir();
        CliResult mismatch = WeldCli.Run("combine-lora", TestPaths.Model("lm-lora-python"), TestPaths.Model("lm-lora-python"),
            "--weights", "1", "-o", Path.Combine(dir, "x"));
        Assert.Equal(1, mismatch.ExitCode);
        Assert.Contains("1 weight(s) for 2 adapter(s)", mismatch.Stderr, StringComparison.Ordinal);

        CliResult notAdapter = WeldCli.Run("combine-lora", TestPaths.Model("lm-ft-c"), "--weights", "1", "-o", Path.Combine(dir, "x"));
        Assert.Equal(1, notAdapter.ExitCode);
        Assert.Contains("not a PEFT adapter", notAdapter.Stderr, StringComparison.Ordinal);

        CliResult badDevice = WeldCli.Run("extract-lora", "--model", TestPaths.Model("lm-ft-c"), "--base", TestPaths.Model("lm-base"),
            "--rank", "4", "--device", "gpu", "-o", Path.Combine(dir, "y"));
        Assert.Equal(1, badDevice.ExitCode);
        Assert.Contains("--device gpu", badDevice.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(dir, "x")));
        Assert.False(Directory.Exists(Path.Combine(dir, "y")));
    }
}
