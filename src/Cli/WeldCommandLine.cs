namespace Weld.Cli;

/// <summary>Entry point of the `weld` command line: parses verbs and maps failures to exit codes.</summary>
internal static class WeldCommandLine
{
    public static int Run(string[] args)
    {
        Console.Error.WriteLine("weld: no verbs yet");
        return args.Length == 0 ? 1 : 1;
    }
}
