using System.Globalization;
using CommandLine;
using Weld.Engine;
using Weld.Engine.Compression;

namespace Weld.Cli;

[Verb("compress", HelpText = "Low-rank residuals: FT --base BASE --error E -o FOLDER stores FT as base-relative low-rank factors, each tensor within relative Frobenius error E (restore with `weld decompress`). TALL-mask compression (Wang et al. 2024): --tall --base BASE M1 M2 ... -o FILE writes one multi-task vector plus a 1-bit mask per model; --restore TASK --base BASE --from FILE -o FOLDER brings one model back.")]
internal sealed class CompressOptions
{
    [Value(0, MetaName = "MODELS", HelpText = "The fine-tuned models to compress (with --tall), or the one fine-tune (with --error).")]
    public IEnumerable<string> Models { get; set; } = [];

    [Option("tall", HelpText = "Compress MODELS into FILE (-o).")]
    public bool Tall { get; set; }

    [Option("restore", HelpText = "Restore the model of this task (its folder name or 0-based index) from --from into the folder -o.")]
    public string? Restore { get; set; }

    [Option("base", Required = true, HelpText = "The common base model.")]
    public string Base { get; set; } = "";

    [Option("from", HelpText = "The compressed file (with --restore).")]
    public string? From { get; set; }

    [Option('o', "output", Required = true, HelpText = "The compressed .safetensors file (--tall), the restored model folder (--restore) or the compressed folder (--error).")]
    public string Output { get; set; } = "";

    [Option("lambda", Default = 0.4, HelpText = "Mask threshold λ for every model: keep τ_MTL where |τ_t| >= λ·|τ_MTL − τ_t| (the paper tunes it in [0.2, 0.6]).")]
    public double Lambda { get; set; }

    [Option("error", HelpText = "Low-rank mode: relative error budget E per tensor, ||W_restored - W_ft||_F <= E * ||W_ft||_F (0 stores every changed tensor exactly).")]
    public double? Error { get; set; }

    [Option("seed", Default = 0UL, HelpText = "Seed of the randomized SVD sketches (--error); the output bytes depend only on the inputs and the seed.")]
    public ulong Seed { get; set; }

    [Option("overwrite", HelpText = "Replace an existing output that Weld wrote (a folder with its .weld marker, or a TALL file).")]
    public bool Overwrite { get; set; }

    [Option("json", HelpText = "Machine-readable JSON on stdout (--error).")]
    public bool Json { get; set; }

    [Option("quiet", HelpText = "No progress lines (--error).")]
    public bool Quiet { get; set; }
}

/// <summary><c>weld compress --tall</c> and <c>weld compress --restore</c>.</summary>
internal static class CompressCommand
{
    public static int Run(CompressOptions options, CliConsole console, CancellationToken cancel = default)
    {
        var inv = CultureInfo.InvariantCulture;
        if (options.Error is not null)
        {
            if (options.Tall || options.Restore is not null)
            {
                console.Error("--error (low-rank compression) cannot be combined with --tall or --restore");
                return ExitCodes.UsageError;
            }
            return LowRankCommand.Compress(options, console, cancel);
        }
        if (options.Tall == (options.Restore is not null))
        {
            console.Error("give exactly one of --error E (low-rank), --tall (compress) and --restore TASK");
            return ExitCodes.UsageError;
        }
        if (options.Tall)
        {
            string[] models = options.Models.ToArray();
            if (models.Length == 0)
            {
                console.Error("--tall needs the fine-tuned models to compress");
                return ExitCodes.UsageError;
            }
            if (!double.IsFinite(options.Lambda) || options.Lambda < 0)
                throw new WeldException(string.Create(inv, $"--lambda {options.Lambda} must be a finite number >= 0"));
            TallCompressionSummary summary = TallCompressor.Compress(options.Base, models, Enumerable.Repeat(options.Lambda, models.Length).ToArray(), options.Output, options.Overwrite);
            console.Out.WriteLine(string.Create(inv, $"compressed {models.Length} model(s), {summary.Tensors} tensors, {summary.Elements:N0} elements each, into {options.Output} ({summary.Bytes:N0} bytes)"));
            for (int t = 0; t < models.Length; t++)
                console.Out.WriteLine(string.Create(inv, $"  {models[t]}: mask keeps {summary.KeptPerTask[t]:N0} elements ({100.0 * summary.KeptPerTask[t] / Math.Max(1, summary.Elements):F1}%)"));
            return ExitCodes.Ok;
        }
        if (options.From is null)
        {
            console.Error("--restore needs --from FILE (the compressed file)");
            return ExitCodes.UsageError;
        }
        TallCompressor.Restore(options.Base, options.From, options.Restore!, options.Output, options.Overwrite);
        console.Out.WriteLine($"restored {options.Restore} into {options.Output}");
        return ExitCodes.Ok;
    }
}
