using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using CommandLine;
using Spectre.Console;
using Weld.Engine;
using Weld.Engine.Compression;
using Weld.Engine.SafeTensors;

namespace Weld.Cli;

[Verb("decompress", HelpText = "Restore the full checkpoint of a folder `weld compress FT --base BASE --error E` wrote: COMPRESSED --base BASE -o OUT (every tensor in the fine-tune's dtype).")]
internal sealed class DecompressOptions
{
    [Value(0, MetaName = "COMPRESSED", Required = true, HelpText = "The compressed folder.")]
    public string Compressed { get; set; } = "";

    [Option("base", Required = true, HelpText = "The base model it was compressed against (checked by content hash).")]
    public string Base { get; set; } = "";

    [Option('o', "output", Required = true, HelpText = "The model folder to create.")]
    public string Output { get; set; } = "";

    [Option("out-shard-size", Default = "5B", HelpText = "Largest output shard: bytes with K/M/B suffixes (as weld merge).")]
    public string OutShardSize { get; set; } = "5B";

    [Option("overwrite", HelpText = "Replace an existing output folder.")]
    public bool Overwrite { get; set; }

    [Option("json", HelpText = "Machine-readable JSON on stdout.")]
    public bool Json { get; set; }

    [Option("quiet", HelpText = "No progress lines.")]
    public bool Quiet { get; set; }
}

/// <summary><c>weld compress FT --base BASE --error E</c> and <c>weld decompress</c>.</summary>
internal static class LowRankCommand
{
    public static int Compress(CompressOptions options, CliConsole console, CancellationToken cancel)
    {
        string[] models = options.Models.ToArray();
        if (models.Length != 1)
        {
            console.Error($"--error compresses exactly one fine-tune, got {models.Length}");
            return ExitCodes.UsageError;
        }
        double budget = options.Error!.Value;
        if (!double.IsFinite(budget) || budget < 0)
            throw new WeldException(string.Create(CultureInfo.InvariantCulture, $"--error {budget} must be a finite number >= 0"));
        var settings = new LowRankCompressionOptions(budget, options.Seed, options.Overwrite);
        LowRankCompressionResult result = WithProgress(console, options.Quiet || options.Json, "compressing",
            progress => LowRankCompressor.Compress(models[0], options.Base, options.Output, settings, progress, cancel));
        if (options.Json)
        {
            console.Out.WriteLine(ToJson(result, options.Output).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return ExitCodes.Ok;
        }
        WriteTable(result, console.Out);
        var inv = CultureInfo.InvariantCulture;
        int lowRank = result.Manifest.Tensors.Count(t => t.Kind == LowRankTensorKind.LowRank);
        int exact = result.Manifest.Tensors.Count(t => t.Kind == LowRankTensorKind.Exact);
        int same = result.Manifest.Tensors.Count(t => t.Kind == LowRankTensorKind.SameAsBase);
        console.Out.WriteLine(string.Create(inv, $"compressed {result.Manifest.Tensors.Count} tensors into {options.Output}: {lowRank} low-rank, {exact} exact, {same} same as base"));
        console.Out.WriteLine(string.Create(inv, $"size ratio: {result.SizeRatio:F4} ({result.CompressedBytes:N0} of {result.OriginalBytes:N0} bytes)"));
        console.Out.WriteLine(string.Create(inv, $"max error:  {result.MaxRelativeError.ToString("0.000E+00", inv)} (budget {budget.ToString("R", inv)})"));
        return ExitCodes.Ok;
    }

    public static int Decompress(DecompressOptions options, CliConsole console, CancellationToken cancel)
    {
        long shardBytes = ByteSize.Parse(options.OutShardSize);
        LowRankDecompressionResult result = WithProgress(console, options.Quiet || options.Json, "decompressing",
            progress => LowRankCompressor.Decompress(options.Compressed, options.Base, options.Output, shardBytes, options.Overwrite, progress, cancel));
        if (options.Json)
        {
            var json = new JsonObject
            {
                ["output"] = options.Output,
                ["tensors"] = result.Tensors,
                ["bytes"] = result.BytesWritten,
                ["shards"] = new JsonArray(result.Shards.Select(s => (JsonNode)s!).ToArray()),
            };
            console.Out.WriteLine(json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        else
        {
            console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"restored {result.Tensors} tensors into {options.Output} ({result.Shards.Count} shard(s), {result.BytesWritten:N0} bytes)"));
        }
        return ExitCodes.Ok;
    }

    private static T WithProgress<T>(CliConsole console, bool quiet, string verb, Func<IProgress<LowRankProgress>?, T> work)
    {
        if (quiet) return work(null);
        if (!console.IsInteractive) return work(new PlainProgress(console.Err));
        T result = default!;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(verb, maxValue: 1);
                result = work(new Progress<LowRankProgress>(p =>
                {
                    task.MaxValue = p.TensorCount;
                    task.Value = p.TensorsDone;
                    task.Description = $"{verb} {p.TensorsDone}/{p.TensorCount}";
                }));
            });
        return result;
    }

    private static void WriteTable(LowRankCompressionResult result, TextWriter writer)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = ReferenceEquals(writer, Console.Out) && !Console.IsOutputRedirected ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = ColorSystemSupport.Detect,
        });
        if (!ReferenceEquals(writer, Console.Out) || Console.IsOutputRedirected)
            console.Profile.Width = 240; // a pipe or file: do not wrap long tensor names
        var inv = CultureInfo.InvariantCulture;
        var table = new Table().Border(TableBorder.Simple)
            .AddColumn("tensor").AddColumn("shape").AddColumn("kind").AddColumn(new TableColumn("rank").RightAligned())
            .AddColumn(new TableColumn("error").RightAligned()).AddColumn(new TableColumn("energy kept").RightAligned())
            .AddColumn(new TableColumn("bytes").RightAligned()).AddColumn(new TableColumn("of").RightAligned());
        foreach (LowRankTensorEntry t in result.Manifest.Tensors)
        {
            table.AddRow(Markup.Escape(t.Name), Markup.Escape("[" + string.Join(", ", t.Shape) + "]"), KindText(t.Kind),
                t.Rank.ToString(inv), t.RelativeError.ToString("0.000E+00", inv), (t.EnergyKept * 100).ToString("F2", inv) + "%",
                t.StoredBytes.ToString("N0", inv), t.OriginalBytes.ToString("N0", inv));
        }
        console.Write(table);
    }

    private static string KindText(LowRankTensorKind kind) => kind switch
    {
        LowRankTensorKind.LowRank => "low-rank",
        LowRankTensorKind.Exact => "exact",
        _ => "same",
    };

    private static JsonObject ToJson(LowRankCompressionResult result, string output)
    {
        var tensors = new JsonArray();
        foreach (LowRankTensorEntry t in result.Manifest.Tensors)
        {
            tensors.Add(new JsonObject
            {
                ["name"] = t.Name,
                ["dtype"] = DTypes.ToName(t.DType),
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode)d).ToArray()),
                ["kind"] = KindText(t.Kind),
                ["rank"] = t.Rank,
                ["relative_error"] = t.RelativeError,
                ["energy_kept"] = t.EnergyKept,
                ["stored_bytes"] = t.StoredBytes,
                ["original_bytes"] = t.OriginalBytes,
            });
        }
        return new JsonObject
        {
            ["output"] = output,
            ["error_budget"] = result.Manifest.ErrorBudget,
            ["compressed_bytes"] = result.CompressedBytes,
            ["original_bytes"] = result.OriginalBytes,
            ["size_ratio"] = result.SizeRatio,
            ["max_relative_error"] = result.MaxRelativeError,
            ["tensors"] = tensors,
        };
    }

    /// <summary>Progress as plain lines (a pipe or CI log): one every 10% of the tensors.</summary>
    private sealed class PlainProgress(TextWriter writer) : IProgress<LowRankProgress>
    {
        private int _lastDecile = -1;

        public void Report(LowRankProgress value)
        {
            int decile = value.TensorsDone * 10 / Math.Max(1, value.TensorCount);
            if (decile == _lastDecile) return;
            _lastDecile = decile;
            writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{value.TensorsDone}/{value.TensorCount}] {value.CurrentTensor}"));
        }
    }
}
