namespace Weld.Cli;

/// <summary>
/// Accepts mergekit's command line: <c>weld mergekit-yaml CONFIG OUT [flags]</c> is <c>weld merge CONFIG -o OUT</c>,
/// and mergekit's flag spellings map to Weld's.
/// </summary>
internal static class MergekitAliases
{
    public static string[] Rewrite(string[] args)
    {
        if (args.Length >= 3 && args[0] == "mergekit-yaml" && !args[1].StartsWith('-') && !args[2].StartsWith('-'))
            return ["merge", args[1], "-o", args[2], .. args[3..]];
        if (args.Length > 0 && args[0] == "mergekit-yaml")
            return ["merge", .. args[1..]];
        return args;
    }
}
