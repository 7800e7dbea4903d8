using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Weld.Engine.Evaluation;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>
/// Byte-level BPE tokenizers for the zoo's texts. The zoo's own tokenizer is bytes (id = byte, no files); written as a
/// tokenizer.json that is the 256 byte symbols and no merges. To exercise merges, <see cref="Trained"/> learns
/// <see cref="MergeCount"/> merges from the zoo's four held-out texts (GPT-2 pre-tokens, most frequent pair first,
/// ties to the ordinally smaller pair), written in the pre-tokenizer styles of GPT-2, Llama 3 and Qwen2.
/// </summary>
internal static class ZooBpeFixtures
{
    public const int MergeCount = 300;

    public static readonly string[] Domains = ["prose", "c", "python", "markup"];

    /// <summary>Llama 3's Split regex (its tokenizer.json, behaviour Isolated).</summary>
    public const string Llama3Split = MlTiktokenTokenizer.Llama3Pattern;

    /// <summary>Qwen2's Split regex: like Llama 3's but one digit per piece.</summary>
    public const string Qwen2Split =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private static readonly Lazy<(Dictionary<string, int> Vocabulary, List<(string, string)> Merges)> s_trained = new(Train);

    /// <summary>The learned vocabulary (256 byte symbols, then merge products) and merges in rank order.</summary>
    public static (Dictionary<string, int> Vocabulary, List<(string, string)> Merges) Trained => s_trained.Value;

    /// <summary>The pre-tokenizer styles, by name.</summary>
    public static readonly string[] Styles = ["gpt2", "gpt2-prefix-space", "llama3", "qwen2"];

    /// <summary>Writes the trained tokenizer in <paramref name="style"/> as tokenizer.json into <paramref name="folder"/>.</summary>
    public static string WriteTrained(string folder, string style)
    {
        (Dictionary<string, int> vocabulary, List<(string, string)> merges) = Trained;
        JsonObject preTokenizer = style switch
        {
            "gpt2" => ByteLevel(useRegex: true, addPrefixSpace: false),
            "gpt2-prefix-space" => ByteLevel(useRegex: true, addPrefixSpace: true),
            "llama3" => Sequence(Llama3Split),
            "qwen2" => Sequence(Qwen2Split),
            _ => throw new ArgumentException(style),
        };
        JsonNode? normalizer = style == "qwen2" ? new JsonObject { ["type"] = "NFC" } : null;
        var mergeList = new JsonArray();
        for (int i = 0; i < merges.Count; i++)
        {
            // Both spellings Hugging Face writes: "a b" (older files) and ["a", "b"] (newer).
            (string left, string right) = merges[i];
            mergeList.Add(i % 2 == 0 ? JsonValue.Create(left + " " + right) : new JsonArray(left, right));
        }

        return Write(folder, vocabulary, mergeList, preTokenizer, normalizer, ignoreMerges: style == "llama3");
    }

    /// <summary>The zoo's byte vocabulary as a tokenizer.json: the 256 byte symbols (id = byte), no merges, GPT-2 pre-tokenizer.</summary>
    public static string WriteZooBytes(string folder)
    {
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int b = 0; b < 256; b++) vocabulary[BpeTokenizer.ByteToChar((byte)b).ToString()] = b;
        return Write(folder, vocabulary, [], ByteLevel(useRegex: true, addPrefixSpace: false), null, ignoreMerges: false);
    }

    /// <summary>The trained vocabulary as a tiktoken rank file (base64 of the token's bytes, id as rank).</summary>
    public static string WriteTrainedTiktoken(string path)
    {
        var lines = new StringBuilder();
        foreach ((string token, int id) in Trained.Vocabulary.OrderBy(e => e.Value))
            lines.Append(Convert.ToBase64String(Bytes(token))).Append(' ').Append(id).Append('\n');
        File.WriteAllText(path, lines.ToString());
        return path;
    }

    /// <summary>A zoo held-out text, whole.</summary>
    public static byte[] Text(string domain) => File.ReadAllBytes(ReferenceMetrics.Text(domain));

    private static JsonObject ByteLevel(bool useRegex, bool addPrefixSpace) => new()
    {
        ["type"] = "ByteLevel", ["add_prefix_space"] = addPrefixSpace, ["trim_offsets"] = true, ["use_regex"] = useRegex,
    };

    private static JsonObject Sequence(string split) => new()
    {
        ["type"] = "Sequence",
        ["pretokenizers"] = new JsonArray(
            new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = split }, ["behavior"] = "Isolated", ["invert"] = false },
            ByteLevel(useRegex: false, addPrefixSpace: false)),
    };

    private static string Write(string folder, Dictionary<string, int> vocabulary, JsonArray merges, JsonObject preTokenizer, JsonNode? normalizer, bool ignoreMerges)
    {
        var vocab = new JsonObject();
        foreach ((string token, int id) in vocabulary.OrderBy(e => e.Value)) vocab[token] = id;
        var root = new JsonObject
        {
            ["version"] = "1.0", ["added_tokens"] = new JsonArray(), ["normalizer"] = normalizer, ["pre_tokenizer"] = preTokenizer,
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["byte_fallback"] = false, ["ignore_merges"] = ignoreMerges,
                ["vocab"] = vocab, ["merges"] = merges,
            },
        };
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, "tokenizer.json");
        File.WriteAllText(path, root.ToJsonString());
        return path;
    }

    private static byte[] Bytes(string token)
    {
        var fromChar = new Dictionary<char, byte>();
        for (int b = 0; b < 256; b++) fromChar[BpeTokenizer.ByteToChar((byte)b)] = (byte)b;
        var bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++) bytes[i] = fromChar[token[i]];
        return bytes;
    }

    private static (Dictionary<string, int>, List<(string, string)>) Train()
    {
        // Symbols as ints (0-255 the bytes, then merge products) so a pass over the words stays cheap.
        var symbolText = new List<string>();
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int b = 0; b < 256; b++)
        {
            string s = BpeTokenizer.ByteToChar((byte)b).ToString();
            symbolText.Add(s);
            vocabulary[s] = b;
        }

        var wordCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        var pattern = new Regex(BpeTokenizer.Gpt2Pattern, RegexOptions.CultureInvariant);
        foreach (string domain in Domains)
        {
            foreach (Match m in pattern.Matches(Encoding.UTF8.GetString(Text(domain))))
                wordCounts[m.Value] = wordCounts.GetValueOrDefault(m.Value) + 1;
        }

        var words = new List<(List<int> Symbols, int Count)>();
        foreach ((string word, int count) in wordCounts.OrderBy(e => e.Key, StringComparer.Ordinal))
            words.Add((Encoding.UTF8.GetBytes(word).Select(b => (int)b).ToList(), count));

        var merges = new List<(string, string)>();
        for (int k = 0; k < MergeCount; k++)
        {
            var pairCounts = new Dictionary<(int, int), int>();
            foreach ((List<int> symbols, int count) in words)
            {
                for (int i = 0; i + 1 < symbols.Count; i++)
                    pairCounts[(symbols[i], symbols[i + 1])] = pairCounts.GetValueOrDefault((symbols[i], symbols[i + 1])) + count;
            }

            if (pairCounts.Count == 0) break;
            (int, int) best = default;
            int bestCount = 0;
            foreach (((int a, int b) pair, int count) in pairCounts)
            {
                int order = bestCount == 0 ? -1 : string.CompareOrdinal(symbolText[pair.a] + " " + symbolText[pair.b], symbolText[best.Item1] + " " + symbolText[best.Item2]);
                if (count > bestCount || (count == bestCount && order < 0))
                {
                    best = pair;
                    bestCount = count;
                }
            }

            string merged = symbolText[best.Item1] + symbolText[best.Item2];
            merges.Add((symbolText[best.Item1], symbolText[best.Item2]));
            int id = symbolText.Count;
            symbolText.Add(merged);
            vocabulary.TryAdd(merged, vocabulary.Count);
            foreach ((List<int> symbols, _) in words)
            {
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    if (symbols[i] == best.Item1 && symbols[i + 1] == best.Item2)
                    {
                        symbols[i] = id;
                        symbols.RemoveAt(i + 1);
                    }
                }
            }
        }

        return (vocabulary, merges);
    }
}
