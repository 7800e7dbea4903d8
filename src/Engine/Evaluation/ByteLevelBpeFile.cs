using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Weld.Engine.Evaluation;

/// <summary>
/// What a Hugging Face <c>tokenizer.json</c> with a byte-level BPE model says: the vocabulary, the merges in rank
/// order, <c>ignore_merges</c>, and the normalizer + pre-tokenizer as a <see cref="PreTokenizerSplitter"/>. Read once,
/// used by both BPE engines (Microsoft.ML.Tokenizers' and Weld's own).
/// </summary>
internal sealed record ByteLevelBpeFile(
    string Path,
    Dictionary<string, int> Vocabulary,
    List<(string Left, string Right)> Merges,
    PreTokenizerSplitter Splitter,
    bool IgnoreMerges)
{
    /// <summary>Reads and checks <paramref name="path"/>.</summary>
    /// <exception cref="InvalidModelFileException">Not JSON, not BPE, or an unsupported pre-tokenizer or normalizer.</exception>
    public static ByteLevelBpeFile Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string fullPath = System.IO.Path.GetFullPath(path);
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(fullPath)) as JsonObject
                ?? throw new InvalidModelFileException(fullPath, "the tokenizer file must be a JSON object.");
        }
        catch (JsonException e)
        {
            throw new InvalidModelFileException(fullPath, $"the tokenizer file is not valid JSON ({e.Message}).");
        }

        if (root["model"] is not JsonObject model || (string?)model["type"] is not "BPE")
            throw new InvalidModelFileException(fullPath, "only byte-level BPE tokenizers (model.type \"BPE\") are supported.");
        if (model["vocab"] is not JsonObject vocabNode)
            throw new InvalidModelFileException(fullPath, "model.vocab must be an object of token → id.");
        var vocabulary = new Dictionary<string, int>(vocabNode.Count, StringComparer.Ordinal);
        foreach (KeyValuePair<string, JsonNode?> entry in vocabNode)
        {
            if (entry.Value is not JsonValue id || !id.TryGetValue(out int value))
                throw new InvalidModelFileException(fullPath, $"model.vocab['{entry.Key}'] is not an integer id.");
            vocabulary[entry.Key] = value;
        }

        var merges = new List<(string, string)>();
        if (model["merges"] is JsonArray mergeList)
        {
            foreach (JsonNode? merge in mergeList)
            {
                if (merge is JsonValue text && text.TryGetValue(out string? pair) && pair.IndexOf(' ', 1) is int space and > 0)
                    merges.Add((pair[..space], pair[(space + 1)..]));
                else if (merge is JsonArray { Count: 2 } parts && (string?)parts[0] is { } left && (string?)parts[1] is { } right)
                    merges.Add((left, right));
                else
                    throw new InvalidModelFileException(fullPath, $"model.merges entry {merge?.ToJsonString()} is not \"a b\" or [\"a\", \"b\"].");
            }
        }

        bool normalizeNfc = root["normalizer"] switch
        {
            null => false,
            JsonObject n when (string?)n["type"] == "NFC" => true,
            JsonObject n => throw new InvalidModelFileException(fullPath, $"normalizer '{(string?)n["type"]}' is not supported (supported: none, NFC)."),
            _ => throw new InvalidModelFileException(fullPath, "normalizer must be an object or null."),
        };

        var steps = new List<PreTokenizerSplitter.Step>();
        bool addPrefixSpace = false;
        bool sawByteLevel = false;
        void AddStep(JsonObject step)
        {
            switch ((string?)step["type"])
            {
                case "ByteLevel":
                    sawByteLevel = true;
                    addPrefixSpace |= step["add_prefix_space"] is JsonValue a && a.TryGetValue(out bool add) && add;
                    if (step["use_regex"] is not JsonValue u || !u.TryGetValue(out bool useRegex) || useRegex)
                        steps.Add(new PreTokenizerSplitter.Step(new Regex(BpeTokenizer.Gpt2Pattern, RegexOptions.CultureInvariant), Remove: false));
                    break;
                case "Split":
                    string? behavior = (string?)step["behavior"];
                    if (behavior is not ("Isolated" or "Removed"))
                        throw new InvalidModelFileException(fullPath, $"Split behaviour '{behavior}' is not supported (supported: Isolated, Removed).");
                    if (step["invert"] is JsonValue inv && inv.TryGetValue(out bool invert) && invert)
                        throw new InvalidModelFileException(fullPath, "Split with invert: true is not supported.");
                    string pattern = step["pattern"] switch
                    {
                        JsonObject p when (string?)p["Regex"] is { } regex => regex,
                        JsonObject p when (string?)p["String"] is { } literal => Regex.Escape(literal),
                        _ => throw new InvalidModelFileException(fullPath, "Split needs a pattern {\"Regex\": ...} or {\"String\": ...}."),
                    };
                    Regex compiled;
                    try
                    {
                        compiled = new Regex(pattern, RegexOptions.CultureInvariant);
                    }
                    catch (ArgumentException e)
                    {
                        throw new InvalidModelFileException(fullPath, $"Split pattern cannot be compiled by .NET ({e.Message}).");
                    }

                    steps.Add(new PreTokenizerSplitter.Step(compiled, behavior == "Removed"));
                    break;
                case "Sequence":
                    if (step["pretokenizers"] is not JsonArray list)
                        throw new InvalidModelFileException(fullPath, "a Sequence pre-tokenizer needs 'pretokenizers'.");
                    foreach (JsonNode? inner in list)
                        AddStep(inner as JsonObject ?? throw new InvalidModelFileException(fullPath, "pre-tokenizer entries must be objects."));
                    break;
                default:
                    throw new InvalidModelFileException(fullPath,
                        $"pre-tokenizer '{(string?)step["type"]}' is not supported (supported: ByteLevel, Split, Sequence).");
            }
        }

        if (root["pre_tokenizer"] is JsonObject preTokenizer) AddStep(preTokenizer);
        if (!sawByteLevel)
            throw new InvalidModelFileException(fullPath, "the tokenizer is not byte-level (no ByteLevel pre-tokenizer); only byte-level BPE is supported.");
        bool ignoreMerges = model["ignore_merges"] is JsonValue im && im.TryGetValue(out bool ignore) && ignore;
        return new ByteLevelBpeFile(fullPath, vocabulary, merges, new PreTokenizerSplitter(steps, addPrefixSpace, normalizeNfc), ignoreMerges);
    }
}

/// <summary>
/// A tokenizer.json's normalizer (none or NFC) and pre-tokenizer as Hugging Face applies them: optional prefix space,
/// then each regex split in turn, where matches become pieces and so do the gaps between them (unless the split
/// removes its matches). Microsoft.ML.Tokenizers' <c>RegexPreTokenizer</c> keeps only the matches (tiktoken's rule), so
/// Weld splits and hands the library one piece at a time.
/// </summary>
internal sealed class PreTokenizerSplitter
{
    private readonly IReadOnlyList<Step> _steps;
    private readonly bool _addPrefixSpace;
    private readonly bool _normalizeNfc;

    public PreTokenizerSplitter(IReadOnlyList<Step> steps, bool addPrefixSpace, bool normalizeNfc)
    {
        _steps = steps;
        _addPrefixSpace = addPrefixSpace;
        _normalizeNfc = normalizeNfc;
    }

    /// <summary>Normalizes <paramref name="text"/> and cuts it into pre-tokens.</summary>
    public List<string> Split(string text)
    {
        if (_normalizeNfc) text = text.Normalize(NormalizationForm.FormC);
        if (_addPrefixSpace && !text.StartsWith(' ')) text = " " + text;

        var pieces = new List<string> { text };
        foreach (Step step in _steps)
        {
            var next = new List<string>(pieces.Count * 2);
            foreach (string piece in pieces) step.Split(piece, next);
            pieces = next;
        }

        return pieces;
    }

    /// <summary>One regex split: matches become pieces, and so do the gaps between them (unless removed).</summary>
    public sealed record Step(Regex Pattern, bool Remove)
    {
        public void Split(string text, List<string> output)
        {
            int last = 0;
            foreach (ValueMatch match in Pattern.EnumerateMatches(text))
            {
                if (match.Length == 0) continue;
                if (match.Index > last) output.Add(text[last..match.Index]);
                if (!Remove) output.Add(text.Substring(match.Index, match.Length));
                last = match.Index + match.Length;
            }

            if (last < text.Length) output.Add(text[last..]);
        }
    }
}
