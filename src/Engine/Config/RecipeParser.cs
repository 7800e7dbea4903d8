using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Weld.Engine.Config;

/// <summary>
/// Reads mergekit YAML recipes into a <see cref="MergeRecipe"/>. Strict: unknown keys, wrong types, missing
/// <c>merge_method</c>, and recipes with neither or both of <c>models</c> and <c>slices</c> are errors whose
/// message starts with <c>source:line:</c>.
/// </summary>
public static class RecipeParser
{
    /// <summary>The top-level keys a recipe may contain.</summary>
    public static IReadOnlyList<string> TopLevelKeys { get; } =
    [
        "merge_method", "base_model", "models", "slices", "parameters", "dtype", "out_dtype",
        "tokenizer_source", "tokenizer", "chat_template", "name", "modules", "lines", "align_to",
    ];

    /// <summary>Reads the recipe file at <paramref name="path"/>; messages name the path as given.</summary>
    /// <param name="path">The recipe file.</param>
    /// <returns>The recipe.</returns>
    /// <exception cref="RecipeException">The file cannot be read or is not a valid recipe.</exception>
    public static MergeRecipe Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw new RecipeException($"{path}: cannot read the recipe: {e.Message}");
        }

        return Parse(text, path);
    }

    /// <summary>Parses recipe text.</summary>
    /// <param name="yaml">The YAML text.</param>
    /// <param name="sourceName">The file name or label that messages start with.</param>
    /// <returns>The recipe.</returns>
    /// <exception cref="RecipeException">The text is not valid YAML or not a valid recipe.</exception>
    public static MergeRecipe Parse(string yaml, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        ArgumentNullException.ThrowIfNull(sourceName);
        var reader = new RecipeReader(sourceName);
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            // YamlDotNet puts "(Line: .., Col: ..) - (..): " before the message, and sometimes the real cause
            // in the inner exception; keep the text after the position and name the line ourselves.
            string message = (e.InnerException as YamlException ?? e).Message;
            int cut = message.LastIndexOf("): ", StringComparison.Ordinal);
            if (cut >= 0)
            {
                message = message[(cut + 3)..];
            }

            throw new RecipeException($"{sourceName}:{e.Start.Line}: invalid YAML: {message}");
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException or OverflowException)
        {
            // YamlDotNet fails on some malformed input without a position (e.g. an unclosed flow list at the end):
            // name the line of the last token it could read.
            throw new RecipeException($"{sourceName}:{LastGoodLine(yaml)}: invalid YAML: the parser stopped here ({e.Message})");
        }

        if (stream.Documents.Count == 0)
        {
            throw new RecipeException($"{sourceName}:1: the recipe is empty");
        }

        if (stream.Documents.Count > 1)
        {
            throw reader.Fail(
                stream.Documents[1].RootNode,
                "the file holds more than one YAML document (multi-stage recipes are not supported); give one recipe per file");
        }

        return reader.ReadRecipe(stream.Documents[0].RootNode, yaml);
    }

    /// <summary>The line where YAML scanning of <paramref name="yaml"/> last succeeded (1 when nothing could be read).</summary>
    private static long LastGoodLine(string yaml)
    {
        long line = 1;
        try
        {
            var scanner = new Scanner(new StringReader(yaml));
            while (scanner.MoveNext()) line = Math.Max(line, scanner.Current!.End.Line);
        }
        catch (Exception)
        {
            // the scanner stops where the parser stopped
        }
        return line;
    }
}
