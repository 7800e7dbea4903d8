namespace Weld.Engine.Methods;

/// <summary>
/// Karcher mean (mergekit): the weighted Riemannian mean of the inputs' directions on the unit hypersphere, scaled by
/// their mean norm; every input (a base included) weighs 1/N:
/// <code>
///   u_k = x_k / ‖x_k‖ (inputs with ‖x_k‖ ≤ tol left out),  m = normalise(Σ a_k u_k)
///   repeat max_iter times:  T = Σ a_k (θ_k / sin θ_k)(u_k − cos θ_k m),  cos θ_k = ⟨m, u_k⟩  (θ_k &lt; tol skipped)
///                           stop when ‖T‖ &lt; tol;  m ← normalise(cos‖T‖ m + sin‖T‖ T/‖T‖)
///   θ = (Σ_k ‖x_k‖ / N) · m
/// </code>
/// </summary>
/// <remarks>
/// m and T are always combinations of the inputs, so the iteration runs on their coefficients c (m = Σ c_k x_k) with
/// the Gram matrix G_jk = ⟨x_j, x_k⟩: ⟨m, x_k⟩ = (G c)_k and ‖m‖² = cᵀ G c, in float64. One pass over the data gathers
/// G (summed in 2²⁰-element blocks in index order, <see cref="BlockSums"/>), one more writes θ = Σ (scale · c_k) x_k;
/// a tensor too large for memory streams the same two passes chunk by chunk and gets the same bits.
/// </remarks>
public sealed class Karcher : IStreamingMergeMethod
{
    /// <inheritdoc />
    public string Name => "karcher";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.None, 1, int.MaxValue);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("max_iter", ParameterScope.Global, 10, 0),
        ParameterSpec.Number("tol", ParameterScope.Global, 1e-5, 0),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        var tensor = new TensorStream(inputs);
        if (tensor.StatisticsPasses == 1)
        {
            tensor.Observe(0, inputs);
            tensor.EndPass(0);
        }
        tensor.Merge(inputs, output);
    }

    /// <inheritdoc />
    public bool CanStream(IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global) => true;

    /// <inheritdoc />
    public IStreamingTensorMerge BeginTensor(TensorMergeInputs description) => new TensorStream(description);

    /// <summary>One tensor, whole or streamed: the Gram matrix, the mean's coefficients, then θ.</summary>
    private sealed class TensorStream : IStreamingTensorMerge
    {
        private readonly int _count;
        private readonly int _maxIterations;
        private readonly double _tol;
        private readonly double[,] _gram;
        private float[] _outputWeights = [];
        private bool _noDirection; // every input's norm ≤ tol (or NaN): θ = 0, as mergekit returns zeros

        public TensorStream(TensorMergeInputs description)
        {
            _count = description.Count;
            _maxIterations = (int)description.Global.Number("max_iter");
            _tol = description.Global.Number("tol");
            _gram = new double[_count, _count];
            StatisticsPasses = _count == 1 ? 0 : 1;
        }

        public int StatisticsPasses { get; }

        public void Observe(int pass, TensorMergeInputs chunk)
        {
            for (int j = 0; j < _count; j++)
            {
                _gram[j, j] = BlockSums.SumOfSquares(chunk.Kernels, chunk.Row(j), chunk.Offset, _gram[j, j]);
                for (int k = j + 1; k < _count; k++)
                    _gram[j, k] = BlockSums.Dot(chunk.Kernels, chunk.Row(j), chunk.Row(k), chunk.Offset, _gram[j, k]);
            }
        }

        public void EndPass(int pass)
        {
            for (int j = 0; j < _count; j++)
                for (int k = 0; k < j; k++) _gram[j, k] = _gram[k, j];
            _outputWeights = OutputWeights();
        }

        public void Merge(TensorMergeInputs chunk, Span<float> output)
        {
            if (_count == 1)
                chunk.Row(0).CopyTo(output);
            else if (_noDirection)
                output.Clear();
            else
                chunk.Kernels.WeightedSum(chunk.Models.Span, _outputWeights, output);
        }

        /// <summary>The weights of θ = Σ w_k x_k: the mean direction's coefficients times the mean norm.</summary>
        private float[] OutputWeights()
        {
            double alpha = 1.0 / _count;
            var norms = new double[_count];
            double validAlpha = 0, scale = 0;
            for (int k = 0; k < _count; k++)
            {
                norms[k] = Math.Sqrt(_gram[k, k]);
                if (norms[k] > _tol) validAlpha += alpha;
                scale += alpha * norms[k];
            }
            var weights = new float[_count];
            _noDirection = validAlpha == 0;
            if (_noDirection) return weights;
            double share = alpha / validAlpha; // the normalised alpha of each valid input

            // Initial guess: the normalised weighted mean of the unit vectors (the first unit vector if that vanishes).
            var mean = new double[_count];
            for (int k = 0; k < _count; k++) mean[k] = norms[k] > _tol ? share / norms[k] : 0;
            double meanNorm = Norm(mean);
            if (meanNorm < _tol)
            {
                int first = Array.FindIndex(norms, x => x > _tol);
                Array.Clear(mean);
                mean[first] = 1 / norms[first];
            }
            else
            {
                Divide(mean, meanNorm);
            }

            var tangent = new double[_count];
            for (int iteration = 0; iteration < _maxIterations; iteration++)
            {
                // T = Σ c_k x_k / ‖x_k‖ − (Σ c_k cos θ_k) m with c_k = a_k θ_k / sin θ_k.
                double along = 0;
                for (int k = 0; k < _count; k++)
                {
                    tangent[k] = 0;
                    if (norms[k] <= _tol) continue;
                    double cos = Math.Clamp(Inner(mean, k) / norms[k], -1, 1);
                    double theta = Math.Acos(cos);
                    if (theta < _tol) continue;
                    double c = share * theta / Math.Sin(theta);
                    tangent[k] = c / norms[k];
                    along += c * cos;
                }
                for (int k = 0; k < _count; k++) tangent[k] -= along * mean[k];
                double tangentNorm = Norm(tangent);
                if (tangentNorm < _tol) break;
                double towardMean = Math.Cos(tangentNorm), towardTangent = Math.Sin(tangentNorm) / tangentNorm;
                for (int k = 0; k < _count; k++) mean[k] = towardMean * mean[k] + towardTangent * tangent[k];
                double unitNorm = Norm(mean);
                if (unitNorm > _tol) Divide(mean, unitNorm);
            }
            for (int k = 0; k < _count; k++) weights[k] = (float)(scale * mean[k]);
            return weights;
        }

        /// <summary>⟨Σ_j c_j x_j, x_k⟩ = (G c)_k.</summary>
        private double Inner(double[] coefficients, int k)
        {
            double sum = 0;
            for (int j = 0; j < _count; j++) sum += coefficients[j] * _gram[j, k];
            return sum;
        }

        /// <summary>‖Σ_k c_k x_k‖ = √(cᵀ G c); a sum rounded below 0 counts as 0 (NaN stays NaN).</summary>
        private double Norm(double[] coefficients)
        {
            double sum = 0;
            for (int k = 0; k < _count; k++) sum += coefficients[k] * Inner(coefficients, k);
            return Math.Sqrt(sum < 0 ? 0 : sum);
        }

        private static void Divide(double[] values, double divisor)
        {
            for (int k = 0; k < values.Length; k++) values[k] /= divisor;
        }
    }
}
