using System.Globalization;

namespace Weld.Engine.Config;

/// <summary>What a <see cref="ParameterScalar"/> holds.</summary>
public enum ParameterScalarKind
{
    /// <summary>A number (mergekit reads every YAML number as a float).</summary>
    Number,
    /// <summary>A boolean (<c>true</c> / <c>false</c>).</summary>
    Boolean,
    /// <summary>A string (quoted, or a plain scalar that is neither a number nor a boolean).</summary>
    String,
}

/// <summary>
/// The value of a recipe parameter for one tensor at one layer position: a number, a boolean or a string,
/// with the recipe line it came from so that a later type error can point at it.
/// </summary>
public readonly struct ParameterScalar
{
    private readonly double _number;
    private readonly string? _text;

    private ParameterScalar(ParameterScalarKind kind, double number, string? text, int line)
    {
        Kind = kind;
        _number = number;
        _text = text;
        Line = line;
    }

    /// <summary>What this value holds.</summary>
    public ParameterScalarKind Kind { get; }

    /// <summary>The 1-based recipe line of the YAML value that produced this scalar (0 when built in code).</summary>
    public int Line { get; }

    /// <summary>The number; valid when <see cref="Kind"/> is <see cref="ParameterScalarKind.Number"/>.</summary>
    public double Number => Kind == ParameterScalarKind.Number ? _number : throw WrongKind(ParameterScalarKind.Number);

    /// <summary>The boolean; valid when <see cref="Kind"/> is <see cref="ParameterScalarKind.Boolean"/>.</summary>
    public bool Boolean => Kind == ParameterScalarKind.Boolean ? _number != 0 : throw WrongKind(ParameterScalarKind.Boolean);

    /// <summary>The string; valid when <see cref="Kind"/> is <see cref="ParameterScalarKind.String"/>.</summary>
    public string Text => Kind == ParameterScalarKind.String ? _text! : throw WrongKind(ParameterScalarKind.String);

    /// <summary>Creates a number.</summary>
    /// <param name="value">The number.</param>
    /// <param name="line">The recipe line it came from.</param>
    /// <returns>The scalar.</returns>
    public static ParameterScalar FromNumber(double value, int line = 0) => new(ParameterScalarKind.Number, value, null, line);

    /// <summary>Creates a boolean.</summary>
    /// <param name="value">The boolean.</param>
    /// <param name="line">The recipe line it came from.</param>
    /// <returns>The scalar.</returns>
    public static ParameterScalar FromBoolean(bool value, int line = 0) => new(ParameterScalarKind.Boolean, value ? 1 : 0, null, line);

    /// <summary>Creates a string.</summary>
    /// <param name="value">The string.</param>
    /// <param name="line">The recipe line it came from.</param>
    /// <returns>The scalar.</returns>
    public static ParameterScalar FromString(string value, int line = 0)
    {
        ArgumentNullException.ThrowIfNull(value);
        return new(ParameterScalarKind.String, 0, value, line);
    }

    /// <summary>
    /// The value as a number the way mergekit's pydantic models coerce it: booleans become 1 or 0; a string is
    /// not a number.
    /// </summary>
    /// <param name="value">The number, when there is one.</param>
    /// <returns><see langword="true"/> unless the value is a string.</returns>
    public bool TryGetNumber(out double value)
    {
        value = _number;
        return Kind != ParameterScalarKind.String;
    }

    /// <summary>
    /// The value as a flag the way mergekit tests it (Python truthiness of a float): any non-zero number is true.
    /// </summary>
    /// <param name="value">The flag, when there is one.</param>
    /// <returns><see langword="true"/> unless the value is a string.</returns>
    public bool TryGetBoolean(out bool value)
    {
        value = _number != 0;
        return Kind != ParameterScalarKind.String;
    }

    /// <summary>The value as YAML would spell it (numbers in invariant culture, round-trip precision).</summary>
    public override string ToString() => Kind switch
    {
        ParameterScalarKind.Number => _number.ToString("R", CultureInfo.InvariantCulture),
        ParameterScalarKind.Boolean => _number != 0 ? "true" : "false",
        _ => _text!,
    };

    private InvalidOperationException WrongKind(ParameterScalarKind wanted) =>
        new($"parameter value {ToString()} is a {Kind}, not a {wanted}");
}
