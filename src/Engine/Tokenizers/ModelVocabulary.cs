using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Weld.Engine.Models;

namespace Weld.Engine.Tokenizers;

/// <summary>One added token of a tokenizer.json (<c>added_tokens</c>): its id, text and the settings kept as read.</summary>
/// <param name="Id">The token id.</param>
/// <param name="Content">The token text.</param>
/// <param name="Special">Whether it is a special token.</param>
/// <param name="Settings">The entry as read (content, single_word, lstrip, rstrip, normalized, special), without its id.</param>
public sealed record AddedToken(int Id, string Content, bool Special, JsonObject Settings);

/// <summary>Where a <see cref="ModelVocabulary"/> was read from.</summary>
public enum VocabularyFormat
{
    /// <summary>A fast tokenizer's <c>tokenizer.json</c> (with its <c>added_tokens</c>).</summary>
    TokenizerJson,
    /// <summary>A sentencepiece <c>tokenizer.model</c> (ids = piece positions) plus the added tokens of
    /// tokenizer_config.json's <c>added_tokens_decoder</c> and added_tokens.json.</summary>
    SentencePiece,
}

/// <summary>
/// A model's vocabulary as transformers' tokenizer sees it (<c>get_vocab()</c>, which mergekit reads): from
/// <c>tokenizer.json</c> when the folder has one (what <c>AutoTokenizer</c> loads first), its model vocabulary (BPE /
/// WordPiece / WordLevel mapping, or Unigram's list) plus its <c>added_tokens</c>; else from a sentencepiece
/// <c>tokenizer.model</c>, its pieces plus the added tokens of tokenizer_config.json / added_tokens.json. The
/// config's <c>vocab_size</c> gives the embedding rows; tokens whose id is at or above it are left out, as mergekit
/// leaves them out.
/// </summary>
public sealed class ModelVocabulary
{
    private ModelVocabulary(string path, VocabularyFormat format, Dictionary<string, int> tokens, IReadOnlyList<AddedToken> added,
        int embeddingRows, int tokenizerSize, JsonObject? json, IReadOnlyList<SentencePiece>? pieces)
    {
        Path = path;
        Format = format;
        Tokens = tokens;
        Added = added;
        EmbeddingRows = embeddingRows;
        TokenizerSize = tokenizerSize;
        Json = json;
        Pieces = pieces;
    }

    /// <summary>The tokenizer.json or tokenizer.model read.</summary>
    public string Path { get; }

    /// <summary>Which kind of file <see cref="Path"/> is.</summary>
    public VocabularyFormat Format { get; }

    /// <summary>Token text → id, every id below <see cref="EmbeddingRows"/>.</summary>
    public IReadOnlyDictionary<string, int> Tokens { get; }

    /// <summary>The added tokens below <see cref="EmbeddingRows"/>, by id.</summary>
    public IReadOnlyList<AddedToken> Added { get; }

    /// <summary>The config's <c>vocab_size</c> (else the tokenizer's size): the embedding rows the ids index.</summary>
    public int EmbeddingRows { get; }

    /// <summary>Tokens in the tokenizer (one more than its largest id), before dropping ids at or above <see cref="EmbeddingRows"/>.</summary>
    public int TokenizerSize { get; }

    /// <summary>The parsed tokenizer.json (null for a sentencepiece vocabulary).</summary>
    internal JsonObject? Json { get; }

    /// <summary>The sentencepiece pieces, every one (null for a tokenizer.json vocabulary).</summary>
    public IReadOnlyList<SentencePiece>? Pieces { get; }

    /// <summary>Tokens in id order (for the union's order).</summary>
    public IEnumerable<KeyValuePair<string, int>> InIdOrder() => Tokens.OrderBy(kv => kv.Value);

    /// <summary>True when the folder holds something a vocabulary can be read from (tokenizer.json or tokenizer.model).</summary>
    public static bool HasTokenizer(ModelFolder folder) =>
        File.Exists(System.IO.Path.Combine(FolderOf(folder), "tokenizer.json")) || File.Exists(System.IO.Path.Combine(FolderOf(folder), "tokenizer.model"));

    internal static string FolderOf(ModelFolder folder) => Directory.Exists(folder.Path) ? folder.Path : System.IO.Path.GetDirectoryName(folder.Path)!;

    /// <summary>
    /// Reads the vocabulary of a model folder (tokenizer.json, else tokenizer.model), cut at the config's vocab_size
    /// when <paramref name="cutAtVocabSize"/> (else every token of the tokenizer, as <c>weld inspect</c> shows it and
    /// as mergekit loads a named <c>tokenizer_source</c>).
    /// </summary>
    /// <exception cref="WeldException">No tokenizer, or a broken one (the message names the file).</exception>
    public static ModelVocabulary Load(ModelFolder folder, bool cutAtVocabSize = true)
    {
        string dir = FolderOf(folder);
        int? rows = cutAtVocabSize ? folder.Config?.VocabSize : null;
        string path = System.IO.Path.Combine(dir, "tokenizer.json");
        if (!File.Exists(path))
        {
            string model = System.IO.Path.Combine(dir, "tokenizer.model");
            if (File.Exists(model)) return FromSentencePiece(dir, SentencePieceModel.ReadPieces(model), model, rows);
            throw new WeldException($"{dir}: no tokenizer.json or tokenizer.model, so its vocabulary cannot be read");
        }
        return FromJson(ReadObject(path)!, path, rows);
    }

    private static JsonObject? ReadObject(string path, bool optional = false)
    {
        if (optional && !File.Exists(path)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new WeldException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new WeldException($"{path}: broken JSON: {e.Message}");
        }
    }

    /// <summary>
    /// The vocabulary of a sentencepiece model as transformers' slow or converted fast tokenizer has it: piece i has
    /// id i; then the added tokens of tokenizer_config.json's <c>added_tokens_decoder</c> (id → settings) and of
    /// added_tokens.json (text → id; special when special_tokens_map.json names it, normalized otherwise, as
    /// transformers reads that legacy file), the decoder's entry winning for an id in both.
    /// </summary>
    private static ModelVocabulary FromSentencePiece(string dir, IReadOnlyList<SentencePiece> pieces, string path, int? configVocabSize)
    {
        var all = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < pieces.Count; i++) all.TryAdd(pieces[i].Piece, i);
        var byId = new SortedDictionary<int, AddedToken>();
        string configPath = System.IO.Path.Combine(dir, "tokenizer_config.json");
        try
        {
            if (ReadObject(configPath, optional: true)?["added_tokens_decoder"] is JsonObject decoder)
            {
                foreach (var (key, node) in decoder)
                {
                    if (!int.TryParse(key, NumberStyles.Integer, CultureInfo.InvariantCulture, out int id) || id < 0 || node is not JsonObject o)
                        throw new WeldException($"{configPath}: added_tokens_decoder entry {key} is not an id with its token settings");
                    var settings = (JsonObject)o.DeepClone();
                    settings.Remove("__type");
                    byId[id] = new AddedToken(id, o["content"]!.GetValue<string>(), o["special"] is JsonNode s && s.GetValue<bool>(), settings);
                }
            }
            string legacyPath = System.IO.Path.Combine(dir, "added_tokens.json");
            if (ReadObject(legacyPath, optional: true) is JsonObject legacy)
            {
                var special = SpecialTokens(System.IO.Path.Combine(dir, "special_tokens_map.json"));
                foreach (var (content, node) in legacy)
                {
                    int id = node!.GetValue<int>();
                    if (byId.ContainsKey(id)) continue;
                    bool isSpecial = special.Contains(content);
                    byId[id] = new AddedToken(id, content, isSpecial, new JsonObject
                    {
                        ["content"] = content, ["lstrip"] = false, ["normalized"] = !isSpecial, ["rstrip"] = false, ["single_word"] = false, ["special"] = isSpecial,
                    });
                }
            }
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
        {
            throw new WeldException($"{dir}: unexpected added-token layout in tokenizer_config.json / added_tokens.json: {e.Message}");
        }
        foreach (AddedToken a in byId.Values) all[a.Content] = a.Id;
        int size = Math.Max(pieces.Count, byId.Count == 0 ? 0 : byId.Keys.Max() + 1);
        int rows = configVocabSize ?? size;
        var kept = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (token, id) in all)
            if (id < rows) kept[token] = id;
        return new ModelVocabulary(path, VocabularyFormat.SentencePiece, kept, byId.Values.Where(a => a.Id < rows).ToList(), rows, size, null, pieces);
    }

    /// <summary>Every token text special_tokens_map.json names (strings, {content} objects, lists of either).</summary>
    private static HashSet<string> SpecialTokens(string path)
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        void Add(JsonNode? node)
        {
            switch (node)
            {
                case JsonValue v when v.TryGetValue(out string? text): result.Add(text); break;
                case JsonObject o when o["content"] is JsonValue c && c.TryGetValue(out string? content): result.Add(content); break;
                case JsonArray list: foreach (JsonNode? item in list) Add(item); break;
            }
        }
        if (ReadObject(path, optional: true) is JsonObject map)
            foreach (var (_, value) in map) Add(value);
        return result;
    }

    /// <summary>Builds a vocabulary from a parsed tokenizer.json and the config's vocab_size (null: the tokenizer's size).</summary>
    public static ModelVocabulary FromJson(JsonObject json, string path, int? configVocabSize)
    {
        var all = new Dictionary<string, int>(StringComparer.Ordinal);
        JsonNode? vocab = json["model"]?["vocab"];
        try
        {
            switch (vocab)
            {
                case JsonObject map:
                    foreach (var (token, id) in map) all[token] = id!.GetValue<int>();
                    break;
                case JsonArray list: // Unigram: [[piece, score], ...], id = position
                    for (int i = 0; i < list.Count; i++) all[list[i]![0]!.GetValue<string>()] = i;
                    break;
                case null:
                    break;
                default:
                    throw new WeldException($"{path}: model.vocab is neither a mapping nor a list");
            }
            var added = new List<AddedToken>();
            if (json["added_tokens"] is JsonArray entries)
            {
                foreach (JsonNode? entry in entries)
                {
                    if (entry is not JsonObject o) throw new WeldException($"{path}: an added_tokens entry is not an object");
                    int id = o["id"]!.GetValue<int>();
                    string content = o["content"]!.GetValue<string>();
                    bool special = o["special"] is JsonNode s && s.GetValue<bool>();
                    var settings = (JsonObject)o.DeepClone();
                    settings.Remove("id");
                    added.Add(new AddedToken(id, content, special, settings));
                    all[content] = id;
                }
            }
            int size = all.Count == 0 ? 0 : all.Values.Max() + 1;
            int rows = configVocabSize ?? size;
            var kept = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var (token, id) in all)
                if (id < rows) kept[token] = id;
            return new ModelVocabulary(path, VocabularyFormat.TokenizerJson, kept, added.Where(a => a.Id < rows).OrderBy(a => a.Id).ToList(), rows, size, json, null);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
        {
            throw new WeldException($"{path}: unexpected tokenizer.json layout: {e.Message}");
        }
    }
}
