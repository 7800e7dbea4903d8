using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>Weld's forward pass against the zoo's reference perplexities (full 32 KiB protocol).</summary>
public class PerplexityTests
{
    private const double RelativeTolerance = 1e-3;

    internal static PerplexityResult Score(LlamaModel model, string domain) =>
        PerplexityEvaluator.EvaluateFile(model, ByteTokenizer.Instance, ReferenceMetrics.Text(domain));

    internal static void AssertClose(double expected, double actual, string what)
    {
        double relative = Math.Abs(actual - expected) / expected;
        Assert.True(relative <= RelativeTolerance, $"{what}: expected {expected:R}, got {actual:R} (relative error {relative:E2})");
    }

    [Theory]
    [InlineData("prose")]
    [InlineData("c")]
    [InlineData("python")]
    [InlineData("markup")]
    public void Lm_base_matches_the_reference_on_every_domain(string domain)
    {
        using var folder = ModelFolder.Open(TestPaths.Model("lm-base"));
        PerplexityResult result = Score(LlamaModel.Load(folder), domain);
        Assert.Equal(256, result.Windows);
        Assert.Equal(32512, result.Tokens);
        AssertClose(ReferenceMetrics.Ppl("lm-base", domain), result.Perplexity, $"lm-base/{domain}");
    }

    [Theory]
    [InlineData("lm-ft-prose", "prose")]
    [InlineData("lm-ft-c", "python")]
    [InlineData("lm-ft-python", "python")]
    [InlineData("lm-ft-markup", "c")]
    [InlineData("lm-ft-c-sharded", "markup")]
    public void Fine_tunes_match_the_reference(string model, string domain)
    {
        using var folder = ModelFolder.Open(TestPaths.Model(model));
        AssertClose(ReferenceMetrics.Ppl(model, domain), Score(LlamaModel.Load(folder), domain).Perplexity, $"{model}/{domain}");
    }
}
