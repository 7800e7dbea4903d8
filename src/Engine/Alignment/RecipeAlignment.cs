using Weld.Engine.Config;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.Planning;

namespace Weld.Engine.Alignment;

/// <summary>
/// A recipe's <c>align_to: MODEL</c>: before the merge, every other model the recipe names is permuted to match
/// MODEL (weight matching, seed 0) and written to a temporary folder that the merge reads instead. Disposing
/// deletes the temporary folders.
/// </summary>
public sealed class RecipeAlignment : IDisposable
{
    private readonly Dictionary<string, string> _aligned = new(StringComparer.Ordinal);
    private readonly string _workFolder;

    private RecipeAlignment(string workFolder) => _workFolder = workFolder;

    /// <summary>
    /// Aligns the recipe's models to its <see cref="MergeRecipe.AlignTo"/> model. <paramref name="recipeFolder"/> is
    /// where relative paths are looked up second (as for the merge itself).
    /// </summary>
    /// <exception cref="RecipeException">The recipe has no <c>align_to</c>, or a model cannot be found.</exception>
    /// <exception cref="WeldException">A model is not an MLP or Llama decoder, or its shapes differ from the reference's.</exception>
    public static RecipeAlignment Prepare(MergeRecipe recipe, string? recipeFolder, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        ModelReference target = recipe.AlignTo ?? throw new RecipeException($"{recipe.SourceName}: the recipe has no 'align_to'.");
        using var models = new ModelSet(recipeFolder, recipe.SourceName);
        ModelFolder reference = models.Folders[models.IndexOf(target)];
        var others = new List<ModelFolder>();
        foreach (ModelReference r in References(recipe))
        {
            ModelFolder folder = models.Folders[models.IndexOf(r)];
            if (folder.Path != reference.Path && !others.Contains(folder)) others.Add(folder);
        }

        string work = Path.Combine(Path.GetTempPath(), $"weld-align-{Guid.NewGuid():N}");
        var alignment = new RecipeAlignment(work);
        try
        {
            for (int i = 0; i < others.Count; i++)
            {
                ModelFolder model = others[i];
                PermutationSpec spec = SpecFor(model, $"{recipe.SourceName}:{target.Line}");
                WeightMatchingResult result = WeightMatching.Run(spec, reference, model);
                string output = Path.Combine(work, $"{i}-{Path.GetFileName(model.Path)}");
                PermutedModelWriter.Write(model, spec, result.Permutations, output, overwrite: false);
                alignment._aligned[model.Path] = output;
                log?.Invoke($"aligned {model.Path} to {reference.Path}: objective {result.Objectives[0]:G6} -> {result.Objectives[^1]:G6} in {result.Iterations} iterations");
            }
        }
        catch
        {
            alignment.Dispose();
            throw;
        }

        return alignment;
    }

    /// <summary>The aligned copy of the model at full path <paramref name="modelPath"/>, or null when it was not aligned.</summary>
    public string? AlignedPath(string modelPath) => _aligned.TryGetValue(modelPath, out string? path) ? path : null;

    /// <summary>The permutation spec of a model folder: an MLP (<c>layers</c> list) or a Llama-family decoder.</summary>
    /// <exception cref="WeldException">The folder has no config.json or is neither.</exception>
    public static PermutationSpec SpecFor(ModelFolder model, string? context = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ModelConfig config = model.Config
            ?? throw new WeldException($"{(context is null ? "" : context + ": ")}{model.Path}: has no config.json; cannot tell which units to permute.");
        if (MlpClassifier.IsMlp(config)) return PermutationSpec.ForMlp(config);
        return PermutationSpec.ForLlama(LlamaConfig.FromModelConfig(config), model.Contains);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (Directory.Exists(_workFolder)) Directory.Delete(_workFolder, recursive: true);
    }

    private static IEnumerable<ModelReference> References(MergeRecipe recipe)
    {
        if (recipe.BaseModel is not null) yield return recipe.BaseModel;
        foreach (InputModel m in recipe.Models ?? []) yield return m.Model;
        foreach (OutputSlice slice in recipe.Slices ?? [])
        {
            if (slice.BaseModel is not null) yield return slice.BaseModel;
            foreach (InputSlice source in slice.Sources) yield return source.Model;
        }
    }
}
