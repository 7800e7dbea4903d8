namespace Weld.Engine.Config;

/// <summary>
/// Looks up a parameter for one tensor the way mergekit's <c>ConfigReader.parameter</c> (mergekit/config.py) does.
/// </summary>
/// <remarks>
/// Order, most specific first: the parameters of every source of the output slice whose model equals the
/// requested model (in source order), then the slice's own parameters, then the recipe's global parameters.
/// A level that does not set the parameter, or whose conditional list matches no entry for the tensor, passes
/// the question on to the next level. A <c>models:</c> recipe is one output slice whose sources are the listed
/// models with their parameters (and no slice-level parameters), as mergekit's planner rewrites it.
/// </remarks>
public static class RecipeParameters
{
    /// <summary>The value of parameter <paramref name="name"/> for one tensor, or <see langword="null"/> when unset.</summary>
    /// <param name="recipe">The recipe.</param>
    /// <param name="name">The parameter name (case-sensitive).</param>
    /// <param name="sliceIndex">The output slice the tensor belongs to (0 for a models recipe), or
    /// <see langword="null"/> to read only the global parameters.</param>
    /// <param name="model">The input model asking (per-model parameters), or <see langword="null"/> for a
    /// method-wide parameter.</param>
    /// <param name="tensorName">The tensor name that conditional filters are matched against.</param>
    /// <param name="t">The layer position in [0, 1] (see <see cref="LayerPosition"/>).</param>
    /// <returns>The value, or <see langword="null"/>.</returns>
    public static ParameterScalar? Resolve(
        MergeRecipe recipe, string name, int? sliceIndex, ModelReference? model, string tensorName, double t)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(tensorName);
        if (sliceIndex is int index)
        {
            CheckSliceIndex(recipe, index);
            if (recipe.Slices is { } slices)
            {
                OutputSlice slice = slices[index];
                if (model is not null)
                {
                    foreach (InputSlice source in slice.Sources)
                    {
                        if (source.Model.Equals(model)
                            && Evaluate(source.Parameters, name, tensorName, t) is { } fromSource)
                        {
                            return fromSource;
                        }
                    }
                }

                if (Evaluate(slice.Parameters, name, tensorName, t) is { } fromSlice)
                {
                    return fromSlice;
                }
            }
            else if (model is not null)
            {
                foreach (InputModel input in recipe.Models!)
                {
                    if (input.Model.Equals(model) && Evaluate(input.Parameters, name, tensorName, t) is { } fromModel)
                    {
                        return fromModel;
                    }
                }
            }
        }

        return Evaluate(recipe.Parameters, name, tensorName, t);
    }

    /// <summary>
    /// <see cref="Resolve"/> as a number: booleans count as 1 and 0 (mergekit's pydantic coercion to float).
    /// </summary>
    /// <inheritdoc cref="Resolve" path="/param"/>
    /// <returns>The number, or <see langword="null"/> when unset.</returns>
    /// <exception cref="RecipeException">The value is a string; the message names the recipe line.</exception>
    public static double? ResolveNumber(
        MergeRecipe recipe, string name, int? sliceIndex, ModelReference? model, string tensorName, double t)
    {
        if (Resolve(recipe, name, sliceIndex, model, tensorName, t) is not { } value)
        {
            return null;
        }

        return value.TryGetNumber(out double number) ? number : throw NotA("a number", recipe, name, tensorName, value);
    }

    /// <summary>
    /// <see cref="Resolve"/> as a flag: a number is true when non-zero (how mergekit tests its float-typed flags).
    /// </summary>
    /// <inheritdoc cref="Resolve" path="/param"/>
    /// <returns>The flag, or <see langword="null"/> when unset.</returns>
    /// <exception cref="RecipeException">The value is a string; the message names the recipe line.</exception>
    public static bool? ResolveFlag(
        MergeRecipe recipe, string name, int? sliceIndex, ModelReference? model, string tensorName, double t)
    {
        if (Resolve(recipe, name, sliceIndex, model, tensorName, t) is not { } value)
        {
            return null;
        }

        return value.TryGetBoolean(out bool flag) ? flag : throw NotA("true or false", recipe, name, tensorName, value);
    }

    /// <summary>The base model that applies in an output slice: the slice's own <c>base_model</c>, else the recipe's.</summary>
    /// <param name="recipe">The recipe.</param>
    /// <param name="sliceIndex">The output slice (0 for a models recipe).</param>
    /// <returns>The base model, or <see langword="null"/>.</returns>
    public static ModelReference? BaseModelFor(MergeRecipe recipe, int sliceIndex)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        CheckSliceIndex(recipe, sliceIndex);
        return recipe.Slices?[sliceIndex].BaseModel ?? recipe.BaseModel;
    }

    /// <summary>
    /// The input models of an output slice in order. For a models recipe: the listed models, then the base model
    /// when it is not among them (mergekit's planner adds it last, without parameters).
    /// </summary>
    /// <param name="recipe">The recipe.</param>
    /// <param name="sliceIndex">The output slice (0 for a models recipe).</param>
    /// <returns>The models, one per source.</returns>
    public static IReadOnlyList<ModelReference> SourceModels(MergeRecipe recipe, int sliceIndex)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        CheckSliceIndex(recipe, sliceIndex);
        var models = new List<ModelReference>();
        if (recipe.Slices is { } slices)
        {
            foreach (InputSlice source in slices[sliceIndex].Sources)
            {
                models.Add(source.Model);
            }

            return models;
        }

        foreach (InputModel input in recipe.Models!)
        {
            models.Add(input.Model);
        }

        if (recipe.BaseModel is { } baseModel && !models.Contains(baseModel))
        {
            models.Add(baseModel);
        }

        return models;
    }

    private static ParameterScalar? Evaluate(ParameterSet parameters, string name, string tensorName, double t) =>
        parameters.TryGet(name, out ParameterValue? setting) ? setting.Evaluate(tensorName, t) : null;

    private static void CheckSliceIndex(MergeRecipe recipe, int sliceIndex)
    {
        if ((uint)sliceIndex >= (uint)recipe.SliceCount)
        {
            throw new ArgumentOutOfRangeException(
                nameof(sliceIndex), sliceIndex, $"the recipe has {recipe.SliceCount} output slice(s)");
        }
    }

    private static RecipeException NotA(string wanted, MergeRecipe recipe, string name, string tensorName, ParameterScalar value) =>
        new($"{recipe.SourceName}:{value.Line}: parameter '{name}' must be {wanted} (tensor {tensorName}), but is the string '{value.Text}'");
}
