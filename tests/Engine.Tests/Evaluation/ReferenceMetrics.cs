using System.Text.Json.Nodes;
using Weld.Tests;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>The zoo's <c>reference_metrics.json</c> (computed by an independent float64 PyTorch forward pass).</summary>
internal static class ReferenceMetrics
{
    private static readonly Lazy<JsonObject> s_root = new(() =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.SharedModels, "reference_metrics.json")))!);

    /// <summary>A number under metrics.{model}.ppl.{domain}.{field}.</summary>
    public static double Ppl(string model, string domain, string field = "ppl_fp32_forward") =>
        (double)s_root.Value["metrics"]![model]!["ppl"]![domain]![field]!;

    /// <summary>A number under mlp.{model}.{field}.</summary>
    public static double Mlp(string model, string field) => (double)s_root.Value["mlp"]![model]![field]!;

    /// <summary>Path of a held-out text of the zoo.</summary>
    public static string Text(string domain) => Path.Combine(TestPaths.SharedModels, "eval", domain + ".txt");
}
