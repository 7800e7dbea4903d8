namespace Weld.Engine.Evaluation;

/// <summary>
/// A causal language model that scores token windows: what perplexity and multiple-choice evaluation need from an
/// evaluation engine (Weld's own forward pass, or another engine such as the TorchSharp one).
/// </summary>
public interface ICausalLanguageModel
{
    /// <summary>The decoder's hyper-parameters.</summary>
    LlamaConfig Config { get; }

    /// <summary>
    /// Runs <paramref name="windowCount"/> windows of <paramref name="windowLength"/> tokens, each from position 0, and
    /// writes the negative log-likelihood (nats) of every token 1..T−1 given the tokens before it in its window.
    /// </summary>
    /// <param name="tokens">windowCount × windowLength token ids, window after window.</param>
    /// <param name="windowCount">Windows in this batch.</param>
    /// <param name="windowLength">Tokens per window (≥ 2).</param>
    /// <param name="tokenNll">Receives windowCount × (windowLength − 1) values, window after window.</param>
    /// <exception cref="WeldException">A token id is outside the vocabulary.</exception>
    void ScoreTokens(ReadOnlySpan<int> tokens, int windowCount, int windowLength, Span<double> tokenNll);
}
