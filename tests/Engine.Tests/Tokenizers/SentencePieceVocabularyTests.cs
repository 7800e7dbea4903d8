using System.Text.Json.Nodes;
using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.Models;
using Weld.Engine.Planning;
using Weld.Engine.Tokenizers;
using Weld.Tests;
using Xunit;
using static Weld.Engine.Tests.Tokenizers.VocabularyFixtures;

namespace Weld.Engine.Tests.Tokenizers;

/// <summary>
/// Sentencepiece-only models (tokenizer.model, added tokens in tokenizer_config.json / added_tokens.json, no
/// tokenizer.json), built from zoo weights with a hand-written ModelProto: their vocabularies, output rows by exact
/// equality, and the tokenizer files written for transformers.
/// </summary>
public sealed class SentencePieceVocabularyTests
{
    private const string Embed = "model.embed_tokens.weight";
    private const string Head = "lm_head.weight";
    private const string Hello = "\u2581hello";

    [Fact]
    public void Pieces_their_scores_and_types_are_read_and_other_fields_skipped()
    {
        SentencePiece[] pieces = Pieces();
        Assert.Equal(pieces, SentencePieceModel.ReadPieces(SentencePieceWriter.Write(pieces)));
        Assert.Equal(pieces, SentencePieceModel.ReadPieces(SentencePieceWriter.Write(pieces, withOtherFields: false)));
        Assert.Equal([SentencePieceType.Unknown, SentencePieceType.Control, SentencePieceType.Byte, SentencePieceType.Normal, SentencePieceType.UserDefined],
            new[] { 0, 1, 3, 67, 255 }.Select(i => SentencePieceModel.ReadPieces(SentencePieceWriter.Write(pieces))[i].Type).ToArray());

        string file = Path.Combine(TestPaths.NewTempDir(), "tokenizer.model");
        byte[] bytes = SentencePieceWriter.Write(pieces);
        File.WriteAllBytes(file, bytes.AsSpan(0, bytes.Length - 20).ToArray()); // cut inside the trainer_spec
        var e = Assert.Throws<WeldException>(() => SentencePieceModel.ReadPieces(file));
        Assert.StartsWith(file + ": not a sentencepiece model: ", e.Message);
        File.WriteAllText(file, "IQ== 0\nIg== 1\nIw== 2\n"); // a tiktoken tokenizer.model
        e = Assert.Throws<WeldException>(() => SentencePieceModel.ReadPieces(file));
        Assert.StartsWith(file + ": not a sentencepiece model: ", e.Message);
    }

    [Fact]
    public void The_vocabulary_is_the_pieces_then_the_added_tokens_of_the_decoder_and_of_added_tokens_json()
    {
        string folder = TestPaths.NewTempDir();
        string c = MakeSentencePiece(Path.Combine(folder, "c"), "lm-ft-c", Pieces(new Dictionary<int, string> { [100] = Hello }), ["<|tool|>"], ["<|im_start|>"]);
        using var model = ModelFolder.Open(c);
        ModelVocabulary v = ModelVocabulary.Load(model);
        Assert.Equal(VocabularyFormat.SentencePiece, v.Format);
        Assert.Equal(258, v.TokenizerSize);
        Assert.Equal(258, v.Tokens.Count);
        Assert.Equal(100, v.Tokens[Hello]);
        Assert.Equal(3, v.Tokens["<0x00>"]);
        Assert.Equal(255, v.Tokens["<|user|>"]);
        Assert.Equal([(0, "<unk>", true), (1, "<s>", true), (2, "</s>", true), (256, "<|tool|>", true), (257, "<|im_start|>", false)],
            v.Added.Select(a => (a.Id, a.Content, a.Special)).ToArray());
        // added_tokens.json alone: transformers' legacy reading (normalized, not special unless special_tokens_map names it).
        Assert.True(v.Added[4].Settings["normalized"]!.GetValue<bool>());
    }

    private sealed class Two
    {
        /// <summary>base: pieces, &lt;|im_start|&gt; (256). c: piece 100 is "▁hello", &lt;|tool|&gt; (256), &lt;|im_start|&gt; (257, added_tokens.json only).</summary>
        public Two(int? cRows = null, int? baseRows = null)
        {
            Folder = TestPaths.NewTempDir();
            Base = MakeSentencePiece(Path.Combine(Folder, "base"), "lm-base", Pieces(), ["<|im_start|>"], rows: baseRows, seed: 1);
            C = MakeSentencePiece(Path.Combine(Folder, "c"), "lm-ft-c", Pieces(new Dictionary<int, string> { [100] = Hello }), ["<|tool|>"], ["<|im_start|>"],
                rows: cRows, seed: 2);
        }

        public string Folder { get; }
        public string Base { get; }
        public string C { get; }

        public string Merge(string tokenizer, string select)
        {
            string yaml = $"""
                models:
                  - model: {Base}
                    parameters: {(select == "base" ? "{weight: 1.0}" : "{weight: 0.0}")}
                  - model: {C}
                    parameters: {(select == "c" ? "{weight: 1.0}" : "{weight: 0.0}")}
                base_model: {Base}
                merge_method: linear
                dtype: float32
                {tokenizer}
                """;
            string output = Path.Combine(TestPaths.NewTempDir(), "out");
            MergeRunner.Run(RecipeParser.Parse(yaml, Path.Combine(Folder, "recipe.yml")), new MergeOptions { OutputPath = output, Threads = 2 });
            return output;
        }
    }

    private static JsonNode Json(string folder, string file) => JsonNode.Parse(File.ReadAllText(Path.Combine(folder, file)))!;

    [Fact]
    public void Union_of_sentencepiece_models_permutes_every_models_rows_and_writes_the_base_tokenizer_model_with_the_added_tokens()
    {
        var m = new Two();
        foreach (string select in new[] { "base", "c" })
        {
            string output = m.Merge("tokenizer_source: union", select);
            string own = select == "base" ? m.Base : m.C;
            foreach (string tensor in new[] { Embed, Head })
            {
                // The base's 256 pieces and <|im_start|> (256), then c's regular "▁hello" (257), then c's <|tool|> (258).
                Assert.Equal(259, Rows(output, tensor));
                foreach (int piece in new[] { 0, 2, 3, 66, 99, 101, 255 })
                    Assert.Equal(Row(own, tensor, piece), Row(output, tensor, piece));
                // "▁p100" is only in the base (c has "▁hello" there): the base's row in every model.
                Assert.Equal(Row(m.Base, tensor, 100), Row(output, tensor, 100));
                // <|im_start|>: in both (c's from added_tokens.json, id 257): each model's own row.
                Assert.Equal(select == "base" ? Row(m.Base, tensor, 256) : Row(m.C, tensor, 257), Row(output, tensor, 256));
                // "▁hello" and <|tool|>: only in c.
                Assert.Equal(Row(m.C, tensor, 100), Row(output, tensor, 257));
                Assert.Equal(Row(m.C, tensor, 256), Row(output, tensor, 258));
            }

            Assert.Equal(File.ReadAllBytes(Path.Combine(m.Base, "tokenizer.model")), File.ReadAllBytes(Path.Combine(output, "tokenizer.model")));
            Assert.False(File.Exists(Path.Combine(output, "tokenizer.json")));
            Assert.Equal(259, Json(output, "config.json")["vocab_size"]!.GetValue<int>());
            var added = Json(output, "added_tokens.json").AsObject();
            Assert.Equal([("<|im_start|>", 256), (Hello, 257), ("<|tool|>", 258)], added.Select(kv => (kv.Key, kv.Value!.GetValue<int>())).ToArray());
            var config = Json(output, "tokenizer_config.json");
            var decoder = config["added_tokens_decoder"]!.AsObject();
            Assert.Equal(["0", "1", "2", "256", "257", "258"], decoder.Select(kv => kv.Key).ToArray());
            Assert.Equal(Hello, decoder["257"]!["content"]!.GetValue<string>());
            Assert.False(decoder["257"]!["special"]!.GetValue<bool>()); // a regular token of c: transformers' add_tokens(str)
            Assert.True(decoder["258"]!["special"]!.GetValue<bool>());
            Assert.Equal("LlamaTokenizer", config["tokenizer_class"]!.GetValue<string>());
            Assert.Equal("<s>", Json(output, "special_tokens_map.json")["bos_token"]!.GetValue<string>());

            // The output reads back as the union vocabulary.
            using var written = ModelFolder.Open(output);
            ModelVocabulary v = ModelVocabulary.Load(written);
            Assert.Equal(259, v.Tokens.Count);
            Assert.Equal(257, v.Tokens[Hello]);
            Assert.Equal(258, v.Tokens["<|tool|>"]);
        }
    }

    [Fact]
    public void A_sentencepiece_model_as_tokenizer_source_keeps_its_own_tokenizer_model_and_added_tokens()
    {
        var m = new Two();
        string output = m.Merge($"tokenizer:\n  source: {m.C}", "base");
        Assert.Equal(File.ReadAllBytes(Path.Combine(m.C, "tokenizer.model")), File.ReadAllBytes(Path.Combine(output, "tokenizer.model")));
        Assert.Equal(258, Rows(output, Embed));
        Assert.Equal(Row(m.C, Embed, 100), Row(output, Embed, 100)); // "▁hello": only in c
        Assert.Equal(Row(m.C, Head, 256), Row(output, Head, 256)); // <|tool|>: only in c
        Assert.Equal(Row(m.Base, Head, 256), Row(output, Head, 257)); // <|im_start|>: the base's own row
        Assert.Equal(Row(m.Base, Embed, 101), Row(output, Embed, 101));
        var added = Json(output, "added_tokens.json").AsObject();
        Assert.Equal([("<|tool|>", 256), ("<|im_start|>", 257)], added.Select(kv => (kv.Key, kv.Value!.GetValue<int>())).ToArray());
        Assert.Equal(258, Json(output, "config.json")["vocab_size"]!.GetValue<int>());
    }

    [Fact]
    public void Pieces_past_a_models_vocab_size_are_absent_from_it_and_such_a_model_cannot_be_the_tokenizer_source()
    {
        // c's checkpoint has 250 rows: pieces 250-255 and its added tokens are past them.
        var m = new Two(cRows: 250);
        string output = m.Merge("tokenizer_source: union", "c");
        Assert.Equal(Row(m.C, Embed, 249), Row(output, Embed, 249));
        Assert.Equal(Row(m.Base, Embed, 252), Row(output, Embed, 252)); // c lacks it: the base's row
        Assert.Equal(Row(m.Base, Head, 256), Row(output, Head, 256)); // <|im_start|> (c's is at 257 >= 250)
        Assert.Equal(258, Rows(output, Head)); // "▁hello" added; <|tool|> (c's 256) is in no vocabulary
        Assert.Equal([("<|im_start|>", 256), (Hello, 257)], Json(output, "added_tokens.json").AsObject().Select(kv => (kv.Key, kv.Value!.GetValue<int>())).ToArray());

        // As a named tokenizer_source, c's tokenizer is taken whole (mergekit does not strip it): rows past 250 come from the base.
        output = m.Merge($"tokenizer:\n  source: {m.C}", "c");
        Assert.Equal(258, Rows(output, Embed));
        Assert.Equal(Row(m.Base, Embed, 252), Row(output, Embed, 252));
        Assert.Equal(Row(m.Base, Embed, 256), Row(output, Embed, 257)); // <|im_start|>
        Assert.Equal(new float[128], Row(output, Embed, 256)); // <|tool|>: in no model's rows

        // A base whose pieces run past its rows cannot give the output tokenizer: Weld does not rewrite tokenizer.model.
        var short_ = new Two(baseRows: 250);
        using var models = new ModelSet(short_.Folder);
        var e = Assert.Throws<RecipeException>(() => MergePlanner.Plan(RecipeParser.Parse($"""
            models:
              - model: {short_.Base}
              - model: {short_.C}
            merge_method: linear
            tokenizer_source: base
            """, "t.yml"), models));
        Assert.Contains("has 256 pieces, but its config's vocab_size is 250", e.Message);
        Assert.Contains("t.yml:", e.Message);
    }
}
