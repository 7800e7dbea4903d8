namespace Weld.Engine.Config;

/// <summary>
/// A parameter setting as written in a recipe: a scalar, a gradient (list of numbers interpolated over the
/// layer position t), a stepped list of non-numeric values, or a list of <c>{filter, value}</c> conditions.
/// </summary>
/// <remarks>Evaluation reproduces mergekit's <c>evaluate_setting</c> (mergekit/config.py).</remarks>
public abstract class ParameterValue
{
    private protected ParameterValue(int line) => Line = line;

    /// <summary>The 1-based recipe line where the setting starts (0 when built in code).</summary>
    public int Line { get; }

    /// <summary>
    /// The value for one tensor at layer position <paramref name="t"/>, or <see langword="null"/> when a
    /// conditional list has no entry that matches the tensor (mergekit then falls through to the next, less
    /// specific place the parameter could be set).
    /// </summary>
    /// <param name="tensorName">The tensor's name; <see langword="null"/> or empty matches only catch-all filters.</param>
    /// <param name="t">The layer position in [0, 1].</param>
    /// <returns>The value, or <see langword="null"/>.</returns>
    public ParameterScalar? Evaluate(string? tensorName, double t)
    {
        if (!(t >= 0 && t <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(t), t, "layer position t must lie in [0, 1]");
        }

        return EvaluateCore(tensorName, t);
    }

    private protected abstract ParameterScalar? EvaluateCore(string? tensorName, double t);
}

/// <summary>A single number, boolean or string that applies to every tensor and layer.</summary>
public sealed class ScalarParameter : ParameterValue
{
    /// <summary>Creates the setting.</summary>
    /// <param name="value">The value.</param>
    /// <param name="line">The recipe line.</param>
    public ScalarParameter(ParameterScalar value, int line = 0) : base(line) => Value = value;

    /// <summary>The value.</summary>
    public ParameterScalar Value { get; }

    private protected override ParameterScalar? EvaluateCore(string? tensorName, double t) => Value;
}

/// <summary>
/// A list of numbers read as a piecewise-linear function of the layer position: the points sit at
/// t = 0, 1/(n−1), …, 1.
/// </summary>
public sealed class GradientParameter : ParameterValue
{
    private readonly double[] _points;

    /// <summary>Creates the setting.</summary>
    /// <param name="points">The values at evenly spaced positions; at least one.</param>
    /// <param name="line">The recipe line.</param>
    public GradientParameter(IReadOnlyList<double> points, int line = 0) : base(line)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.Count == 0)
        {
            throw new ArgumentException("a gradient needs at least one point", nameof(points));
        }

        _points = [.. points];
    }

    /// <summary>The values at evenly spaced positions from t = 0 to t = 1.</summary>
    public IReadOnlyList<double> Points => _points;

    /// <summary>Interpolates at <paramref name="t"/> in [0, 1] exactly as mergekit does.</summary>
    /// <param name="t">The layer position.</param>
    /// <returns>The interpolated value.</returns>
    public double Interpolate(double t)
    {
        // Same double operations in the same order as mergekit's evaluate_setting, so values match bit for bit:
        // scaled = t*(n-1); i0 = int(scaled) (truncation); i1 = min(n-1, i0+1); (1-frac)*p[i0] + frac*p[i1].
        int last = _points.Length - 1;
        double scaled = t * last;
        int i0 = (int)scaled;
        int i1 = Math.Min(last, i0 + 1);
        double frac = scaled - i0;
        return ((1 - frac) * _points[i0]) + (frac * _points[i1]);
    }

    private protected override ParameterScalar? EvaluateCore(string? tensorName, double t) =>
        ParameterScalar.FromNumber(Interpolate(t), Line);
}

/// <summary>
/// A list of strings (or booleans) that cannot be interpolated: mergekit picks element
/// <c>int(t·(n−1))</c>, so each value holds for an equal share of the positions and the last only at t = 1.
/// </summary>
public sealed class SteppedParameter : ParameterValue
{
    private readonly ParameterScalar[] _steps;

    /// <summary>Creates the setting.</summary>
    /// <param name="steps">The values; at least one.</param>
    /// <param name="line">The recipe line.</param>
    public SteppedParameter(IReadOnlyList<ParameterScalar> steps, int line = 0) : base(line)
    {
        ArgumentNullException.ThrowIfNull(steps);
        if (steps.Count == 0)
        {
            throw new ArgumentException("a stepped list needs at least one value", nameof(steps));
        }

        _steps = [.. steps];
    }

    /// <summary>The values in order.</summary>
    public IReadOnlyList<ParameterScalar> Steps => _steps;

    private protected override ParameterScalar? EvaluateCore(string? tensorName, double t) =>
        _steps[(int)(t * (_steps.Length - 1))];
}

/// <summary>One <c>{filter, value}</c> entry of a conditional parameter.</summary>
public sealed class ParameterCondition
{
    /// <summary>Creates the entry.</summary>
    /// <param name="filter">The substring to look for in the tensor name; <see langword="null"/> or <c>*</c> matches all.</param>
    /// <param name="value">The setting that applies when the filter matches (a scalar, gradient or stepped list).</param>
    /// <param name="line">The recipe line.</param>
    public ParameterCondition(string? filter, ParameterValue value, int line = 0)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value is ConditionalParameter)
        {
            throw new ArgumentException("conditions do not nest", nameof(value));
        }

        Filter = filter;
        Value = value;
        Line = line;
    }

    /// <summary>The substring to find in the tensor name; <see langword="null"/> means every tensor.</summary>
    public string? Filter { get; }

    /// <summary>The setting used when the filter matches.</summary>
    public ParameterValue Value { get; }

    /// <summary>The 1-based recipe line of the entry.</summary>
    public int Line { get; }

    /// <summary>Whether this entry applies to <paramref name="tensorName"/> (mergekit's rule).</summary>
    /// <param name="tensorName">The tensor name, or <see langword="null"/> when there is none.</param>
    /// <returns><see langword="true"/> for a catch-all, or when the filter occurs in a non-empty tensor name.</returns>
    public bool Matches(string? tensorName) =>
        Filter is null
        || Filter == "*"
        || (!string.IsNullOrEmpty(tensorName) && tensorName.Contains(Filter, StringComparison.Ordinal));
}

/// <summary>
/// A list of <c>{filter, value}</c> entries: the first entry whose filter occurs in the tensor name decides;
/// when none matches the setting gives no value here.
/// </summary>
public sealed class ConditionalParameter : ParameterValue
{
    private readonly ParameterCondition[] _conditions;

    /// <summary>Creates the setting.</summary>
    /// <param name="conditions">The entries in order.</param>
    /// <param name="line">The recipe line.</param>
    public ConditionalParameter(IReadOnlyList<ParameterCondition> conditions, int line = 0) : base(line)
    {
        ArgumentNullException.ThrowIfNull(conditions);
        _conditions = [.. conditions];
    }

    /// <summary>The entries in the order written.</summary>
    public IReadOnlyList<ParameterCondition> Conditions => _conditions;

    private protected override ParameterScalar? EvaluateCore(string? tensorName, double t)
    {
        foreach (ParameterCondition condition in _conditions)
        {
            if (condition.Matches(tensorName))
            {
                return condition.Value.Evaluate(tensorName, t);
            }
        }

        return null;
    }
}
