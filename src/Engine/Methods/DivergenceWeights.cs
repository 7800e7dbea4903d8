using System.Runtime.InteropServices;
using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>
/// Divergence-aware weights (Weld): per tensor, each task vector's weight falls with its cosine similarity to the
/// mean task vector, so a fine-tune that moved somewhere the others did not keeps more of its change:
/// <code>
///   τ_k = θ_k − θ_base,   τ̄ = (1/K) Σ_k τ_k,   c_k = cos(τ_k, τ̄)   (0 when either norm is 0)
///   w_k = softmax_k(−c_k / T),   θ = θ_base + λ · Σ_k w_k τ_k
/// </code>
/// Global <c>temperature</c> (T, default 1; large T tends to the plain mean of the task vectors, i.e. the mean of
/// the models) and <c>lambda</c> (λ, default 1). Dot products and norms accumulate in float64 (the kernels'), block by
/// block of <see cref="TensorMergeInputs.ChunkAlignment"/> in index order. A tensor too large for memory is streamed:
/// one pass gathers the sums, a second writes the weighted sum, with the bits of one piece.
/// </summary>
public sealed class DivergenceWeights : IStreamingMergeMethod
{
    /// <inheritdoc />
    public string Name => "divergence_weights";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, int.MaxValue);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("temperature", ParameterScope.Global, 1.0, min: 0, minExclusive: true),
        ParameterSpec.Number("lambda", ParameterScope.Global, 1.0),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        inputs.Kernels.SubtractRows(inputs.Models.Span, inputs.Base.Span);
        // τ̄ goes in the output buffer first; it is overwritten by the weighted sum once the weights are known.
        var sums = new CosineSums(inputs.Count);
        sums.Add(inputs, output);
        Mix(inputs, sums.Weights(inputs.Global.Number("temperature")), output);
    }

    /// <inheritdoc />
    public bool CanStream(IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global) => true;

    /// <inheritdoc />
    public IStreamingTensorMerge BeginTensor(TensorMergeInputs description) => new TensorStream(description);

    /// <summary>output = θ_base + λ · Σ_k w_k τ_k over the task vectors in <paramref name="inputs"/>' rows.</summary>
    private static void Mix(TensorMergeInputs inputs, float[] weights, Span<float> output)
    {
        IMergeKernels kernels = inputs.Kernels;
        kernels.WeightedSum(inputs.Models.Span, weights, output);
        float lambda = (float)inputs.Global.Number("lambda");
        if (lambda != 1f) kernels.Scale(output, lambda);
        kernels.Axpby(1f, inputs.Base.Span, 1f, output, output);
    }

    /// <summary>
    /// Σ τ̄², Σ τ_k² and Σ τ_k·τ̄ over the tensor, each added block by block (<see cref="TensorMergeInputs.ChunkAlignment"/>)
    /// in index order: a streamed tensor's chunks start on block boundaries, so both paths add the same blocks in the same order.
    /// </summary>
    private sealed class CosineSums(int count)
    {
        private readonly double[] _squares = new double[count];
        private readonly double[] _dots = new double[count];
        private double _meanSquares;

        /// <summary>Adds the sums of the task vectors in <paramref name="inputs"/>' rows; <paramref name="mean"/> receives τ̄ there.</summary>
        public void Add(TensorMergeInputs inputs, Span<float> mean)
        {
            IMergeKernels kernels = inputs.Kernels;
            int n = inputs.Length;
            var uniform = new float[count];
            Array.Fill(uniform, 1f / count);
            kernels.WeightedSum(inputs.Models.Span, uniform, mean.Slice(0, n));
            for (int start = 0; start < n; start += TensorMergeInputs.ChunkAlignment)
            {
                int length = Math.Min(TensorMergeInputs.ChunkAlignment, n - start);
                ReadOnlySpan<float> block = mean.Slice(start, length);
                _meanSquares += kernels.SumOfSquares(block);
                for (int k = 0; k < count; k++)
                {
                    ReadOnlySpan<float> row = inputs.Row(k).Slice(start, length);
                    _squares[k] += kernels.SumOfSquares(row);
                    _dots[k] += kernels.Dot(row, block);
                }
            }
        }

        /// <summary>w_k = softmax_k(−cos(τ_k, τ̄) / T), in float64, rounded to float32.</summary>
        public float[] Weights(double temperature)
        {
            double meanNorm = Math.Sqrt(_meanSquares);
            var logits = new double[count];
            for (int k = 0; k < count; k++)
            {
                double norms = Math.Sqrt(_squares[k]) * meanNorm;
                double cosine = norms > 0 ? _dots[k] / norms : 0;
                logits[k] = -cosine / temperature;
            }
            return Softmax(logits);
        }
    }

    /// <summary>softmax over the logits, shifted by their maximum so exp never overflows.</summary>
    private static float[] Softmax(double[] logits)
    {
        double max = double.NegativeInfinity;
        foreach (double l in logits) max = Math.Max(max, l);
        double total = 0;
        var exp = new double[logits.Length];
        for (int k = 0; k < logits.Length; k++) total += exp[k] = Math.Exp(logits[k] - max);
        var weights = new float[logits.Length];
        for (int k = 0; k < logits.Length; k++) weights[k] = (float)(exp[k] / total);
        return weights;
    }

    /// <summary>One streamed tensor: a pass gathering the cosine sums (τ̄ in the spent base row), then the mix.</summary>
    private sealed class TensorStream(TensorMergeInputs description) : IStreamingTensorMerge
    {
        private readonly CosineSums _sums = new(description.Count);
        private float[]? _weights;

        public int StatisticsPasses => 1;

        public void Observe(int pass, TensorMergeInputs chunk)
        {
            chunk.Kernels.SubtractRows(chunk.Models.Span, chunk.Base.Span);
            // The base row is spent once the task vectors are formed: it holds τ̄ of this chunk.
            _sums.Add(chunk, MemoryMarshal.AsMemory(chunk.Base).Span);
        }

        public void EndPass(int pass) => _weights = _sums.Weights(description.Global.Number("temperature"));

        public void Merge(TensorMergeInputs chunk, Span<float> output)
        {
            chunk.Kernels.SubtractRows(chunk.Models.Span, chunk.Base.Span);
            Mix(chunk, _weights!, output);
        }
    }
}
