using CommandLine;
using Weld.Engine.Execution;

namespace Weld.Cli;

[Verb("finalize", HelpText = "Assemble a merge computed with --part I/N: check every part, write the index, config and tokenizer.")]
internal sealed class FinalizeOptions
{
    [Value(0, MetaName = "OUT", Required = true, HelpText = "The output folder the parts were computed for.")]
    public string Output { get; set; } = "";

    [Option("overwrite", HelpText = "Replace an existing output folder.")]
    public bool Overwrite { get; set; }

    [Option("no-copy-tokenizer", HelpText = "Do not copy tokenizer / side files into the output.")]
    public bool NoCopyTokenizer { get; set; }

    [Option("no-write-model-card", HelpText = "Do not write README.md and mergekit_config.yml.")]
    public bool NoWriteModelCard { get; set; }
}

/// <summary><c>weld finalize OUT</c>.</summary>
internal static class FinalizeCommand
{
    public static int Run(FinalizeOptions options, CliConsole console)
    {
        MergeRunner.Finalize(options.Output, !options.NoCopyTokenizer, !options.NoWriteModelCard, options.Overwrite);
        console.Info($"finalized {options.Output}");
        return ExitCodes.Ok;
    }
}
