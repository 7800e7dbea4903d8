using Weld.Engine.Config;
using Weld.Engine.Methods;

namespace Weld.Engine.Planning;

/// <summary>
/// Checks every <c>parameters:</c> name of a recipe (global, per model, per slice, per source) against the names the
/// merge method reads (<see cref="IMergeMethod.Parameters"/>, the same list the planner resolves values from, so the
/// check cannot drift from the code). mergekit ignores names no method reads; Weld refuses them, with the nearest
/// valid name, because a misspelt <c>densty</c> otherwise silently merges with the default density.
/// </summary>
internal static class RecipeParameterCheck
{
    /// <summary>Throws a <see cref="RecipeException"/> naming the recipe line of the first name the method does not read.</summary>
    public static void Check(MergeRecipe recipe, IMergeMethod method)
    {
        var names = method.Parameters.Select(p => p.Name).ToArray();
        var global = method.Parameters.Where(p => p.Scope == ParameterScope.Global).Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        CheckSet(recipe, method, names, global, recipe.Parameters, perModel: false, "parameters");
        if (recipe.Models is { } models)
            foreach (InputModel model in models)
                CheckSet(recipe, method, names, global, model.Parameters, perModel: true, $"parameters of model {model.Model}");
        if (recipe.Slices is { } slices)
            for (int s = 0; s < slices.Count; s++)
            {
                CheckSet(recipe, method, names, global, slices[s].Parameters, perModel: false, $"parameters of slice {s + 1}");
                foreach (InputSlice source in slices[s].Sources)
                    CheckSet(recipe, method, names, global, source.Parameters, perModel: true, $"parameters of source {source.Model} in slice {s + 1}");
            }
    }

    private static void CheckSet(MergeRecipe recipe, IMergeMethod method, string[] names, HashSet<string> global, ParameterSet set,
        bool perModel, string where)
    {
        foreach (string name in set.Names)
        {
            string at = $"{recipe.SourceName}:{set.LineOf(name)}";
            if (!names.Contains(name, StringComparer.Ordinal))
            {
                string reads = names.Length == 0 ? "it takes no parameters" : $"it reads: {string.Join(", ", names)}";
                string? suggestion = MethodNames.Suggest(name, names);
                throw new RecipeException(suggestion is not null
                    ? $"{at}: unknown parameter '{name}' in {where} (did you mean '{suggestion}'?)"
                    : $"{at}: merge_method {method.Name} does not read parameter '{name}' in {where} ({reads})");
            }
            if (perModel && global.Contains(name))
                throw new RecipeException(
                    $"{at}: parameter '{name}' of merge_method {method.Name} is one value for the whole merge, not per model; " +
                    $"move it to the top-level parameters (or a slice's parameters), where it is read");
        }
    }
}
