using System.Text;
using System.Text.Json;
using Weld.Engine;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.Tests.Evaluation;
using Weld.Engine.Tests.Tokenizers;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests.Eval;

/// <summary><c>weld eval</c> end to end on model folders whose tokenizer Microsoft.ML.Tokenizers reads.</summary>
public sealed class EvalTokenizerTests
{
    private static JsonElement Json(CliResult result)
    {
        CliAssert.Succeeded(result);
        return JsonDocument.Parse(result.Stdout).RootElement.Clone();
    }

    /// <summary>
    /// lm-base's weights with 274 embedding / lm_head rows (the 18 past its 256 seeded random), the hello-world
    /// SentencePiece model, a text of 64 "hello world" lines, and that text's ids derived by hand:
    /// "▁hello▁world" + the newline byte, then "hello" without the dummy prefix on every later line
    /// (271 ▁hello, 273 ▁w, 272 or, 262 l, 266 d, 13 &lt;0x0A&gt;; 270 hello). 384 ids: 6 windows of 64.
    /// </summary>
    private static (string Folder, string Text, int[] Ids) HelloModel()
    {
        string folder = Path.Combine(TestPaths.NewTempDir(), "sp");
        VocabularyFixtures.WriteWeights(folder, "lm-base", HelloSentencePiece.Pieces().Length, tied: false, seed: 7);
        File.WriteAllBytes(Path.Combine(folder, "tokenizer.model"), SentencePieceWriter.WriteLlama2Style(HelloSentencePiece.Pieces()));
        string text = Path.Combine(folder, "hello.txt");
        File.WriteAllText(text, string.Concat(Enumerable.Repeat("hello world\n", 64)));
        var ids = new List<int> { 271, 273, 272, 262, 266, 13 };
        for (int line = 1; line < 64; line++) ids.AddRange([270, 273, 272, 262, 266, 13]);
        return (folder, text, ids.ToArray());
    }

    private static PerplexityResult Expected(string folder, int[] ids)
    {
        using var model = ModelFolder.Open(folder);
        return PerplexityEvaluator.Evaluate(LlamaModel.Load(model), ids, new PerplexityOptions { Window = 64 });
    }

    [Fact]
    public void Eval_scores_a_sentencepiece_model_on_the_hand_derived_ids()
    {
        (string folder, string text, int[] ids) = HelloModel();
        JsonElement json = Json(WeldCli.Run("eval", folder, "--text", text, "--window", "64", "--json"));
        PerplexityResult expected = Expected(folder, ids);
        Assert.Equal(6 * 63, json.GetProperty("tokens").GetInt64());
        Assert.Equal(expected.TotalNll, json.GetProperty("total_nll").GetDouble());
        Assert.Equal(expected.Perplexity, json.GetProperty("perplexity").GetDouble());
    }

    [Fact]
    public void Eval_on_the_torch_engine_uses_the_same_sentencepiece_ids()
    {
        (string folder, string text, int[] ids) = HelloModel();
        JsonElement json = Json(WeldCli.Run("eval", folder, "--text", text, "--window", "64", "--engine", "torch", "--json"));
        Assert.Equal(6 * 63, json.GetProperty("tokens").GetInt64());
        Weld.Cli.Tests.Torch.TorchEngineParityTests.AssertRelative(Expected(folder, ids).Perplexity, json.GetProperty("perplexity").GetDouble(), 1e-5,
            "weld eval --engine torch, SentencePiece");
    }

    [Fact]
    public void Eval_with_the_zoo_vocabulary_as_tokenizer_json_matches_the_byte_model()
    {
        string folder = Path.Combine(TestPaths.NewTempDir(), "lm-base-json");
        Directory.CreateDirectory(folder);
        foreach (string file in Directory.GetFiles(TestPaths.Model("lm-base")))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        ZooBpeFixtures.WriteZooBytes(folder);
        string text = ReferenceMetrics.Text("markup");
        JsonElement viaJson = Json(WeldCli.Run("eval", folder, "--text", text, "--bytes", "4096", "--json"));
        JsonElement viaBytes = Json(WeldCli.Run("eval", TestPaths.Model("lm-base"), "--text", text, "--bytes", "4096", "--json"));
        Assert.Equal(viaBytes.GetProperty("tokens").GetInt64(), viaJson.GetProperty("tokens").GetInt64());
        Assert.Equal(viaBytes.GetProperty("total_nll").GetDouble(), viaJson.GetProperty("total_nll").GetDouble());
    }

    [Fact]
    public void Eval_refuses_an_unreadable_tokenizer_model_in_one_line_naming_it()
    {
        string folder = Path.Combine(TestPaths.NewTempDir(), "bad");
        VocabularyFixtures.WriteWeights(folder, "lm-base", 274, tied: false, seed: 7);
        string path = Path.Combine(folder, "tokenizer.model");
        File.WriteAllBytes(path, Encoding.ASCII.GetBytes("not a model"));
        CliResult result = WeldCli.Run("eval", folder, "--text", ReferenceMetrics.Text("c"), "--bytes", "1024");
        Assert.Equal(1, result.ExitCode);
        string error = result.Stderr.Trim();
        Assert.Contains(path, error, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error);
    }
}
