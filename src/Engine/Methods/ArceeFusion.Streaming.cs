using Weld.Kernels;

namespace Weld.Engine.Methods;

public sealed partial class ArceeFusion
{
    /// <summary>Elements (whole rows, at least one) a statistics pass scores at a time into its own scratch.</summary>
    private const int ScoreBlock = 1 << 18;

    /// <inheritdoc />
    public bool CanStream(IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global) => true;

    /// <inheritdoc />
    public IStreamingTensorMerge BeginTensor(TensorMergeInputs description) => new TensorStream(description);

    /// <summary>
    /// One streamed tensor. The sampled positions are drawn first (the same as <see cref="Merge"/>'s); the statistics
    /// pass scores the rows chunk by chunk and keeps the scores at those positions, each in its draw's slot, so the
    /// sorted sample and the threshold are those of one piece; the apply pass scores the rows again and gates them.
    /// A row cut by a chunk boundary is assembled across chunks in the statistics pass and scored whole, and its scores
    /// are kept for the apply pass (one row per boundary): the kernel scores every row on its own, so the bits match.
    /// </summary>
    private sealed class TensorStream : IStreamingTensorMerge
    {
        private readonly int _rowLength;
        private readonly long[] _positions;
        private readonly int[] _draws;
        private readonly float[] _sample;
        private readonly float[] _rowModel, _rowBase;
        private readonly Dictionary<long, float[]> _cutRowScores = [];
        private readonly float[] _scratch;
        private int _cursor;
        private float _threshold;

        public TensorStream(TensorMergeInputs description)
        {
            long length = description.TensorLength;
            long[] shape = description.Shape;
            _rowLength = (int)Math.Max(1, shape.Length >= 1 && shape[^1] > 0 ? shape[^1] : length);
            // Sorted by position, each remembering its draw: the chunks then meet them in order.
            _positions = SamplePositions(length, description.RandomKey(0));
            _draws = new int[_positions.Length];
            for (int j = 0; j < _draws.Length; j++) _draws[j] = j;
            Array.Sort(_positions, _draws);
            _sample = new float[_positions.Length];
            _rowModel = new float[_rowLength];
            _rowBase = new float[_rowLength];
            _scratch = new float[Math.Max(1, ScoreBlock / _rowLength) * _rowLength];
        }

        public int StatisticsPasses => 1;

        public void Observe(int pass, TensorMergeInputs chunk) => Score(chunk, Span<float>.Empty);

        public void EndPass(int pass) => _threshold = Threshold(_sample);

        public void Merge(TensorMergeInputs chunk, Span<float> output)
        {
            Span<float> scores = output.Slice(0, chunk.Length);
            Score(chunk, scores);
            chunk.Kernels.KeepImportantChanges(chunk.Base.Span, chunk.Row(0), _threshold, scores);
        }

        /// <summary>
        /// Scores the chunk row by row: into <paramref name="scores"/> in the apply pass, into the sample (through
        /// the scratch) when it is empty, in the statistics pass.
        /// </summary>
        private void Score(TensorMergeInputs chunk, Span<float> scores)
        {
            IMergeKernels kernels = chunk.Kernels;
            ReadOnlySpan<float> model = chunk.Row(0), baseline = chunk.Base.Span;
            bool gather = scores.IsEmpty;
            long offset = chunk.Offset;
            int length = chunk.Length;

            // The rest of a row begun in an earlier chunk.
            int done = 0, inRow = (int)(offset % _rowLength);
            if (inRow != 0)
            {
                done = Math.Min(_rowLength - inRow, length);
                long rowStart = offset - inRow;
                if (gather)
                {
                    model.Slice(0, done).CopyTo(_rowModel.AsSpan(inRow));
                    baseline.Slice(0, done).CopyTo(_rowBase.AsSpan(inRow));
                    if (inRow + done == _rowLength) ScoreCutRow(kernels, rowStart);
                }
                else
                {
                    _cutRowScores[rowStart].AsSpan(inRow, done).CopyTo(scores);
                    if (inRow + done == _rowLength) _cutRowScores.Remove(rowStart);
                }
            }

            // The chunk's whole rows.
            int wholeEnd = done + (length - done) / _rowLength * _rowLength;
            if (!gather && wholeEnd > done)
                kernels.SoftmaxDivergenceScores(model[done..wholeEnd], baseline[done..wholeEnd], _rowLength, scores[done..wholeEnd]);
            for (int start = done; gather && start < wholeEnd; start += _scratch.Length)
            {
                Span<float> block = _scratch.AsSpan(0, Math.Min(_scratch.Length, wholeEnd - start));
                kernels.SoftmaxDivergenceScores(model.Slice(start, block.Length), baseline.Slice(start, block.Length), _rowLength, block);
                Gather(offset + start, block);
            }

            // The start of a row that goes on in the next chunk.
            if (wholeEnd < length)
            {
                if (gather)
                {
                    model[wholeEnd..].CopyTo(_rowModel);
                    baseline[wholeEnd..].CopyTo(_rowBase);
                }
                else
                {
                    _cutRowScores[offset + wholeEnd].AsSpan(0, length - wholeEnd).CopyTo(scores[wholeEnd..]);
                }
            }
        }

        /// <summary>Scores the assembled row that starts at <paramref name="rowStart"/>, keeps them and samples them.</summary>
        private void ScoreCutRow(IMergeKernels kernels, long rowStart)
        {
            var rowScores = new float[_rowLength];
            kernels.SoftmaxDivergenceScores(_rowModel, _rowBase, _rowLength, rowScores);
            _cutRowScores[rowStart] = rowScores;
            Gather(rowStart, rowScores);
        }

        /// <summary>Stores the scores at the sampled positions in [start, start + scores.Length) (ranges come in index order).</summary>
        private void Gather(long start, ReadOnlySpan<float> scores)
        {
            long end = start + scores.Length;
            for (; _cursor < _positions.Length && _positions[_cursor] < end; _cursor++)
                _sample[_draws[_cursor]] = scores[(int)(_positions[_cursor] - start)];
        }
    }
}
