using System.Buffers;

namespace Weld.Engine.Methods;

/// <summary>
/// Multi-SLERP (mergekit, Goddard 2025): barycentric interpolation of any number of tensors on the hypersphere,
/// through the tangent space at their weighted mean direction, with optional task vectors against a base:
/// <code>
///   v_k = x_k (− θ_base),  w_k ← w_k / Σ w (normalize_weights),  u_k = v_k / (‖v_k‖ + ε)
///   M = Σ w_k u_k,  m = M / ‖M‖,  τ = Σ w_k (u_k − ⟨u_k, m⟩ m),  ν = ‖τ‖ + ε
///   θ = (m cos ν + τ sin ν / ν) · Σ w_k ‖v_k‖  (+ θ_base)
/// </code>
/// A single input is returned as it is. When ‖M‖ &lt; ε two inputs fall back to Σ w_k v_k; more inputs are an error.
/// </summary>
/// <remarks>
/// Σ w_k ⟨u_k, m⟩ = ⟨M, m⟩ = ‖M‖, so the tangent τ = (1 − Σ w_k⟨u_k, m⟩ / ‖M‖) · M is parallel to M: the whole result
/// is one scaled copy of M, which is how it is computed here (float64 scalars, M in float32 as mergekit forms it).
/// A tensor too large for memory is streamed in two statistics passes: ‖v_k‖, then M chunk by chunk for ‖M‖ and
/// ⟨v_k, M⟩ (a Gram matrix of the v_k would need one pass less, but would not see the exact float32 cancellation
/// of antipodal inputs that selects the fallback); the apply pass forms M again and scales it. All sums go in
/// 2²⁰-element blocks in index order on both paths (<see cref="BlockSums"/>).
/// </remarks>
public sealed class MultiSlerp : IStreamingMergeMethod
{
    private const int NormPass = 0;

    /// <inheritdoc />
    public string Name => "multislerp";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Optional, 1, int.MaxValue);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("weight", ParameterScope.PerModel, null),
        ParameterSpec.Flag("normalize_weights", true),
        ParameterSpec.Number("eps", ParameterScope.Global, 1e-8, 0),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        var tensor = new TensorStream(inputs);
        if (tensor.StatisticsPasses == 0)
        {
            tensor.Merge(inputs, output);
            return;
        }
        if (inputs.HasBase) inputs.Kernels.SubtractRows(inputs.Models.Span, inputs.Base.Span);
        tensor.GatherNorms(inputs);
        tensor.EndPass(NormPass);
        tensor.GatherMean(inputs, output);
        tensor.EndPass(NormPass + 1);
        tensor.Mix(inputs, output, meanFormed: true);
    }

    /// <inheritdoc />
    public bool CanStream(IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global) => true;

    /// <inheritdoc />
    public IStreamingTensorMerge BeginTensor(TensorMergeInputs description) => new TensorStream(description);

    /// <summary>One tensor, whole or streamed: ‖v_k‖; then ‖M‖ and ⟨v_k, M⟩; then θ = scale · M.</summary>
    private sealed class TensorStream : IStreamingTensorMerge
    {
        private readonly string _tensorName;
        private readonly int _count;
        private readonly float[] _weights;
        private readonly double _eps;
        private readonly double[] _squaredNorms, _dots;
        private readonly float[] _unitScale; // w_k / (‖v_k‖ + ε): M = Σ unitScale_k v_k
        private double _averageNorm, _squaredMeanNorm;
        private bool _fallback;
        private float _scale;

        public TensorStream(TensorMergeInputs description)
        {
            _tensorName = description.TensorName;
            _count = description.Count;
            _weights = description.PerModel("weight");
            if (description.Global.Flag("normalize_weights"))
            {
                float total = 0;
                foreach (float w in _weights) total += w;
                if (total == 0 && _count > 1)
                    throw new WeldException($"{_tensorName}: multislerp's weights sum to 0, so normalize_weights would divide by 0");
                for (int k = 0; k < _count; k++) _weights[k] /= total;
            }
            _eps = description.Global.Number("eps");
            _squaredNorms = new double[_count];
            _dots = new double[_count];
            _unitScale = new float[_count];
            StatisticsPasses = _count == 1 ? 0 : 2;
        }

        public int StatisticsPasses { get; }

        public void Observe(int pass, TensorMergeInputs chunk)
        {
            if (chunk.HasBase) chunk.Kernels.SubtractRows(chunk.Models.Span, chunk.Base.Span);
            if (pass == NormPass)
            {
                GatherNorms(chunk);
                return;
            }
            float[] mean = ArrayPool<float>.Shared.Rent(chunk.Length);
            try
            {
                GatherMean(chunk, mean.AsSpan(0, chunk.Length));
            }
            finally
            {
                ArrayPool<float>.Shared.Return(mean);
            }
        }

        public void EndPass(int pass)
        {
            if (pass == NormPass)
            {
                for (int k = 0; k < _count; k++)
                {
                    double norm = Math.Sqrt(_squaredNorms[k]);
                    _unitScale[k] = (float)(_weights[k] / (norm + _eps));
                    _averageNorm += norm * _weights[k];
                }
                return;
            }
            double meanNorm = Math.Sqrt(_squaredMeanNorm);
            if (meanNorm < _eps)
            {
                if (_count != 2)
                    throw new WeldException($"{_tensorName}: multislerp's weighted mean direction is zero (antipodal inputs whose weights cancel); use other weights");
                _fallback = true;
                return;
            }
            double projection = 0; // Σ w_k ⟨u_k, m⟩
            for (int k = 0; k < _count; k++) projection += _unitScale[k] * _dots[k] / meanNorm;
            double tangent = 1 - projection / meanNorm; // τ = tangent · M
            double nu = Math.Abs(tangent) * meanNorm + _eps;
            _scale = (float)(_averageNorm * (Math.Cos(nu) / meanNorm + tangent * Math.Sin(nu) / nu));
        }

        public void Merge(TensorMergeInputs chunk, Span<float> output)
        {
            if (_count == 1)
            {
                chunk.Row(0).CopyTo(output);
                return;
            }
            if (chunk.HasBase) chunk.Kernels.SubtractRows(chunk.Models.Span, chunk.Base.Span);
            Mix(chunk, output, meanFormed: false);
        }

        /// <summary>Adds the chunk's Σ v_k² (rows hold the v_k).</summary>
        public void GatherNorms(TensorMergeInputs chunk)
        {
            for (int k = 0; k < _count; k++)
                _squaredNorms[k] = BlockSums.SumOfSquares(chunk.Kernels, chunk.Row(k), chunk.Offset, _squaredNorms[k]);
        }

        /// <summary>Forms the chunk's M in <paramref name="mean"/> and adds its Σ M² and Σ v_k·M.</summary>
        public void GatherMean(TensorMergeInputs chunk, Span<float> mean)
        {
            chunk.Kernels.WeightedSum(chunk.Models.Span, _unitScale, mean);
            _squaredMeanNorm = BlockSums.SumOfSquares(chunk.Kernels, mean, chunk.Offset, _squaredMeanNorm);
            for (int k = 0; k < _count; k++)
                _dots[k] = BlockSums.Dot(chunk.Kernels, chunk.Row(k), mean, chunk.Offset, _dots[k]);
        }

        /// <summary>θ = scale · M, or Σ w_k v_k in the fallback (+ θ_base); <paramref name="meanFormed"/>: output holds M.</summary>
        public void Mix(TensorMergeInputs chunk, Span<float> output, bool meanFormed)
        {
            var kernels = chunk.Kernels;
            if (_fallback)
            {
                kernels.WeightedSum(chunk.Models.Span, _weights, output);
            }
            else
            {
                if (!meanFormed) kernels.WeightedSum(chunk.Models.Span, _unitScale, output);
                kernels.Scale(output, _scale);
            }
            if (chunk.HasBase) kernels.Axpby(1f, chunk.Base.Span, 1f, output, output);
        }
    }
}
