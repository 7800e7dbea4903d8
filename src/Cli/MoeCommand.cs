using System.Diagnostics;
using System.Globalization;
using CommandLine;
using Weld.Engine.Moe;
using Weld.Engine.SafeTensors;

namespace Weld.Cli;

[Verb("moe", HelpText = "Build a mixture of experts (Mixtral; Qwen2-MoE with one shared expert; Qwen3-MoE from Qwen3 models) from dense fine-tunes of one base (mergekit-moe YAML, unchanged): experts' MLPs become the experts, routers from prompts (gate_mode hidden | hidden_avg | cheap_embed | random | uniform_random).")]
internal sealed class MoeOptions
{
    [Value(0, MetaName = "CONFIG", Required = true, HelpText = "A mergekit-moe YAML config (base_model, experts with source_model and positive_prompts, gate_mode, dtype, experts_per_token).")]
    public string Config { get; set; } = "";

    [Option('o', "output", HelpText = "The model folder to create (required unless --dry-run).")]
    public string? Output { get; set; }

    [Option("dry-run", HelpText = "Check the config and the models and print the plan; write nothing.")]
    public bool DryRun { get; set; }

    [Option("seed", Default = 0, HelpText = "Seeds random / uniform_random gates and noise_scale noise.")]
    public int Seed { get; set; }

    [Option("out-shard-size", Default = "5B", HelpText = "Largest output shard: bytes with K/M/B suffixes (as weld merge; one model.safetensors when everything fits).")]
    public string OutShardSize { get; set; } = "5B";

    [Option("overwrite", HelpText = "Replace an existing output folder (one Weld wrote, or an empty one).")]
    public bool Overwrite { get; set; }
}

/// <summary><c>weld moe CONFIG -o OUT</c>.</summary>
internal static class MoeCommand
{
    public static int Run(MoeOptions options, CliConsole console, CancellationToken cancel)
    {
        if (options.Output is null && !options.DryRun)
            throw new Weld.Engine.WeldException("name the output folder with -o OUT (or check the config with --dry-run).");
        long shardBytes = ByteSize.Parse(options.OutShardSize);
        MoeConfig config = MoeConfig.Load(options.Config);
        var clock = Stopwatch.StartNew();
        MoeBuildResult result = MoeBuilder.Build(config, options.Output ?? "", options.Overwrite, options.DryRun, options.Seed, console.Info, cancel,
            shardBytes);
        string size = result.OutputBytes.ToString("N0", CultureInfo.InvariantCulture);
        if (options.DryRun)
        {
            console.Out.WriteLine($"dry run: would write {result.Tensors} tensors ({size} bytes, {DTypes.ToTorchDType(result.DType)}) with {result.Experts} experts in {result.Layers} layers in {result.Shards.Count} shard(s); nothing written");
            return ExitCodes.Ok;
        }

        console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"wrote {options.Output}: {MoeBuilder.ArchitectureName(result.Architecture)}, {result.Experts} experts{(config.SharedExperts.Count > 0 ? " + 1 shared" : "")} × {result.Layers} layers, top-{config.ExpertsPerToken}, {result.Tensors} tensors, {size} bytes in {result.Shards.Count} shard(s), {clock.Elapsed.TotalSeconds:F1} s"));
        return ExitCodes.Ok;
    }
}
