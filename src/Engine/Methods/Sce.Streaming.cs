using System.Runtime.InteropServices;
using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Methods;

public sealed partial class Sce
{
    /// <inheritdoc />
    public bool CanStream(IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global) => true;

    /// <inheritdoc />
    public IStreamingTensorMerge BeginTensor(TensorMergeInputs description) => new TensorStream(description);

    /// <summary>
    /// One streamed tensor. Passes, with δ_k = θ_k − θ_base formed per chunk: when select_topk &lt; 1, the count of
    /// nonzero variances (k = ⌊select_topk · count⌋) together with a sampled counting pass for the top-k cut of the
    /// variances (<see cref="SampledThresholdSearch"/>: the first chunk's sample brackets the cut for the k its own
    /// count suggests, and the cut is read off for the true k at the end of the pass; two histogram passes follow only
    /// when the bracket misses); then Σ δ_k² of the selected task vectors, which keeps the selection as one bit per
    /// element; then the apply pass, which reads the selection from those bits (no third variance and cut). On bf16
    /// task vectors the bracket holds: two statistics passes, three reads of the tensor in all.
    /// </summary>
    private sealed class TensorStream : IStreamingTensorMerge
    {
        private const int CountPass = 0;

        private readonly bool _selects;
        private readonly double _topK;
        private readonly long _length;
        private readonly double[] _energy;
        private long _nonzero;
        private SampledThresholdSearch? _search;
        private int _searchPasses;
        private long _tiesLeft;
        private float[]? _weights;
        private ulong[]? _kept; // the selection of the energy pass, one bit per element, for the apply pass

        public TensorStream(TensorMergeInputs description)
        {
            _topK = description.Global.Number("select_topk");
            _selects = _topK < 1;
            _length = description.TensorLength;
            _energy = new double[description.Count];
            // At most: the counting pass, then two histogram passes if its bracket misses.
            _searchPasses = _selects ? 3 : 0;
        }

        /// <summary>Drops from four to two after the counting pass when its sampled bracket holds the cut.</summary>
        public int StatisticsPasses => _searchPasses + 1;

        private int EnergyPass => _searchPasses;

        public void Observe(int pass, TensorMergeInputs chunk)
        {
            IMergeKernels kernels = chunk.Kernels;
            chunk.FormTaskVectors();
            if (_selects)
            {
                // The base row is spent once the task vectors are formed: it holds the variances of a statistics pass.
                Span<float> variance = MemoryMarshal.AsMemory(chunk.Base).Span;
                long nonzero = kernels.VarianceAcrossRows(chunk.Models.Span, variance);
                if (pass == CountPass)
                {
                    _nonzero += nonzero;
                    if (chunk.Offset == 0) _search = new SampledThresholdSearch(_length, EstimatedKeep(nonzero, variance.Length));
                }
                if (pass < EnergyPass)
                {
                    _search!.Observe(kernels, variance);
                    return;
                }
                // The cut of this chunk, tested by the energy sweep, which keeps the selection as bits for the apply pass.
                MagnitudeKeep keep = Cut(chunk, variance);
                _kept ??= new ulong[SelectionBits.WordCount(_length)];
                BlockSums.SumsOfSquaresWhereKept(kernels, chunk.Models.Span, variance, keep, chunk.Offset, _energy, KeptBits(chunk));
                return;
            }
            AddEnergies(chunk, _energy);
        }

        public void EndPass(int pass)
        {
            if (pass < EnergyPass)
            {
                // k is known once every variance was counted; the sampled search may then finish (the passes drop).
                if (pass == CountPass)
                {
                    _search ??= new SampledThresholdSearch(_length, 0); // no chunk was observed (an empty tensor)
                    _search.Retarget((long)(_topK * _nonzero));
                }
                _search!.EndPass();
                _searchPasses = pass + 1 + _search.PassesLeft;
                return;
            }
            _weights = MatrixWeights(_energy, _length);
        }

        /// <summary>
        /// The keep count the first chunk's own share of nonzero variances suggests for the whole tensor, strictly
        /// between 0 and the length so that the search starts counting (<see cref="SampledThresholdSearch.Retarget"/>
        /// then sets the true count, exact whatever the estimate).
        /// </summary>
        private long EstimatedKeep(long chunkNonzero, int chunkLength)
        {
            double estimate = Math.Floor(_topK * chunkNonzero / chunkLength * _length);
            return (long)Math.Clamp(estimate, 1, Math.Max(1, _length - 1));
        }

        public void Merge(TensorMergeInputs chunk, Span<float> output)
        {
            IMergeKernels kernels = chunk.Kernels;
            chunk.FormTaskVectors();
            if (_selects)
                EraseAndMixOntoBase(chunk, KeptBits(chunk), _weights!, output);
            else
                kernels.SignErasedMixOntoBase(chunk.Models.Span, [], _weights!, DivisorFloor, chunk.Base.Span, output);
        }

        /// <summary>The words of <see cref="_kept"/> that hold the chunk's selection (chunks start at multiples of 64 elements).</summary>
        private Span<ulong> KeptBits(TensorMergeInputs chunk)
        {
            if (chunk.Offset % 64 != 0)
                throw new InvalidOperationException($"A streamed chunk starts at element {chunk.Offset}, not at a multiple of 64.");
            return _kept.AsSpan((int)(chunk.Offset / 64), (int)SelectionBits.WordCount(chunk.Length));
        }

        /// <summary>
        /// <see cref="SelectByVariance"/> on one chunk: the top-k cut of the variances (ties keep the lowest indices, the
        /// budget carried in index order): the selection the energies and the mix read δ through.
        /// </summary>
        private MagnitudeKeep Cut(TensorMergeInputs chunk, Span<float> variance)
        {
            if (chunk.Offset == 0) _tiesLeft = _search!.TiesToKeep;
            MagnitudeKeep keep = chunk.Kernels.CutAboveMagnitude(variance, _search!.ThresholdKey, _tiesLeft, out long tiesKept);
            _tiesLeft -= tiesKept;
            return keep;
        }
    }
}
