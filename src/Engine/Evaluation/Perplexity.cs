using System.Diagnostics;
using Weld.Engine.Models;

namespace Weld.Engine.Evaluation;

/// <summary>How a text is cut into scored windows. The defaults are the zoo's protocol.</summary>
public sealed record PerplexityOptions
{
    /// <summary>Tokens per window (bytes for a byte-level vocabulary). Default 128.</summary>
    public int Window { get; init; } = 128;

    /// <summary>Bytes read from the start of the text before tokenizing. Default 32768; 0 or less reads it all.</summary>
    public int Bytes { get; init; } = 32768;

    /// <summary>Tokens between window starts; 0 means <see cref="Window"/> (non-overlapping). Default 0.</summary>
    public int Stride { get; init; }

    /// <summary>Windows per forward batch; 0 picks a size that bounds the activations (about 64 MiB per buffer).</summary>
    public int WindowsPerBatch { get; init; }
}

/// <summary>The outcome of scoring a text.</summary>
/// <param name="TotalNll">Summed negative log-likelihood in nats.</param>
/// <param name="Tokens">Scored tokens: windows × (window − 1).</param>
/// <param name="Windows">Windows scored.</param>
/// <param name="Seconds">Wall-clock time of the forward passes.</param>
public sealed record PerplexityResult(double TotalNll, long Tokens, int Windows, double Seconds)
{
    /// <summary>Mean NLL per scored token (nats).</summary>
    public double MeanNll => TotalNll / Tokens;

    /// <summary><c>exp(mean NLL)</c>.</summary>
    public double Perplexity => Math.Exp(MeanNll);

    /// <summary>Scored tokens per second.</summary>
    public double TokensPerSecond => Seconds > 0 ? Tokens / Seconds : double.PositiveInfinity;
}

/// <summary>
/// Perplexity by independent fixed windows: each window is run from position 0 with no carried context and every
/// token but its first is scored (what <c>LlamaForCausalLM(input_ids=w, labels=w).loss</c> averages per window).
/// </summary>
public static class PerplexityEvaluator
{
    /// <summary>The tokenizer a model folder implies (<see cref="TokenizerLoader.ForFolder"/>).</summary>
    /// <exception cref="WeldException">An unsupported tokenizer file, or none and a vocabulary that is not 256 bytes.</exception>
    public static ITokenizer TokenizerFor(ModelFolder model, LlamaConfig config)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(config);
        return TokenizerLoader.ForFolder(model.Path, config.VocabSize);
    }

    /// <summary>Reads the first <see cref="PerplexityOptions.Bytes"/> bytes of <paramref name="textPath"/> and scores them.</summary>
    /// <exception cref="WeldException">The file cannot be read or is too short for one window.</exception>
    public static PerplexityResult EvaluateFile(ICausalLanguageModel model, ITokenizer tokenizer, string textPath, PerplexityOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(textPath);
        options ??= new PerplexityOptions();
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(textPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new WeldException($"{textPath}: cannot read the text ({e.Message}).", e);
        }

        int length = options.Bytes > 0 ? Math.Min(options.Bytes, bytes.Length) : bytes.Length;
        try
        {
            return Evaluate(model, tokenizer.Encode(bytes.AsSpan(0, length)), options);
        }
        catch (WeldException e) when (e is not InvalidModelFileException)
        {
            throw new WeldException($"{textPath}: {e.Message}", e);
        }
    }

    /// <summary>Scores already tokenized text.</summary>
    /// <exception cref="WeldException">Fewer tokens than one window, or a token outside the vocabulary.</exception>
    public static PerplexityResult Evaluate(ICausalLanguageModel model, ReadOnlySpan<int> tokens, PerplexityOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new PerplexityOptions();
        int window = options.Window;
        if (window < 2) throw new WeldException($"the window must be at least 2 tokens, not {window}.");
        int stride = options.Stride > 0 ? options.Stride : window;
        if (tokens.Length < window)
            throw new WeldException($"the text has {tokens.Length} tokens, fewer than one window of {window}.");
        int windows = (tokens.Length - window) / stride + 1;

        LlamaConfig c = model.Config;
        int widest = Math.Max(Math.Max(c.HiddenSize, c.IntermediateSize), c.HeadCount * c.HeadDim);
        int perBatch = options.WindowsPerBatch > 0
            ? options.WindowsPerBatch
            : Math.Max(1, (16 << 20) / (window * widest));
        perBatch = Math.Min(perBatch, windows);

        var batch = new int[perBatch * window];
        var tokenNll = new double[perBatch * (window - 1)];
        var nll = new double[windows];
        var clock = Stopwatch.StartNew();
        for (int first = 0; first < windows; first += perBatch)
        {
            int count = Math.Min(perBatch, windows - first);
            for (int w = 0; w < count; w++)
                tokens.Slice((first + w) * stride, window).CopyTo(batch.AsSpan(w * window, window));
            model.ScoreTokens(batch.AsSpan(0, count * window), count, window, tokenNll);
            // Each window's sum in token order, so the result does not depend on the engine's scheduling.
            for (int w = 0; w < count; w++)
            {
                double sum = 0;
                foreach (double value in tokenNll.AsSpan(w * (window - 1), window - 1)) sum += value;
                nll[first + w] = sum;
            }
        }

        clock.Stop();
        double total = 0;
        foreach (double value in nll) total += value;
        return new PerplexityResult(total, (long)windows * (window - 1), windows, clock.Elapsed.TotalSeconds);
    }
}
