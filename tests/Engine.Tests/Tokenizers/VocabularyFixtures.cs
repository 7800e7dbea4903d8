using System.Text.Json.Nodes;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
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
        Directory.CreateDirectory(folder);
        int total = rows ?? 256 + added.Length;
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
                    data.AsSpan().CopyTo(grown);
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
