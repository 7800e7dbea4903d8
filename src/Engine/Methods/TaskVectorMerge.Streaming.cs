using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Methods;

public abstract partial class TaskVectorMerge
{
    /// <inheritdoc />
    /// <remarks>
    /// Model Breadcrumbs' two-sided cut and DELLA's per-fiber magnitude ranks need the whole tensor; the other
    /// sparsifications stream.
    /// </remarks>
    public bool CanStream(IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global) =>
        _sparsification is not (Sparsification.MagnitudeOutliers or Sparsification.RankMagnitude);

    /// <inheritdoc />
    public IStreamingTensorMerge BeginTensor(TensorMergeInputs description)
    {
        if (!CanStream(description.ModelParameters, description.Global))
            throw new WeldException($"tensor {description.TensorName}: {Name} needs the whole tensor in memory; raise --memory-limit");
        return new TensorStream(this, description);
    }

    /// <summary>
    /// One streamed tensor. Passes, with δ_k = θ_k − θ_base formed per chunk:
    /// the top-k cut of each trimmed δ_k (one counting pass, three when the sampled bracket misses), then, for the L1 rescale, ‖δ_k‖₁ and
    /// ‖sparsify(δ_k)‖₁ (the before-norm rides along with the first pass); then the apply pass.
    /// </summary>
    private sealed class TensorStream : IStreamingTensorMerge
    {
        private readonly TaskVectorMerge _method;
        private readonly RescaleMode _rescale;
        private readonly float[] _density;
        private readonly SampledThresholdSearch?[] _search;
        private readonly long[] _tiesLeft;
        private readonly double[] _normBefore;
        private readonly double[] _normAfter;
        private readonly float?[] _factor;
        private readonly bool _normPass;
        private int _searchPasses;

        public TensorStream(TaskVectorMerge method, TensorMergeInputs description)
        {
            _method = method;
            int count = description.Count;
            _rescale = method.Rescale(description.Global);
            _density = new float[count];
            _search = new SampledThresholdSearch?[count];
            _tiesLeft = new long[count];
            _normBefore = new double[count];
            _normAfter = new double[count];
            _factor = new float?[count];
            bool sparsifies = false;
            for (int k = 0; k < count; k++)
            {
                double density = method._sparsification == Sparsification.None ? 1 : description.ModelParameters[k].Number("density");
                _density[k] = (float)density;
                if (density >= 1) continue;
                sparsifies = true;
                if (method._sparsification == Sparsification.Magnitude)
                {
                    var search = new SampledThresholdSearch(description.TensorLength, MagnitudeCounts.KeepCount(density, description.TensorLength));
                    _search[k] = search;
                    _searchPasses = Math.Max(_searchPasses, search.PassesLeft);
                }
            }
            _normPass = sparsifies && _rescale == RescaleMode.L1;
        }

        /// <summary>Drops after the first pass when every sampled search found its cut (see <see cref="SampledThresholdSearch"/>).</summary>
        public int StatisticsPasses => _searchPasses + (_normPass ? 1 : 0);

        /// <summary>The pass that measures ‖sparsify(δ)‖₁ (the last one), or −1.</summary>
        private int NormPass => _rescale == RescaleMode.L1 && StatisticsPasses > _searchPasses ? StatisticsPasses - 1 : -1;

        public void Observe(int pass, TensorMergeInputs chunk)
        {
            IMergeKernels kernels = chunk.Kernels;
            kernels.SubtractRows(chunk.Models.Span, chunk.Base.Span);
            for (int k = 0; k < chunk.Count; k++)
            {
                if (_density[k] >= 1) continue;
                Span<float> row = chunk.Row(k);
                if (pass == 0 && _rescale == RescaleMode.L1)
                    _normBefore[k] += L1Norm(kernels, row);
                if (pass < _searchPasses)
                    _search[k]?.Observe(kernels, row);
                if (pass == NormPass)
                {
                    SparsifyChunk(chunk, k, row);
                    _normAfter[k] += L1Norm(kernels, row);
                }
            }
        }

        public void EndPass(int pass)
        {
            if (pass < _searchPasses)
            {
                int left = 0;
                foreach (SampledThresholdSearch? search in _search)
                {
                    search?.EndPass();
                    left = Math.Max(left, search?.PassesLeft ?? 0);
                }
                _searchPasses = pass + 1 + left;
                return;
            }
            if (pass == NormPass)
                for (int k = 0; k < _factor.Length; k++)
                    _factor[k] = L1RescaleFactor(_normBefore[k], _normAfter[k]);
        }

        public void Merge(TensorMergeInputs chunk, Span<float> output)
        {
            chunk.Kernels.SubtractRows(chunk.Models.Span, chunk.Base.Span);
            for (int k = 0; k < chunk.Count; k++)
            {
                if (_density[k] >= 1) continue;
                Span<float> row = chunk.Row(k);
                SparsifyChunk(chunk, k, row);
                if (_factor[k] is float factor) chunk.Kernels.Scale(row, factor);
            }
            _method.Combine(chunk, output);
        }

        /// <summary>The sparsification of one chunk of row k, as <see cref="Sparsify"/> does on the whole row (before any L1 rescale).</summary>
        private void SparsifyChunk(TensorMergeInputs chunk, int k, Span<float> row)
        {
            IMergeKernels kernels = chunk.Kernels;
            if (_search[k] is { } search)
            {
                // Ties at the threshold keep the lowest indices: the budget runs down chunk by chunk.
                if (chunk.Offset == 0) _tiesLeft[k] = search.TiesToKeep;
                _tiesLeft[k] -= kernels.KeepAboveMagnitude(row, search.ThresholdKey, _tiesLeft[k]);
                if (_rescale == RescaleMode.InverseDensity) kernels.Divide(row, _density[k]);
            }
            else if (_method._sparsification == Sparsification.Random)
            {
                kernels.DropAndRescale(row, _density[k], _rescale == RescaleMode.InverseDensity, chunk.RandomKey(k), chunk.Offset);
            }
        }
    }
}
