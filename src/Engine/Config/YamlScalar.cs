using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Weld.Engine.Config;

/// <summary>The type a YAML scalar resolves to.</summary>
internal enum YamlScalarKind
{
    Null,
    Boolean,
    Number,
    String,
}

/// <summary>
/// Resolves YAML scalars to null / boolean / number / string the way PyYAML (which mergekit uses) does for the
/// values recipes contain: YAML 1.1 booleans (<c>true</c>, <c>yes</c>, <c>on</c>, …), quoted scalars always strings.
/// </summary>
/// <remarks>
/// One deliberate difference: PyYAML reads <c>1e-3</c> (an exponent without a dot) as a string; Weld reads it as
/// the number the author meant.
/// </remarks>
internal readonly struct YamlScalar
{
    private const string StringTag = "tag:yaml.org,2002:str";

    private YamlScalar(YamlScalarKind kind, double number, string text)
    {
        Kind = kind;
        Number = number;
        Text = text;
    }

    public YamlScalarKind Kind { get; }

    /// <summary>The number (booleans: 1 or 0).</summary>
    public double Number { get; }

    /// <summary>The scalar's text as written.</summary>
    public string Text { get; }

    public static YamlScalar Resolve(YamlScalarNode node)
    {
        string text = node.Value ?? string.Empty;
        bool plain = node.Style is ScalarStyle.Plain or ScalarStyle.Any;
        if (!plain || (!node.Tag.IsEmpty && node.Tag.Value == StringTag))
        {
            return new(YamlScalarKind.String, 0, text);
        }

        switch (text)
        {
            case "" or "~" or "null" or "Null" or "NULL":
                return new(YamlScalarKind.Null, 0, text);
            case "true" or "True" or "TRUE" or "yes" or "Yes" or "YES" or "on" or "On" or "ON":
                return new(YamlScalarKind.Boolean, 1, text);
            case "false" or "False" or "FALSE" or "no" or "No" or "NO" or "off" or "Off" or "OFF":
                return new(YamlScalarKind.Boolean, 0, text);
            case ".inf" or ".Inf" or ".INF" or "+.inf" or "+.Inf" or "+.INF":
                return new(YamlScalarKind.Number, double.PositiveInfinity, text);
            case "-.inf" or "-.Inf" or "-.INF":
                return new(YamlScalarKind.Number, double.NegativeInfinity, text);
            case ".nan" or ".NaN" or ".NAN":
                return new(YamlScalarKind.Number, double.NaN, text);
        }

        return TryParseNumber(text, out double number)
            ? new(YamlScalarKind.Number, number, text)
            : new(YamlScalarKind.String, 0, text);
    }

    private static bool TryParseNumber(string text, out double number)
    {
        number = 0;
        ReadOnlySpan<char> span = text;
        int start = span.Length > 0 && span[0] is '+' or '-' ? 1 : 0;
        // Only decimal numbers (digits, '_' separators, one '.', an exponent): double.Parse alone would also
        // take "Infinity", "NaN" or thousands separators, which YAML does not.
        bool digit = false, dot = false, exponent = false;
        for (int i = start; i < span.Length; i++)
        {
            char c = span[i];
            if (char.IsAsciiDigit(c))
            {
                digit = true;
            }
            else if (c == '_' && digit && !exponent)
            {
            }
            else if (c == '.' && !dot && !exponent)
            {
                dot = true;
            }
            else if (c is 'e' or 'E' && digit && !exponent && i + 1 < span.Length)
            {
                exponent = true;
                if (span[i + 1] is '+' or '-')
                {
                    i++;
                }
            }
            else
            {
                return false;
            }
        }

        return digit && double.TryParse(
            text.Replace("_", string.Empty, StringComparison.Ordinal),
            NumberStyles.Float,
            CultureInfo.InvariantCulture,
            out number);
    }
}
