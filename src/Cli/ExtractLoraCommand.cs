using System.Globalization;
using CommandLine;
using Weld.Engine;
using Weld.Engine.Compression;
using Weld.Kernels;

namespace Weld.Cli;

[Verb("extract-lora", HelpText = "Extract a PEFT LoRA adapter from a fine-tune: for every 2-D linear weight, a rank-R truncated SVD of W_ft − W_base gives B = U·√Σ, A = √Σ·Vᵀ (lora_alpha = r, so the scale is 1).")]
internal sealed class ExtractLoraOptions
{
    [Option("model", Required = true, HelpText = "The fine-tuned model.")]
    public string Model { get; set; } = "";

    [Option("base", Required = true, HelpText = "The base model (written as base_model_name_or_path).")]
    public string Base { get; set; } = "";

    [Option("rank", Required = true, HelpText = "Largest rank per module (r; also lora_alpha).")]
    public int Rank { get; set; }

    [Option('o', "output", Required = true, HelpText = "The adapter folder to create (adapter_model.safetensors, adapter_config.json).")]
    public string Output { get; set; } = "";

    [Option("sv-epsilon", Default = 0.0, HelpText = "Drop singular values σ_i <= ε·σ_1 of a module; a module left with a lower rank gets rank_pattern/alpha_pattern entries, one left with none is skipped.")]
    public double SvEpsilon { get; set; }

    [Option("include", HelpText = "Only modules whose path (tensor name without .weight) matches this regular expression.")]
    public string? Include { get; set; }

    [Option("exclude", HelpText = "Skip modules whose path matches this regular expression.")]
    public string? Exclude { get; set; }

    [Option("embed-lora", HelpText = "Also extract embeddings (lora_embedding_A/B) and lm_head, which are skipped by default.")]
    public bool EmbedLora { get; set; }

    [Option("seed", Default = 0UL, HelpText = "Seed of the randomized SVD's Gaussian sketch.")]
    public ulong Seed { get; set; }

    [Option("device", Default = "cpu", HelpText = "Where the randomized SVD's matrix products run: auto | cpu | cuda[:N] | ilgpu-cpu (the GPU GEMM on ILGPU's CPU accelerator: slow, for checking without a GPU). cpu by default: a GPU GEMM agrees with the CPU to float rounding, not bit for bit.")]
    public string Device { get; set; } = "cpu";

    [Option("threads", Default = -1, HelpText = "CPU threads for the products (-1: all cores); the result does not depend on it.")]
    public int Threads { get; set; }

    [Option("overwrite", HelpText = "Replace an existing output folder.")]
    public bool Overwrite { get; set; }
}

/// <summary><c>weld extract-lora</c>.</summary>
internal static class ExtractLoraCommand
{
    public static int Run(ExtractLoraOptions options, CliConsole console)
    {
        var inv = CultureInfo.InvariantCulture;
        IGemm gemm = SelectGemm(options.Device, options.Threads);
        IReadOnlyList<LoraModuleReport> reports;
        try
        {
            var settings = new LoraExtractionOptions(options.Rank, options.SvEpsilon, options.Include, options.Exclude, options.EmbedLora, options.Seed)
            {
                Gemm = gemm,
            };
            reports = LoraExtractor.Extract(options.Model, options.Base, settings, options.Output, options.Overwrite);
        }
        catch (Exception error) when (KernelBackends.IsDeviceFailure(error))
        {
            // A device failure mid-run (out of device memory, a lost device): name the device, not a stack trace.
            throw new WeldException($"--device {options.Device} ({gemm.Name}): {error.Message}");
        }
        finally
        {
            (gemm as IDisposable)?.Dispose();
        }
        int width = Math.Max("module".Length, reports.Max(r => r.Module.Length));
        TextWriter w = console.Out;
        w.WriteLine(string.Create(inv, $"{"module".PadRight(width)}  {"shape",-12} {"rank",4}  {"rel. error",10}  {"energy kept",11}"));
        foreach (LoraModuleReport r in reports)
        {
            string shape = string.Create(inv, $"[{r.Rows}, {r.Columns}]");
            w.WriteLine(string.Create(inv, $"{r.Module.PadRight(width)}  {shape,-12} {r.Rank,4}  {r.RelativeError.ToString("0.000E+00", inv),10}  {r.EnergyKept * 100,10:F4}%"));
        }
        int written = reports.Count(r => r.Rank > 0);
        w.WriteLine(string.Create(inv, $"wrote {written} module(s) into {options.Output} ({reports.Count - written} skipped: zero ΔW or no singular value above --sv-epsilon)"));
        return ExitCodes.Ok;
    }

    private static IGemm SelectGemm(string device, int threads)
    {
        if (threads == 0 || threads < -1) throw new WeldException($"--threads {threads}: expected -1 (all cores) or a positive count");
        try
        {
            return GemmBackends.Select(device, threads, out _);
        }
        catch (Exception error) when (error is ArgumentException or InvalidOperationException || KernelBackends.IsDeviceFailure(error))
        {
            throw new WeldException($"--device {device}: {error.Message.Split('\n', 2)[0]}");
        }
    }
}
