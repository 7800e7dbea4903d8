using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>
/// One merge method: combines the same tensor of several models into one output tensor.
/// Implementations are small and read like the paper's equation; all arithmetic goes through
/// <see cref="IMergeKernels"/> so the same method runs on the CPU and on a GPU.
/// </summary>
public interface IMergeMethod
{
    /// <summary>The recipe name (<c>merge_method:</c>), e.g. <c>ties</c>.</summary>
    string Name { get; }

    /// <summary>How the method uses the base model and how many inputs it takes.</summary>
    MethodTraits Traits { get; }

    /// <summary>The parameters the method reads, with defaults and valid ranges.</summary>
    IReadOnlyList<ParameterSpec> Parameters { get; }

    /// <summary>Merges one tensor. <paramref name="output"/> has the tensor's element count.</summary>
    void Merge(TensorMergeInputs inputs, Span<float> output);
}

/// <summary>How a method uses its inputs.</summary>
/// <param name="BaseModel">Whether the base model is required, optional or ignored.</param>
/// <param name="MinModels">Fewest non-base models the method accepts.</param>
/// <param name="MaxModels">Most non-base models the method accepts (int.MaxValue: any).</param>
/// <param name="UsesRandomness">True when the output depends on the seed (DARE).</param>
/// <param name="Elementwise">True when each output element depends only on the same element of the inputs, so a
/// tensor too large for the memory limit can be merged in chunks (linear, task arithmetic, passthrough, magmax, ram, nearswap).</param>
/// <param name="TakesTaskVectors">True when the method's first step is δ_k = θ_k − θ_base on every input row and it skips
/// that step when <see cref="TensorMergeInputs.ModelsAreTaskVectors"/> says the executor already did it (while decoding the
/// rows, which saves a pass over them). The method must give the same bits either way.</param>
public readonly record struct MethodTraits(BaseModelUse BaseModel, int MinModels, int MaxModels, bool UsesRandomness = false, bool Elementwise = false,
    bool TakesTaskVectors = false);

/// <summary>Whether a method needs <c>base_model</c>.</summary>
public enum BaseModelUse
{
    /// <summary>The method has no notion of a base; a given base is merged like any other model.</summary>
    None,
    /// <summary>The base model must be given (task-vector methods, SLERP, Model Stock).</summary>
    Required,
    /// <summary>
    /// A given base is kept apart from the inputs (the method works on task vectors against it); without one the
    /// method works on the raw tensors (nuslerp, multislerp).
    /// </summary>
    Optional,
}

/// <summary>Whether a parameter is read per input model or once per tensor.</summary>
public enum ParameterScope
{
    /// <summary>One value per model (mergekit "tensor parameter", e.g. weight, density).</summary>
    PerModel,
    /// <summary>One value for the merge (e.g. normalize, lambda, t).</summary>
    Global,
}

/// <summary>A method parameter: name as mergekit spells it, default and valid range.</summary>
/// <param name="Name">Recipe name.</param>
/// <param name="Scope">Per model or global.</param>
/// <param name="Default">Default value (double or bool); null when <paramref name="Required"/>.</param>
/// <param name="Min">Smallest valid value (numbers only).</param>
/// <param name="Max">Largest valid value (numbers only).</param>
/// <param name="Required">True when the recipe must give a value.</param>
/// <param name="MinExclusive">True when <paramref name="Min"/> itself is not allowed (density &gt; 0).</param>
public sealed record ParameterSpec(string Name, ParameterScope Scope, object? Default,
    double Min = double.NegativeInfinity, double Max = double.PositiveInfinity,
    bool Required = false, bool MinExclusive = false)
{
    /// <summary>A numeric parameter.</summary>
    public static ParameterSpec Number(string name, ParameterScope scope, double? defaultValue,
        double min = double.NegativeInfinity, double max = double.PositiveInfinity, bool minExclusive = false) =>
        new(name, scope, defaultValue, min, max, defaultValue is null, minExclusive);

    /// <summary>A boolean parameter.</summary>
    public static ParameterSpec Flag(string name, bool defaultValue) => new(name, ParameterScope.Global, defaultValue);

    /// <summary>A choice among fixed words (a Weld extension, e.g. <c>consensus: sum|count</c>).</summary>
    public static ParameterSpec Choice(string name, string defaultValue, params string[] choices) =>
        new(name, ParameterScope.Global, defaultValue) { Choices = choices };

    /// <summary>A text parameter (a Weld extension, e.g. a key prefix); required when <paramref name="defaultValue"/> is null.</summary>
    public static ParameterSpec Text(string name, ParameterScope scope, string? defaultValue) =>
        new(name, scope, defaultValue, Required: defaultValue is null) { IsText = true };

    /// <summary>
    /// A per-model path to a safetensors file or model folder holding one extra tensor per input tensor, under the
    /// same name (e.g. <c>fisher:</c>); the planner opens it, checks shapes and the executor reads the tensor into
    /// <see cref="TensorMergeInputs.Auxiliary"/>. A method declares at most one. Global text parameters
    /// <c>NAME_key_prefix</c> and <c>NAME_key_suffix</c>, when the method declares them, are put around the tensor name.
    /// </summary>
    public static ParameterSpec TensorFile(string name) => Text(name, ParameterScope.PerModel, null) with { NamesTensorFile = true };

    /// <summary>True when the value is text (a path, a key affix) rather than a number, flag or choice.</summary>
    public bool IsText { get; init; }

    /// <summary>True when the text value names a file of extra per-model tensors (<see cref="TensorFile"/>).</summary>
    public bool NamesTensorFile { get; init; }

    /// <summary>The allowed words of a choice parameter, or null.</summary>
    public IReadOnlyList<string>? Choices { get; init; }

    /// <summary>True when the parameter is a boolean flag.</summary>
    public bool IsFlag => Default is bool;

    /// <summary>Checks a numeric value against the range; returns the problem or null.</summary>
    public string? CheckRange(double value)
    {
        if (double.IsNaN(value)) return $"{Name} is NaN";
        if (double.IsInfinity(value)) return $"{Name} = {(value > 0 ? "" : "-")}inf is not a finite number (a number too large for a double, such as 1e400, reads as inf)";
        bool belowMin = MinExclusive ? value <= Min : value < Min;
        if (belowMin || value > Max)
        {
            string lower = double.IsNegativeInfinity(Min) ? "-inf" : Min.ToString(System.Globalization.CultureInfo.InvariantCulture);
            string upper = double.IsPositiveInfinity(Max) ? "inf" : Max.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return $"{Name} = {value.ToString(System.Globalization.CultureInfo.InvariantCulture)} is outside {(MinExclusive ? "(" : "[")}{lower}, {upper}]";
        }
        return null;
    }
}
