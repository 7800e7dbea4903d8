using System.Text;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>Byte-level BPE on a vocabulary small enough to merge by hand.</summary>
public class BpeTokenizerTests
{
    // Ids: single symbols, then the merge products. 'Ġ' is GPT-2's character for the space byte.
    private static readonly Dictionary<string, int> s_vocabulary = new()
    {
        ["a"] = 0, ["b"] = 1, ["c"] = 2, ["Ġ"] = 3, ["ab"] = 4, ["abc"] = 5, ["Ġa"] = 6, ["!"] = 7, ["Ċ"] = 8,
    };

    private static readonly (string, string)[] s_merges = [("a", "b"), ("ab", "c"), ("Ġ", "a")];

    private static int[] Encode(BpeTokenizer tokenizer, string text) => tokenizer.Encode(Encoding.UTF8.GetBytes(text));

    [Fact]
    public void Byte_to_unicode_map_matches_gpt2()
    {
        Assert.Equal('\u0120', BpeTokenizer.ByteToChar((byte)' '));
        Assert.Equal('\u010A', BpeTokenizer.ByteToChar((byte)'\n'));
        Assert.Equal('\u0100', BpeTokenizer.ByteToChar(0));
        Assert.Equal('a', BpeTokenizer.ByteToChar((byte)'a'));
        Assert.Equal('\u00FF', BpeTokenizer.ByteToChar(0xFF));
        Assert.Equal('\u0143', BpeTokenizer.ByteToChar(0xAD)); // the 68th non-printable byte: 256 + 67
    }

    [Fact]
    public void Merges_apply_by_rank_within_each_gpt2_piece()
    {
        var tokenizer = new BpeTokenizer(s_vocabulary, s_merges, [BpeTokenizer.Gpt2Pattern]);
        // Pieces: "abc" | " ab" | " ca" | " a" | "!" | "\n".
        // " ab": (a,b) rank 0 beats (Ġ,a) rank 2, leaving Ġ + ab. " ca": no ranked pair. " a": Ġa.
        Assert.Equal([5, 3, 4, 3, 2, 0, 6, 7, 8], Encode(tokenizer, "abc ab ca a!\n"));
    }

    [Fact]
    public void Without_a_split_the_text_is_one_piece()
    {
        var tokenizer = new BpeTokenizer(s_vocabulary, s_merges, []);
        // "a ab": a, Ġ, a, b → (a,b) first: a, Ġ, ab → (Ġ,a)? no: the pair is (Ġ,ab), unranked.
        Assert.Equal([0, 3, 4], Encode(tokenizer, "a ab"));
        // " a b": Ġ a Ġ b → (Ġ,a): Ġa Ġ b.
        Assert.Equal([6, 3, 1], Encode(tokenizer, " a b"));
    }

    [Fact]
    public void Loads_split_and_byte_level_from_tokenizer_json()
    {
        string path = Path.Combine(TestPaths.NewTempDir(), "tokenizer.json");
        File.WriteAllText(path, """
            {
              "normalizer": null,
              "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "[a-z]+"}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
              ]},
              "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "\u0120": 3, "ab": 4, "abc": 5, "\u0120a": 6, "!": 7, "\u010A": 8},
                        "merges": ["a b", ["ab", "c"], "\u0120 a"]}
            }
            """);
        BpeTokenizer tokenizer = BpeTokenizer.Load(path);
        Assert.Equal(9, tokenizer.VocabularySize);
        // Split isolates letter runs, so the space is its own piece and Ġa can never form.
        Assert.Equal([5, 3, 0, 7], Encode(tokenizer, "abc a!"));
    }

    [Fact]
    public void Rejects_a_non_bpe_model_naming_the_file()
    {
        string path = Path.Combine(TestPaths.NewTempDir(), "tokenizer.json");
        File.WriteAllText(path, """{"model": {"type": "WordPiece", "vocab": {}}}""");
        var e = Assert.Throws<InvalidModelFileException>(() => BpeTokenizer.Load(path));
        Assert.Contains("tokenizer.json", e.Message);
        Assert.Contains("BPE", e.Message);
    }

    [Fact]
    public void A_symbol_outside_the_vocabulary_is_a_weld_error()
    {
        var tokenizer = new BpeTokenizer(s_vocabulary, s_merges, []);
        var e = Assert.Throws<WeldException>(() => Encode(tokenizer, "z"));
        Assert.Contains("'z'", e.Message);
    }

    [Fact]
    public void A_model_folder_uses_its_tokenizer_json_else_bytes_for_a_256_vocabulary()
    {
        string folder = TestPaths.NewTempDir();
        foreach (string file in Directory.GetFiles(TestPaths.Model("lm-base")))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        using (var model = ModelFolder.Open(folder))
        {
            LlamaConfig config = LlamaConfig.FromModelConfig(model.Config!);
            Assert.Same(ByteTokenizer.Instance, PerplexityEvaluator.TokenizerFor(model, config));
            var e = Assert.Throws<WeldException>(() => PerplexityEvaluator.TokenizerFor(model, config with { VocabSize = 300 }));
            Assert.Contains("tokenizer.json", e.Message);
        }

        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), """
            {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
             "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}
            """);
        using (var model = ModelFolder.Open(folder))
        {
            ITokenizer tokenizer = PerplexityEvaluator.TokenizerFor(model, LlamaConfig.FromModelConfig(model.Config!));
            Assert.IsType<BpeTokenizer>(tokenizer);
            Assert.Equal([2, 0], tokenizer.Encode("aba"u8));
        }
    }
}
