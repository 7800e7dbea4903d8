using System.Text.Json;
using System.Text.Json.Nodes;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary><c>weld moe-compress</c> end to end on an MoE built by <c>weld moe</c> from the zoo (examples/moe/zoo.yml).</summary>
public sealed class MoeCompressCommandTests
{
    private static string Text(string domain) => Path.Combine(TestPaths.SharedModels, "eval", domain + ".txt");

    /// <summary>The zoo MoE (4 experts, top-2, bfloat16) in a fresh temp folder.</summary>
    private static string ZooMoe(string folder)
    {
        string moe = Path.Combine(folder, "moe");
        CliAssert.Succeeded(WeldCli.Run("moe", Path.Combine(Recipes.ExamplesFolder, "moe", "zoo.yml"), "-o", moe));
        return moe;
    }

    /// <summary>The zoo's held-out texts past the 32768 bytes that evaluation scores.</summary>
    private static string[] Calibration(string skip = "32768") =>
        ["--text", Text("c"), Text("python"), Text("markup"), Text("prose"), "--skip", skip, "--bytes", "4096"];

    private static double Perplexity(string model, string domain) =>
        JsonDocument.Parse(WeldCli.Run("eval", model, "--text", Text(domain), "--json", "--bytes", "4096").Stdout)
            .RootElement.GetProperty("perplexity").GetDouble();

    [Fact]
    public void Compresses_the_zoo_moe_to_two_experts_that_eval_loads()
    {
        string folder = TestPaths.NewTempDir();
        string moe = ZooMoe(folder);
        string output = Path.Combine(folder, "k2");

        CliResult dry = WeldCli.Run(["moe-compress", moe, "--experts", "2", "-o", output, "--dry-run", .. Calibration()]);
        CliAssert.Succeeded(dry);
        Assert.Contains("dry run: would write 55 tensors (2,887,936 bytes, from 5,249,280) with 2 of 4 experts in 4 layers, top-2", dry.Stdout);
        Assert.False(Directory.Exists(output));

        CliResult run = WeldCli.Run(["moe-compress", moe, "--experts", "2", "-o", output, .. Calibration()]);
        CliAssert.Succeeded(run);
        Assert.Contains("4 → 2 experts × 4 layers, top-2, 55 tensors, 5,249,280 → 2,887,936 bytes, 16384 calibration tokens", run.Stdout);
        Assert.Contains("layer 3: {", run.Stderr);
        Assert.True(File.Exists(Path.Combine(output, OutputFolder.MarkerFileName)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!;
        Assert.Equal(2, (int)config["num_local_experts"]!);
        Assert.Equal(2, (int)config["num_experts_per_tok"]!);
        Assert.Equal("MixtralForCausalLM", (string)config["architectures"]![0]!);
        Assert.Equal(55, JsonDocument.Parse(WeldCli.Run("inspect", output, "--json").Stdout).RootElement.GetProperty("tensor_count").GetInt32());

        // Scored by the evaluator, and no worse than lm-base by more than a little on code (the merged C expert is there).
        double compressed = Perplexity(output, "c"), baseline = Perplexity(TestPaths.Model("lm-base"), "c");
        Assert.True(double.IsFinite(compressed) && compressed < baseline * 1.05, $"compressed {compressed} vs base {baseline} on c");

        CliAssert.InputError(WeldCli.Run(["moe-compress", moe, "--experts", "2", "-o", output, .. Calibration()]), output);
        CliAssert.Succeeded(WeldCli.Run(["moe-compress", moe, "--experts", "1", "-o", output, "--overwrite", .. Calibration()]));
        Assert.Equal(1, (int)JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!["num_experts_per_tok"]!);

        // Low rank: dense re-materialised weights (same bytes), the factored size reported beside them.
        string lowRank = Path.Combine(folder, "k3r16");
        CliResult ranked = WeldCli.Run(["moe-compress", moe, "--experts", "3", "--rank", "16", "-o", lowRank, .. Calibration()]);
        CliAssert.Succeeded(ranked);
        Assert.Contains("low rank: ranks 16..16", ranked.Stdout);
        Assert.Contains("as factors the tensors would take", ranked.Stdout);
        Assert.True(double.IsFinite(Perplexity(lowRank, "python")));
    }

    [Fact]
    public void The_same_command_writes_the_same_bytes_on_one_thread_and_on_all()
    {
        string folder = TestPaths.NewTempDir();
        string moe = ZooMoe(folder);
        string a = Path.Combine(folder, "a"), b = Path.Combine(folder, "b");
        CliAssert.Succeeded(WeldCli.Run(["moe-compress", moe, "--experts", "3", "--error", "0.3", "-o", a, "--threads", "1", .. Calibration()]));
        CliAssert.Succeeded(WeldCli.Run(["moe-compress", moe, "--experts", "3", "--error", "0.3", "-o", b, .. Calibration()]));
        Assert.Equal(File.ReadAllBytes(Path.Combine(a, "model.safetensors")), File.ReadAllBytes(Path.Combine(b, "model.safetensors")));
    }

    [Fact]
    public void Bad_expert_counts_dense_inputs_and_option_clashes_are_refused_leaving_no_output()
    {
        string folder = TestPaths.NewTempDir();
        string moe = ZooMoe(folder);
        string output = Path.Combine(folder, "out");
        CliAssert.InputError(WeldCli.Run(["moe-compress", moe, "--experts", "4", "-o", output, .. Calibration()]), "--experts 4", "fewer than the model's 4 experts");
        CliAssert.InputError(WeldCli.Run(["moe-compress", moe, "--experts", "0", "-o", output, .. Calibration()]), "--experts 0", "at least 1");
        CliAssert.InputError(WeldCli.Run(["moe-compress", TestPaths.Model("lm-base"), "--experts", "1", "-o", output, .. Calibration()]),
            "lm-base", "is not a mixture of experts");
        CliAssert.InputError(WeldCli.Run(["moe-compress", moe, "--experts", "2", "-o", output, "--text", Path.Combine(folder, "missing.txt")]), "missing.txt");
        CliAssert.InputError(WeldCli.Run(["moe-compress", moe, "--experts", "2", "-o", output, .. Calibration(skip: "65500")]), "fewer than one calibration window");
        CliAssert.InputError(WeldCli.Run(["moe-compress", moe, "--experts", "2", "-o", output, "--rank", "0", .. Calibration()]), "--rank 0");
        CliResult both = WeldCli.Run(["moe-compress", moe, "--experts", "2", "-o", output, "--rank", "4", "--error", "0.1", .. Calibration()]);
        Assert.Equal(2, both.ExitCode);
        CliAssert.NoOutputLeft(output);
    }
}
