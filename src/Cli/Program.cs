namespace Weld.Cli;

internal static class Program
{
    private static int Main(string[] args) => WeldCommandLine.Run(args);
}
