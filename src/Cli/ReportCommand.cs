using CommandLine;
using Weld.Engine;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;

namespace Weld.Cli;

[Verb("report", HelpText = "Evaluate every model on every text; write report.md (table) and report.svg (bar chart) into a folder.")]
internal sealed class ReportOptions
{
    [Value(0, MetaName = "MODEL", Min = 1, HelpText = "Model folders (language models).")]
    public IEnumerable<string> Models { get; set; } = [];

    [Option("text", Min = 1, Required = true, HelpText = "Text files; each is one domain, named by its file name without extension.")]
    public IEnumerable<string> Texts { get; set; } = [];

    [Option("task", HelpText = "Multiple-choice task files (JSON Lines); each adds accuracy and accuracy_norm columns, named by its file name without extension.")]
    public IEnumerable<string> Tasks { get; set; } = [];

    [Option("engine", Default = EvaluationEngines.Builtin, HelpText = "Language-model engine: builtin or torch.")]
    public string Engine { get; set; } = EvaluationEngines.Builtin;

    [Option("compute", Default = "float32", HelpText = "Compute type of the torch engine's projections: float32 or bfloat16.")]
    public string Compute { get; set; } = "float32";

    [Option('o', "output", Required = true, HelpText = "Folder to write report.md and report.svg into (created if missing).")]
    public string Output { get; set; } = "";

    [Option("window", Default = 128, HelpText = "Tokens per window.")]
    public int Window { get; set; } = 128;

    [Option("bytes", Default = 32768, HelpText = "Bytes read from the start of each text (0: all).")]
    public int Bytes { get; set; } = 32768;

    [Option("threads", Default = -1, HelpText = "Worker threads (-1: all cores).")]
    public int Threads { get; set; } = -1;
}

/// <summary><c>weld report MODEL... --text FILE... -o DIR</c>.</summary>
internal static class ReportCommand
{
    public static int Run(ReportOptions options, CliConsole console)
    {
        string[] models = options.Models.ToArray(), texts = options.Texts.ToArray(), tasks = options.Tasks.ToArray();
        if (models.Length == 0) throw new WeldException("name at least one MODEL to report on.");
        foreach (string text in texts)
            if (!File.Exists(text)) throw new WeldException($"{text}: the text file does not exist.");

        var report = new PerplexityReport(Labels(models, p => Path.GetFileName(Path.TrimEndingDirectorySeparator(p))),
            Labels(texts, Path.GetFileNameWithoutExtension), Labels(tasks, Path.GetFileNameWithoutExtension));
        var taskItems = new IReadOnlyList<MultipleChoiceItem>[tasks.Length];
        for (int t = 0; t < tasks.Length; t++) taskItems[t] = MultipleChoiceTask.Load(tasks[t]);
        var perplexity = new PerplexityOptions { Window = options.Window, Bytes = options.Bytes };
        for (int m = 0; m < models.Length; m++)
        {
            using var folder = ModelFolder.Open(models[m]);
            ICausalLanguageModel model = EvaluationEngines.Load(folder, options.Engine, options.Compute, options.Threads);
            try
            {
                ITokenizer tokenizer = PerplexityEvaluator.TokenizerFor(folder, model.Config);
                for (int d = 0; d < texts.Length; d++)
                {
                    PerplexityResult r = PerplexityEvaluator.EvaluateFile(model, tokenizer, texts[d], perplexity);
                    report[m, d] = r;
                    console.Info($"{report.Models[m]} / {report.Domains[d]}: perplexity {r.Perplexity:F4}");
                }

                for (int t = 0; t < tasks.Length; t++)
                {
                    MultipleChoiceResult r;
                    try
                    {
                        r = MultipleChoiceEvaluator.Evaluate(model, tokenizer, taskItems[t]);
                    }
                    catch (WeldException e) when (e is not InvalidModelFileException)
                    {
                        throw new WeldException($"{tasks[t]}: {e.Message}", e);
                    }

                    report.SetTask(m, t, r);
                    console.Info($"{report.Models[m]} / {report.Tasks[t]}: accuracy {r.Accuracy:F4}, accuracy_norm {r.AccuracyNorm:F4}");
                }
            }
            finally
            {
                (model as IDisposable)?.Dispose();
            }
        }

        Directory.CreateDirectory(options.Output);
        File.WriteAllText(Path.Combine(options.Output, "report.md"),
            $"# Perplexity report\n\nFirst {options.Bytes} bytes of each text, windows of {options.Window} tokens, every token but each window's first scored.\n\n"
            + report.ToMarkdown() + "\n![perplexity per domain](report.svg)\n");
        File.WriteAllText(Path.Combine(options.Output, "report.svg"), report.ToSvg());
        console.Out.Write(report.ToMarkdown());
        return ExitCodes.Ok;
    }

    /// <summary>Short labels; a label that two inputs share falls back to the full path so rows stay distinct.</summary>
    private static string[] Labels(string[] paths, Func<string, string> shorten)
    {
        var labels = new string[paths.Length];
        for (int i = 0; i < paths.Length; i++) labels[i] = shorten(paths[i]);
        for (int i = 0; i < paths.Length; i++)
            if (Array.FindAll(labels, l => l == labels[i]).Length > 1) labels[i] = paths[i];
        return labels;
    }
}
