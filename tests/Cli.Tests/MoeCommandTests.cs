using System.Text.Json;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary><c>weld moe</c> end to end on the zoo: dry run, errors, and a built MoE scored by eval and report.</summary>
public sealed class MoeCommandTests
{
    private static string Text(string domain) => Path.Combine(TestPaths.SharedModels, "eval", domain + ".txt");

    private static string WriteConfig(string folder, string gateMode, string secondExpert = "lm-ft-python")
    {
        string path = Path.Combine(folder, "moe.yml");
        File.WriteAllText(path, $"""
            base_model: '{TestPaths.Model("lm-base")}'
            gate_mode: {gateMode}
            experts_per_token: 1
            experts:
              - source_model: '{TestPaths.Model("lm-ft-c")}'
                positive_prompts: ["#include <stdio.h>\nint main(void)\n"]
              - source_model: '{TestPaths.Model(secondExpert)}'
                positive_prompts: ["import os\nimport sys\n\ndef main():\n"]
            """);
        return path;
    }

    [Fact]
    public void Dry_run_reports_the_plan_and_writes_nothing()
    {
        string folder = TestPaths.NewTempDir();
        string output = Path.Combine(folder, "out");
        CliResult result = WeldCli.Run("moe", WriteConfig(folder, "hidden"), "-o", output, "--dry-run");
        CliAssert.Succeeded(result);
        Assert.Contains("dry run: would write 55 tensors", result.Stdout);
        Assert.Contains("2 experts × 4 layers", result.Stderr);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void A_bad_expert_is_an_input_error_naming_the_config_line()
    {
        string folder = TestPaths.NewTempDir();
        string output = Path.Combine(folder, "out");
        CliResult result = WeldCli.Run("moe", WriteConfig(folder, "hidden", "no-such-model"), "-o", output);
        CliAssert.InputError(result, "moe.yml:7", "expert 1");
        Assert.False(Directory.Exists(output));
        CliAssert.InputError(WeldCli.Run("moe", WriteConfig(folder, "bogus"), "-o", output), "gate_mode 'bogus'");
    }

    [Fact]
    public void A_built_moe_is_scored_by_eval_and_report_and_routes_code_to_the_c_expert()
    {
        string folder = TestPaths.NewTempDir();
        string output = Path.Combine(folder, "moe");
        CliResult built = WeldCli.Run("moe", WriteConfig(folder, "hidden"), "-o", output);
        CliAssert.Succeeded(built);
        Assert.Contains("MixtralForCausalLM, 2 experts", built.Stdout);
        CliResult refused = WeldCli.Run("moe", WriteConfig(folder, "hidden"), "-o", output);
        Assert.Equal(1, refused.ExitCode); // exists: needs --overwrite
        CliAssert.Succeeded(WeldCli.Run("moe", WriteConfig(folder, "hidden"), "-o", output, "--overwrite"));

        double Ppl(string model, string domain) => JsonDocument.Parse(WeldCli.Run("eval", model, "--text", Text(domain), "--json", "--bytes", "8192").Stdout)
            .RootElement.GetProperty("perplexity").GetDouble();
        double moeC = Ppl(output, "c"), baseC = Ppl(TestPaths.Model("lm-base"), "c"), pythonC = Ppl(TestPaths.Model("lm-ft-python"), "c");
        Assert.True(moeC < pythonC, $"moe {moeC} vs the python expert alone {pythonC} on c");
        Assert.True(moeC < baseC * 1.05, $"moe {moeC} vs base {baseC} on c");
        string reportFolder = Path.Combine(folder, "report");
        CliAssert.Succeeded(WeldCli.Run("report", output, TestPaths.Model("lm-base"), "--text", Text("c"), "--bytes", "4096", "-o", reportFolder));
        Assert.Contains("moe", File.ReadAllText(Path.Combine(reportFolder, "report.md")));
    }

    [Fact]
    public void Out_shard_size_writes_shards_with_an_index_that_eval_loads()
    {
        string folder = TestPaths.NewTempDir();
        string output = Path.Combine(folder, "moe");
        CliResult dry = WeldCli.Run("moe", WriteConfig(folder, "random"), "-o", output, "--out-shard-size", "300K", "--dry-run");
        CliAssert.Succeeded(dry);
        int shards = int.Parse(System.Text.RegularExpressions.Regex.Match(dry.Stdout, @"in (\d+) shard\(s\); nothing written").Groups[1].Value);
        Assert.True(shards > 1, dry.Stdout); // about 2.9 MB of tensors in shards of at most 300 kB
        CliResult built = WeldCli.Run("moe", WriteConfig(folder, "random"), "-o", output, "--out-shard-size", "300K");
        CliAssert.Succeeded(built);
        Assert.Contains($"in {shards} shard(s)", built.Stdout);
        Assert.True(File.Exists(Path.Combine(output, "model.safetensors.index.json")));
        Assert.Equal(shards, Directory.GetFiles(output, "model-*-of-*.safetensors").Length);
        Assert.True(File.Exists(Path.Combine(output, $"model-{shards:D5}-of-{shards:D5}.safetensors")));
        Assert.False(File.Exists(Path.Combine(output, "model.safetensors")));
        CliAssert.Succeeded(WeldCli.Run("eval", output, "--text", Text("c"), "--bytes", "1024"));

        CliAssert.InputError(WeldCli.Run("moe", WriteConfig(folder, "random"), "-o", Path.Combine(folder, "x"), "--out-shard-size", "lots"), "not a byte size");
        Assert.False(Directory.Exists(Path.Combine(folder, "x")));
    }

    [Fact]
    public void A_shared_expert_gives_a_qwen2_moe_that_eval_scores()
    {
        string folder = TestPaths.NewTempDir();
        string config = Path.Combine(folder, "qwen.yml");
        File.WriteAllText(config, File.ReadAllText(WriteConfig(folder, "hidden")) + $"""

            shared_experts:
              - source_model: '{TestPaths.Model("lm-base")}'
                positive_prompts: ["The "]
            """);
        string output = Path.Combine(folder, "qwen");
        CliResult built = WeldCli.Run("moe", config, "-o", output);
        CliAssert.Succeeded(built);
        Assert.Contains("Qwen2MoeForCausalLM, 2 experts + 1 shared × 4 layers", built.Stdout);
        Assert.Contains("\"model_type\": \"qwen2_moe\"", File.ReadAllText(Path.Combine(output, "config.json")));
        CliResult eval = WeldCli.Run("eval", output, "--text", Text("c"), "--bytes", "2048", "--json");
        CliAssert.Succeeded(eval);
        double perplexity = JsonDocument.Parse(eval.Stdout).RootElement.GetProperty("perplexity").GetDouble();
        Assert.True(perplexity is > 1 and < 20, $"{perplexity}");
    }

    [Fact]
    public void The_zoo_example_builds_from_the_repository_root_with_models_relative_to_the_config()
    {
        string output = Path.Combine(TestPaths.NewTempDir(), "moe");
        CliResult result = WeldCli.Run("moe", Path.Combine(Recipes.ExamplesFolder, "moe", "zoo.yml"), "-o", output);
        CliAssert.Succeeded(result);
        Assert.Contains("4 experts × 4 layers, top-2", result.Stdout);
        Assert.True(File.Exists(Path.Combine(output, "model.safetensors")));
    }
}
