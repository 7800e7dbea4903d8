using System.Text.RegularExpressions;

namespace Weld.Engine.Planning;

/// <summary>
/// Reads the layer index out of a tensor name (<c>model.layers.12.mlp.up_proj.weight</c> → 12) and renames a
/// tensor to another layer, for slices and layer-depth parameters.
/// </summary>
public static partial class LayerNames
{
    // Decoder stacks name their blocks ".layers.N." (Llama, Mistral, Qwen), ".h.N." (GPT-2) or ".blocks.N.".
    [GeneratedRegex(@"^(?<prefix>(?:.*\.)?(?:layers|h|blocks)\.)(?<index>\d+)(?<suffix>\..*)$", RegexOptions.CultureInvariant)]
    private static partial Regex LayerPattern();

    /// <summary>The layer index of <paramref name="tensorName"/>, or null for a tensor outside the layer stack.</summary>
    public static int? LayerIndex(string tensorName)
    {
        Match m = LayerPattern().Match(tensorName);
        return m.Success ? int.Parse(m.Groups["index"].ValueSpan, provider: System.Globalization.CultureInfo.InvariantCulture) : null;
    }

    /// <summary><paramref name="tensorName"/> with its layer index replaced by <paramref name="layer"/>.</summary>
    public static string WithLayer(string tensorName, int layer)
    {
        Match m = LayerPattern().Match(tensorName);
        if (!m.Success) throw new ArgumentException($"{tensorName} is not a layer tensor", nameof(tensorName));
        return string.Concat(m.Groups["prefix"].Value, layer.ToString(System.Globalization.CultureInfo.InvariantCulture), m.Groups["suffix"].Value);
    }

    /// <summary>
    /// True for a tensor planned before the layers (token / position embeddings); every other non-layer tensor
    /// (final norm, lm_head) comes after them.
    /// </summary>
    public static bool IsPreLayer(string tensorName) =>
        tensorName.Contains("embed", StringComparison.Ordinal) || tensorName.Contains(".wte.", StringComparison.Ordinal)
        || tensorName.Contains(".wpe.", StringComparison.Ordinal);

    /// <summary>True for the vocabulary matrices whose rows may be cropped to a common size (mergekit's is_embed).</summary>
    public static bool IsVocabularyMatrix(string tensorName) =>
        tensorName.Contains("embed_tokens", StringComparison.Ordinal) || tensorName.Contains("lm_head", StringComparison.Ordinal)
        || tensorName.Contains(".wte.", StringComparison.Ordinal);
}
