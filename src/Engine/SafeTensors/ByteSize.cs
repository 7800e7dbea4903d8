using System.Globalization;

namespace Weld.Engine.SafeTensors;

/// <summary>
/// Byte counts as mergekit's <c>--out-shard-size</c> writes them (its <c>parse_kmb</c>): a plain integer, or an
/// integer with a decimal suffix K (10^3), M (10^6) or B (10^9, "billion"), case-insensitive.
/// </summary>
public static class ByteSize
{
    private static readonly (char Suffix, long Factor)[] s_units = [('B', 1_000_000_000L), ('M', 1_000_000L), ('K', 1_000L)];

    /// <summary>Parses "5B" (5·10^9), "500M", "100k", "4096".</summary>
    /// <exception cref="WeldException">The text is not such a size, or is too large.</exception>
    public static long Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string trimmed = text.Trim();
        long factor = 1;
        string digits = trimmed;
        if (trimmed.Length > 0)
        {
            char last = char.ToUpperInvariant(trimmed[^1]);
            foreach ((char suffix, long unitFactor) in s_units)
            {
                if (last == suffix)
                {
                    factor = unitFactor;
                    digits = trimmed[..^1];
                    break;
                }
            }
        }

        bool allDigits = digits.Length > 0;
        foreach (char c in digits) allDigits &= c is >= '0' and <= '9';
        if (!allDigits)
        {
            throw new WeldException(
                $"'{text}' is not a byte size: expected an integer, optionally followed by K (thousand), M (million) or B (billion), e.g. 5B or 500M.");
        }

        if (!long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long value) ||
            value > long.MaxValue / factor)
        {
            throw new WeldException($"'{text}' is too large a byte size.");
        }

        return value * factor;
    }

    /// <summary>
    /// Formats a byte count so that <see cref="Parse"/> reads it back exactly: the largest suffix that divides it
    /// ("5B", "500M", "1500K"), or plain digits.
    /// </summary>
    public static string Format(long bytes)
    {
        if (bytes < 0) throw new ArgumentOutOfRangeException(nameof(bytes), bytes, "A byte size cannot be negative.");
        foreach ((char suffix, long factor) in s_units)
            if (bytes != 0 && bytes % factor == 0)
                return (bytes / factor).ToString(CultureInfo.InvariantCulture) + suffix;
        return bytes.ToString(CultureInfo.InvariantCulture);
    }
}
