using System.Text.Json.Nodes;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary><c>weld apply-lora</c> and <c>weld extract-lora</c> on the zoo's lm-base and lm-lora-python.</summary>
public sealed class LoraCommandTests
{
    [Fact]
    public void Apply_then_extract_writes_a_peft_adapter_and_a_per_module_table()
    {
        string dir = TestPaths.NewTempDir();
        string merged = Path.Combine(dir, "merged"), adapter = Path.Combine(dir, "adapter");
        CliResult applied = WeldCli.Run("apply-lora", TestPaths.Model("lm-base"), TestPaths.Model("lm-lora-python"), "-o", merged);
        CliAssert.Succeeded(applied);
        Assert.Contains("folded 28 LoRA module(s)", applied.Stdout, StringComparison.Ordinal);

        CliResult extracted = WeldCli.Run("extract-lora", "--model", merged, "--base", TestPaths.Model("lm-base"), "--rank", "8",
            "--exclude", "mlp", "-o", adapter);
        CliAssert.Succeeded(extracted);
        string[] lines = extracted.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("module", lines[0], StringComparison.Ordinal);
        Assert.Equal(16, lines.Count(l => l.Contains("self_attn", StringComparison.Ordinal)));
        Assert.DoesNotContain("mlp", extracted.Stdout, StringComparison.Ordinal);
        Assert.Contains("model.layers.0.self_attn.k_proj  [64, 128]", extracted.Stdout, StringComparison.Ordinal);
        Assert.Contains("wrote 16 module(s)", extracted.Stdout, StringComparison.Ordinal);

        JsonObject config = JsonNode.Parse(File.ReadAllText(Path.Combine(adapter, "adapter_config.json")))!.AsObject();
        Assert.Equal(["k_proj", "o_proj", "q_proj", "v_proj"], config["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()).Order());
        Assert.True(File.Exists(Path.Combine(adapter, "adapter_model.safetensors")));

        // The extracted adapter folds back in like any PEFT adapter.
        CliAssert.Succeeded(WeldCli.Run("apply-lora", TestPaths.Model("lm-base"), adapter, "-o", Path.Combine(dir, "again")));
    }

    [Fact]
    public void Bad_inputs_fail_with_exit_1_and_name_the_problem()
    {
        string dir = TestPaths.NewTempDir();
        CliResult notAdapter = WeldCli.Run("apply-lora", TestPaths.Model("lm-base"), TestPaths.Model("lm-ft-c"), "-o", Path.Combine(dir, "x"));
        Assert.Equal(1, notAdapter.ExitCode);
        Assert.Contains("not a PEFT adapter", notAdapter.Stderr, StringComparison.Ordinal);

        CliResult badRank = WeldCli.Run("extract-lora", "--model", TestPaths.Model("lm-ft-c"), "--base", TestPaths.Model("lm-base"), "--rank", "0", "-o", Path.Combine(dir, "y"));
        Assert.Equal(1, badRank.ExitCode);
        Assert.Contains("rank 0", badRank.Stderr, StringComparison.Ordinal);

        CliResult badRegex = WeldCli.Run("extract-lora", "--model", TestPaths.Model("lm-ft-c"), "--base", TestPaths.Model("lm-base"), "--rank", "4", "--include", "[", "-o", Path.Combine(dir, "y"));
        Assert.Equal(1, badRegex.ExitCode);
        Assert.Contains("--include", badRegex.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(dir, "x")));
        Assert.False(Directory.Exists(Path.Combine(dir, "y")));
    }
}
