namespace Weld.Cli;

/// <summary>Process exit codes of `weld` (documented in the README).</summary>
internal static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;
    /// <summary>
    /// Bad input: a corrupt file, a bad recipe, a missing tensor; or an output Weld may not write (a foreign folder,
    /// an input, one another process writes, a full disk, a damaged shard at finalize). The message says which.
    /// </summary>
    public const int InputError = 1;
    /// <summary>Bad command line (unknown verb or option, an empty output path).</summary>
    public const int UsageError = 2;
    /// <summary>Interrupted (Ctrl-C); no output folder was left behind.</summary>
    public const int Interrupted = 130;
    /// <summary>A bug in Weld: the message asks for a report.</summary>
    public const int InternalError = 70;
}
