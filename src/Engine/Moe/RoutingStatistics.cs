namespace Weld.Engine.Moe;

/// <summary>
/// MC-SMoE's routing statistics of one MoE, gathered from calibration tokens: per layer, how often each expert is
/// among a token's top-k (its activation frequency) and the Gram matrix of the router-logit columns (each expert's
/// logits over all calibration tokens, as one vector), from which the cosine similarity of two experts' routing follows.
/// </summary>
/// <remarks>
/// Memory is E + E² numbers per layer, whatever the number of tokens: the logit vectors are never stored, only their
/// dot products (accumulated in float64, in the order the rows arrive).
/// </remarks>
public sealed class RoutingStatistics
{
    private readonly long[][] _counts;
    private readonly double[][] _gram;
    private readonly long[] _rows;

    /// <summary>Creates empty statistics for <paramref name="layers"/> layers of <paramref name="experts"/> experts.</summary>
    public RoutingStatistics(int layers, int experts)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(layers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(experts, 1);
        Layers = layers;
        Experts = experts;
        _counts = new long[layers][];
        _gram = new double[layers][];
        _rows = new long[layers];
        for (int l = 0; l < layers; l++)
        {
            _counts[l] = new long[experts];
            _gram[l] = new double[experts * experts];
        }
    }

    /// <summary>Layers observed.</summary>
    public int Layers { get; }

    /// <summary>Experts per layer.</summary>
    public int Experts { get; }

    /// <summary>Calibration rows (tokens) seen by layer <paramref name="layer"/>.</summary>
    public long Rows(int layer) => _rows[layer];

    /// <summary>How many times each expert of <paramref name="layer"/> was among a token's top-k.</summary>
    public ReadOnlySpan<long> Counts(int layer) => _counts[layer];

    /// <summary>
    /// Adds one batch of routing decisions (the signature of <see cref="Evaluation.LlamaModel.RoutingObserver"/>).
    /// </summary>
    /// <param name="layer">The layer.</param>
    /// <param name="rows">Tokens in the batch.</param>
    /// <param name="logits">rows × E router logits.</param>
    /// <param name="chosen">rows × k chosen experts.</param>
    public void Observe(int layer, int rows, ReadOnlySpan<float> logits, ReadOnlySpan<int> chosen)
    {
        int e = Experts;
        ArgumentOutOfRangeException.ThrowIfNotEqual(logits.Length, rows * e, nameof(logits));
        long[] counts = _counts[layer];
        foreach (int expert in chosen) counts[expert]++;
        double[] gram = _gram[layer];
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> z = logits.Slice(r * e, e);
            for (int i = 0; i < e; i++)
            {
                double zi = z[i];
                for (int j = i; j < e; j++) gram[i * e + j] += zi * z[j];
            }
        }

        _rows[layer] += rows;
    }

    /// <summary>Each expert's share of the top-k selections of <paramref name="layer"/> (sums to 1; all 0 before any token).</summary>
    public double[] Frequencies(int layer)
    {
        long[] counts = _counts[layer];
        long total = 0;
        foreach (long c in counts) total += c;
        var frequency = new double[Experts];
        if (total == 0) return frequency;
        for (int i = 0; i < frequency.Length; i++) frequency[i] = (double)counts[i] / total;
        return frequency;
    }

    /// <summary>
    /// E × E cosine similarities of the experts' router-logit vectors over the calibration tokens of
    /// <paramref name="layer"/> (row-major, symmetric, 1 on the diagonal; 0 against an all-zero vector).
    /// </summary>
    public double[] LogitCosines(int layer)
    {
        int e = Experts;
        double[] gram = _gram[layer];
        var cosine = new double[e * e];
        for (int i = 0; i < e; i++)
        {
            for (int j = i; j < e; j++)
            {
                double norms = Math.Sqrt(gram[i * e + i]) * Math.Sqrt(gram[j * e + j]);
                double value = i == j ? 1 : norms > 0 ? gram[i * e + j] / norms : 0;
                cosine[i * e + j] = cosine[j * e + i] = value;
            }
        }

        return cosine;
    }
}
