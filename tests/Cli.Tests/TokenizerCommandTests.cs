using Weld.Engine.Tests.Tokenizers;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary><c>weld inspect</c> shows a model's vocabulary; <c>merge --dry-run</c> the output vocabulary and where its rows come from.</summary>
public sealed class TokenizerCommandTests
{
    [Fact]
    public void Inspect_shows_the_vocabulary_size_and_the_added_tokens()
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string model = VocabularyFixtures.Make(Path.Combine(temp, "c"), "lm-ft-c", ["<|b|>", "<|s|>"], rows: 264, special: ["<|b|>"]);

        CliResult result = WeldCli.Run("inspect", model);

        CliAssert.Succeeded(result);
        Assert.Contains("tokenizer:  258 tokens (the config's vocab_size is 264), 2 added: 256 \"<|b|>\" (special), 257 \"<|s|>\"", result.Stdout);
        result = WeldCli.Run("inspect", model, "--json");
        CliAssert.Succeeded(result);
        var tokenizer = System.Text.Json.Nodes.JsonNode.Parse(result.Stdout)!["tokenizer"]!;
        Assert.Equal(258, tokenizer["vocab_size"]!.GetValue<int>());
        Assert.Equal("<|s|>", tokenizer["added_tokens"]![1]!["content"]!.GetValue<string>());
        Assert.Equal(257, tokenizer["added_tokens"]![1]!["id"]!.GetValue<int>());
    }

    [Fact]
    public void Inspect_shows_a_sentencepiece_vocabulary_with_its_piece_types()
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string model = VocabularyFixtures.MakeSentencePiece(Path.Combine(temp, "sp"), "lm-ft-c", VocabularyFixtures.Pieces(), ["<|tool|>"], ["<|im_start|>"]);

        CliResult result = WeldCli.Run("inspect", model);

        CliAssert.Succeeded(result);
        Assert.Contains("tokenizer:  258 tokens from tokenizer.model (256 pieces: 188 normal, 1 unknown, 2 control, 1 user-defined, 64 byte), 5 added: " +
            "0 \"<unk>\" (special), 1 \"<s>\" (special), 2 \"</s>\" (special), 256 \"<|tool|>\" (special), 257 \"<|im_start|>\"", result.Stdout);
        result = WeldCli.Run("inspect", model, "--json");
        CliAssert.Succeeded(result);
        var tokenizer = System.Text.Json.Nodes.JsonNode.Parse(result.Stdout)!["tokenizer"]!;
        Assert.Equal("tokenizer.model", tokenizer["format"]!.GetValue<string>());
        Assert.Equal(64, tokenizer["pieces"]!["byte"]!.GetValue<int>());
        Assert.Equal(258, tokenizer["vocab_size"]!.GetValue<int>());
    }

    [Fact]
    public void DryRun_shows_the_output_vocabulary_and_where_each_models_rows_come_from()
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string a = VocabularyFixtures.Make(Path.Combine(temp, "a"), "lm-base", ["<|a|>"]);
        string c = VocabularyFixtures.Make(Path.Combine(temp, "c"), "lm-ft-c", ["<|b|>", "<|s|>"]);
        string recipe = Recipes.Write(temp, $"""
            models:
              - model: {a}
                parameters:
                  weight: 0.5
              - model: {c}
                parameters:
                  weight: 0.5
            merge_method: linear
            base_model: {a}
            tokenizer:
              source: union
              pad_to_multiple_of: 4
            """);

        CliResult result = WeldCli.Run("merge", recipe, "--dry-run");

        CliAssert.Succeeded(result);
        string[] lines = result.Stdout.ReplaceLineEndings("\n").Split('\n');
        Assert.Contains(lines, l => l.StartsWith("vocabulary: 259 tokens, 260 rows (1 padding); tokenizer from ", StringComparison.Ordinal)
            && l.EndsWith("; 2 added: 257 \"<|b|>\", 258 \"<|s|>\"", StringComparison.Ordinal));
        Assert.Contains("  rows of model 0: 257 its own, 2 only in " + c + ", 1 padding (mean of the token rows)", lines);
        Assert.Contains("  rows of model 1: 258 its own, 1 only in " + a + ", 1 padding (mean of the token rows)", lines);
        Assert.Contains(lines, l => l.StartsWith("  model.embed_tokens.weight [260, 128]", StringComparison.Ordinal));
    }
}
