using System.Runtime.InteropServices;
using Weld.Kernels;

namespace Weld.Engine.Methods;

public sealed partial class Sce
{
    /// <inheritdoc />
    public bool CanStream(IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global) => true;

    /// <inheritdoc />
    public IStreamingTensorMerge BeginTensor(TensorMergeInputs description) => new TensorStream(description);

    /// <summary>
    /// One streamed tensor. Passes, with δ_k = θ_k − θ_base formed per chunk: when select_topk &lt; 1, the count of
    /// nonzero variances (k = ⌊select_topk · count⌋), then the top-k cut of the variances (two counting passes); then
    /// Σ δ_k² of the selected task vectors; then the apply pass.
    /// </summary>
    private sealed class TensorStream : IStreamingTensorMerge
    {
        private const int CountPass = 0;
        private const int SearchPasses = 2;

        private readonly bool _selects;
        private readonly double _topK;
        private readonly long _length;
        private readonly double[] _energy;
        private long _nonzero;
        private MagnitudeThresholdSearch? _search;
        private long _tiesLeft;
        private float[]? _weights;

        public TensorStream(TensorMergeInputs description)
        {
            _topK = description.Global.Number("select_topk");
            _selects = _topK < 1;
            _length = description.TensorLength;
            _energy = new double[description.Count];
            StatisticsPasses = _selects ? 1 + SearchPasses + 1 : 1;
        }

        public int StatisticsPasses { get; }

        private int EnergyPass => StatisticsPasses - 1;

        public void Observe(int pass, TensorMergeInputs chunk)
        {
            IMergeKernels kernels = chunk.Kernels;
            chunk.FormTaskVectors();
            if (_selects)
            {
                // The base row is spent once the task vectors are formed: it holds the variances of a statistics pass.
                Span<float> variance = MemoryMarshal.AsMemory(chunk.Base).Span;
                if (pass == CountPass)
                {
                    _nonzero += kernels.VarianceAcrossRows(chunk.Models.Span, variance);
                    return;
                }
                kernels.VarianceAcrossRows(chunk.Models.Span, variance);
                if (pass < EnergyPass)
                {
                    _search!.Observe(kernels, variance);
                    return;
                }
                Select(chunk, variance);
            }
            // Block by block onto the running sum: a chunk of several blocks adds them one at a time, as the whole tensor does.
            for (int k = 0; k < chunk.Count; k++)
                _energy[k] = BlockSums.SumOfSquares(kernels, chunk.Row(k), chunk.Offset, _energy[k]);
        }

        public void EndPass(int pass)
        {
            if (_selects && pass == CountPass)
                _search = new MagnitudeThresholdSearch(_length, (long)(_topK * _nonzero));
            else if (pass < EnergyPass)
                _search!.EndPass();
            else
                _weights = MatrixWeights(_energy, _length);
        }

        public void Merge(TensorMergeInputs chunk, Span<float> output)
        {
            IMergeKernels kernels = chunk.Kernels;
            chunk.FormTaskVectors();
            if (_selects)
            {
                kernels.VarianceAcrossRows(chunk.Models.Span, output);
                Select(chunk, output);
            }
            EraseAndMix(chunk, _weights!, output);
            kernels.Axpby(1f, chunk.Base.Span, 1f, output, output);
        }

        /// <summary>
        /// <see cref="SelectByVariance"/> on one chunk: the top-k cut of the variances (ties keep the lowest indices, the
        /// budget carried in index order), then the task vectors cleared where it dropped.
        /// </summary>
        private void Select(TensorMergeInputs chunk, Span<float> variance)
        {
            if (chunk.Offset == 0) _tiesLeft = _search!.TiesToKeep;
            _tiesLeft -= chunk.Kernels.KeepAboveMagnitude(variance, _search!.ThresholdKey, _tiesLeft);
            chunk.Kernels.ClearRowsWhereZero(chunk.Models.Span, variance);
        }
    }
}
