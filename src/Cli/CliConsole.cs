namespace Weld.Cli;

/// <summary>Where a command writes: results to stdout, messages to stderr, progress only on a terminal.</summary>
internal sealed class CliConsole(TextWriter stdout, TextWriter stderr)
{
    /// <summary>Results (tables, JSON).</summary>
    public TextWriter Out { get; } = stdout;

    /// <summary>Diagnostics.</summary>
    public TextWriter Err { get; } = stderr;

    /// <summary>True when stderr is an interactive terminal (progress bars), false when piped or captured.</summary>
    public bool IsInteractive { get; } = ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected
        && Environment.GetEnvironmentVariable("CI") is null;

    /// <summary>Writes "weld: error: ..." to stderr.</summary>
    public void Error(string message) => Err.WriteLine($"weld: error: {message}");

    /// <summary>Writes an informational line to stderr.</summary>
    public void Info(string message) => Err.WriteLine(message);
}
