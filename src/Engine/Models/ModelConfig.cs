using System.Text.Json;
using System.Text.Json.Nodes;

namespace Weld.Engine.Models;

/// <summary>A Hugging Face <c>config.json</c>: the raw JSON plus the fields a merge needs.</summary>
public sealed class ModelConfig
{
    private ModelConfig(string? filePath, JsonObject raw)
    {
        FilePath = filePath;
        Raw = raw;
    }

    /// <summary>The file it was loaded from (null when parsed from text).</summary>
    public string? FilePath { get; }

    /// <summary>The whole config, for fields not surfaced here and for writing a merged config.</summary>
    public JsonObject Raw { get; }

    /// <summary><c>architectures[0]</c>, e.g. "LlamaForCausalLM".</summary>
    public string? Architecture =>
        Raw["architectures"] is JsonArray { Count: > 0 } list && list[0] is JsonValue value &&
        value.TryGetValue(out string? name) ? name : null;

    /// <summary><c>model_type</c>, e.g. "llama".</summary>
    public string? ModelType => GetString("model_type");

    /// <summary><c>num_hidden_layers</c>.</summary>
    public int? NumHiddenLayers => GetInt("num_hidden_layers");

    /// <summary><c>hidden_size</c>.</summary>
    public int? HiddenSize => GetInt("hidden_size");

    /// <summary><c>vocab_size</c>.</summary>
    public int? VocabSize => GetInt("vocab_size");

    /// <summary><c>torch_dtype</c> (or the newer <c>dtype</c>), e.g. "bfloat16".</summary>
    public string? TorchDType => GetString("torch_dtype") ?? GetString("dtype");

    /// <summary>
    /// <c>tie_word_embeddings</c>; when absent, true — the default of transformers' <c>PretrainedConfig</c>,
    /// which <c>save_pretrained</c> omits from config.json because it equals that default.
    /// </summary>
    public bool TieWordEmbeddings =>
        Raw["tie_word_embeddings"] is JsonValue value && value.TryGetValue(out bool tied) ? tied : true;

    /// <summary>Loads <paramref name="path"/>.</summary>
    /// <exception cref="InvalidModelFileException">The file is not a JSON object.</exception>
    public static ModelConfig Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string fullPath = Path.GetFullPath(path);
        string text;
        try
        {
            text = File.ReadAllText(fullPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new WeldException($"{fullPath}: cannot read the model config ({e.Message}).", e);
        }

        return new ModelConfig(fullPath, ParseObject(fullPath, text));
    }

    /// <summary>Parses config JSON text; <paramref name="sourceName"/> names it in errors.</summary>
    /// <exception cref="InvalidModelFileException">The text is not a JSON object.</exception>
    public static ModelConfig Parse(string json, string sourceName = "config.json") =>
        new(null, ParseObject(sourceName, json));

    private static JsonObject ParseObject(string path, string text)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions
            {
                AllowTrailingCommas = true,
                CommentHandling = JsonCommentHandling.Skip,
            });
        }
        catch (JsonException e)
        {
            throw new InvalidModelFileException(path, $"the model config is not valid JSON ({e.Message}).");
        }

        return node as JsonObject
            ?? throw new InvalidModelFileException(path, "the model config must be a JSON object.");
    }

    private string? GetString(string key) =>
        Raw[key] is JsonValue value && value.TryGetValue(out string? text) ? text : null;

    private int? GetInt(string key)
    {
        if (Raw[key] is not JsonValue value) return null;
        if (value.TryGetValue(out int number)) return number;
        // JsonNode.Parse keeps numbers as JsonElement; an integral double (e.g. 4.0) is accepted too.
        if (value.TryGetValue(out double real) && real == Math.Floor(real) && real is >= int.MinValue and <= int.MaxValue)
            return (int)real;
        return null;
    }
}
