namespace Weld.Engine.Methods;

/// <summary>
/// NuSLERP (mergekit): spherical interpolation of exactly two models with t from their weights, optionally of their
/// task vectors against a base:
/// <code>
///   t = w_2 / (w_1 + w_2)   (0.5 when |w_1 + w_2| &lt; 1e-6)
///   cos θ = ⟨v_1, v_2⟩ / (max(‖v_1‖, 1e-7) · max(‖v_2‖, 1e-7)),   |sin θ| &lt; 1e-8 → lerp
///   slerp = (sin((1 − t)θ) v_1 + sin(tθ) v_2) / sin θ
///   θ = slerp(x_1, x_2)   or, with a base,   θ = θ_base + slerp(x_1 − θ_base, x_2 − θ_base)
/// </code>
/// One angle for the whole tensor (<c>nuslerp_flatten</c>, the default), else one per row of the last dimension, or
/// per column (fibers along dim 0) with <c>nuslerp_row_wise</c>.
/// A tensor too large for memory is streamed: one pass gathers the dot product and squared norms of every fiber (a
/// row cut by a chunk boundary keeps adding where the previous chunk stopped, in the same order as in one piece;
/// whole-tensor sums go in 2²⁰-element blocks, <see cref="BlockSums"/>), then the apply pass mixes each chunk.
/// </summary>
public sealed class NuSlerp : IStreamingMergeMethod
{
    private const double NormFloor = 1e-7;
    private const double ColinearSine = 1e-8;

    /// <inheritdoc />
    public string Name => "nuslerp";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Optional, 2, 2);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("weight", ParameterScope.PerModel, null),
        ParameterSpec.Flag("nuslerp_row_wise", false),
        ParameterSpec.Flag("nuslerp_flatten", true),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        var tensor = new TensorStream(inputs);
        if (inputs.HasBase) inputs.Kernels.SubtractRows(inputs.Models.Span, inputs.Base.Span);
        tensor.Gather(inputs);
        tensor.EndPass(0);
        tensor.Mix(inputs, output);
    }

    /// <inheritdoc />
    public bool CanStream(IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global) => true;

    /// <inheritdoc />
    public IStreamingTensorMerge BeginTensor(TensorMergeInputs description) => new TensorStream(description);

    /// <summary>The mixing coefficients of v1 and v2 from their dot product and squared norms.</summary>
    private static (double S1, double S2) Coefficients(double t, double dot, double squaredNorm1, double squaredNorm2)
    {
        double cos = dot / (Math.Max(Math.Sqrt(squaredNorm1), NormFloor) * Math.Max(Math.Sqrt(squaredNorm2), NormFloor));
        double theta = Math.Acos(Math.Clamp(cos, -1, 1));
        double sin = Math.Sin(theta);
        if (Math.Abs(sin) < ColinearSine) return (1 - t, t);
        return (Math.Sin((1 - t) * theta) / sin, Math.Sin(t * theta) / sin);
    }

    /// <summary>Which elements share one angle.</summary>
    private enum Fibers
    {
        /// <summary>The whole tensor.</summary>
        Whole,

        /// <summary>Rows of the last dimension: element i is in fiber i / rowLength.</summary>
        Rows,

        /// <summary>Columns (fibers along dim 0): element i is in fiber i mod (n / shape[0]).</summary>
        Columns,
    }

    /// <summary>
    /// One tensor, whole (one chunk) or streamed: per fiber ⟨v_1, v_2⟩, ‖v_1‖², ‖v_2‖², then the mix with each
    /// fiber's coefficients. The rows of a chunk hold task vectors once the base is subtracted.
    /// </summary>
    private sealed class TensorStream : IStreamingTensorMerge
    {
        private readonly double _t;
        private readonly Fibers _fibers;
        private readonly int _period; // elements per row (Rows) or per slice along dim 0 (Columns)
        private readonly double[] _dot, _squaredNorm1, _squaredNorm2;
        private readonly float[] _s1, _s2;

        public TensorStream(TensorMergeInputs description)
        {
            double w1 = description.ModelParameters[0].Number("weight"), w2 = description.ModelParameters[1].Number("weight");
            _t = Math.Abs(w1 + w2) < 1e-6 ? 0.5 : w2 / (w1 + w2);
            long[] shape = description.Shape;
            long n = description.TensorLength;
            int count;
            if (description.Global.Flag("nuslerp_flatten") || shape.Length < 2)
            {
                _fibers = Fibers.Whole;
                count = 1;
            }
            else if (description.Global.Flag("nuslerp_row_wise"))
            {
                _fibers = Fibers.Columns;
                _period = shape[0] == 0 ? 0 : (int)(n / shape[0]);
                count = _period;
            }
            else
            {
                _fibers = Fibers.Rows;
                _period = (int)shape[^1];
                count = _period == 0 ? 0 : (int)(n / _period);
            }
            _dot = new double[count];
            _squaredNorm1 = new double[count];
            _squaredNorm2 = new double[count];
            _s1 = new float[count];
            _s2 = new float[count];
        }

        public int StatisticsPasses => 1;

        public void Observe(int pass, TensorMergeInputs chunk)
        {
            if (chunk.HasBase) chunk.Kernels.SubtractRows(chunk.Models.Span, chunk.Base.Span);
            Gather(chunk);
        }

        public void EndPass(int pass)
        {
            for (int f = 0; f < _dot.Length; f++)
            {
                var (s1, s2) = Coefficients(_t, _dot[f], _squaredNorm1[f], _squaredNorm2[f]);
                _s1[f] = (float)s1;
                _s2[f] = (float)s2;
            }
        }

        public void Merge(TensorMergeInputs chunk, Span<float> output)
        {
            if (chunk.HasBase) chunk.Kernels.SubtractRows(chunk.Models.Span, chunk.Base.Span);
            Mix(chunk, output);
        }

        /// <summary>Adds the chunk's products to its fibers' sums, element by element in index order within each fiber.</summary>
        public void Gather(TensorMergeInputs chunk)
        {
            ReadOnlySpan<float> v1 = chunk.Row(0), v2 = chunk.Row(1);
            if (_fibers == Fibers.Whole)
            {
                _dot[0] = BlockSums.Dot(chunk.Kernels, v1, v2, chunk.Offset, _dot[0]);
                _squaredNorm1[0] = BlockSums.SumOfSquares(chunk.Kernels, v1, chunk.Offset, _squaredNorm1[0]);
                _squaredNorm2[0] = BlockSums.SumOfSquares(chunk.Kernels, v2, chunk.Offset, _squaredNorm2[0]);
                return;
            }
            for (int i = 0; i < v1.Length;)
            {
                var (fiber, end) = Segment(chunk.Offset, i, v1.Length);
                if (_fibers == Fibers.Rows)
                {
                    double dot = _dot[fiber], sq1 = _squaredNorm1[fiber], sq2 = _squaredNorm2[fiber];
                    for (; i < end; i++)
                    {
                        dot += (double)v1[i] * v2[i];
                        sq1 += (double)v1[i] * v1[i];
                        sq2 += (double)v2[i] * v2[i];
                    }
                    _dot[fiber] = dot;
                    _squaredNorm1[fiber] = sq1;
                    _squaredNorm2[fiber] = sq2;
                }
                else
                {
                    for (int f = fiber; i < end; i++, f++)
                    {
                        _dot[f] += (double)v1[i] * v2[i];
                        _squaredNorm1[f] += (double)v1[i] * v1[i];
                        _squaredNorm2[f] += (double)v2[i] * v2[i];
                    }
                }
            }
        }

        /// <summary>output = s1·v1 + s2·v2 with each fiber's coefficients (+ θ_base).</summary>
        public void Mix(TensorMergeInputs chunk, Span<float> output)
        {
            ReadOnlySpan<float> v1 = chunk.Row(0), v2 = chunk.Row(1);
            if (_fibers == Fibers.Whole)
            {
                chunk.Kernels.Axpby(_s1[0], v1, _s2[0], v2, output);
            }
            else
            {
                for (int i = 0; i < v1.Length;)
                {
                    var (fiber, end) = Segment(chunk.Offset, i, v1.Length);
                    if (_fibers == Fibers.Rows)
                    {
                        float a = _s1[fiber], b = _s2[fiber];
                        for (; i < end; i++) output[i] = a * v1[i] + b * v2[i];
                    }
                    else
                    {
                        for (int f = fiber; i < end; i++, f++) output[i] = _s1[f] * v1[i] + _s2[f] * v2[i];
                    }
                }
            }
            if (chunk.HasBase) chunk.Kernels.Axpby(1f, chunk.Base.Span, 1f, output, output);
        }

        /// <summary>
        /// From chunk element <paramref name="i"/>: the fiber of the row (Rows) or the first column (Columns) it starts,
        /// and the chunk index where that row, or that run of consecutive columns, ends.
        /// </summary>
        private (int Fiber, int End) Segment(long offset, int i, int length)
        {
            long index = offset + i;
            long within = index % _period;
            int fiber = _fibers == Fibers.Rows ? (int)(index / _period) : (int)within;
            return (fiber, (int)Math.Min(length, i + (_period - within)));
        }
    }
}
