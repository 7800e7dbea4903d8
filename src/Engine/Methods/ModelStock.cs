namespace Weld.Engine.Methods;

/// <summary>
/// Model Stock (Jang et al. 2024): interpolate between the base and the average of N ≥ 2 fine-tunes with
/// a ratio from the mean pairwise angle of their task vectors:
/// <code>
///   cos θ = mean_{i&lt;j} ⟨δ_i, δ_j⟩ / max(‖δ_i‖‖δ_j‖, 1e-6),   t = N cos θ / (1 + (N − 1) cos θ)
///   θ_H = t · mean_k θ_k + (1 − t) · θ_base
/// </code>
/// With <c>filter_wise</c> the angle and ratio are taken per output row (dim −1) instead of per tensor.
/// A tensor too large for memory is streamed: one pass gathers ‖δ_k‖² and ⟨δ_i, δ_j⟩ of every row (a row cut by a
/// chunk boundary keeps adding where the previous chunk stopped; all sums go in 2²⁰-element blocks in index order
/// on both paths, <see cref="BlockSums"/>), then the apply pass interpolates each chunk.
/// </summary>
public sealed class ModelStock : IStreamingMergeMethod
{
    /// <inheritdoc />
    public string Name => "model_stock";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 2, int.MaxValue);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Flag("filter_wise", false),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        var tensor = new TensorStream(inputs);
        // Average of the fine-tunes first (before the rows become task vectors).
        tensor.Average(inputs, output);
        inputs.Kernels.SubtractRows(inputs.Models.Span, inputs.Base.Span);
        tensor.Gather(inputs);
        tensor.EndPass(0);
        tensor.Interpolate(inputs, output);
    }

    /// <inheritdoc />
    public bool CanStream(IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global) => true;

    /// <inheritdoc />
    public IStreamingTensorMerge BeginTensor(TensorMergeInputs description) => new TensorStream(description);

    /// <summary>
    /// One tensor, whole or streamed: per row the Gram entries of the task vectors (‖δ_k‖², then ⟨δ_i, δ_j⟩ for i &lt; j),
    /// then the average interpolated toward the base with each row's ratio.
    /// </summary>
    private sealed class TensorStream : IStreamingTensorMerge
    {
        private readonly int _count;
        private readonly long _rowLength;
        private readonly int _entries; // Gram entries per row: K squared norms, then the K(K−1)/2 pairs
        private readonly double[] _gram;
        private readonly float[] _averageWeights, _baseWeights;

        public TensorStream(TensorMergeInputs description)
        {
            _count = description.Count;
            long[] shape = description.Shape;
            long n = description.TensorLength;
            _rowLength = description.Global.Flag("filter_wise") && shape.Length >= 2 ? shape[^1] : n;
            int rows = _rowLength == 0 ? 0 : (int)(n / _rowLength);
            _entries = _count + _count * (_count - 1) / 2;
            _gram = new double[rows * _entries];
            _averageWeights = new float[rows];
            _baseWeights = new float[rows];
        }

        public int StatisticsPasses => 1;

        public void Observe(int pass, TensorMergeInputs chunk)
        {
            chunk.Kernels.SubtractRows(chunk.Models.Span, chunk.Base.Span);
            Gather(chunk);
        }

        public void EndPass(int pass)
        {
            for (int row = 0; row < _averageWeights.Length; row++)
            {
                double t = InterpolationRatio(_gram.AsSpan(row * _entries, _entries));
                _averageWeights[row] = (float)t;
                _baseWeights[row] = (float)(1 - t);
            }
        }

        public void Merge(TensorMergeInputs chunk, Span<float> output)
        {
            Average(chunk, output);
            Interpolate(chunk, output);
        }

        /// <summary>output = mean_k θ_k (float32: a sum from +0 in model order, then one division).</summary>
        public void Average(TensorMergeInputs chunk, Span<float> output)
        {
            Span<float> uniform = stackalloc float[_count];
            uniform.Fill(1f);
            chunk.Kernels.WeightedSum(chunk.Models.Span, uniform, output);
            chunk.Kernels.Divide(output, _count);
        }

        /// <summary>Adds the chunk's pieces of each row's Gram entries (rows hold the task vectors).</summary>
        public void Gather(TensorMergeInputs chunk)
        {
            for (int i = 0; i < chunk.Length;)
            {
                var (row, _, length) = Segment(chunk, i, manyRows: false);
                Span<double> gram = _gram.AsSpan((int)row * _entries, _entries);
                long offset = chunk.Offset + i;
                for (int k = 0; k < _count; k++)
                    gram[k] = BlockSums.SumOfSquares(chunk.Kernels, chunk.Row(k).Slice(i, length), offset, gram[k]);
                int pair = _count;
                for (int a = 0; a < _count; a++)
                    for (int b = a + 1; b < _count; b++, pair++)
                        gram[pair] = BlockSums.Dot(chunk.Kernels, chunk.Row(a).Slice(i, length), chunk.Row(b).Slice(i, length), offset, gram[pair]);
                i += length;
            }
        }

        /// <summary>output = t · output + (1 − t) · θ_base with each row's t.</summary>
        public void Interpolate(TensorMergeInputs chunk, Span<float> output)
        {
            ReadOnlySpan<float> baseline = chunk.Base.Span;
            for (int i = 0; i < chunk.Length;)
            {
                var (row, rows, length) = Segment(chunk, i, manyRows: true);
                chunk.Kernels.AxpbyRows(output.Slice(i, length), _averageWeights.AsSpan((int)row, rows),
                    baseline.Slice(i, length), _baseWeights.AsSpan((int)row, rows));
                i += length;
            }
        }

        /// <summary>
        /// From chunk element <paramref name="i"/>: the row it lies in and, with <paramref name="manyRows"/> when it starts
        /// a row, as many whole rows as the chunk holds (else the rest of its row, as far as the chunk goes), and their
        /// length in elements.
        /// </summary>
        private (long Row, int Rows, int Length) Segment(TensorMergeInputs chunk, int i, bool manyRows)
        {
            long index = chunk.Offset + i;
            long row = index / _rowLength, within = index % _rowLength;
            int left = chunk.Length - i;
            if (manyRows && within == 0 && left >= _rowLength)
            {
                int rows = (int)(left / _rowLength);
                return (row, rows, (int)(rows * _rowLength));
            }
            return (row, 1, (int)Math.Min(left, _rowLength - within));
        }

        /// <summary>t from one row's Gram entries.</summary>
        private double InterpolationRatio(ReadOnlySpan<double> gram)
        {
            int n = _count;
            double cosSum = 0;
            int pairs = 0, pair = n;
            for (int i = 0; i < n; i++)
            {
                double normI = Math.Sqrt(gram[i]);
                for (int j = i + 1; j < n; j++, pair++)
                {
                    double normJ = Math.Sqrt(gram[j]);
                    double cos = gram[pair] / Math.Max(normI * normJ, 1e-6);
                    cosSum += Math.Clamp(cos, -1, 1);
                    pairs++;
                }
            }
            double cosTheta = cosSum / pairs;
            return n * cosTheta / (1 + (n - 1) * cosTheta);
        }
    }
}
