using System.Text.Json.Nodes;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Engine.Tokenizers;
using Weld.Tests;

namespace Weld.Engine.Tests.Tokenizers;

/// <summary>
/// Zoo language models turned into models with added tokens: the stored values as F32 (so row equalities are exact),
/// a byte-level tokenizer.json (token id = byte) plus added tokens, and one extra embedding / lm_head row per added
/// token (seeded random values), optionally padded past the tokenizer or tied.
/// </summary>
internal static class VocabularyFixtures
{
    /// <summary>Byte-level token text of a byte (GPT-2's byte-to-unicode map).</summary>
    public static string ByteToken(byte b) => BpeTokenizer.ByteToChar(b).ToString();

    /// <summary>
    /// Writes <paramref name="zooModel"/> into <paramref name="folder"/> with <paramref name="added"/> tokens at ids
    /// 256, 257, ...; <paramref name="rows"/> embedding rows in all (at least 256 + added; more: a padded checkpoint).
    /// </summary>
    public static string Make(string folder, string zooModel, string[] added, int? rows = null, bool tied = false, int seed = 1,
        string[]? special = null)
    {
        WriteWeights(folder, zooModel, rows ?? 256 + added.Length, tied, seed);
        WriteByteLevelTokenizer(folder, added, special);
        return folder;
    }

    /// <summary>
    /// The zoo model's tensors as F32 with <paramref name="total"/> embedding / lm_head rows (the extra ones seeded
    /// random; fewer than 256: the first rows), without lm_head when <paramref name="tied"/>, and its config with vocab_size and tie_word_embeddings.
    /// </summary>
    public static void WriteWeights(string folder, string zooModel, int total, bool tied, int seed)
    {
        Directory.CreateDirectory(folder);
        var random = new Random(seed);
        using (var source = ModelFolder.Open(TestPaths.Model(zooModel)))
        {
            var headers = new List<TensorHeader>();
            var values = new List<float[]>();
            foreach (string name in source.TensorNames)
            {
                if (tied && name == "lm_head.weight") continue;
                ModelTensor t = source.GetTensor(name);
                var data = new float[t.ElementCount];
                t.ReadFloat32(0, data);
                long[] shape = t.Shape;
                if (name is "model.embed_tokens.weight" or "lm_head.weight")
                {
                    var grown = new float[total * shape[1]];
                    data.AsSpan(0, Math.Min(data.Length, grown.Length)).CopyTo(grown);
                    for (long i = data.Length; i < grown.Length; i++) grown[i] = (float)(random.NextDouble() - 0.5);
                    data = grown;
                    shape = [total, shape[1]];
                }
                headers.Add(new TensorHeader(name, DType.F32, shape));
                values.Add(data);
            }
            using var writer = new SafeTensorsWriter(Path.Combine(folder, "model.safetensors"), headers, null);
            foreach (float[] v in values) writer.WriteFloat32(v);
            writer.Complete();

            var config = (JsonObject)source.Config!.Raw.DeepClone();
            config["vocab_size"] = total;
            config["torch_dtype"] = "float32";
            config["tie_word_embeddings"] = tied;
            File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        }
    }

    /// <summary>A byte-level BPE tokenizer.json (byte b = id b) with <paramref name="added"/> at 256, 257, ..., and its tokenizer_config.json.</summary>
    private static void WriteByteLevelTokenizer(string folder, string[] added, string[]? special)
    {

        var vocab = new JsonObject();
        for (int b = 0; b < 256; b++) vocab[ByteToken((byte)b)] = b;
        var addedTokens = new JsonArray();
        var decoder = new JsonObject();
        for (int i = 0; i < added.Length; i++)
        {
            bool isSpecial = special?.Contains(added[i]) ?? true;
            addedTokens.Add(new JsonObject
            {
                ["id"] = 256 + i, ["content"] = added[i], ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = isSpecial,
            });
            decoder[(256 + i).ToString(System.Globalization.CultureInfo.InvariantCulture)] = new JsonObject
            {
                ["content"] = added[i], ["lstrip"] = false, ["normalized"] = false, ["rstrip"] = false, ["single_word"] = false, ["special"] = isSpecial,
            };
        }
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0", ["truncation"] = null, ["padding"] = null, ["added_tokens"] = addedTokens, ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            ["post_processor"] = null,
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null, ["end_of_word_suffix"] = null,
                ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false, ["vocab"] = vocab, ["merges"] = new JsonArray(),
            },
        };
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), tokenizer.ToJsonString());
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), new JsonObject
        {
            ["added_tokens_decoder"] = decoder, ["model_max_length"] = 256, ["tokenizer_class"] = "PreTrainedTokenizerFast",
        }.ToJsonString());
        File.WriteAllText(Path.Combine(folder, "special_tokens_map.json"), "{}");
    }

    /// <summary>
    /// The 256 pieces of the fixtures' sentencepiece models (Llama 2 style): 0 &lt;unk&gt;, 1 &lt;s&gt;, 2 &lt;/s&gt;,
    /// 3-66 byte pieces &lt;0x00&gt;-&lt;0x3F&gt;, then normal pieces "▁p67" ... "▁p254", and a user-defined piece at 255.
    /// <paramref name="replace"/> swaps the text of some normal pieces (a model whose own vocabulary differs).
    /// </summary>
    public static SentencePiece[] Pieces(IReadOnlyDictionary<int, string>? replace = null)
    {
        var pieces = new SentencePiece[256];
        pieces[0] = new("<unk>", 0, SentencePieceType.Unknown);
        pieces[1] = new("<s>", 0, SentencePieceType.Control);
        pieces[2] = new("</s>", 0, SentencePieceType.Control);
        for (int i = 3; i < 67; i++) pieces[i] = new($"<0x{i - 3:X2}>", 0, SentencePieceType.Byte);
        for (int i = 67; i < 255; i++)
            pieces[i] = new(replace is not null && replace.TryGetValue(i, out string? text) ? text : "\u2581p" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), -i, SentencePieceType.Normal);
        pieces[255] = new("<|user|>", 0, SentencePieceType.UserDefined);
        return pieces;
    }

    /// <summary>
    /// A sentencepiece-only model (tokenizer.model, no tokenizer.json) from a zoo model: <paramref name="pieces"/>
    /// (256, for the 256 trained rows), then added tokens at 256, 257, ...: <paramref name="added"/> in
    /// tokenizer_config.json's added_tokens_decoder (and added_tokens.json), then <paramref name="legacyAdded"/> in
    /// added_tokens.json only (an older transformers save). The decoder also lists &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, as transformers writes it.
    /// </summary>
    public static string MakeSentencePiece(string folder, string zooModel, SentencePiece[] pieces, string[] added, string[]? legacyAdded = null,
        int? rows = null, bool tied = false, int seed = 1)
    {
        legacyAdded ??= [];
        WriteWeights(folder, zooModel, rows ?? pieces.Length + added.Length + legacyAdded.Length, tied, seed);
        File.WriteAllBytes(Path.Combine(folder, "tokenizer.model"), SentencePieceWriter.Write(pieces));
        var decoder = new JsonObject();
        JsonObject Entry(string content, bool special, bool normalized) => new()
        {
            ["content"] = content, ["lstrip"] = false, ["normalized"] = normalized, ["rstrip"] = false, ["single_word"] = false, ["special"] = special,
        };
        for (int i = 0; i < 3; i++) decoder[i.ToString(System.Globalization.CultureInfo.InvariantCulture)] = Entry(pieces[i].Piece, true, false);
        var legacy = new JsonObject();
        for (int i = 0; i < added.Length; i++)
        {
            int id = pieces.Length + i;
            decoder[id.ToString(System.Globalization.CultureInfo.InvariantCulture)] = Entry(added[i], true, false);
            legacy[added[i]] = id;
        }
        for (int i = 0; i < legacyAdded.Length; i++) legacy[legacyAdded[i]] = pieces.Length + added.Length + i;
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), new JsonObject
        {
            ["add_bos_token"] = true, ["added_tokens_decoder"] = decoder, ["bos_token"] = "<s>", ["eos_token"] = "</s>",
            ["legacy"] = false, ["model_max_length"] = 256, ["tokenizer_class"] = "LlamaTokenizer", ["unk_token"] = "<unk>",
        }.ToJsonString());
        if (legacy.Count > 0) File.WriteAllText(Path.Combine(folder, "added_tokens.json"), legacy.ToJsonString());
        File.WriteAllText(Path.Combine(folder, "special_tokens_map.json"), """{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}""");
        return folder;
    }

    /// <summary>One row of a tensor of a model folder.</summary>
    public static float[] Row(string model, string tensor, int row)
    {
        using var folder = ModelFolder.Open(model);
        ModelTensor t = folder.GetTensor(tensor);
        long columns = t.Shape[1];
        var values = new float[columns];
        t.ReadFloat32(row * columns, values);
        return values;
    }

    /// <summary>Rows of a tensor of a model folder.</summary>
    public static long Rows(string model, string tensor)
    {
        using var folder = ModelFolder.Open(model);
        return folder.GetTensor(tensor).Shape[0];
    }
}
