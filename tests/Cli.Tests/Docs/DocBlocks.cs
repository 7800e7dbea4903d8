using System.Text.RegularExpressions;
using Weld.Tests;

namespace Weld.Cli.Tests.Docs;

/// <summary>One fenced code block of a Markdown page.</summary>
/// <param name="Page">The page, relative to the repository root (e.g. <c>docs/recipes.md</c>).</param>
/// <param name="Line">1-based line of the opening fence.</param>
/// <param name="Language">The fence's info string (<c>bash</c>, <c>yaml</c>, <c>csharp</c>, …), lower case.</param>
/// <param name="Text">The block's lines, without the fences.</param>
/// <param name="NotRunReason">
/// Why the block is not run by the docs tests, from a <c>&lt;!-- not run in tests: REASON --&gt;</c> comment on the
/// line before the fence (a GPU, a cluster, the suite itself); null when it runs.
/// </param>
internal sealed record DocBlock(string Page, int Line, string Language, string Text, string? NotRunReason)
{
    /// <summary>Shell blocks are commands a reader types: the docs tests run them.</summary>
    public bool IsShell => Language is "bash" or "sh" or "shell" or "console";

    public string Where => $"{Page}:{Line}";
}

/// <summary>Finds the fenced code blocks of the README and every page under <c>docs/</c>.</summary>
internal static partial class DocBlocks
{
    /// <summary>The pages the docs tests cover, relative to the repository root.</summary>
    public static IReadOnlyList<string> Pages()
    {
        var pages = new List<string> { "README.md" };
        string docs = Path.Combine(TestPaths.RepoRoot, "docs");
        if (Directory.Exists(docs))
            pages.AddRange(Directory.GetFiles(docs, "*.md", SearchOption.AllDirectories)
                .Select(p => Path.GetRelativePath(TestPaths.RepoRoot, p).Replace('\\', '/'))
                .Order(StringComparer.Ordinal));
        return pages;
    }

    public static IReadOnlyList<DocBlock> Of(string page)
    {
        string[] lines = File.ReadAllLines(Path.Combine(TestPaths.RepoRoot, page));
        var blocks = new List<DocBlock>();
        for (int i = 0; i < lines.Length; i++)
        {
            Match open = FenceOpen().Match(lines[i]);
            if (!open.Success) continue;
            string fence = open.Groups["fence"].Value;
            string language = open.Groups["info"].Value.Trim().ToLowerInvariant();
            int start = i;
            var body = new List<string>();
            for (i++; i < lines.Length && !lines[i].TrimStart().StartsWith(fence, StringComparison.Ordinal); i++)
                body.Add(lines[i]);
            string? reason = null;
            if (start > 0 && NotRunMarker().Match(lines[start - 1]) is { Success: true } marker)
                reason = marker.Groups["reason"].Value.Trim();
            blocks.Add(new DocBlock(page, start + 1, language, string.Join('\n', body), reason));
        }
        return blocks;
    }

    [GeneratedRegex(@"^\s*(?<fence>```+)(?<info>[^`]*)$")]
    private static partial Regex FenceOpen();

    [GeneratedRegex(@"^\s*<!--\s*not run in tests:(?<reason>.*)-->\s*$")]
    private static partial Regex NotRunMarker();
}
