using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using CommandLine;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;

namespace Weld.Cli;

[Verb("diff", HelpText = "Compare two checkpoints per layer: task-vector norms, cosine, sign conflicts and top-k overlap against --base, or the difference A - B without it.")]
internal sealed class DiffOptions
{
    [Value(0, MetaName = "A", Required = true, HelpText = "First model folder.")]
    public string A { get; set; } = "";

    [Value(1, MetaName = "B", Required = true, HelpText = "Second model folder.")]
    public string B { get; set; } = "";

    [Option("base", HelpText = "The common base: compare the task vectors A - BASE and B - BASE.")]
    public string? Base { get; set; }

    [Option("tensors", HelpText = "Also report every tensor.")]
    public bool Tensors { get; set; }

    [Option("json", HelpText = "Machine-readable JSON on stdout.")]
    public bool Json { get; set; }
}

/// <summary><c>weld diff A B [--base BASE]</c>.</summary>
internal static class DiffCommand
{
    public static int Run(DiffOptions options, CliConsole console)
    {
        using var a = ModelFolder.Open(options.A);
        using var b = ModelFolder.Open(options.B);
        using ModelFolder? baseModel = options.Base is null ? null : ModelFolder.Open(options.Base);
        DiffResult result = ModelDiff.Compare(a, b, baseModel, options.Tensors);
        if (options.Json)
            console.Out.WriteLine(ToJson(options, result).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        else
            WriteTable(result, console.Out);
        return ExitCodes.Ok;
    }

    private static JsonObject ToJson(DiffOptions options, DiffResult result)
    {
        static JsonArray Entries(IReadOnlyList<DiffEntry> entries)
        {
            var array = new JsonArray();
            foreach (DiffEntry e in entries) array.Add(Entry(e));
            return array;
        }

        var json = new JsonObject
        {
            ["a"] = options.A,
            ["b"] = options.B,
            ["base"] = options.Base,
            ["total"] = Entry(result.Total),
            ["layers"] = Entries(result.Layers),
        };
        if (options.Tensors) json["tensors"] = Entries(result.Tensors);
        return json;
    }

    private static JsonObject Entry(DiffEntry e)
    {
        TaskVectorStats s = e.Stats;
        var overlaps = new JsonObject();
        foreach (TopKOverlap o in s.Overlaps)
            overlaps[o.Density.ToString("0.0##", CultureInfo.InvariantCulture)] = new JsonObject { ["a_in_b"] = o.AInB, ["b_in_a"] = o.BInA };
        return new JsonObject
        {
            ["name"] = e.Name,
            ["tensors"] = e.Tensors,
            ["elements"] = s.Elements,
            ["norm_a"] = s.NormA,
            ["norm_b"] = s.NormB,
            ["cosine"] = s.Cosine,
            ["sign_conflict_rate"] = s.SignConflictRate,
            ["difference_norm"] = s.DifferenceNorm,
            ["relative_difference"] = s.RelativeDifference,
            ["topk_overlap"] = overlaps,
        };
    }

    private static void WriteTable(DiffResult result, TextWriter w)
    {
        string tau = result.HasBase ? "τ" : "w";
        w.WriteLine(result.HasBase
            ? "task vectors τ = model − base; overlap: fraction of τ_A's top-k (by |τ|) also in τ_B's top-k"
            : "no --base: statistics of the weights themselves and of their difference A − B");
        IReadOnlyList<TopKOverlap> densities = result.Layers.Count > 0 ? result.Layers[0].Stats.Overlaps : [];
        string header = string.Create(CultureInfo.InvariantCulture,
            $"{"name",-40} {"‖" + tau + "_A‖",10} {"‖" + tau + "_B‖",10} {"cos",8} {"conflict",8} {"‖A−B‖",10} {"rel",8}");
        foreach (TopKOverlap o in densities) header += string.Create(CultureInfo.InvariantCulture, $" {"ov@" + o.Density.ToString("0.0##", CultureInfo.InvariantCulture),7}");
        w.WriteLine(header);
        void Row(DiffEntry e)
        {
            TaskVectorStats s = e.Stats;
            string row = string.Create(CultureInfo.InvariantCulture,
                $"{e.Name,-40} {s.NormA,10:G5} {s.NormB,10:G5} {s.Cosine,8:F4} {s.SignConflictRate,8:F4} {s.DifferenceNorm,10:G5} {s.RelativeDifference,8:F4}");
            foreach (TopKOverlap o in s.Overlaps) row += string.Create(CultureInfo.InvariantCulture, $" {o.AInB,7:F4}");
            w.WriteLine(row);
        }

        foreach (DiffEntry e in result.Layers) Row(e);
        if (result.Tensors.Count > 0)
        {
            w.WriteLine();
            foreach (DiffEntry e in result.Tensors) Row(e);
        }

        w.WriteLine();
        Row(result.Total);
    }
}
