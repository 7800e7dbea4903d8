using System.Text.Json;
using System.Text.Json.Nodes;
using Weld.Engine.Config;
using Weld.Engine.Models;

namespace Weld.Engine.Execution;

/// <summary>
/// The recipe's <c>chat_template:</c>, as mergekit applies it: a built-in template name (<c>alpaca</c>, <c>chatml</c>,
/// <c>exaone</c>, <c>llama3</c>, <c>mistral</c>), <c>auto</c> (the template most of the input models use), or the Jinja
/// text itself; the chosen text is written as <c>chat_template</c> of the output's <c>tokenizer_config.json</c>.
/// </summary>
/// <remarks>The built-in templates are Weld's own renderings of the well-known formats, not copies of mergekit's files.</remarks>
public static class ChatTemplates
{
    private static readonly Dictionary<string, string> s_builtIn = new(StringComparer.Ordinal)
    {
        ["chatml"] =
            "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}" +
            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        ["llama3"] =
            "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + (message['content'] | trim) + '<|eot_id|>' }}{% endfor %}" +
            "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
        ["alpaca"] =
            "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}" +
            "{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}" +
            "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}{% endfor %}" +
            "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}",
        ["mistral"] =
            "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}" +
            "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}",
        ["exaone"] =
            "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}{{ '[|system|][|endofturn|]\\n' }}{% endif %}" +
            "{{ '[|' + message['role'] + '|]' + message['content'] }}{% if message['role'] == 'user' %}{{ '\\n' }}{% else %}{{ '[|endofturn|]\\n' }}{% endif %}{% endfor %}" +
            "{% if add_generation_prompt %}{{ '[|assistant|]' }}{% endif %}",
    };

    /// <summary>The built-in template names.</summary>
    public static IReadOnlyCollection<string> BuiltInNames => s_builtIn.Keys;

    /// <summary>The text of a built-in template, or null.</summary>
    public static string? BuiltIn(string name) => s_builtIn.GetValueOrDefault(name);

    /// <summary>
    /// Why <paramref name="value"/> is not a usable <c>chat_template</c> (null when it is): mergekit takes a built-in
    /// name, <c>auto</c>, or template text (at least 20 characters with a <c>{</c>) and refuses anything else.
    /// </summary>
    public static string? Problem(string value)
    {
        if (value == "auto" || s_builtIn.ContainsKey(value)) return null;
        if (value.Length >= 20 && value.Contains('{')) return null;
        string? suggestion = MethodNames.Suggest(value, [.. s_builtIn.Keys, "auto"]);
        return $"chat_template '{value}' is neither a built-in template ({string.Join(", ", s_builtIn.Keys.Order(StringComparer.Ordinal))}), " +
               "'auto', nor Jinja template text" + (suggestion is null ? "" : $" (did you mean '{suggestion}'?)");
    }

    /// <summary>The chat template of a model folder: <c>chat_template.jinja</c>, else <c>tokenizer_config.json</c>'s
    /// <c>chat_template</c> (a string, or the <c>default</c> of a list of named templates); trimmed; null when none.</summary>
    public static string? Of(string modelFolder)
    {
        string jinja = Path.Combine(modelFolder, "chat_template.jinja");
        if (File.Exists(jinja))
        {
            string text = File.ReadAllText(jinja).Trim();
            if (text.Length > 0) return text;
        }
        string config = Path.Combine(modelFolder, "tokenizer_config.json");
        if (!File.Exists(config)) return null;
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(config));
        }
        catch (JsonException e)
        {
            throw new WeldException($"{config}: not valid JSON ({e.Message})");
        }
        JsonNode? template = (root as JsonObject)?["chat_template"];
        if (template is JsonValue v && v.TryGetValue(out string? s)) return string.IsNullOrWhiteSpace(s) ? null : s.Trim();
        if (template is JsonArray list)
            foreach (JsonNode? entry in list)
                if (entry is JsonObject o && o["name"]?.GetValue<string>() == "default" && o["template"] is JsonValue t && t.TryGetValue(out string? d))
                    return d.Trim();
        return null;
    }

    /// <summary>
    /// The template text the recipe asks for, or null when it asks for none or <c>auto</c> finds none. For <c>auto</c>
    /// the most common template of <paramref name="modelFolders"/> wins (ties: the first one met, in recipe order).
    /// </summary>
    public static string? Choose(string chatTemplate, IEnumerable<string> modelFolders)
    {
        if (chatTemplate != "auto") return BuiltIn(chatTemplate) ?? chatTemplate;
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (string folder in modelFolders)
        {
            if (Of(folder) is not { } text) continue;
            if (counts.TryAdd(text, 1)) order.Add(text);
            else counts[text]++;
        }
        string? best = null;
        foreach (string text in order)
            if (best is null || counts[text] > counts[best]) best = text;
        return best;
    }

    /// <summary>
    /// Writes <paramref name="template"/> as <c>chat_template</c> of <paramref name="outputFolder"/>'s tokenizer_config.json
    /// and removes copied <c>chat_template.jinja</c> / <c>chat_template.json</c> (transformers would prefer them).
    /// Returns false (and writes nothing) when the folder has no tokenizer_config.json.
    /// </summary>
    public static bool Write(string outputFolder, string template)
    {
        string config = Path.Combine(outputFolder, "tokenizer_config.json");
        if (!File.Exists(config)) return false;
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(config)) as JsonObject
                ?? throw new WeldException($"{config}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new WeldException($"{config}: not valid JSON ({e.Message})");
        }
        root["chat_template"] = template;
        File.WriteAllText(config, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        foreach (string side in new[] { "chat_template.jinja", "chat_template.json" })
            File.Delete(Path.Combine(outputFolder, side));
        return true;
    }

    /// <summary>Applies the recipe's <c>chat_template</c> to an assembled output folder (see the class remarks).</summary>
    internal static void Apply(MergeRecipe recipe, string outputFolder, bool copyTokenizer, IEnumerable<ModelFolder> referenced, Action<string>? log)
    {
        if (recipe.ChatTemplate is not { } wanted) return;
        if (!copyTokenizer)
        {
            log?.Invoke("chat_template is set but the tokenizer is not copied (--no-copy-tokenizer): the chat template is not saved");
            return;
        }
        string? text = Choose(wanted, referenced.Select(m => m.Path).Where(Directory.Exists));
        if (text is null)
        {
            log?.Invoke("chat_template: auto found no chat template in the input models; the tokenizer's is kept");
            return;
        }
        if (!Write(outputFolder, text))
            log?.Invoke("chat_template is set but the tokenizer source has no tokenizer_config.json: the chat template is not saved");
        else if (wanted == "auto")
            log?.Invoke("chat_template: auto chose the template most input models use");
    }
}
