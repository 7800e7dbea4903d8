using System.Globalization;
using System.Xml.Linq;
using Weld.Engine.Evaluation;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>The report's Markdown table and SVG bar chart.</summary>
public class PerplexityReportTests
{
    private static PerplexityReport Sample()
    {
        var report = new PerplexityReport(["base", "ft<c>"], ["prose", "c", "python"]);
        // TotalNll = tokens · ln(ppl) so that the perplexities are exact.
        double[,] ppl = { { 4.0, 5.0, 6.0 }, { 8.0, 2.0, 3.0 } };
        for (int m = 0; m < 2; m++)
            for (int d = 0; d < 3; d++)
                report[m, d] = new PerplexityResult(100 * Math.Log(ppl[m, d]), 100, 1, 1);
        return report;
    }

    [Fact]
    public void Markdown_has_one_row_per_model_and_one_column_per_domain()
    {
        string[] lines = Sample().ToMarkdown().TrimEnd('\n').Split('\n');
        Assert.Equal(4, lines.Length);
        Assert.Equal("| model | prose | c | python | mean NLL |", lines[0]);
        Assert.Equal("|---|---:|---:|---:|---:|", lines[1]);
        string meanBase = ((Math.Log(4) + Math.Log(5) + Math.Log(6)) / 3).ToString("F4", CultureInfo.InvariantCulture);
        Assert.Equal($"| base | 4.0000 | 5.0000 | 6.0000 | {meanBase} |", lines[2]);
        Assert.StartsWith("| ft&lt;c&gt; | 8.0000 | 2.0000 | 3.0000 |", lines[3]);
    }

    [Fact]
    public void Svg_is_well_formed_with_one_bar_per_result_scaled_to_the_axis()
    {
        XDocument svg = XDocument.Parse(Sample().ToSvg());
        XNamespace ns = "http://www.w3.org/2000/svg";
        // Bars carry a title; legend swatches do not.
        var bars = svg.Descendants(ns + "rect").Where(r => r.Element(ns + "title") is not null).ToArray();
        Assert.Equal(6, bars.Length);
        double Height(XElement bar) => double.Parse(bar.Attribute("height")!.Value, CultureInfo.InvariantCulture);
        // Axis maximum: 8 rounds up to 10, the plot is 260 high.
        XElement tallest = bars.Single(b => b.Element(ns + "title")!.Value == "ft<c> / prose: 8.0000");
        Assert.Equal(260 * 0.8, Height(tallest), 1);
        XElement shortest = bars.Single(b => b.Element(ns + "title")!.Value == "ft<c> / c: 2.0000");
        Assert.Equal(260 * 0.2, Height(shortest), 1);
        Assert.Contains(svg.Descendants(ns + "text"), t => t.Value == "python");
    }
}
