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

/// <summary>
/// A model's vocabulary as a Hugging Face fast tokenizer sees it: <c>tokenizer.json</c>'s model vocabulary (BPE /
/// WordPiece / WordLevel mapping, or Unigram's list) plus its <c>added_tokens</c>, and the config's
/// <c>vocab_size</c> (the embedding rows). Tokens whose id is at or above <c>vocab_size</c> are left out, as
/// mergekit leaves them out. A model with only a sentencepiece <c>tokenizer.model</c> is refused with a message.
/// </summary>
public sealed class ModelVocabulary
{
    private ModelVocabulary(string path, Dictionary<string, int> tokens, IReadOnlyList<AddedToken> added, int embeddingRows, int tokenizerSize, JsonObject json)
    {
        Path = path;
        Tokens = tokens;
        Added = added;
        EmbeddingRows = embeddingRows;
        TokenizerSize = tokenizerSize;
        Json = json;
    }

    /// <summary>The tokenizer.json read.</summary>
    public string Path { get; }

    /// <summary>Token text → id, every id below <see cref="EmbeddingRows"/>.</summary>
    public IReadOnlyDictionary<string, int> Tokens { get; }

    /// <summary>The added tokens below <see cref="EmbeddingRows"/>, by id.</summary>
    public IReadOnlyList<AddedToken> Added { get; }

    /// <summary>The config's <c>vocab_size</c> (else the tokenizer's size): the embedding rows the ids index.</summary>
    public int EmbeddingRows { get; }

    /// <summary>Tokens in the tokenizer (one more than its largest id), before dropping ids at or above <see cref="EmbeddingRows"/>.</summary>
    public int TokenizerSize { get; }

    /// <summary>The parsed tokenizer.json.</summary>
    internal JsonObject Json { get; }

    /// <summary>Tokens in id order (for the union's order).</summary>
    public IEnumerable<KeyValuePair<string, int>> InIdOrder() => Tokens.OrderBy(kv => kv.Value);

    /// <summary>True when the folder holds something a vocabulary can be read from (tokenizer.json or tokenizer.model).</summary>
    public static bool HasTokenizer(ModelFolder folder) =>
        File.Exists(System.IO.Path.Combine(FolderOf(folder), "tokenizer.json")) || File.Exists(System.IO.Path.Combine(FolderOf(folder), "tokenizer.model"));

    /// <summary>True when the folder holds a tokenizer.json.</summary>
    public static bool HasTokenizerJson(ModelFolder folder) => File.Exists(System.IO.Path.Combine(FolderOf(folder), "tokenizer.json"));

    internal static string FolderOf(ModelFolder folder) => Directory.Exists(folder.Path) ? folder.Path : System.IO.Path.GetDirectoryName(folder.Path)!;

    /// <summary>
    /// Reads the vocabulary of a model folder, cut at the config's vocab_size when <paramref name="cutAtVocabSize"/>
    /// (else every token of the tokenizer, as <c>weld inspect</c> shows it).
    /// </summary>
    /// <exception cref="WeldException">No tokenizer.json (sentencepiece-only models are named), or a broken one.</exception>
    public static ModelVocabulary Load(ModelFolder folder, bool cutAtVocabSize = true)
    {
        string dir = FolderOf(folder);
        string path = System.IO.Path.Combine(dir, "tokenizer.json");
        if (!File.Exists(path))
        {
            if (File.Exists(System.IO.Path.Combine(dir, "tokenizer.model")))
                throw new WeldException($"{dir}: has only a sentencepiece tokenizer.model; building a vocabulary needs tokenizer.json " +
                    "(Weld does not read tokenizer.model: save the tokenizer once with transformers' fast tokenizer to get tokenizer.json)");
            throw new WeldException($"{dir}: no tokenizer.json, so its vocabulary cannot be read");
        }
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new WeldException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new WeldException($"{path}: broken JSON: {e.Message}");
        }
        return FromJson(json, path, cutAtVocabSize ? folder.Config?.VocabSize : null);
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
            return new ModelVocabulary(path, kept, added.Where(a => a.Id < rows).OrderBy(a => a.Id).ToList(), rows, size, json);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
        {
            throw new WeldException($"{path}: unexpected tokenizer.json layout: {e.Message}");
        }
    }
}
