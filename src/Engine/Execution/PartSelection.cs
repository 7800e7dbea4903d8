using Weld.Engine.SafeTensors;

namespace Weld.Engine.Execution;

/// <summary>
/// Which output shards part <c>I</c> of <c>N</c> computes: contiguous runs of shards balanced by bytes, the same
/// for every machine that plans the same recipe, so parts assembled equal a single run byte for byte.
/// </summary>
/// <param name="Index">1-based part number.</param>
/// <param name="Count">Number of parts.</param>
public readonly record struct PartSelection(int Index, int Count)
{
    /// <summary>Parses <c>I/N</c> (1 ≤ I ≤ N).</summary>
    public static PartSelection Parse(string text)
    {
        string[] pieces = text.Split('/');
        if (pieces.Length == 2 && int.TryParse(pieces[0], out int index) && int.TryParse(pieces[1], out int count)
            && count >= 1 && index >= 1 && index <= count)
            return new PartSelection(index, count);
        throw new WeldException($"--part {text}: expected I/N with 1 <= I <= N, e.g. 2/8");
    }

    /// <summary>The shard file names of this part.</summary>
    public IReadOnlySet<string> Select(IReadOnlyList<ShardPlan> shards)
    {
        long total = 0;
        foreach (var s in shards) total += s.DataBytes;
        // Shard j goes to the part whose byte range holds the middle of shard j.
        var chosen = new HashSet<string>(StringComparer.Ordinal);
        long before = 0;
        foreach (var s in shards)
        {
            double middle = before + s.DataBytes / 2.0;
            int part = total == 0 ? 0 : (int)Math.Min(Count - 1, Math.Floor(middle * Count / total));
            if (part == Index - 1) chosen.Add(s.FileName);
            before += s.DataBytes;
        }
        return chosen;
    }

    /// <inheritdoc />
    public override string ToString() => $"{Index}/{Count}";
}
