using System.Text.Json;
using System.Text.Json.Nodes;

namespace Weld.Engine.Evaluation;

/// <summary>One multiple-choice item: a context, the candidate continuations, and the index of the right one.</summary>
/// <param name="Context">The text the choices continue.</param>
/// <param name="Choices">Candidate continuations (at least two), without the delimiter that joins them to the context.</param>
/// <param name="Gold">Index of the correct choice.</param>
public sealed record MultipleChoiceItem(string Context, IReadOnlyList<string> Choices, int Gold);

/// <summary>
/// A multiple-choice task file: JSON Lines, one item per line, <c>{"context": "...", "choices": ["...", ...], "gold": i}</c>
/// (blank lines are skipped).
/// </summary>
public static class MultipleChoiceTask
{
    /// <summary>Reads and validates a task file.</summary>
    /// <exception cref="WeldException">The file cannot be read, has no items, or a line is not a valid item (the message names file and line).</exception>
    public static IReadOnlyList<MultipleChoiceItem> Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new WeldException($"{path}: cannot read the task file ({e.Message}).", e);
        }

        var items = new List<MultipleChoiceItem>();
        for (int i = 0; i < lines.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i])) continue;
            items.Add(Parse(lines[i], $"{path}:{i + 1}"));
        }

        if (items.Count == 0) throw new WeldException($"{path}: the task file has no items.");
        return items;
    }

    /// <summary>Parses one JSON line; <paramref name="where"/> (file:line) prefixes any error.</summary>
    public static MultipleChoiceItem Parse(string line, string where)
    {
        ArgumentNullException.ThrowIfNull(line);
        JsonObject item;
        try
        {
            item = JsonNode.Parse(line) as JsonObject ?? throw new WeldException($"{where}: an item must be a JSON object.");
        }
        catch (JsonException e)
        {
            throw new WeldException($"{where}: not valid JSON ({e.Message}).", e);
        }

        string context = item["context"] is JsonValue c && c.TryGetValue(out string? text)
            ? text
            : throw new WeldException($"{where}: \"context\" must be a string.");
        if (item["choices"] is not JsonArray array || array.Count < 2)
            throw new WeldException($"{where}: \"choices\" must be an array of at least two strings.");
        var choices = new string[array.Count];
        for (int i = 0; i < choices.Length; i++)
        {
            choices[i] = array[i] is JsonValue v && v.TryGetValue(out string? choice) && choice.Length > 0
                ? choice
                : throw new WeldException($"{where}: choice {i} must be a non-empty string.");
        }

        int gold = item["gold"] is JsonValue g && g.TryGetValue(out double number) && number == Math.Floor(number) && number >= 0 && number < choices.Length
            ? (int)number
            : throw new WeldException($"{where}: \"gold\" must be an index into the {choices.Length} choices.");
        return new MultipleChoiceItem(context, choices, gold);
    }
}
