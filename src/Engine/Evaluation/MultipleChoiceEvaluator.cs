using System.Diagnostics;
using System.Text;

namespace Weld.Engine.Evaluation;

/// <summary>The outcome of a multiple-choice task.</summary>
/// <param name="Accuracy">Share of items whose gold choice has the highest total log-likelihood (lm-evaluation-harness <c>acc</c>).</param>
/// <param name="AccuracyNorm">Share of items whose gold choice has the highest log-likelihood per UTF-8 byte of the choice (<c>acc_norm</c>).</param>
/// <param name="Items">Items scored.</param>
/// <param name="Seconds">Wall-clock time of the forward passes.</param>
/// <param name="Predictions">Per item, the choice picked by total log-likelihood.</param>
/// <param name="NormPredictions">Per item, the choice picked by log-likelihood per byte.</param>
/// <param name="LogLikelihoods">Per item, each choice's total log-likelihood (nats) given the context.</param>
public sealed record MultipleChoiceResult(double Accuracy, double AccuracyNorm, int Items, double Seconds,
    IReadOnlyList<int> Predictions, IReadOnlyList<int> NormPredictions, IReadOnlyList<double[]> LogLikelihoods);

/// <summary>
/// Scores multiple-choice items as lm-evaluation-harness does: each choice is the continuation <c>" " + choice</c>
/// (its default target delimiter) of the context; whitespace at the end of the context moves to the front of the
/// continuation; the continuation's tokens are those of <c>tokenize(context + continuation)</c> after the first
/// <c>len(tokenize(context))</c>; its log-likelihood is the sum of their log-probabilities given everything before.
/// The prediction is the arg-max (ties to the first choice) of the total (<c>acc</c>) and of the total divided by the
/// choice's length (<c>acc_norm</c>; the harness divides by characters, Weld by UTF-8 bytes: the same for ASCII).
/// </summary>
public static class MultipleChoiceEvaluator
{
    /// <summary>The text joining context and choice (lm-evaluation-harness' default <c>target_delimiter</c>).</summary>
    public const string TargetDelimiter = " ";

    /// <summary>Scores every item of a task.</summary>
    /// <exception cref="WeldException">An item's context is empty (no end-of-text token to condition on), or a token is outside the vocabulary.</exception>
    public static MultipleChoiceResult Evaluate(ICausalLanguageModel model, ITokenizer tokenizer, IReadOnlyList<MultipleChoiceItem> items)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(items);
        var predictions = new int[items.Count];
        var normPredictions = new int[items.Count];
        var logLikelihoods = new double[items.Count][];
        int correct = 0, correctNorm = 0;
        var clock = Stopwatch.StartNew();
        for (int n = 0; n < items.Count; n++)
        {
            MultipleChoiceItem item = items[n];
            var scores = new double[item.Choices.Count];
            for (int c = 0; c < scores.Length; c++)
                scores[c] = ContinuationLogLikelihood(model, tokenizer, item.Context, TargetDelimiter + item.Choices[c], n);
            logLikelihoods[n] = scores;
            predictions[n] = ArgMax(scores, _ => 1.0);
            normPredictions[n] = ArgMax(scores, c => Encoding.UTF8.GetByteCount(item.Choices[c]));
            if (predictions[n] == item.Gold) correct++;
            if (normPredictions[n] == item.Gold) correctNorm++;
        }

        clock.Stop();
        return new MultipleChoiceResult((double)correct / items.Count, (double)correctNorm / items.Count, items.Count,
            clock.Elapsed.TotalSeconds, predictions, normPredictions, logLikelihoods);
    }

    /// <summary>
    /// The context and continuation token ids as the harness splits them: trailing whitespace of the context moved to
    /// the continuation, the continuation's ids taken from the tokenization of the whole text.
    /// </summary>
    public static (int[] Whole, int ContextLength) EncodePair(ITokenizer tokenizer, string context, string continuation)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(continuation);
        int kept = context.Length;
        while (kept > 0 && char.IsWhiteSpace(context[kept - 1])) kept--;
        continuation = context[kept..] + continuation;
        context = context[..kept];
        int[] whole = tokenizer.Encode(Encoding.UTF8.GetBytes(context + continuation));
        int contextLength = tokenizer.Encode(Encoding.UTF8.GetBytes(context)).Length;
        return (whole, contextLength);
    }

    private static double ContinuationLogLikelihood(ICausalLanguageModel model, ITokenizer tokenizer, string context, string continuation, int item)
    {
        (int[] whole, int contextLength) = EncodePair(tokenizer, context, continuation);
        if (contextLength == 0)
            throw new WeldException($"item {item + 1}: the context is empty (after moving its trailing whitespace); without an end-of-text token there is nothing to condition the choices on.");
        if (whole.Length <= contextLength)
            throw new WeldException($"item {item + 1}: a choice adds no tokens to the context.");
        var nll = new double[whole.Length - 1];
        model.ScoreTokens(whole, 1, whole.Length, nll);
        // nll[i] scores token i + 1; the continuation is tokens contextLength .. end.
        double sum = 0;
        for (int i = contextLength - 1; i < nll.Length; i++) sum -= nll[i];
        return sum;
    }

    private static int ArgMax(double[] scores, Func<int, double> length)
    {
        int best = 0;
        for (int c = 1; c < scores.Length; c++)
            if (scores[c] / length(c) > scores[best] / length(best)) best = c;
        return best;
    }
}
