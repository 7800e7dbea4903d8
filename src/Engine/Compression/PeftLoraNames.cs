namespace Weld.Engine.Compression;

/// <summary>
/// Tensor and file names of a PEFT LoRA adapter as PEFT saves and loads it: for a Linear module M (weight
/// <c>M.weight</c>, <c>[out, in]</c>) <c>base_model.model.M.lora_A.weight</c> <c>[r, in]</c> and
/// <c>base_model.model.M.lora_B.weight</c> <c>[out, r]</c>, ΔW = (α/r)·B·A; for an Embedding M (weight
/// <c>[vocab, dim]</c>) <c>base_model.model.M.lora_embedding_A</c> <c>[r, vocab]</c> and
/// <c>base_model.model.M.lora_embedding_B</c> <c>[dim, r]</c>, ΔW = (α/r)·(B·A)ᵀ.
/// </summary>
public static class PeftLoraNames
{
    /// <summary>The adapter weights file.</summary>
    public const string WeightsFileName = "adapter_model.safetensors";

    /// <summary>The adapter configuration file.</summary>
    public const string ConfigFileName = "adapter_config.json";

    /// <summary>Prefix PEFT puts before a module of the wrapped model.</summary>
    public const string Prefix = "base_model.model.";

    /// <summary>The A factor's tensor name of module <paramref name="module"/>.</summary>
    /// <param name="module">The module path in the base model, e.g. <c>model.layers.0.self_attn.q_proj</c>.</param>
    /// <param name="embedding">Whether the module is an Embedding.</param>
    public static string A(string module, bool embedding) => Prefix + module + (embedding ? ".lora_embedding_A" : ".lora_A.weight");

    /// <summary>The B factor's tensor name of module <paramref name="module"/>.</summary>
    /// <param name="module">The module path in the base model.</param>
    /// <param name="embedding">Whether the module is an Embedding.</param>
    public static string B(string module, bool embedding) => Prefix + module + (embedding ? ".lora_embedding_B" : ".lora_B.weight");

    /// <summary>Whether a base-model module is an embedding table (its last path component contains <c>embed</c>).</summary>
    /// <param name="module">The module path.</param>
    public static bool IsEmbedding(string module) => LastComponent(module).Contains("embed", StringComparison.OrdinalIgnoreCase);

    /// <summary>Whether a module is an output head (<c>lm_head</c>), which PEFT would treat as a plain Linear.</summary>
    /// <param name="module">The module path.</param>
    public static bool IsOutputHead(string module) => LastComponent(module) == "lm_head";

    /// <summary>The last dot-separated component of a module path (what PEFT's <c>target_modules</c> names match).</summary>
    /// <param name="module">The module path.</param>
    public static string LastComponent(string module) => module[(module.LastIndexOf('.') + 1)..];

    /// <summary>
    /// Splits an adapter tensor name into its module and factor, or returns false for a name that is not a LoRA factor.
    /// </summary>
    /// <param name="tensorName">A tensor name of an adapter file.</param>
    /// <param name="module">The module path (without <see cref="Prefix"/>).</param>
    /// <param name="isA">True for the A factor, false for B.</param>
    /// <param name="embedding">Whether the factor belongs to an Embedding module.</param>
    public static bool TryParse(string tensorName, out string module, out bool isA, out bool embedding)
    {
        ReadOnlySpan<(string Suffix, bool IsA, bool Embedding)> suffixes =
        [
            (".lora_A.weight", true, false), (".lora_B.weight", false, false),
            (".lora_embedding_A", true, true), (".lora_embedding_B", false, true),
        ];
        foreach ((string suffix, bool a, bool e) in suffixes)
        {
            if (!tensorName.EndsWith(suffix, StringComparison.Ordinal)) continue;
            string path = tensorName[..^suffix.Length];
            module = path.StartsWith(Prefix, StringComparison.Ordinal) ? path[Prefix.Length..] : path;
            isA = a;
            embedding = e;
            return true;
        }
        module = "";
        isA = false;
        embedding = false;
        return false;
    }
}
