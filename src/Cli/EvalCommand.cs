using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using CommandLine;
using Weld.Engine;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;

namespace Weld.Cli;

[Verb("eval", HelpText = "Perplexity of a language model on a text, its accuracy on a multiple-choice task, or accuracy/loss of a classifier on a dataset; --interpolate A B scans the loss between two checkpoints.")]
internal sealed class EvalOptions
{
    [Value(0, MetaName = "MODEL", HelpText = "A Hugging Face model folder (Llama-family decoder, or an MLP classifier with a `layers` config).")]
    public string? Model { get; set; }

    [Option("text", HelpText = "A text file to score (perplexity by fixed windows).")]
    public string? Text { get; set; }

    [Option("task", HelpText = "A multiple-choice task (JSON Lines: {\"context\": ..., \"choices\": [...], \"gold\": i}), scored as lm-evaluation-harness does.")]
    public string? Task { get; set; }

    [Option("engine", Default = EvaluationEngines.Builtin, HelpText = "Language-model engine: builtin (Weld's own forward pass) or torch (TorchSharp/libtorch).")]
    public string Engine { get; set; } = EvaluationEngines.Builtin;

    [Option("compute", Default = "float32", HelpText = "Compute type of the torch engine's projections: float32 or bfloat16.")]
    public string Compute { get; set; } = "float32";

    [Option("dataset", HelpText = "A .safetensors dataset (X, y and a split index tensor) for classifiers.")]
    public string? Dataset { get; set; }

    [Option("split", Default = "test_idx", HelpText = "The index tensor of the dataset selecting the samples to evaluate.")]
    public string Split { get; set; } = "test_idx";

    [Option("window", Default = 128, HelpText = "Tokens per window.")]
    public int Window { get; set; } = 128;

    [Option("bytes", Default = 32768, HelpText = "Bytes read from the start of the text (0: all).")]
    public int Bytes { get; set; } = 32768;

    [Option("stride", Default = 0, HelpText = "Tokens between window starts (0: the window, non-overlapping).")]
    public int Stride { get; set; }

    [Option("interpolate", Min = 2, Max = 2, HelpText = "Two checkpoints A B: evaluate (1-α)A + αB for α from 0 to 1.")]
    public IEnumerable<string> Interpolate { get; set; } = [];

    [Option("steps", Default = 11, HelpText = "Number of α values with --interpolate (0 and 1 included).")]
    public int Steps { get; set; } = 11;

    [Option("threads", Default = -1, HelpText = "Worker threads (-1: all cores).")]
    public int Threads { get; set; } = -1;

    [Option("json", HelpText = "Machine-readable JSON on stdout.")]
    public bool Json { get; set; }
}

/// <summary><c>weld eval</c>.</summary>
internal static class EvalCommand
{
    private static readonly JsonSerializerOptions s_indented = new() { WriteIndented = true };

    public static int Run(EvalOptions options, CliConsole console)
    {
        int inputs = (options.Text is null ? 0 : 1) + (options.Task is null ? 0 : 1) + (options.Dataset is null ? 0 : 1);
        if (inputs != 1)
            throw new WeldException("give exactly one of --text FILE or --task FILE (language models), or --dataset FILE (classifiers).");
        string[] ends = options.Interpolate.ToArray();
        if (ends.Length == 0)
        {
            if (options.Model is null) throw new WeldException("name a MODEL, or two with --interpolate A B.");
            if (options.Task is not null) return RunTask(options, console);
            return options.Text is not null ? RunText(options, console) : RunDataset(options, console);
        }

        if (options.Task is not null) throw new WeldException("--interpolate scans perplexity (--text) or classifier loss (--dataset), not --task.");
        if (options.Engine != EvaluationEngines.Builtin) throw new WeldException($"--interpolate runs on the builtin engine, not --engine {options.Engine}.");
        if (options.Model is not null)
            throw new WeldException($"give either MODEL or --interpolate A B, not both (got MODEL '{options.Model}').");
        return RunInterpolation(options, ends[0], ends[1], console);
    }

    private static PerplexityOptions TextOptions(EvalOptions o) => new() { Window = o.Window, Bytes = o.Bytes, Stride = o.Stride };

    private static int RunText(EvalOptions options, CliConsole console)
    {
        using var folder = ModelFolder.Open(options.Model!);
        if (MlpClassifier.IsMlp(folder.Config))
            throw new WeldException($"{options.Model}: is an MLP classifier (config has 'layers'); evaluate it with --dataset FILE, not --text.");
        ICausalLanguageModel model = EvaluationEngines.Load(folder, options.Engine, options.Compute, options.Threads);
        PerplexityResult r;
        try
        {
            ITokenizer tokenizer = PerplexityEvaluator.TokenizerFor(folder, model.Config);
            r = PerplexityEvaluator.EvaluateFile(model, tokenizer, options.Text!, TextOptions(options));
        }
        finally
        {
            (model as IDisposable)?.Dispose();
        }
        if (options.Json)
        {
            var json = new JsonObject
            {
                ["model"] = options.Model,
                ["engine"] = options.Engine,
                ["text"] = options.Text,
                ["window"] = options.Window,
                ["bytes"] = options.Bytes,
                ["perplexity"] = r.Perplexity,
                ["mean_nll"] = r.MeanNll,
                ["total_nll"] = r.TotalNll,
                ["tokens"] = r.Tokens,
                ["windows"] = r.Windows,
                ["seconds"] = r.Seconds,
                ["tokens_per_second"] = r.TokensPerSecond,
            };
            console.Out.WriteLine(json.ToJsonString(s_indented));
        }
        else
        {
            TextWriter w = console.Out;
            w.WriteLine(Invariant($"model       {options.Model}"));
            w.WriteLine(Invariant($"text        {options.Text} (first {options.Bytes} bytes, window {options.Window})"));
            w.WriteLine(Invariant($"perplexity  {r.Perplexity:F4}"));
            w.WriteLine(Invariant($"nll         {r.MeanNll:F6} nats/token"));
            w.WriteLine(Invariant($"tokens      {r.Tokens} in {r.Windows} windows"));
            w.WriteLine(Invariant($"tokens/s    {r.TokensPerSecond:F0}"));
        }

        return ExitCodes.Ok;
    }

    private static int RunTask(EvalOptions options, CliConsole console)
    {
        IReadOnlyList<MultipleChoiceItem> items = MultipleChoiceTask.Load(options.Task!);
        using var folder = ModelFolder.Open(options.Model!);
        if (MlpClassifier.IsMlp(folder.Config))
            throw new WeldException($"{options.Model}: is an MLP classifier (config has 'layers'); evaluate it with --dataset FILE, not --task.");
        ICausalLanguageModel model = EvaluationEngines.Load(folder, options.Engine, options.Compute, options.Threads);
        MultipleChoiceResult r;
        try
        {
            r = MultipleChoiceEvaluator.Evaluate(model, PerplexityEvaluator.TokenizerFor(folder, model.Config), items);
        }
        catch (WeldException e) when (e is not InvalidModelFileException)
        {
            throw new WeldException($"{options.Task}: {e.Message}", e);
        }
        finally
        {
            (model as IDisposable)?.Dispose();
        }

        if (options.Json)
        {
            var json = new JsonObject
            {
                ["model"] = options.Model,
                ["engine"] = options.Engine,
                ["task"] = options.Task,
                ["accuracy"] = r.Accuracy,
                ["accuracy_norm"] = r.AccuracyNorm,
                ["items"] = r.Items,
                ["seconds"] = r.Seconds,
            };
            console.Out.WriteLine(json.ToJsonString(s_indented));
        }
        else
        {
            console.Out.WriteLine(Invariant($"model          {options.Model} ({options.Engine} engine)"));
            console.Out.WriteLine(Invariant($"task           {options.Task} ({r.Items} items)"));
            console.Out.WriteLine(Invariant($"accuracy       {r.Accuracy:F4}"));
            console.Out.WriteLine(Invariant($"accuracy_norm  {r.AccuracyNorm:F4}"));
            console.Out.WriteLine(Invariant($"seconds        {r.Seconds:F2}"));
        }

        return ExitCodes.Ok;
    }

    private static int RunDataset(EvalOptions options, CliConsole console)
    {
        using var folder = ModelFolder.Open(options.Model!);
        ClassificationData data = ClassificationData.Load(options.Dataset!, options.Split);
        ClassificationResult r = MlpClassifier.Load(folder).Evaluate(data);
        if (options.Json)
        {
            var json = new JsonObject
            {
                ["model"] = options.Model,
                ["dataset"] = options.Dataset,
                ["split"] = options.Split,
                ["accuracy"] = r.Accuracy,
                ["loss"] = r.MeanLoss,
                ["samples"] = r.Samples,
            };
            console.Out.WriteLine(json.ToJsonString(s_indented));
        }
        else
        {
            console.Out.WriteLine(Invariant($"model     {options.Model}"));
            console.Out.WriteLine(Invariant($"dataset   {options.Dataset} ({options.Split}, {r.Samples} samples)"));
            console.Out.WriteLine(Invariant($"accuracy  {r.Accuracy:F4}"));
            console.Out.WriteLine(Invariant($"loss      {r.MeanLoss:F6}"));
        }

        return ExitCodes.Ok;
    }

    private static int RunInterpolation(EvalOptions options, string pathA, string pathB, CliConsole console)
    {
        using var folderA = ModelFolder.Open(pathA);
        using var folderB = ModelFolder.Open(pathB);
        TensorSet a = TensorSet.Load(folderA), b = TensorSet.Load(folderB);
        ModelConfig config = folderA.Config ?? throw new InvalidModelFileException(pathA, "has no config.json; cannot build a model.");
        bool classifier = options.Dataset is not null;
        InterpolationCurve curve;
        if (classifier)
        {
            ClassificationData data = ClassificationData.Load(options.Dataset!, options.Split);
            curve = LossInterpolation.Scan(a, b, options.Steps, set =>
            {
                ClassificationResult r = new MlpClassifier(config, set).Evaluate(data);
                return (r.MeanLoss, r.Accuracy);
            });
        }
        else
        {
            LlamaConfig llama = LlamaConfig.FromModelConfig(config);
            ITokenizer tokenizer = PerplexityEvaluator.TokenizerFor(folderA, llama);
            PerplexityOptions textOptions = TextOptions(options);
            curve = LossInterpolation.Scan(a, b, options.Steps, set =>
            {
                PerplexityResult r = PerplexityEvaluator.EvaluateFile(new LlamaModel(llama, set, options.Threads), tokenizer, options.Text!, textOptions);
                return (r.MeanNll, r.Perplexity);
            });
        }

        string metric = classifier ? "accuracy" : "perplexity";
        if (options.Json)
        {
            var points = new JsonArray();
            foreach (InterpolationPoint p in curve.Points)
                points.Add(new JsonObject { ["alpha"] = p.Alpha, ["loss"] = p.Loss, [metric] = p.Metric });
            var json = new JsonObject
            {
                ["a"] = pathA,
                ["b"] = pathB,
                [classifier ? "dataset" : "text"] = classifier ? options.Dataset : options.Text,
                ["points"] = points,
                ["barrier_height"] = curve.BarrierHeight,
            };
            console.Out.WriteLine(json.ToJsonString(s_indented));
        }
        else
        {
            console.Out.WriteLine(Invariant($"A = {pathA}"));
            console.Out.WriteLine(Invariant($"B = {pathB}"));
            console.Out.WriteLine(Invariant($"{"alpha",6}  {"loss",10}  {metric,10}"));
            foreach (InterpolationPoint p in curve.Points)
                console.Out.WriteLine(Invariant($"{p.Alpha,6:F3}  {p.Loss,10:F6}  {p.Metric,10:F4}"));
            console.Out.WriteLine(Invariant($"barrier height {curve.BarrierHeight:F6}"));
        }

        return ExitCodes.Ok;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
