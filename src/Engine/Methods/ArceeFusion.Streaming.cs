using Weld.Kernels;

namespace Weld.Engine.Methods;

public sealed partial class ArceeFusion
{
    /// <inheritdoc />
    public bool CanStream(IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global) => true;

    /// <inheritdoc />
    public IStreamingTensorMerge BeginTensor(TensorMergeInputs description) => new TensorStream(description);

    /// <summary>
    /// One streamed tensor. The sampled positions are drawn first (the same as <see cref="Merge"/>'s); the statistics
    /// pass computes every row's D (one float32 a row, kept) and the scores at those positions, each in its draw's slot,
    /// so the sample and the threshold are those of one piece; the apply pass gates the rows with the kept D, scoring
    /// nothing again. A row cut by a chunk boundary is assembled across chunks in the statistics pass and its D taken
    /// whole: the kernel takes every row on its own, so the bits match.
    /// </summary>
    private sealed class TensorStream : IStreamingTensorMerge
    {
        private readonly int _rowLength;
        private readonly long[] _positions;
        private readonly int[] _draws;
        private readonly float[] _sample;
        private readonly float[] _rowModel, _rowBase;
        private readonly float[] _divergences;
        private readonly ParallelOptions _parallel;
        private int _cursor;
        private float _threshold;

        public TensorStream(TensorMergeInputs description)
        {
            long length = description.TensorLength;
            long[] shape = description.Shape;
            _rowLength = (int)Math.Max(1, shape.Length >= 1 && shape[^1] > 0 ? shape[^1] : length);
            if (length % _rowLength != 0)
                throw new ArgumentException($"{length} values do not split into rows of {_rowLength}.", nameof(description));
            // Sorted by position, each remembering its draw: the chunks then meet them in order.
            PhiloxKey key = description.RandomKey(0);
            _positions = new long[Math.Min(length, SampleSize)];
            SamplePositions(length, key, 0, _positions);
            _draws = new int[_positions.Length];
            for (int j = 0; j < _draws.Length; j++) _draws[j] = j;
            Array.Sort(_positions, _draws);
            _sample = new float[_positions.Length];
            _rowModel = new float[_rowLength];
            _rowBase = new float[_rowLength];
            _divergences = new float[length / _rowLength];
            _parallel = Parallelism(description.Kernels);
        }

        public int StatisticsPasses => 1;

        public void Observe(int pass, TensorMergeInputs chunk)
        {
            IMergeKernels kernels = chunk.Kernels;
            ReadOnlySpan<float> model = chunk.Row(0), baseline = chunk.Base.Span;
            long offset = chunk.Offset;
            int length = chunk.Length;

            // The rest of a row begun in an earlier chunk: its D once it is whole, then its sampled scores.
            int done = 0, inRow = (int)(offset % _rowLength);
            if (inRow != 0)
            {
                done = Math.Min(_rowLength - inRow, length);
                model.Slice(0, done).CopyTo(_rowModel.AsSpan(inRow));
                baseline.Slice(0, done).CopyTo(_rowBase.AsSpan(inRow));
                if (inRow + done == _rowLength)
                {
                    long rowStart = offset - inRow;
                    kernels.SoftmaxDivergences(_rowModel, _rowBase, _divergences.AsSpan((int)(rowStart / _rowLength), 1));
                    Gather(rowStart, _rowModel, _rowBase);
                }
            }

            // The chunk's whole rows.
            int wholeEnd = done + (length - done) / _rowLength * _rowLength;
            if (wholeEnd > done)
            {
                kernels.SoftmaxDivergences(model[done..wholeEnd], baseline[done..wholeEnd], RowDivergences(offset + done, wholeEnd - done));
                Gather(offset + done, model[done..wholeEnd], baseline[done..wholeEnd]);
            }

            // The start of a row that goes on in the next chunk.
            if (wholeEnd < length)
            {
                model[wholeEnd..].CopyTo(_rowModel);
                baseline[wholeEnd..].CopyTo(_rowBase);
            }
        }

        public void EndPass(int pass) => _threshold = Threshold(_sample, _parallel);

        public void Merge(TensorMergeInputs chunk, Span<float> output)
        {
            IMergeKernels kernels = chunk.Kernels;
            ReadOnlySpan<float> model = chunk.Row(0), baseline = chunk.Base.Span;
            long offset = chunk.Offset;
            int length = chunk.Length;
            // The piece of a row begun earlier, the whole rows, the start of a row going on: each with its row's kept D.
            int done = Math.Min((int)((_rowLength - offset % _rowLength) % _rowLength), length);
            int wholeEnd = done + (length - done) / _rowLength * _rowLength;
            foreach ((int start, int end) in new[] { (0, done), (done, wholeEnd), (wholeEnd, length) })
            {
                if (end > start)
                    kernels.KeepImportantChanges(baseline[start..end], model[start..end], RowDivergences(offset + start, end - start), _threshold,
                        output[start..end]);
            }
        }

        /// <summary>The kept D of the rows of [start, start + count): whole rows, or one row's piece.</summary>
        private Span<float> RowDivergences(long start, int count) =>
            _divergences.AsSpan((int)(start / _rowLength), (int)Math.Max(1, count / _rowLength));

        /// <summary>
        /// Stores the scores at the sampled positions in [start, start + model.Length), whole rows whose D are kept
        /// (ranges come in index order).
        /// </summary>
        private void Gather(long start, ReadOnlySpan<float> model, ReadOnlySpan<float> baseline)
        {
            long end = start + model.Length;
            for (; _cursor < _positions.Length && _positions[_cursor] < end; _cursor++)
            {
                long position = _positions[_cursor];
                int i = (int)(position - start);
                _sample[_draws[_cursor]] = Score(model[i], baseline[i], _divergences[position / _rowLength]);
            }
        }
    }
}
