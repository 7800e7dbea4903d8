using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Xml.Linq;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests.Eval;

/// <summary><c>weld eval</c>, <c>weld diff</c> and <c>weld report</c> on the zoo, against its reference metrics.</summary>
public sealed class EvalCommandTests
{
    private static readonly JsonNode s_reference =
        JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.SharedModels, "reference_metrics.json")))!;

    private static string Text(string domain) => Path.Combine(TestPaths.SharedModels, "eval", domain + ".txt");

    private static string Digits => Path.Combine(TestPaths.SharedModels, "data", "digits.safetensors");

    private static JsonElement Json(CliResult result)
    {
        CliAssert.Succeeded(result);
        return JsonDocument.Parse(result.Stdout).RootElement.Clone();
    }

    [Fact]
    public void Eval_text_json_reproduces_the_reference_perplexity()
    {
        JsonElement json = Json(WeldCli.Run("eval", TestPaths.Model("lm-base"), "--text", Text("python"), "--json"));
        double expected = (double)s_reference["metrics"]!["lm-base"]!["ppl"]!["python"]!["ppl_fp32_forward"]!;
        double ppl = json.GetProperty("perplexity").GetDouble();
        Assert.True(Math.Abs(ppl - expected) / expected <= 1e-3, $"ppl {ppl}, reference {expected}");
        Assert.Equal(32512, json.GetProperty("tokens").GetInt64());
        Assert.Equal(256, json.GetProperty("windows").GetInt32());
        Assert.Equal(Math.Log(ppl), json.GetProperty("mean_nll").GetDouble(), 12);
        Assert.True(json.GetProperty("tokens_per_second").GetDouble() > 0);
    }

    [Fact]
    public void Eval_text_table_and_window_options()
    {
        CliResult result = WeldCli.Run("eval", TestPaths.Model("lm-ft-c"), "--text", Text("c"), "--bytes", "4096", "--window", "64");
        CliAssert.Succeeded(result);
        // 4096 bytes in windows of 64: 64 windows of 63 scored tokens.
        Assert.Contains("tokens      4032 in 64 windows", result.Stdout, StringComparison.Ordinal);
        string line = result.Stdout.Split('\n').Single(l => l.StartsWith("perplexity", StringComparison.Ordinal));
        double ppl = double.Parse(line["perplexity".Length..], CultureInfo.InvariantCulture);
        Assert.InRange(ppl, 1.5, 20);
    }

    [Fact]
    public void Eval_dataset_reproduces_the_digits_reference()
    {
        JsonElement json = Json(WeldCli.Run("eval", TestPaths.Model("mlp-digits-b"), "--dataset", Digits, "--json"));
        Assert.Equal(352 / 360.0, json.GetProperty("accuracy").GetDouble(), 12);
        Assert.Equal(360, json.GetProperty("samples").GetInt32());
        Assert.Equal((double)s_reference["mlp"]!["mlp-digits-b"]!["test_loss"]!, json.GetProperty("loss").GetDouble(), 1e-6);
    }

    [Fact]
    public void Eval_interpolate_scans_alpha_and_reports_the_barrier()
    {
        JsonElement json = Json(WeldCli.Run("eval", "--interpolate", TestPaths.Model("mlp-digits-a"), TestPaths.Model("mlp-digits-b"),
            "--steps", "3", "--dataset", Digits, "--json"));
        JsonElement[] points = json.GetProperty("points").EnumerateArray().ToArray();
        Assert.Equal([0, 0.5, 1], points.Select(p => p.GetProperty("alpha").GetDouble()));
        double[] loss = points.Select(p => p.GetProperty("loss").GetDouble()).ToArray();
        Assert.Equal((double)s_reference["mlp"]!["mlp-digits-a"]!["test_loss"]!, loss[0], 1e-6);
        Assert.Equal((double)s_reference["mlp"]!["mlp-digits-b"]!["test_loss"]!, loss[2], 1e-6);
        Assert.Equal(351 / 360.0, points[0].GetProperty("accuracy").GetDouble(), 12);
        Assert.Equal(loss[1] - (loss[0] + loss[2]) / 2, json.GetProperty("barrier_height").GetDouble(), 12);
    }

    [Fact]
    public void Eval_interpolate_on_text_starts_and_ends_at_the_two_models()
    {
        string a = TestPaths.Model("lm-ft-c"), b = TestPaths.Model("lm-ft-python");
        JsonElement json = Json(WeldCli.Run("eval", "--interpolate", a, b, "--steps", "2", "--text", Text("python"), "--bytes", "2048", "--json"));
        JsonElement[] points = json.GetProperty("points").EnumerateArray().ToArray();
        Assert.Equal(2, points.Length);
        foreach ((JsonElement point, string model) in points.Zip([a, b]))
        {
            JsonElement single = Json(WeldCli.Run("eval", model, "--text", Text("python"), "--bytes", "2048", "--json"));
            Assert.Equal(single.GetProperty("perplexity").GetDouble(), point.GetProperty("perplexity").GetDouble());
            Assert.Equal(single.GetProperty("mean_nll").GetDouble(), point.GetProperty("loss").GetDouble());
        }

        // Two points: the chord passes through both, so there is no barrier.
        Assert.Equal(0, json.GetProperty("barrier_height").GetDouble());
    }

    [Fact]
    public void Diff_with_base_reports_every_layer()
    {
        JsonElement json = Json(WeldCli.Run("diff", TestPaths.Model("lm-ft-c"), TestPaths.Model("lm-ft-python"),
            "--base", TestPaths.Model("lm-base"), "--tensors", "--json"));
        JsonElement[] layers = json.GetProperty("layers").EnumerateArray().ToArray();
        Assert.Equal(7, layers.Length); // 4 decoder layers, embeddings, final norm, lm_head
        Assert.Equal(39, json.GetProperty("tensors").GetArrayLength());
        JsonElement layer0 = layers.Single(l => l.GetProperty("name").GetString() == "model.layers.0");
        Assert.Equal(9, layer0.GetProperty("tensors").GetInt32());
        Assert.InRange(layer0.GetProperty("cosine").GetDouble(), -1, 1);
        Assert.InRange(layer0.GetProperty("sign_conflict_rate").GetDouble(), 0, 1);
        Assert.Equal(["0.1", "0.3", "0.5"], layer0.GetProperty("topk_overlap").EnumerateObject().Select(p => p.Name));
        Assert.True(json.GetProperty("total").GetProperty("norm_a").GetDouble() > 0);
    }

    [Fact]
    public void Diff_of_a_model_with_itself_is_zero()
    {
        CliResult result = WeldCli.Run("diff", TestPaths.Model("lm-base"), TestPaths.Model("lm-base"));
        CliAssert.Succeeded(result);
        Assert.Contains("no --base", result.Stdout, StringComparison.Ordinal);
        JsonElement json = Json(WeldCli.Run("diff", TestPaths.Model("lm-base"), TestPaths.Model("lm-base"), "--json"));
        Assert.Equal(0, json.GetProperty("total").GetProperty("difference_norm").GetDouble());
        Assert.Equal(0, json.GetProperty("total").GetProperty("sign_conflict_rate").GetDouble());
    }

    [Fact]
    public void Report_writes_a_table_and_a_chart_that_agree_with_eval()
    {
        string output = Path.Combine(TestPaths.NewTempDir(), "report");
        CliResult result = WeldCli.Run("report", TestPaths.Model("lm-base"), TestPaths.Model("lm-ft-prose"),
            "--text", Text("prose"), Text("markup"), "--bytes", "2048", "-o", output);
        CliAssert.Succeeded(result);
        string markdown = File.ReadAllText(Path.Combine(output, "report.md"));
        Assert.Contains("| model | prose | markup | mean NLL |", markdown, StringComparison.Ordinal);

        JsonElement single = Json(WeldCli.Run("eval", TestPaths.Model("lm-ft-prose"), "--text", Text("markup"), "--bytes", "2048", "--json"));
        string row = markdown.Split('\n').Single(l => l.StartsWith("| lm-ft-prose |", StringComparison.Ordinal));
        string markupCell = row.Split('|')[3].Trim();
        Assert.Equal(single.GetProperty("perplexity").GetDouble().ToString("F4", CultureInfo.InvariantCulture), markupCell);

        XDocument svg = XDocument.Load(Path.Combine(output, "report.svg"));
        XNamespace ns = "http://www.w3.org/2000/svg";
        Assert.Equal(4, svg.Descendants(ns + "rect").Count(r => r.Element(ns + "title") is not null));
    }

    [Fact]
    public void Bad_inputs_are_input_errors()
    {
        CliAssert.InputError(WeldCli.Run("eval", TestPaths.Model("lm-base"), "--text", Text("c"), "--dataset", Digits), "--text", "--dataset");
        CliAssert.InputError(WeldCli.Run("eval", TestPaths.Model("mlp-digits-a"), "--text", Text("c")), "mlp-digits-a", "--dataset");
        string missing = Path.Combine(TestPaths.NewTempDir(), "missing.txt");
        CliAssert.InputError(WeldCli.Run("eval", TestPaths.Model("lm-base"), "--text", missing), missing);
        CliAssert.InputError(WeldCli.Run("diff", TestPaths.Model("lm-base"), TestPaths.Model("mlp-digits-a")), "cannot compare");
    }
}
