using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Weld.Engine.Tokenizers;

/// <summary>
/// Writes the output tokenizer of a <see cref="VocabularyPlan"/> so that transformers loads the output vocabulary:
/// for a tokenizer.json source, that file with the tokens it lacks appended to <c>added_tokens</c> (and ids at or
/// above its vocab_size dropped, as mergekit strips them); for a sentencepiece source, its tokenizer.model as it is
/// (copied with the side files) and added_tokens.json with every token past the pieces. In both, tokenizer_config.json
/// with the same tokens in <c>added_tokens_decoder</c>, the source's special_tokens_map.json, and <c>vocab_size</c>
/// in config.json.
/// </summary>
public static class TokenizerFiles
{
    private static readonly JsonSerializerOptions s_indented = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Writes the tokenizer files into <paramref name="folder"/> (after the source's side files were copied).</summary>
    public static void Write(string folder, VocabularyPlan plan)
    {
        ModelVocabulary source = plan.SourceVocabulary;
        int kept = source.EmbeddingRows;
        if (source.Json is { } sourceJson) WriteTokenizerJson(folder, plan, sourceJson, kept);
        else WriteAddedTokensJson(folder, plan, source.Pieces!.Count);

        string sourceFolder = ModelVocabulary.FolderOf(plan.Source);
        string configPath = Path.Combine(sourceFolder, "tokenizer_config.json");
        JsonObject config = File.Exists(configPath) ? JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? [] : [];
        var decoder = config["added_tokens_decoder"] as JsonObject ?? [];
        foreach (var (key, _) in decoder.ToList())
            if (int.TryParse(key, NumberStyles.Integer, CultureInfo.InvariantCulture, out int id) && id >= kept) decoder.Remove(key);
        foreach (NewToken token in plan.Added)
        {
            var entry = new JsonObject();
            foreach (string key in new[] { "content", "lstrip", "normalized", "rstrip", "single_word", "special" })
                if (token.Settings[key] is JsonNode value) entry[key] = value.DeepClone();
            decoder[token.Id.ToString(CultureInfo.InvariantCulture)] = entry;
        }
        config["added_tokens_decoder"] = decoder;
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), config.ToJsonString(s_indented) + "\n");

        string map = Path.Combine(sourceFolder, "special_tokens_map.json");
        if (File.Exists(map)) File.Copy(map, Path.Combine(folder, "special_tokens_map.json"), overwrite: true);
        // With a tokenizer.json, added_tokens.json (slow tokenizers) would contradict the new ids: transformers reads tokenizer.json instead.
        if (source.Json is not null && plan.Added.Count > 0) File.Delete(Path.Combine(folder, "added_tokens.json"));
    }

    private static void WriteTokenizerJson(string folder, VocabularyPlan plan, JsonObject sourceJson, int kept)
    {
        var json = (JsonObject)sourceJson.DeepClone();
        var dropped = new HashSet<string>(StringComparer.Ordinal);
        if (json["model"]?["vocab"] is JsonObject vocab)
        {
            foreach (var (token, id) in vocab.ToList())
                if (id!.GetValue<int>() >= kept) { vocab.Remove(token); dropped.Add(token); }
            if (dropped.Count > 0 && json["model"]?["merges"] is JsonArray merges)
            {
                foreach (JsonNode? merge in merges.ToList())
                {
                    IEnumerable<string> parts = merge is JsonArray pair ? pair.Select(p => p!.GetValue<string>()) : merge!.GetValue<string>().Split(' ');
                    if (parts.Any(dropped.Contains)) merges.Remove(merge);
                }
            }
        }
        var addedTokens = json["added_tokens"] as JsonArray ?? [];
        foreach (JsonNode? entry in addedTokens.ToList())
            if (entry!["id"]!.GetValue<int>() >= kept) addedTokens.Remove(entry);
        foreach (NewToken token in plan.Added)
        {
            var entry = new JsonObject { ["id"] = token.Id };
            foreach (var (key, value) in token.Settings) entry[key] = value?.DeepClone();
            addedTokens.Add(entry);
        }
        json["added_tokens"] = addedTokens;
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), json.ToJsonString(s_indented));
    }

    /// <summary>
    /// added_tokens.json as transformers' slow tokenizer writes it: text → id of every token past the sentencepiece
    /// pieces, in id order (none: no file). The tokenizer.model itself is never rewritten.
    /// </summary>
    private static void WriteAddedTokensJson(string folder, VocabularyPlan plan, int pieces)
    {
        string path = Path.Combine(folder, "added_tokens.json");
        var added = new JsonObject();
        for (int id = pieces; id < plan.Tokens.Count; id++) added[plan.Tokens[id]] = id;
        if (added.Count == 0) File.Delete(path);
        else File.WriteAllText(path, added.ToJsonString(s_indented) + "\n");
    }

    /// <summary>Sets <c>vocab_size</c> of the output's config.json (when there is one) to the plan's rows.</summary>
    public static void SetVocabSize(string folder, VocabularyPlan plan)
    {
        string path = Path.Combine(folder, "config.json");
        if (!File.Exists(path)) return;
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(path))!;
        config["vocab_size"] = plan.Rows;
        File.WriteAllText(path, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }
}
