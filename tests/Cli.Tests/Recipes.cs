using Weld.Tests;

namespace Weld.Cli.Tests;

/// <summary>
/// Recipe files for the tests. The examples name models relative to their own folder (<c>models/...</c>, found beside
/// the recipe wherever it is run from); copies written elsewhere get absolute model paths.
/// </summary>
internal static class Recipes
{
    private const string ExampleModelsPrefix = ": models/";

    public static string ExamplesFolder => Path.Combine(TestPaths.RepoRoot, "examples");

    /// <summary>Absolute path of a model of <c>examples/models</c> (lm-base, lm-ft-c, ...).</summary>
    public static string ExampleModel(string name) => Path.Combine(ExamplesFolder, "models", name);

    /// <summary>File names of every <c>examples/*.yml</c>.</summary>
    public static IEnumerable<string> ExampleNames() =>
        Directory.EnumerateFiles(ExamplesFolder, "*.yml").Select(Path.GetFileName).Order(StringComparer.Ordinal)!;

    /// <summary>Writes example <paramref name="name"/> into <paramref name="folder"/> with absolute model paths; returns its path.</summary>
    public static string WriteExample(string name, string folder)
    {
        string text = File.ReadAllText(Path.Combine(ExamplesFolder, name));
        if (!text.Contains(ExampleModelsPrefix, StringComparison.Ordinal))
            throw new InvalidOperationException($"{name} names no model under {ExampleModelsPrefix}");
        return Write(folder, text.Replace(ExampleModelsPrefix, ": " + Path.Combine(ExamplesFolder, "models") + "/", StringComparison.Ordinal), name);
    }

    /// <summary>Writes <paramref name="text"/> as <paramref name="folder"/>/<paramref name="fileName"/>; returns its path.</summary>
    public static string Write(string folder, string text, string fileName = "recipe.yml")
    {
        string path = Path.Combine(folder, fileName);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>The 1-based line of the first line of <paramref name="text"/> containing <paramref name="fragment"/>.</summary>
    public static int LineOf(string text, string fragment)
    {
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
            if (lines[i].Contains(fragment, StringComparison.Ordinal)) return i + 1;
        throw new InvalidOperationException($"'{fragment}' is not in the recipe");
    }
}
