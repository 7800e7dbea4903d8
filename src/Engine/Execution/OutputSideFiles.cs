using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;

namespace Weld.Engine.Execution;

/// <summary>
/// Everything in a merged model folder besides the tensors: config.json (dtype and layer count patched),
/// tokenizer and side files, the recipe as <c>mergekit_config.yml</c> and a model card.
/// </summary>
public static class OutputSideFiles
{
    /// <summary>
    /// Writes <c>config.json</c> from the template model's, with <c>torch_dtype</c> and the layer count patched, and
    /// <c>tie_word_embeddings</c> made false when the output holds an lm_head (<paramref name="writesHead"/>).
    /// </summary>
    public static void WriteConfig(string folder, ModelConfig? template, DType outputDType, int? layerCount, bool writesHead = false)
    {
        if (template is null) return;
        var config = (JsonObject)template.Raw.DeepClone();
        // An output lm_head under tie_word_embeddings: true would be ignored by transformers (tied to the embedding).
        if (writesHead && config["tie_word_embeddings"] is JsonValue tie && tie.TryGetValue(out bool tied) && tied)
            config["tie_word_embeddings"] = false;
        if (DTypes.IsFloatingPoint(outputDType))
            config["torch_dtype"] = DTypes.ToTorchDType(outputDType);
        if (layerCount is int layers)
            config["num_hidden_layers"] = layers;
        File.WriteAllText(Path.Combine(folder, "config.json"),
            config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>Copies the tokenizer and other side files of <paramref name="source"/> (config.json excepted).</summary>
    public static void CopySideFiles(string folder, ModelFolder source)
    {
        foreach (string file in source.SideFiles)
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)), overwrite: true);
    }

    /// <summary>Writes the recipe text unchanged as <c>mergekit_config.yml</c>.</summary>
    public static void WriteRecipe(string folder, string recipeText) =>
        File.WriteAllText(Path.Combine(folder, "mergekit_config.yml"), recipeText);

    /// <summary>Writes a Hugging Face model card: front matter (base_model, tags), the method, the models, the recipe.</summary>
    public static void WriteModelCard(string folder, string method, string? baseModel, IReadOnlyList<string> models, string recipeText)
    {
        var card = new StringBuilder();
        card.Append("---\n");
        var bases = new List<string>();
        if (baseModel is not null) bases.Add(baseModel);
        foreach (string m in models)
            if (!bases.Contains(m)) bases.Add(m);
        card.Append("base_model:\n");
        foreach (string m in bases) card.Append("- ").Append(YamlQuote(m)).Append('\n');
        card.Append("library_name: transformers\ntags:\n- merge\n- weld\n---\n");
        card.Append("# merged model\n\n");
        card.Append("This is a merge of pre-trained language models created with [Weld](https://example.invalid/weld), ");
        card.Append("a mergekit-compatible merging engine.\n\n## Merge details\n\n### Merge method\n\n");
        card.Append("This model was merged using the `").Append(method).Append("` merge method");
        if (baseModel is not null) card.Append(" with `").Append(baseModel).Append("` as a base");
        card.Append(".\n\n### Models merged\n\nThe following models were included in the merge:\n");
        foreach (string m in models)
            if (m != baseModel) card.Append("* `").Append(m).Append("`\n");
        card.Append("\n### Configuration\n\nThe following YAML configuration was used to produce this model:\n\n```yaml\n");
        card.Append(recipeText.TrimEnd()).Append("\n```\n");
        File.WriteAllText(Path.Combine(folder, "README.md"), card.ToString());
    }

    private static string YamlQuote(string s) =>
        s.IndexOfAny([':', '#', '\'', '"', '{', '}', '[', ']', ',', '&', '*', '!', '|', '>', '%', '@', '`']) >= 0 || s.StartsWith('-') || s.Contains(' ')
            ? "'" + s.Replace("'", "''") + "'"
            : s;
}
