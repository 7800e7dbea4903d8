using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.Tests.Evaluation;
using Weld.Evaluation.Torch;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests.Torch;

/// <summary>
/// The TorchSharp engine against the built-in forward pass on every zoo language model and domain (the zoo's protocol:
/// 256 windows of 128 bytes), and against the zoo's float64 reference perplexities.
/// </summary>
public class TorchEngineParityTests
{
    public static TheoryData<string> Models => new() { "lm-base", "lm-ft-prose", "lm-ft-c", "lm-ft-python", "lm-ft-markup", "lm-ft-c-sharded" };

    private static readonly string[] s_domains = ["prose", "c", "python", "markup"];

    [Theory]
    [MemberData(nameof(Models))]
    public void Torch_perplexities_match_the_builtin_engine_and_the_float64_reference(string name)
    {
        using ModelFolder folder = ModelFolder.Open(TestPaths.Model(name));
        LlamaModel builtin = LlamaModel.Load(folder);
        using TorchLlamaModel torch = TorchLlamaModel.Load(folder);
        foreach (string domain in s_domains)
        {
            double fromBuiltin = PerplexityEvaluator.EvaluateFile(builtin, ByteTokenizer.Instance, ReferenceMetrics.Text(domain)).Perplexity;
            PerplexityResult fromTorch = PerplexityEvaluator.EvaluateFile(torch, ByteTokenizer.Instance, ReferenceMetrics.Text(domain));
            Assert.Equal(32512, fromTorch.Tokens);
            AssertRelative(fromBuiltin, fromTorch.Perplexity, 1e-5, $"{name}/{domain} torch vs builtin");
            AssertRelative(ReferenceMetrics.Ppl(name, domain, "ppl"), fromTorch.Perplexity, 1e-4, $"{name}/{domain} torch vs float64 reference");
        }
    }

    [Fact]
    public void Bfloat16_compute_stays_close_to_float32()
    {
        using ModelFolder folder = ModelFolder.Open(TestPaths.Model("lm-base"));
        using TorchLlamaModel f32 = TorchLlamaModel.Load(folder);
        using TorchLlamaModel bf16 = TorchLlamaModel.Load(folder, TorchComputeType.BFloat16);
        var options = new PerplexityOptions { Bytes = 4096 };
        double a = PerplexityEvaluator.EvaluateFile(f32, ByteTokenizer.Instance, ReferenceMetrics.Text("c"), options).Perplexity;
        double b = PerplexityEvaluator.EvaluateFile(bf16, ByteTokenizer.Instance, ReferenceMetrics.Text("c"), options).Perplexity;
        // bf16 keeps 8 significant bits: the projections round, so the two differ, but by well under a percent here.
        Assert.NotEqual(a, b);
        AssertRelative(a, b, 1e-2, "bf16 vs float32 compute");
    }

    internal static void AssertRelative(double expected, double actual, double tolerance, string what)
    {
        double relative = Math.Abs(actual - expected) / Math.Abs(expected);
        Assert.True(relative <= tolerance, $"{what}: expected {expected:R}, got {actual:R} (relative {relative:E2} > {tolerance:E0})");
    }
}
