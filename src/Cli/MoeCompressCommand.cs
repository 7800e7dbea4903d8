using System.Diagnostics;
using System.Globalization;
using CommandLine;
using Weld.Engine;
using Weld.Engine.Moe;
using Weld.Engine.SafeTensors;

namespace Weld.Cli;

[Verb("moe-compress", HelpText = "MC-SMoE (Merge, Then Compress): merge a Mixtral-layout MoE's experts into K per layer, grouped by routing statistics from calibration text, aligned (weight matching) and averaged by activation frequency; optional low rank (--rank R or --error E).")]
internal sealed class MoeCompressOptions
{
    [Value(0, MetaName = "MOE", Required = true, HelpText = "A Mixtral-layout MoE model folder (model_type mixtral, e.g. what `weld moe` writes).")]
    public string Model { get; set; } = "";

    [Option("experts", Required = true, HelpText = "K: experts per layer after merging (1 <= K < the model's experts).")]
    public int Experts { get; set; }

    [Option("text", Required = true, Min = 1, HelpText = "Calibration text files (keep them apart from the text you evaluate on).")]
    public IEnumerable<string> Texts { get; set; } = [];

    [Option('o', "output", HelpText = "The model folder to create (required unless --dry-run).")]
    public string? Output { get; set; }

    [Option("bytes", Default = 32768, HelpText = "Bytes of each calibration text read after --skip (0: to its end).")]
    public int Bytes { get; set; }

    [Option("skip", Default = 0, HelpText = "Bytes skipped at the start of each calibration text (e.g. the part an evaluation scores).")]
    public int Skip { get; set; }

    [Option("window", Default = 128, HelpText = "Tokens per calibration window.")]
    public int Window { get; set; }

    [Option("rank", HelpText = "Truncate each merged expert matrix to this rank (randomized SVD, stored re-materialised as dense weights).")]
    public int? Rank { get; set; }

    [Option("error", HelpText = "Truncate each merged expert matrix to the smallest rank with ||W - W_r||_F <= E * ||W||_F.")]
    public double? Error { get; set; }

    [Option("seed", Default = 0, HelpText = "Seeds weight matching's visiting order and the SVD sketches.")]
    public int Seed { get; set; }

    [Option("threads", Default = -1, HelpText = "Worker threads (-1: all cores); the output bytes do not depend on it.")]
    public int Threads { get; set; }

    [Option("out-shard-size", Default = "5B", HelpText = "Largest output shard: bytes with K/M/B suffixes (as weld merge; one model.safetensors when everything fits).")]
    public string OutShardSize { get; set; } = "5B";

    [Option("dry-run", HelpText = "Check the model and options and print the plan; calibrate and write nothing.")]
    public bool DryRun { get; set; }

    [Option("overwrite", HelpText = "Replace an existing output folder (one Weld wrote, or an empty one).")]
    public bool Overwrite { get; set; }
}

/// <summary><c>weld moe-compress MOE --experts K --text FILE... -o OUT</c>.</summary>
internal static class MoeCompressCommand
{
    public static int Run(MoeCompressOptions options, CliConsole console, CancellationToken cancel)
    {
        if (options.Rank is not null && options.Error is not null)
        {
            console.Error("give --rank R or --error E, not both.");
            return ExitCodes.UsageError;
        }

        if (options.Output is null && !options.DryRun)
            throw new WeldException("name the output folder with -o OUT (or check the plan with --dry-run).");
        LowRankTarget? lowRank = options.Rank is int rank ? LowRankTarget.FixedRank(rank)
            : options.Error is double error ? LowRankTarget.Error(error) : null;
        if (options.Rank is < 1) throw new WeldException($"--rank {options.Rank}: must be at least 1.");
        if (options.Error is double e && (!double.IsFinite(e) || e <= 0 || e >= 1))
            throw new WeldException($"--error {e.ToString(CultureInfo.InvariantCulture)}: must be a relative error between 0 and 1 (exclusive).");

        var settings = new MoeCompressionSettings(options.Experts, options.Texts.ToArray(), options.Window, options.Bytes, options.Skip,
            lowRank, options.Seed, options.Overwrite, options.DryRun, options.Threads, ByteSize.Parse(options.OutShardSize));
        var clock = Stopwatch.StartNew();
        MoeCompressResult result = MoeCompressor.Compress(options.Model, options.Output ?? "", settings, console.Info, cancel);
        var inv = CultureInfo.InvariantCulture;
        string before = result.BytesBefore.ToString("N0", inv), after = result.BytesAfter.ToString("N0", inv);
        if (options.DryRun)
        {
            console.Out.WriteLine($"dry run: would write {result.Tensors} tensors ({after} bytes, from {before}) with {result.ExpertsAfter} of {result.ExpertsBefore} experts in {result.Layers} layers, top-{result.ExpertsPerToken}; nothing written");
            return ExitCodes.Ok;
        }

        console.Out.WriteLine(string.Create(inv,
            $"wrote {options.Output}: {result.ExpertsBefore} → {result.ExpertsAfter} experts × {result.Layers} layers, top-{result.ExpertsPerToken}, {result.Tensors} tensors, {before} → {after} bytes, {result.CalibrationTokens} calibration tokens, {clock.Elapsed.TotalSeconds:F1} s"));
        if (result.FactoredBytes is long factored)
        {
            int min = result.Ranks.Values.DefaultIfEmpty(0).Min(), max = result.Ranks.Values.DefaultIfEmpty(0).Max();
            console.Out.WriteLine(string.Create(inv,
                $"low rank: ranks {min}..{max}, largest relative error {result.MaxRelativeError:G4}; stored dense ({after} bytes); as factors the tensors would take {factored:N0} bytes"));
        }

        return ExitCodes.Ok;
    }
}
