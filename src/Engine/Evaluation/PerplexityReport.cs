using System.Globalization;
using System.Text;

namespace Weld.Engine.Evaluation;

/// <summary>
/// Perplexities of several models on several texts, rendered as a Markdown table and as a grouped bar chart (SVG
/// written by hand: one group per domain, one bar per model).
/// </summary>
public sealed class PerplexityReport
{
    private static readonly string[] s_palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
    private readonly PerplexityResult?[,] _results;
    private readonly MultipleChoiceResult?[,] _tasks;

    /// <summary>Creates an empty report for <paramref name="models"/> × <paramref name="domains"/>.</summary>
    /// <exception cref="ArgumentException">No models or no domains.</exception>
    public PerplexityReport(IReadOnlyList<string> models, IReadOnlyList<string> domains) : this(models, domains, [])
    {
    }

    /// <summary>Creates an empty report for <paramref name="models"/> × <paramref name="domains"/>, with multiple-choice task columns.</summary>
    /// <exception cref="ArgumentException">No models or no domains.</exception>
    public PerplexityReport(IReadOnlyList<string> models, IReadOnlyList<string> domains, IReadOnlyList<string> tasks)
    {
        ArgumentNullException.ThrowIfNull(tasks);
        Tasks = tasks;
        _tasks = new MultipleChoiceResult?[models?.Count ?? 0, tasks.Count];
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(domains);
        if (models.Count == 0 || domains.Count == 0) throw new ArgumentException("a report needs at least one model and one domain.");
        Models = models;
        Domains = domains;
        _results = new PerplexityResult?[models.Count, domains.Count];
    }

    /// <summary>Model labels (rows of the table, bars of each group).</summary>
    public IReadOnlyList<string> Models { get; }

    /// <summary>Domain labels (columns of the table, groups of the chart).</summary>
    public IReadOnlyList<string> Domains { get; }

    /// <summary>Multiple-choice task labels (accuracy and accuracy_norm columns after the perplexities).</summary>
    public IReadOnlyList<string> Tasks { get; }

    /// <summary>The result of model <paramref name="model"/> on task <paramref name="task"/> (null until set).</summary>
    public MultipleChoiceResult? GetTask(int model, int task) => _tasks[model, task];

    /// <summary>Sets the result of model <paramref name="model"/> on task <paramref name="task"/>.</summary>
    public void SetTask(int model, int task, MultipleChoiceResult result) => _tasks[model, task] = result;

    /// <summary>The result of model <paramref name="model"/> on domain <paramref name="domain"/> (null until set).</summary>
    public PerplexityResult? this[int model, int domain]
    {
        get => _results[model, domain];
        set => _results[model, domain] = value;
    }

    /// <summary>A Markdown table: one row per model, one perplexity column per domain, and the mean NLL per model.</summary>
    public string ToMarkdown()
    {
        var text = new StringBuilder();
        text.Append("| model |");
        foreach (string domain in Domains) text.Append(CultureInfo.InvariantCulture, $" {Escape(domain)} |");
        text.Append(" mean NLL |");
        foreach (string task in Tasks) text.Append(CultureInfo.InvariantCulture, $" {Escape(task)} acc | {Escape(task)} acc_norm |");
        text.Append("\n|---|");
        for (int d = 0; d < Domains.Count + 2 * Tasks.Count; d++) text.Append("---:|");
        text.Append("---:|\n");
        for (int m = 0; m < Models.Count; m++)
        {
            text.Append(CultureInfo.InvariantCulture, $"| {Escape(Models[m])} |");
            double nll = 0;
            long tokens = 0;
            for (int d = 0; d < Domains.Count; d++)
            {
                PerplexityResult? r = _results[m, d];
                text.Append(r is null ? " – |" : string.Create(CultureInfo.InvariantCulture, $" {r.Perplexity:F4} |"));
                if (r is not null)
                {
                    nll += r.TotalNll;
                    tokens += r.Tokens;
                }
            }

            text.Append(tokens == 0 ? " – |" : string.Create(CultureInfo.InvariantCulture, $" {nll / tokens:F4} |"));
            for (int t = 0; t < Tasks.Count; t++)
            {
                MultipleChoiceResult? r = _tasks[m, t];
                text.Append(r is null ? " – | – |" : string.Create(CultureInfo.InvariantCulture, $" {r.Accuracy:F4} | {r.AccuracyNorm:F4} |"));
            }

            text.Append('\n');
        }

        return text.ToString();
    }

    /// <summary>The grouped bar chart of perplexity per domain per model, with axis ticks and a legend.</summary>
    public string ToSvg()
    {
        const int barWidth = 18, groupGap = 24, left = 60, top = 30, plotHeight = 260, legendRow = 18;
        int groupWidth = Models.Count * barWidth + groupGap;
        int width = left + Domains.Count * groupWidth + 20;
        int legendTop = top + plotHeight + 40;
        int height = legendTop + Models.Count * legendRow + 10;
        double max = 0;
        foreach (PerplexityResult? r in _results)
            if (r is not null && double.IsFinite(r.Perplexity)) max = Math.Max(max, r.Perplexity);
        double scaleMax = NiceCeiling(max);

        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture,
            $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{left}\" y=\"16\" font-size=\"13\">Perplexity per domain (lower is better)</text>\n");
        for (int tick = 0; tick <= 4; tick++)
        {
            double value = scaleMax * tick / 4;
            double y = top + plotHeight - plotHeight * tick / 4.0;
            svg.Append(CultureInfo.InvariantCulture,
                $"<line x1=\"{left}\" y1=\"{y:F1}\" x2=\"{width - 20}\" y2=\"{y:F1}\" stroke=\"#ddd\"/><text x=\"{left - 6}\" y=\"{y + 4:F1}\" text-anchor=\"end\">{value:G4}</text>\n");
        }

        for (int d = 0; d < Domains.Count; d++)
        {
            int groupLeft = left + d * groupWidth + groupGap / 2;
            for (int m = 0; m < Models.Count; m++)
            {
                PerplexityResult? r = _results[m, d];
                if (r is null || !double.IsFinite(r.Perplexity)) continue;
                double barHeight = scaleMax > 0 ? plotHeight * r.Perplexity / scaleMax : 0;
                svg.Append(CultureInfo.InvariantCulture,
                    $"<rect x=\"{groupLeft + m * barWidth}\" y=\"{top + plotHeight - barHeight:F1}\" width=\"{barWidth - 2}\" height=\"{barHeight:F1}\" fill=\"{s_palette[m % s_palette.Length]}\"><title>{Escape(Models[m])} / {Escape(Domains[d])}: {r.Perplexity:F4}</title></rect>\n");
            }

            svg.Append(CultureInfo.InvariantCulture,
                $"<text x=\"{groupLeft + Models.Count * barWidth / 2.0:F1}\" y=\"{top + plotHeight + 16}\" text-anchor=\"middle\">{Escape(Domains[d])}</text>\n");
        }

        svg.Append(CultureInfo.InvariantCulture,
            $"<line x1=\"{left}\" y1=\"{top + plotHeight}\" x2=\"{width - 20}\" y2=\"{top + plotHeight}\" stroke=\"#333\"/>\n");
        for (int m = 0; m < Models.Count; m++)
        {
            int y = legendTop + m * legendRow;
            svg.Append(CultureInfo.InvariantCulture,
                $"<rect x=\"{left}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{s_palette[m % s_palette.Length]}\"/><text x=\"{left + 18}\" y=\"{y + 10}\">{Escape(Models[m])}</text>\n");
        }

        svg.Append("</svg>\n");
        return svg.ToString();
    }

    /// <summary>1, 2 or 5 × 10ⁿ at or above <paramref name="value"/> (1 for 0).</summary>
    private static double NiceCeiling(double value)
    {
        if (value <= 0) return 1;
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(value)));
        foreach (double step in (ReadOnlySpan<double>)[1, 2, 5, 10])
            if (step * magnitude >= value) return step * magnitude;
        return 10 * magnitude;
    }

    /// <summary>Escapes text for XML and for Markdown table cells.</summary>
    private static string Escape(string text) =>
        text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal)
            .Replace(">", "&gt;", StringComparison.Ordinal).Replace("|", "\\|", StringComparison.Ordinal);
}
