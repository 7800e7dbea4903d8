using CommandLine;
using Weld.Engine.Compression;

namespace Weld.Cli;

[Verb("apply-lora", HelpText = "Fold a PEFT LoRA adapter into its base: W + (lora_alpha/r)·B·A in float32, stored in the base's dtype.")]
internal sealed class ApplyLoraOptions
{
    [Value(0, MetaName = "BASE", Required = true, HelpText = "The base model.")]
    public string Base { get; set; } = "";

    [Value(1, MetaName = "ADAPTER", Required = true, HelpText = "The PEFT LoRA adapter folder.")]
    public string Adapter { get; set; } = "";

    [Option('o', "output", Required = true, HelpText = "The model folder to create.")]
    public string Output { get; set; } = "";

    [Option("overwrite", HelpText = "Replace an existing output folder.")]
    public bool Overwrite { get; set; }
}

/// <summary><c>weld apply-lora</c>.</summary>
internal static class ApplyLoraCommand
{
    public static int Run(ApplyLoraOptions options, CliConsole console)
    {
        int modules = LoraApplier.Apply(options.Base, options.Adapter, options.Output, options.Overwrite);
        console.Out.WriteLine($"folded {modules} LoRA module(s) of {options.Adapter} into {options.Base}; wrote {options.Output}");
        return ExitCodes.Ok;
    }
}
