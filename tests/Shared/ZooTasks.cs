using System.Text;
using System.Text.Json;

namespace Weld.Tests;

/// <summary>
/// Multiple-choice task files built from the zoo's held-out texts (<c>eval/&lt;domain&gt;.txt</c>, past the first 32 KiB
/// that perplexity scores): each item's context is the 48 bytes before a space, its gold choice the text after that
/// space (a whole number of words, 12 to 30 bytes), and its three distractors the same kind of span from each of the
/// other three domains' texts: picking the gold one takes knowing how text of the context's domain goes on, and a
/// model drawn to one domain's text (a fine-tune) does well on that domain's items and worse on the others'.
/// </summary>
internal static class ZooTasks
{
    public static readonly string[] Domains = ["prose", "c", "python", "markup"];

    /// <summary>Items per domain in the tests' task files.</summary>
    public const int ItemsPerDomain = 40;

    private const int ContextBytes = 48, MinChoice = 12, MaxChoice = 30;

    /// <summary>Writes <paramref name="perDomain"/> items of <paramref name="domain"/> into a .jsonl file under <paramref name="folder"/>.</summary>
    public static string Write(string folder, string domain, int perDomain)
    {
        string path = Path.Combine(folder, domain + ".jsonl");
        File.WriteAllLines(path, Lines(domain, perDomain));
        return path;
    }

    /// <summary>The JSON lines of <paramref name="count"/> items of <paramref name="domain"/> (deterministic).</summary>
    public static List<string> Lines(string domain, int count)
    {
        byte[] text = Text(domain);
        List<(int Space, int End)> spans = Spans(text);
        var random = new Random(domain.Length * 7919 + domain[0]);
        var lines = new List<string>();
        int step = spans.Count / (count + 1);
        if (step < 1) throw new InvalidOperationException($"{domain}: only {spans.Count} usable spans for {count} items");
        var others = new List<(byte[] Text, List<(int Space, int End)> Spans)>();
        foreach (string other in Domains)
        {
            if (other == domain) continue;
            byte[] otherText = Text(other);
            others.Add((otherText, Spans(otherText)));
        }

        for (int i = 0; i < count; i++)
        {
            (int space, int end) = spans[(i + 1) * step];
            var choices = new List<string> { Ascii(text, space + 1, end) };
            foreach ((byte[] otherText, List<(int Space, int End)> otherSpans) in others)
            {
                (int s, int e) = otherSpans[random.Next(otherSpans.Count)];
                choices.Add(Ascii(otherText, s + 1, e));
            }

            int gold = random.Next(choices.Count);
            (choices[0], choices[gold]) = (choices[gold], choices[0]);
            lines.Add(JsonSerializer.Serialize(new { context = Ascii(text, space - ContextBytes, space), choices, gold }));
        }

        return lines;
    }

    private static byte[] Text(string domain) => File.ReadAllBytes(Path.Combine(TestPaths.SharedModels, "eval", domain + ".txt"));

    /// <summary>Non-overlapping (space, end) pairs past the perplexity part: ASCII context and choice, word-aligned.</summary>
    private static List<(int Space, int End)> Spans(byte[] text)
    {
        var spans = new List<(int Space, int End)>();
        for (int p = 32768 + ContextBytes; p < text.Length - MaxChoice - 1; p++)
        {
            if (text[p] != (byte)' ' || IsSpace(text[p - 1]) || IsSpace(text[p + 1])) continue;
            int end = WordEnd(text, p + 1);
            if (end < 0 || !IsAscii(text, p - ContextBytes, end)) continue;
            spans.Add((p, end));
            p = end; // spans do not overlap
        }

        return spans;
    }

    /// <summary>The end (exclusive) of the words starting at <paramref name="start"/>: the first space at or after MinChoice bytes, within MaxChoice; −1 if none.</summary>
    private static int WordEnd(byte[] text, int start)
    {
        for (int e = start + MinChoice; e <= start + MaxChoice && e < text.Length; e++)
            if (text[e] == (byte)' ' && !IsSpace(text[e - 1])) return e;
        return -1;
    }

    private static bool IsSpace(byte b) => b is (byte)' ' or (byte)'\n' or (byte)'\t' or (byte)'\r';

    private static bool IsAscii(byte[] text, int start, int end)
    {
        for (int i = start; i < end; i++) if (text[i] >= 0x80 || text[i] == 0) return false;
        return true;
    }

    private static string Ascii(byte[] text, int start, int end) => Encoding.ASCII.GetString(text, start, end - start);
}
