using System.Globalization;
using CommandLine;
using Weld.Engine;
using Weld.Engine.Alignment;
using Weld.Engine.Models;
using Weld.Kernels;

namespace Weld.Cli;

[Verb("align", HelpText = "Permute the hidden units of --model to match --reference (Git Re-Basin weight matching); writes the permuted model, which computes the same function.")]
internal sealed class AlignOptions
{
    [Option("reference", Required = true, HelpText = "The model to align to (A).")]
    public string Reference { get; set; } = "";

    [Option("model", Required = true, HelpText = "The model to permute (B).")]
    public string Model { get; set; } = "";

    [Option('o', "output", Required = true, HelpText = "Output folder for the permuted model.")]
    public string Output { get; set; } = "";

    [Option("seed", Default = 0, HelpText = "Seeds the order in which permutations are visited.")]
    public int Seed { get; set; }

    [Option("max-iter", Default = 100, HelpText = "Most sweeps over the permutations.")]
    public int MaxIterations { get; set; }

    [Option("device", Default = "auto", HelpText = "Where the similarity products run: auto | cpu | cuda[:N] | ilgpu-cpu (the GPU GEMM on ILGPU's CPU accelerator: slow, for checking without a GPU).")]
    public string Device { get; set; } = "auto";

    [Option("overwrite", HelpText = "Replace an existing output folder.")]
    public bool Overwrite { get; set; }
}

/// <summary><c>weld align --reference A --model B -o OUT</c>.</summary>
internal static class AlignCommand
{
    public static int Run(AlignOptions options, CliConsole console)
    {
        if (options.MaxIterations < 1) throw new WeldException($"--max-iter must be at least 1, not {options.MaxIterations}.");
        using var reference = ModelFolder.Open(options.Reference);
        using var model = ModelFolder.Open(options.Model);
        PermutationSpec spec = RecipeAlignment.SpecFor(model);
        TextWriter stdout = console.Out;
        ISimilarityGemm gemm = SimilarityGemms.Select(options.Device, out string deviceReason);
        WeightMatchingResult result;
        try
        {
            result = WeightMatching.Run(spec, reference, model, options.Seed, options.MaxIterations,
                (iteration, objective) => stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"iteration {iteration}: objective {objective:R}")), gemm);
        }
        catch (Exception error) when (KernelBackends.IsDeviceFailure(error))
        {
            // A device failure mid-run (out of device memory, a lost device): name the device, not a stack trace.
            throw new WeldException($"--device {options.Device} ({deviceReason}): {error.Message}");
        }
        finally
        {
            (gemm as IDisposable)?.Dispose();
        }

        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"objective {result.Objectives[0]:R} -> {result.Objectives[^1]:R} after {result.Iterations} iterations ({(result.Converged ? "converged" : "stopped at --max-iter")})"));
        for (int g = 0; g < spec.Groups.Count; g++)
        {
            int moved = 0;
            for (int i = 0; i < result.Permutations[g].Length; i++) if (result.Permutations[g][i] != i) moved++;
            stdout.WriteLine($"{spec.Groups[g].Name}: {moved} of {spec.Groups[g].Size} units moved");
        }

        PermutedModelWriter.Write(model, spec, result.Permutations, options.Output, options.Overwrite, [reference.Path]);
        // After the run, so an input error is the first thing on stderr.
        console.Info($"device: {deviceReason}");
        console.Info($"wrote {options.Output}");
        return ExitCodes.Ok;
    }
}
