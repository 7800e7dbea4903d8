using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>
/// Multiple-choice scoring as lm-evaluation-harness does it, on the built-in engine: the task file format, the
/// context/continuation split, the log-likelihood sums, and that a domain's fine-tune does best on that domain's items.
/// </summary>
public class MultipleChoiceTests
{
    [Fact]
    public void Trailing_whitespace_of_the_context_moves_to_the_continuation()
    {
        (int[] whole, int contextLength) = MultipleChoiceEvaluator.EncodePair(ByteTokenizer.Instance, "int x =\n ", " 42;");
        Assert.Equal("int x =\n  42;"u8.ToArray().Select(b => (int)b), whole);
        Assert.Equal("int x =".Length, contextLength);
    }

    [Fact]
    public void A_choice_log_likelihood_is_the_sum_of_its_token_log_probabilities_given_the_context()
    {
        using ModelFolder folder = ModelFolder.Open(TestPaths.Model("lm-base"));
        LlamaModel model = LlamaModel.Load(folder);
        var item = new MultipleChoiceItem("The quick brown", ["fox", "dog jumps"], 0);
        MultipleChoiceResult r = MultipleChoiceEvaluator.Evaluate(model, ByteTokenizer.Instance, [item]);

        // Independently: score the whole text as one window and add the log-probabilities of the choice's bytes.
        for (int c = 0; c < 2; c++)
        {
            int[] tokens = System.Text.Encoding.UTF8.GetBytes("The quick brown " + item.Choices[c]).Select(b => (int)b).ToArray();
            var nll = new double[tokens.Length - 1];
            model.ScoreTokens(tokens, 1, tokens.Length, nll);
            double expected = 0;
            for (int t = "The quick brown".Length; t < tokens.Length; t++) expected -= nll[t - 1];
            Assert.Equal(expected, r.LogLikelihoods[0][c], 12);
        }

        double[] ll = r.LogLikelihoods[0];
        Assert.Equal(ll[0] >= ll[1] ? 0 : 1, r.Predictions[0]);
        Assert.Equal(ll[0] / 3 >= ll[1] / 9 ? 0 : 1, r.NormPredictions[0]);
    }

    [Fact]
    public void Task_lines_are_validated_with_file_and_line_in_the_message()
    {
        Assert.Equal(new MultipleChoiceItem("a", ["b", "c"], 1).Choices,
            MultipleChoiceTask.Parse("""{"context": "a", "choices": ["b", "c"], "gold": 1}""", "t:1").Choices);
        Assert.Contains("t:3: \"gold\" must be an index into the 2 choices",
            Assert.Throws<WeldException>(() => MultipleChoiceTask.Parse("""{"context": "a", "choices": ["b", "c"], "gold": 2}""", "t:3")).Message);
        Assert.Contains("t:4: \"choices\" must be an array of at least two strings",
            Assert.Throws<WeldException>(() => MultipleChoiceTask.Parse("""{"context": "a", "choices": ["b"], "gold": 0}""", "t:4")).Message);
        Assert.Contains("t:5: not valid JSON",
            Assert.Throws<WeldException>(() => MultipleChoiceTask.Parse("{context", "t:5")).Message);
    }

    [Fact]
    public void An_empty_context_is_refused()
    {
        using ModelFolder folder = ModelFolder.Open(TestPaths.Model("lm-base"));
        var e = Assert.Throws<WeldException>(() =>
            MultipleChoiceEvaluator.Evaluate(LlamaModel.Load(folder), ByteTokenizer.Instance, [new MultipleChoiceItem("  ", ["a", "b"], 0)]));
        Assert.Contains("item 1: the context is empty", e.Message, StringComparison.Ordinal);
    }

    /// <summary>accuracy_norm of every trained zoo model (rows) on every domain's items (columns), computed once.</summary>
    private static readonly Lazy<Dictionary<(string Model, string Domain), double>> s_matrix = new(() =>
    {
        var result = new Dictionary<(string, string), double>();
        foreach (string name in (string[])["lm-base", .. ZooTasks.Domains.Select(d => "lm-ft-" + d)])
        {
            using ModelFolder folder = ModelFolder.Open(TestPaths.Model(name));
            LlamaModel model = LlamaModel.Load(folder);
            foreach (string d in ZooTasks.Domains)
            {
                var items = ZooTasks.Lines(d, ZooTasks.ItemsPerDomain).Select((l, i) => MultipleChoiceTask.Parse(l, $"{d}:{i + 1}")).ToList();
                result[(name, d)] = MultipleChoiceEvaluator.Evaluate(model, ByteTokenizer.Instance, items).AccuracyNorm;
            }
        }

        return result;
    });

    [Theory]
    [InlineData("prose")]
    [InlineData("c")]
    [InlineData("python")]
    [InlineData("markup")]
    public void A_fine_tune_scores_higher_on_its_own_domain_items_than_on_the_others_and_than_the_other_models(string domain)
    {
        Dictionary<(string Model, string Domain), double> accuracy = s_matrix.Value;
        string model = "lm-ft-" + domain;
        string row = string.Join(", ", ZooTasks.Domains.Select(d => $"{d} {accuracy[(model, d)]:F3}"));
        foreach (string other in ZooTasks.Domains.Where(d => d != domain))
            Assert.True(accuracy[(model, domain)] > accuracy[(model, other)], $"{model}: accuracy_norm {row}");
        foreach (string other in (string[])["lm-base", .. ZooTasks.Domains.Where(d => d != domain).Select(d => "lm-ft-" + d)])
            Assert.True(accuracy[(model, domain)] > accuracy[(other, domain)],
                $"{domain} items: {model} {accuracy[(model, domain)]:F3}, {other} {accuracy[(other, domain)]:F3}");
    }
}
