using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Weld.Engine.Evaluation;

/// <summary>
/// Byte-level BPE from a Hugging Face <c>tokenizer.json</c> (GPT-2, Llama-3, Qwen2 style): the text is split by the
/// pre-tokenizer's regex, each piece's UTF-8 bytes are mapped to printable characters (GPT-2's byte-to-unicode
/// table), and adjacent symbols are merged by merge rank until no ranked pair is left.
/// </summary>
/// <remarks>
/// Supported pre-tokenizers: <c>ByteLevel</c> (with <c>use_regex</c>: GPT-2's pattern; <c>add_prefix_space</c>), and a
/// <c>Sequence</c> of <c>Split</c> (a <c>Regex</c> or <c>String</c> pattern, behaviour <c>Isolated</c> or <c>Removed</c>)
/// and <c>ByteLevel</c> steps. Normalizers: none or NFC. Added / special tokens are not matched in the text: scoring
/// plain text never needs them.
/// </remarks>
public sealed class BpeTokenizer : ITokenizer
{
    /// <summary>GPT-2's pre-tokenizer pattern (what <c>ByteLevel</c> with <c>use_regex: true</c> applies).</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly char[] s_byteToChar = BuildByteToChar();

    private readonly Dictionary<string, int> _vocabulary;
    private readonly Dictionary<(string Left, string Right), int> _mergeRanks;
    private readonly IReadOnlyList<PreTokenizerStep> _steps;
    private readonly bool _addPrefixSpace;
    private readonly bool _ignoreMerges;
    private readonly bool _normalizeNfc;
    private readonly Dictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    /// <summary>Creates a tokenizer from its parts.</summary>
    /// <param name="vocabulary">Token string (in byte-to-unicode characters) → id.</param>
    /// <param name="merges">Merge pairs, highest priority first.</param>
    /// <param name="splitPatterns">Regexes whose matches become pieces (gaps between matches become pieces too);
    /// applied in order. Empty: the whole text is one piece.</param>
    /// <param name="addPrefixSpace">Prefix a space to the text when it does not start with one (ByteLevel's option).</param>
    /// <param name="ignoreMerges">Take a whole piece as one token when the vocabulary has it (Llama-3's <c>ignore_merges</c>).</param>
    public BpeTokenizer(IReadOnlyDictionary<string, int> vocabulary, IReadOnlyList<(string Left, string Right)> merges,
        IReadOnlyList<string> splitPatterns, bool addPrefixSpace = false, bool ignoreMerges = false)
        : this(vocabulary, merges, splitPatterns.Select(p => new PreTokenizerStep(new Regex(p, RegexOptions.CultureInvariant), Remove: false)).ToList(),
            addPrefixSpace, ignoreMerges, normalizeNfc: false)
    {
    }

    private BpeTokenizer(IReadOnlyDictionary<string, int> vocabulary, IReadOnlyList<(string Left, string Right)> merges,
        IReadOnlyList<PreTokenizerStep> steps, bool addPrefixSpace, bool ignoreMerges, bool normalizeNfc)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        ArgumentNullException.ThrowIfNull(merges);
        _vocabulary = new Dictionary<string, int>(vocabulary, StringComparer.Ordinal);
        _mergeRanks = new Dictionary<(string, string), int>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++) _mergeRanks.TryAdd(merges[rank], rank);
        _steps = steps;
        _addPrefixSpace = addPrefixSpace;
        _ignoreMerges = ignoreMerges;
        _normalizeNfc = normalizeNfc;
    }

    /// <summary>Number of entries in the vocabulary.</summary>
    public int VocabularySize => _vocabulary.Count;

    /// <summary>Reads a <c>tokenizer.json</c> with a byte-level BPE model.</summary>
    /// <exception cref="InvalidModelFileException">The file is not JSON, not BPE, or uses an unsupported pre-tokenizer or normalizer.</exception>
    public static BpeTokenizer Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string fullPath = Path.GetFullPath(path);
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

        var steps = new List<PreTokenizerStep>();
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
                        steps.Add(new PreTokenizerStep(new Regex(Gpt2Pattern, RegexOptions.CultureInvariant), Remove: false));
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

                    steps.Add(new PreTokenizerStep(compiled, behavior == "Removed"));
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
        return new BpeTokenizer(vocabulary, merges, steps, addPrefixSpace, ignoreMerges, normalizeNfc);
    }

    /// <inheritdoc />
    public int[] Encode(ReadOnlySpan<byte> utf8)
    {
        string text = Encoding.UTF8.GetString(utf8);
        if (_normalizeNfc) text = text.Normalize(NormalizationForm.FormC);
        if (_addPrefixSpace && !text.StartsWith(' ')) text = " " + text;

        var pieces = new List<string> { text };
        foreach (PreTokenizerStep step in _steps)
        {
            var next = new List<string>(pieces.Count * 2);
            foreach (string piece in pieces) step.Split(piece, next);
            pieces = next;
        }

        var ids = new List<int>(utf8.Length / 3 + 1);
        foreach (string piece in pieces)
        {
            if (!_cache.TryGetValue(piece, out int[]? pieceIds))
            {
                pieceIds = EncodePiece(piece);
                if (_cache.Count < 1 << 20) _cache[piece] = pieceIds;
            }

            ids.AddRange(pieceIds);
        }

        return ids.ToArray();
    }

    /// <summary>BPE on one pre-token: byte-to-unicode symbols, then repeatedly merge the lowest-ranked adjacent pair.</summary>
    private int[] EncodePiece(string piece)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(piece);
        var mapped = new StringBuilder(bytes.Length);
        foreach (byte b in bytes) mapped.Append(s_byteToChar[b]);
        string word = mapped.ToString();
        if (_ignoreMerges && _vocabulary.TryGetValue(word, out int whole)) return [whole];

        var symbols = new List<string>(word.Length);
        foreach (char ch in word) symbols.Add(ch.ToString());
        while (symbols.Count > 1)
        {
            int bestRank = int.MaxValue;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (_mergeRanks.TryGetValue((symbols[i], symbols[i + 1]), out int rank) && rank < bestRank)
                    bestRank = rank;
            if (bestRank == int.MaxValue) break;

            // Merge every occurrence of the best pair, left to right (GPT-2's loop).
            var merged = new List<string>(symbols.Count);
            for (int i = 0; i < symbols.Count; i++)
            {
                if (i + 1 < symbols.Count && _mergeRanks.TryGetValue((symbols[i], symbols[i + 1]), out int rank) && rank == bestRank)
                {
                    merged.Add(symbols[i] + symbols[i + 1]);
                    i++;
                }
                else
                {
                    merged.Add(symbols[i]);
                }
            }

            symbols = merged;
        }

        var ids = new int[symbols.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            if (!_vocabulary.TryGetValue(symbols[i], out ids[i]))
                throw new WeldException($"tokenizer: the symbol '{symbols[i]}' (from the text piece '{piece}') is not in the vocabulary.");
        }

        return ids;
    }

    /// <summary>GPT-2's reversible map of the 256 byte values to printable characters.</summary>
    public static char ByteToChar(byte value) => s_byteToChar[value];

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }

        return map;
    }

    /// <summary>One regex split: matches become pieces, and so do the gaps between them (unless removed).</summary>
    private sealed record PreTokenizerStep(Regex Pattern, bool Remove)
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
