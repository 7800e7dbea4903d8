using System.Globalization;
using CommandLine;
using Weld.Engine.Compression;

namespace Weld.Cli;

[Verb("combine-lora", HelpText = "Combine PEFT LoRA adapters as PEFT's add_weighted_adapter(combination_type=\"svd\") does: per module, a rank-R SVD of Σ w_i·s_i·ΔW_i gives B = U·Σ, A = Vᵀ (r = lora_alpha = R).")]
internal sealed class CombineLoraOptions
{
    [Value(0, MetaName = "ADAPTERS", Min = 1, Required = true, HelpText = "The PEFT LoRA adapter folders.")]
    public IEnumerable<string> Adapters { get; set; } = [];

    [Option("weights", Required = true, Min = 1, HelpText = "One weight per adapter, in the same order.")]
    public IEnumerable<double> Weights { get; set; } = [];

    [Option("rank", HelpText = "The new rank R (default: the largest r of the adapters, as PEFT's svd_rank=None).")]
    public int? Rank { get; set; }

    [Option("clamp", HelpText = "PEFT's svd_clamp: clamp both factors to ±the q-quantile of their entries (q in [0, 1]).")]
    public double? Clamp { get; set; }

    [Option("scale-once", HelpText = "Weigh each adapter's applied delta w·s·B·A instead of PEFT's w·s²·B·A (PEFT scales by lora_alpha/r twice).")]
    public bool ScaleOnce { get; set; }

    [Option('o', "output", Required = true, HelpText = "The adapter folder to create.")]
    public string Output { get; set; } = "";

    [Option("overwrite", HelpText = "Replace an existing output folder.")]
    public bool Overwrite { get; set; }
}

/// <summary><c>weld combine-lora</c>.</summary>
internal static class CombineLoraCommand
{
    public static int Run(CombineLoraOptions options, CliConsole console)
    {
        var inv = CultureInfo.InvariantCulture;
        var settings = new LoraCombineOptions(options.Weights.ToList(), options.Rank, options.Clamp, options.ScaleOnce);
        IReadOnlyList<LoraCombinedModule> reports = LoraCombiner.CombineSvd(options.Adapters.ToList(), settings, options.Output, options.Overwrite);
        int width = Math.Max("module".Length, reports.Max(r => r.Module.Length));
        TextWriter w = console.Out;
        w.WriteLine(string.Create(inv, $"{"module".PadRight(width)}  {"shape",-12} {"rank",4}  {"adapters",8}  {"energy kept",11}"));
        foreach (LoraCombinedModule r in reports)
        {
            string shape = string.Create(inv, $"[{r.Rows}, {r.Columns}]");
            w.WriteLine(string.Create(inv, $"{r.Module.PadRight(width)}  {shape,-12} {r.Rank,4}  {r.Adapters,8}  {r.EnergyKept * 100,10:F4}%"));
        }
        w.WriteLine(string.Create(inv, $"wrote {reports.Count} module(s) at rank {reports[0].Rank} into {options.Output}"));
        return ExitCodes.Ok;
    }
}
