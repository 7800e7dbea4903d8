using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Methods;

public abstract partial class TaskVectorMerge
{
    /// <inheritdoc />
    /// <remarks>
    /// Every sparsification streams: top-k and Model Breadcrumbs' two-sided cut find their thresholds in counting
    /// passes, DELLA samples whole dim-0 slices per chunk (<see cref="RankMagnitudeStream"/>).
    /// </remarks>
    public bool CanStream(IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global) => true;

    /// <inheritdoc />
    public IStreamingTensorMerge BeginTensor(TensorMergeInputs description) => new TensorStream(this, description);

    /// <summary>
    /// One streamed tensor. Passes, with δ_k = θ_k − θ_base formed per chunk: the top-k cut of each trimmed δ_k (one
    /// counting pass, three when the sampled bracket misses: <see cref="SampledThresholdSearch"/>), or both cuts of
    /// Breadcrumbs' band (the same: one pass when both brackets hold their cut); for DELLA, the slices cut by chunk boundaries (when a boundary can cut
    /// one); then, for the L1 rescale, ‖δ_k‖₁ and ‖sparsify(δ_k)‖₁ (the before-norm rides along with the first pass);
    /// then the apply pass.
    /// </summary>
    private sealed class TensorStream : IStreamingTensorMerge
    {
        private readonly TaskVectorMerge _method;
        private readonly IMergeKernels _kernels;
        private readonly RescaleMode _rescale;
        private readonly float[] _density;
        private readonly SampledThresholdSearch?[] _search;
        private readonly long[] _tiesLeft;
        private readonly MagnitudeBand?[] _band;
        private readonly RankMagnitudeStream?[] _rank;
        private readonly double[] _normBefore;
        private readonly double[] _normAfter;
        private readonly float?[] _factor;
        private readonly bool _normPass;
        private readonly int _slicePasses;
        private int _searchPasses;

        public TensorStream(TaskVectorMerge method, TensorMergeInputs description)
        {
            _method = method;
            _kernels = description.Kernels;
            int count = description.Count;
            long n = description.TensorLength;
            _rescale = method.Rescale(description.Global);
            _density = new float[count];
            _search = new SampledThresholdSearch?[count];
            _tiesLeft = new long[count];
            _band = new MagnitudeBand?[count];
            _rank = new RankMagnitudeStream?[count];
            _normBefore = new double[count];
            _normAfter = new double[count];
            _factor = new float?[count];
            bool sparsifies = false;
            for (int k = 0; k < count; k++)
            {
                ResolvedParameters p = description.ModelParameters[k];
                double density = method._sparsification == Sparsification.None ? 1 : p.Number("density");
                _density[k] = (float)density;
                if (density >= 1) continue;
                sparsifies = true;
                switch (method._sparsification)
                {
                    case Sparsification.Magnitude:
                        var search = new SampledThresholdSearch(n, MagnitudeCounts.KeepCount(density, n));
                        _search[k] = search;
                        _searchPasses = Math.Max(_searchPasses, search.PassesLeft);
                        break;
                    case Sparsification.MagnitudeOutliers:
                        var (dropBottom, dropTop) = MagnitudeCounts.BreadcrumbsCuts(density, p.Number("gamma"), n);
                        var band = new MagnitudeBand(n, dropBottom, dropTop);
                        _band[k] = band;
                        _searchPasses = Math.Max(_searchPasses, band.PassesLeft);
                        break;
                    case Sparsification.RankMagnitude:
                        var rank = new RankMagnitudeStream(description, k, density, p.Number("epsilon"), _rescale == RescaleMode.InverseDensity);
                        _rank[k] = rank;
                        if (rank.CutsSlices) _slicePasses = 1;
                        break;
                }
            }
            _normPass = sparsifies && _rescale == RescaleMode.L1;
        }

        /// <summary>Drops after the first pass when every sampled search (top-k or band) found its cut (see <see cref="SampledThresholdSearch"/>).</summary>
        public int StatisticsPasses => _searchPasses + _slicePasses + (_normPass ? 1 : 0);

        /// <summary>The pass that collects DELLA's cut slices, or −1.</summary>
        private int SlicePass => _slicePasses > 0 ? _searchPasses : -1;

        /// <summary>The pass that measures ‖sparsify(δ)‖₁ (the last one), or −1.</summary>
        private int NormPass => _normPass ? StatisticsPasses - 1 : -1;

        public void Observe(int pass, TensorMergeInputs chunk)
        {
            IMergeKernels kernels = chunk.Kernels;
            chunk.FormTaskVectors();
            for (int k = 0; k < chunk.Count; k++)
            {
                if (_density[k] >= 1) continue;
                Span<float> row = chunk.Row(k);
                if (pass == NormPass && _method._sparsification == Sparsification.Random)
                {
                    // DARE's one statistics pass (pass 0): ‖δ‖₁ and ‖drop(δ)‖₁ in one trip over the chunk, or summed from
                    // the partials of the drop the executor did while decoding the chunk.
                    var (before, after) = chunk.IsDroppedInDecode(k)
                        ? DecodedL1Norms(chunk.DecodedDrops!.NormPartials(k))
                        : DropWithL1Norms(kernels, row, _density[k], chunk.RandomKey(k), chunk.Offset);
                    _normBefore[k] += before;
                    _normAfter[k] += after;
                    continue;
                }
                if (pass == 0 && _rescale == RescaleMode.L1)
                    _normBefore[k] += L1Norm(kernels, row);
                if (pass < _searchPasses)
                {
                    _search[k]?.Observe(kernels, row);
                    _band[k]?.Observe(kernels, row);
                }
                if (pass == SlicePass)
                    _rank[k]?.Observe(row, chunk.Offset);
                if (pass == NormPass)
                {
                    SparsifyChunk(chunk, k, row, remember: true);
                    _normAfter[k] += L1Norm(kernels, row);
                }
            }
        }

        public void EndPass(int pass)
        {
            if (pass < _searchPasses)
            {
                // The sampled searches may finish early (the count of passes drops, never rises).
                int left = 0;
                foreach (SampledThresholdSearch? search in _search)
                {
                    search?.EndPass();
                    left = Math.Max(left, search?.PassesLeft ?? 0);
                }
                foreach (MagnitudeBand? band in _band)
                {
                    band?.EndPass();
                    left = Math.Max(left, band?.PassesLeft ?? 0);
                }
                _searchPasses = pass + 1 + left;
                return;
            }
            if (pass == SlicePass)
            {
                foreach (RankMagnitudeStream? rank in _rank)
                    rank?.SampleCutSlices(_kernels);
                return;
            }
            if (pass == NormPass)
                for (int k = 0; k < _factor.Length; k++)
                    _factor[k] = L1RescaleFactor(_normBefore[k], _normAfter[k]);
        }

        public void Merge(TensorMergeInputs chunk, Span<float> output)
        {
            chunk.FormTaskVectors();
            for (int k = 0; k < chunk.Count; k++)
            {
                if (_density[k] >= 1) continue;
                SparsifyChunk(chunk, k, chunk.Row(k), remember: false);
            }
            // The L1 factors are the combine's pre-scales, as in the whole-tensor path.
            _method.Combine(chunk, _factor, output);
        }

        /// <summary>
        /// The sparsification of one chunk of row k, as <see cref="Sparsify"/> does on the whole row (before any L1
        /// rescale). DELLA's norm pass (<paramref name="remember"/>) keeps its keep decisions, and the apply pass replays
        /// them rather than sampling every element a second time.
        /// </summary>
        private void SparsifyChunk(TensorMergeInputs chunk, int k, Span<float> row, bool remember)
        {
            IMergeKernels kernels = chunk.Kernels;
            if (_search[k] is { } search)
            {
                // Ties at the threshold keep the lowest indices: the budget runs down chunk by chunk.
                if (chunk.Offset == 0) _tiesLeft[k] = search.TiesToKeep;
                _tiesLeft[k] -= kernels.KeepAboveMagnitude(row, search.ThresholdKey, _tiesLeft[k]);
                if (_rescale == RescaleMode.InverseDensity) kernels.Divide(row, _density[k]);
            }
            else if (_band[k] is { } band)
            {
                band.Apply(kernels, row, chunk.Offset);
                if (_rescale == RescaleMode.InverseDensity) kernels.Divide(row, _density[k]);
            }
            else if (_rank[k] is { } rank)
            {
                if (remember)
                    rank.ApplyAndRemember(kernels, row, chunk.Offset);
                else if (!rank.TryReplay(row, chunk.Offset))
                    rank.Apply(kernels, row, chunk.Offset);
            }
            else if (_method._sparsification == Sparsification.Random && !chunk.IsDroppedInDecode(k))
            {
                kernels.DropAndRescale(row, _density[k], _rescale == RescaleMode.InverseDensity, chunk.RandomKey(k), chunk.Offset);
            }
        }
    }
}
