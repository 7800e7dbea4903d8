using Weld.Engine.Models;

namespace Weld.Engine.Planning;

/// <summary>
/// Models that tie <c>lm_head</c> to their token embedding store no lm_head tensor. mergekit lists the embedding
/// among lm_head's <c>tied_names</c>: a model without lm_head gives its embedding instead, and the output holds an
/// lm_head whenever any model has one. This resolves which tensor stands for a name in a model.
/// </summary>
internal static class TiedEmbeddings
{
    /// <summary>True for an output head (lm_head) that a tied model stores as its token embedding.</summary>
    public static bool IsHead(string tensorName) => tensorName.Contains("lm_head", StringComparison.Ordinal);

    /// <summary>
    /// The tensor <paramref name="folder"/> stores for <paramref name="tensorName"/>: the name itself when present;
    /// for a head it lacks, its token embedding, unless its config says <c>tie_word_embeddings: false</c> (then the
    /// head is missing, not tied); else null.
    /// </summary>
    public static string? StoredName(ModelFolder folder, string tensorName)
    {
        if (folder.Contains(tensorName)) return tensorName;
        if (!IsHead(tensorName) || folder.Config is { TieWordEmbeddings: false }) return null;
        foreach (string name in folder.TensorNames)
            if (name.Contains("embed_tokens", StringComparison.Ordinal) || name.Contains(".wte.", StringComparison.Ordinal))
                return name;
        return null;
    }
}
