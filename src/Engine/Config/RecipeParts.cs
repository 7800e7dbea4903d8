namespace Weld.Engine.Config;

/// <summary>A model's parameters by name, as written in one <c>parameters:</c> mapping.</summary>
public sealed class ParameterSet
{
    /// <summary>A set with no parameters.</summary>
    public static ParameterSet Empty { get; } = new(new Dictionary<string, ParameterValue>(StringComparer.Ordinal), 0);

    private readonly Dictionary<string, ParameterValue> _values;

    /// <summary>Creates the set.</summary>
    /// <param name="values">The settings by parameter name.</param>
    /// <param name="line">The recipe line of the <c>parameters:</c> mapping (0 when absent or built in code).</param>
    public ParameterSet(IReadOnlyDictionary<string, ParameterValue> values, int line = 0)
        : this(values, line, null)
    {
    }

    /// <summary>Creates the set, remembering the recipe line of each parameter name.</summary>
    /// <param name="values">The settings by parameter name.</param>
    /// <param name="line">The recipe line of the <c>parameters:</c> mapping (0 when absent or built in code).</param>
    /// <param name="keyLines">The recipe line of each name, for messages (missing names fall back to <paramref name="line"/>).</param>
    public ParameterSet(IReadOnlyDictionary<string, ParameterValue> values, int line, IReadOnlyDictionary<string, int>? keyLines)
    {
        ArgumentNullException.ThrowIfNull(values);
        _values = new Dictionary<string, ParameterValue>(values, StringComparer.Ordinal);
        Line = line;
        _keyLines = keyLines is null ? null : new Dictionary<string, int>(keyLines, StringComparer.Ordinal);
    }

    private readonly Dictionary<string, int>? _keyLines;

    /// <summary>The recipe line where <paramref name="name"/> is written (the mapping's line when unknown).</summary>
    /// <param name="name">The parameter name.</param>
    /// <returns>The line.</returns>
    public int LineOf(string name) => _keyLines is not null && _keyLines.TryGetValue(name, out int line) ? line : Line;

    /// <summary>The recipe line of the mapping.</summary>
    public int Line { get; }

    /// <summary>How many parameters are set.</summary>
    public int Count => _values.Count;

    /// <summary>The parameter names that are set.</summary>
    public IEnumerable<string> Names => _values.Keys;

    /// <summary>The setting for <paramref name="name"/>, if present.</summary>
    /// <param name="name">The parameter name (case-sensitive, as mergekit).</param>
    /// <param name="value">The setting.</param>
    /// <returns>Whether the parameter is set here.</returns>
    public bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ParameterValue? value) =>
        _values.TryGetValue(name, out value);

    /// <summary>The setting for <paramref name="name"/>.</summary>
    /// <param name="name">The parameter name.</param>
    /// <exception cref="KeyNotFoundException">The parameter is not set here.</exception>
    public ParameterValue this[string name] => _values[name];
}

/// <summary>One entry of a recipe's <c>models:</c> list.</summary>
/// <param name="Model">The model.</param>
/// <param name="Parameters">Its per-model parameters.</param>
/// <param name="Line">The recipe line of the entry.</param>
public sealed record InputModel(ModelReference Model, ParameterSet Parameters, int Line);

/// <summary>A half-open range of layer indices, <c>[Start, End)</c>, as in mergekit's <c>layer_range</c>.</summary>
/// <param name="Start">The first layer.</param>
/// <param name="End">One past the last layer.</param>
public readonly record struct LayerRange(int Start, int End)
{
    /// <summary>The number of layers in the range.</summary>
    public int Count => End - Start;
}

/// <summary>One source of an output slice: a layer range of one input model.</summary>
/// <param name="Model">The model the layers come from.</param>
/// <param name="LayerRange">The layers taken, end-exclusive.</param>
/// <param name="Parameters">Parameters for this source (the most specific level of lookup).</param>
/// <param name="Line">The recipe line of the entry.</param>
public sealed record InputSlice(ModelReference Model, LayerRange LayerRange, ParameterSet Parameters, int Line);

/// <summary>One entry of a recipe's <c>slices:</c> list: a run of output layers made from its sources.</summary>
/// <param name="Sources">The input slices merged into these output layers (all the same length).</param>
/// <param name="BaseModel">A base model for this slice only, overriding the recipe's <c>base_model</c>.</param>
/// <param name="ResidualWeight">mergekit's <c>residual_weight</c>, when given.</param>
/// <param name="Parameters">Slice-level parameters.</param>
/// <param name="Line">The recipe line of the entry.</param>
public sealed record OutputSlice(
    IReadOnlyList<InputSlice> Sources,
    ModelReference? BaseModel,
    double? ResidualWeight,
    ParameterSet Parameters,
    int Line);
