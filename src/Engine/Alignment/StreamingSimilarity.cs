namespace Weld.Engine.Alignment;

/// <summary>
/// Builds weight matching's similarity matrices and objective straight from two models' stored tensors, tile by
/// tile: no tensor is ever converted to float32 whole, no permuted copy of a model is made (the other groups'
/// permutations are applied as index maps while a tile is gathered), and the float32 working set is three buffers
/// of at most <see cref="TileElements"/> floats plus one row of each model.
/// </summary>
/// <remarks>
/// For a group of n units, an axis of block size b and a tensor whose other axis has length r, each unit is one
/// row of length k = b·r (the old in-memory path transposed the tensor to get these rows; here they are gathered).
/// The product <c>A·Bᵀ</c> over k is split into column chunks of <c>kc = TileElements / n</c> only when
/// <c>n·k</c> exceeds the tile; then the float32 dot products are summed over chunks in float64. When it does not
/// (every tensor of the zoo models), each dot product is one GEMM call over the whole of k, row blocks of C being
/// independent of how C is tiled, so the matrices are bit-identical to the in-memory path's.
/// </remarks>
internal sealed class StreamingSimilarity
{
    /// <summary>Default tile: 16 Mi floats (64 MiB) per buffer.</summary>
    public const int DefaultTileElements = 16 << 20;

    private readonly PermutationSpec _spec;
    private readonly AlignmentTensors _reference;
    private readonly AlignmentTensors _model;
    private readonly ISimilarityGemm _gemm;
    private float[] _tileA = [], _tileB = [], _product = [], _rowA = [], _rowB = [];

    /// <summary>
    /// The similarity matrices handed out by <see cref="Build"/>, one per length: the descent is done with a
    /// group's matrices before it asks for the next group's, and reusing them keeps a 1B model's 512 MiB MLP
    /// matrix from being reallocated (and left to the GC) on every visit.
    /// </summary>
    private readonly Dictionary<int, double[]> _matrices = [];

    public StreamingSimilarity(PermutationSpec spec, AlignmentTensors reference, AlignmentTensors model, ISimilarityGemm gemm, int tileElements = DefaultTileElements)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tileElements, 1);
        _spec = spec;
        _reference = reference;
        _model = model;
        _gemm = gemm;
        TileElements = tileElements;
    }

    /// <summary>The model aligned to (A).</summary>
    public AlignmentTensors Reference => _reference;

    /// <summary>The model permuted (B).</summary>
    public AlignmentTensors Model => _model;

    /// <summary>Most floats one tile buffer (A's tile, B's tile, the product block) holds.</summary>
    public int TileElements { get; }

    /// <summary>The float32 working buffers' total length now (they only grow, up to 3 tiles plus two rows); the
    /// float64 similarity matrices (one n × n per distinct group size) come on top.</summary>
    public long BufferElements => (long)_tileA.Length + _tileB.Length + _product.Length + _rowA.Length + _rowB.Length;

    /// <summary>
    /// The similarity matrices of group <paramref name="group"/> with every other group's permutation applied to the
    /// model: <c>units</c> (Size × Size) and <c>unitGroups</c> (UnitGroups × UnitGroups; empty when no axis of the
    /// group is indexed by unit groups, so a plain group needs one n × n matrix, not two). The arrays are reused:
    /// valid until the next call.
    /// </summary>
    public (double[] Units, double[] UnitGroups) Build(int group, int[][] permutations)
    {
        PermutationGroup g = _spec.Groups[group];
        bool anyPerGroup = false;
        foreach (PermutedAxis axis in g.Axes) anyPerGroup |= axis.PerUnitGroup;
        double[] units = Matrix(checked(g.Size * g.Size));
        // With groups of one unit both matrices have the same length: the unit-group one must be a second array.
        double[] unitGroups = !anyPerGroup ? [] : g.GroupSize == 1 ? new double[g.Size * g.Size] : Matrix(g.UnitGroups * g.UnitGroups);
        foreach (PermutedAxis axis in g.Axes)
        {
            long[] shape = _model.ShapeOf(axis.Tensor)!;
            int[]?[] maps = _spec.IndexMaps(axis.Tensor, shape.Length, permutations, group);
            int n = axis.PerUnitGroup ? g.UnitGroups : g.Size;
            Accumulate(axis, shape, maps, n, axis.PerUnitGroup ? unitGroups : units);
        }

        return (units, unitGroups);
    }

    /// <summary><c>Σ ⟨A, π(B)⟩</c> over every permuted tensor, in float64, tensor-name order and row-major element order.</summary>
    public double Objective(int[][] permutations)
    {
        var names = new List<string>(_spec.PermutedTensors);
        names.Sort(StringComparer.Ordinal);
        double total = 0;
        foreach (string name in names)
        {
            long[] shape = _model.ShapeOf(name)!;
            int[]?[] maps = _spec.IndexMaps(name, shape.Length, permutations);
            // A 1-D tensor is one row whose only axis is the column axis here.
            int rows = shape.Length == 1 ? 1 : checked((int)shape[0]);
            int columns = checked((int)shape[^1]);
            int[]? rowMap = shape.Length == 1 ? null : maps[0];
            int[]? columnMap = maps[^1];
            Span<float> a = Row(ref _rowA, columns), b = Row(ref _rowB, columns);
            double sum = 0;
            for (int r = 0; r < rows; r++)
            {
                _reference.Read(name, (long)r * columns, a);
                _model.Read(name, (long)(rowMap is null ? r : rowMap[r]) * columns, b);
                if (columnMap is null)
                {
                    for (int c = 0; c < columns; c++) sum += (double)a[c] * b[c];
                }
                else
                {
                    for (int c = 0; c < columns; c++) sum += (double)a[c] * b[columnMap[c]];
                }
            }

            total += sum;
        }

        return total;
    }

    /// <summary>The zeroed reusable matrix of <paramref name="length"/> entries (valid until the next <see cref="Build"/>).</summary>
    private double[] Matrix(int length)
    {
        if (!_matrices.TryGetValue(length, out double[]? matrix)) _matrices[length] = matrix = new double[length];
        else Array.Clear(matrix);
        return matrix;
    }

    /// <summary>Adds <c>A_units · B_unitsᵀ</c> of one tensor axis to <paramref name="target"/> (n × n), chunk by chunk of k.</summary>
    private void Accumulate(PermutedAxis axis, long[] shape, int[]?[] maps, int n, double[] target)
    {
        int rows = checked((int)shape[0]);
        int columns = shape.Length == 2 ? checked((int)shape[1]) : 1;
        int rest = axis.Axis == 0 ? columns : rows;
        int k = checked(axis.BlockSize * rest);
        int chunk = (int)Math.Min(k, Math.Max(1, TileElements / n));
        int blockRows = (int)Math.Min(n, Math.Max(1, TileElements / n));
        Span<float> tileA = Tile(ref _tileA, (long)n * chunk), tileB = Tile(ref _tileB, (long)n * chunk);
        Span<float> product = Tile(ref _product, (long)blockRows * n);
        for (int p0 = 0; p0 < k; p0 += chunk)
        {
            int width = Math.Min(chunk, k - p0);
            Gather(_reference, axis, shape, null, null, n, p0, width, tileA, ref _rowA);
            Gather(_model, axis, shape, shape.Length == 2 ? maps[0] : null, shape.Length == 2 ? maps[1] : null, n, p0, width, tileB, ref _rowB);
            for (int i0 = 0; i0 < n; i0 += blockRows)
            {
                int m = Math.Min(blockRows, n - i0);
                _gemm.MultiplyTransposed(tileA.Slice(i0 * width, m * width), tileB[..(n * width)], product, m, width, n);
                Span<double> targetRows = target.AsSpan(i0 * n, m * n);
                for (int i = 0; i < targetRows.Length; i++) targetRows[i] += product[i];
            }
        }
    }

    /// <summary>
    /// Fills <paramref name="tile"/> (n × width) with columns <c>[p0, p0 + width)</c> of the unit rows of one tensor:
    /// element p of unit u is, for axis 0, <c>T[u·b + p / r, columnMap(p % r)]</c>, and for axis 1,
    /// <c>T[rowMap(p % r), u·b + p / r]</c> (r = the other axis's length, b = the block size), the layout the
    /// in-memory path built by transposing.
    /// </summary>
    private static void Gather(AlignmentTensors source, PermutedAxis axis, long[] shape, int[]? rowMap, int[]? columnMap,
        int n, int p0, int width, Span<float> tile, ref float[] rowBuffer)
    {
        int rows = checked((int)shape[0]);
        int columns = shape.Length == 2 ? checked((int)shape[1]) : 1;
        int block = axis.BlockSize, p1 = p0 + width;
        Span<float> row = Row(ref rowBuffer, columns);
        if (axis.Axis == 0)
        {
            int rest = columns;
            for (int u = 0; u < n; u++)
            {
                Span<float> unit = tile.Slice(u * width, width);
                for (int e = p0 / rest; e < block && e * rest < p1; e++)
                {
                    source.Read(axis.Tensor, (long)(u * block + e) * columns, row);
                    int from = Math.Max(p0 - e * rest, 0), to = Math.Min(p1 - e * rest, rest);
                    for (int c = from; c < to; c++) unit[e * rest + c - p0] = row[columnMap is null ? c : columnMap[c]];
                }
            }
        }
        else
        {
            int rest = rows;
            for (int r = 0; r < rest; r++)
            {
                bool needed = false;
                for (int e = 0; e < block && !needed; e++) needed = e * rest + r >= p0 && e * rest + r < p1;
                if (!needed) continue;
                source.Read(axis.Tensor, (long)(rowMap is null ? r : rowMap[r]) * columns, row);
                for (int e = 0; e < block; e++)
                {
                    int p = e * rest + r;
                    if (p < p0 || p >= p1) continue;
                    for (int u = 0; u < n; u++) tile[u * width + p - p0] = row[u * block + e];
                }
            }
        }
    }

    private static Span<float> Tile(ref float[] buffer, long length)
    {
        if (buffer.Length < length) buffer = new float[checked((int)length)];
        return buffer.AsSpan(0, (int)length);
    }

    private static Span<float> Row(ref float[] buffer, int length) => Tile(ref buffer, length);
}
