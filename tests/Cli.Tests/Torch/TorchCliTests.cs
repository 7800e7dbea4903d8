using System.Text.Json;
using Weld.Engine.Tests.Evaluation;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests.Torch;

/// <summary><c>weld eval --engine torch</c>, <c>--task</c> on both engines, and task columns in <c>weld report</c>.</summary>
public class TorchCliTests
{
    private static JsonElement Json(CliResult result)
    {
        CliAssert.Succeeded(result);
        return JsonDocument.Parse(result.Stdout).RootElement.Clone();
    }

    [Fact]
    public void Eval_text_on_the_torch_engine_matches_the_float64_reference()
    {
        JsonElement json = Json(WeldCli.Run("eval", TestPaths.Model("lm-ft-markup"), "--text", ReferenceMetrics.Text("markup"), "--engine", "torch", "--json"));
        Assert.Equal("torch", json.GetProperty("engine").GetString());
        TorchEngineParityTests.AssertRelative(ReferenceMetrics.Ppl("lm-ft-markup", "markup", "ppl"), json.GetProperty("perplexity").GetDouble(), 1e-4, "weld eval --engine torch");
    }

    [Fact]
    public void Eval_task_json_is_the_same_on_both_engines()
    {
        string task = ZooTasks.Write(TestPaths.NewTempDir(), "c", 12);
        JsonElement builtin = Json(WeldCli.Run("eval", TestPaths.Model("lm-ft-c"), "--task", task, "--json"));
        JsonElement torch = Json(WeldCli.Run("eval", TestPaths.Model("lm-ft-c"), "--task", task, "--engine", "torch", "--json"));
        Assert.Equal(12, builtin.GetProperty("items").GetInt32());
        Assert.Equal(builtin.GetProperty("accuracy").GetDouble(), torch.GetProperty("accuracy").GetDouble());
        Assert.Equal(builtin.GetProperty("accuracy_norm").GetDouble(), torch.GetProperty("accuracy_norm").GetDouble());
        // Twelve items: the accuracies are multiples of 1/12, and the fine-tune beats chance (1/4) on its own domain.
        double accuracy = builtin.GetProperty("accuracy_norm").GetDouble();
        Assert.Equal(Math.Round(accuracy * 12), accuracy * 12, 9);
        Assert.True(accuracy > 0.25, $"accuracy_norm {accuracy}");
        Assert.True(torch.GetProperty("seconds").GetDouble() >= 0);
    }

    [Fact]
    public void Report_adds_task_columns()
    {
        string tasks = TestPaths.NewTempDir(), output = TestPaths.NewTempDir();
        string python = ZooTasks.Write(tasks, "python", 8);
        CliResult result = WeldCli.Run("report", TestPaths.Model("lm-ft-python"), "--text", ReferenceMetrics.Text("python"), "--bytes", "2048",
            "--task", python, "--engine", "torch", "-o", output);
        CliAssert.Succeeded(result);
        string markdown = File.ReadAllText(Path.Combine(output, "report.md"));
        Assert.Contains("| model | python | mean NLL | python acc | python acc_norm |", markdown, StringComparison.Ordinal);
        Assert.Matches(@"\| lm-ft-python \| \d+\.\d{4} \| \d+\.\d{4} \| \d\.\d{4} \| \d\.\d{4} \|", markdown);
    }

    [Fact]
    public void Unknown_engine_and_bf16_on_the_builtin_engine_are_refused()
    {
        CliResult unknown = WeldCli.Run("eval", TestPaths.Model("lm-base"), "--text", ReferenceMetrics.Text("c"), "--engine", "onnx");
        Assert.NotEqual(0, unknown.ExitCode);
        Assert.Contains("--engine onnx: not an evaluation engine (builtin, torch)", unknown.Stderr, StringComparison.Ordinal);
        CliResult bf16 = WeldCli.Run("eval", TestPaths.Model("lm-base"), "--text", ReferenceMetrics.Text("c"), "--compute", "bfloat16");
        Assert.Contains("the builtin engine computes in float32 only", bf16.Stderr, StringComparison.Ordinal);
    }
}
