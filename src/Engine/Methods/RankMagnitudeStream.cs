using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>
/// DELLA's MagPrune (<see cref="RankMagnitudeSampling"/>) of one task vector seen in chunks. Fibers along dim 1 never
/// leave their [dim 1 × rest] slice of length · stride elements, and the draws are keyed by tensor index, so a chunk
/// samples the slices it holds whole exactly as the whole tensor does. A slice that a chunk boundary cuts is copied
/// piece by piece in a statistics pass, sampled whole at the end of it, and its sampled pieces are handed back to the
/// chunks that hold them.
/// </summary>
internal sealed class RankMagnitudeStream
{
    private readonly string _tensorName;
    private readonly long _tensorLength;
    private readonly int _length;
    private readonly int _inner;
    private readonly long _slice;
    private readonly double _density;
    private readonly double _epsilon;
    private readonly bool _divide;
    private readonly PhiloxKey _key;

    /// <summary>The slices cut by a chunk boundary, by slice number: their task vector, sampled once the pass ends.</summary>
    private readonly Dictionary<long, float[]> _cutSlices = [];

    /// <summary>Samples row <paramref name="row"/> of the tensor <paramref name="description"/> describes.</summary>
    public RankMagnitudeStream(TensorMergeInputs description, int row, double density, double epsilon, bool divideByProbability)
    {
        _tensorName = description.TensorName;
        _tensorLength = description.TensorLength;
        _density = density;
        _epsilon = epsilon;
        _divide = divideByProbability;
        _key = description.RandomKey(row);
        if (density <= 0 || density >= 1)
            return; // cleared or untouched: no fibers needed
        RankMagnitudeSampling.Validate(_tensorName, description.ModelIndices[row], density, epsilon);
        var (length, inner) = RankMagnitudeSampling.FiberLayout(description.Shape, _tensorLength);
        _slice = length * inner;
        if (_slice == 0)
            return; // an empty tensor
        if (_tensorLength % _slice != 0)
            throw new WeldException(
                $"{_tensorName}: della samples along dim 1 of the whole tensor, but shape [{string.Join(", ", description.Shape)}] "
                + $"does not hold the {_tensorLength} elements given");
        if (_slice > TensorMergeInputs.ChunkAlignment)
            throw new WeldException(
                $"{_tensorName}: della ranks fibers along dim 1 within slices of {_slice:N0} elements, more than one chunk of "
                + $"{TensorMergeInputs.ChunkAlignment:N0}; raise --memory-limit so the tensor is merged whole");
        _length = (int)length;
        _inner = (int)inner;
    }

    private bool Samples => _density > 0 && _density < 1 && _slice > 0;

    /// <summary>
    /// Whether a chunk boundary can cut a slice: chunks start at multiples of <see cref="TensorMergeInputs.ChunkAlignment"/>,
    /// so a slice length that divides it (any power of two up to 2²⁰: every Llama-shaped row) is never cut and the
    /// statistics pass that gathers cut slices can be skipped.
    /// </summary>
    public bool CutsSlices => Samples && TensorMergeInputs.ChunkAlignment % _slice != 0;

    /// <summary>Statistics pass: copies the pieces of cut slices that the chunk at <paramref name="offset"/> holds.</summary>
    public void Observe(ReadOnlySpan<float> delta, long offset)
    {
        if (!Samples) return;
        foreach (var (slice, start, end) in CutPieces(offset, delta.Length))
        {
            if (!_cutSlices.TryGetValue(slice, out float[]? values))
                _cutSlices[slice] = values = new float[_slice];
            delta.Slice((int)(start - offset), (int)(end - start)).CopyTo(values.AsSpan((int)(start - slice * _slice)));
        }
    }

    /// <summary>Ends the statistics pass: every cut slice, now complete, is sampled whole.</summary>
    public void SampleCutSlices(IMergeKernels kernels)
    {
        foreach (var (slice, values) in _cutSlices)
            RankMagnitudeSampling.Sample(kernels, values, _length, _inner, _density, _epsilon, _divide, _key, slice * _slice);
    }

    /// <summary>
    /// The keep decisions of the L1 norm pass (<see cref="KeepMask"/>: one bit per element, 1/32 of the tensor's
    /// float32 size), so that the apply pass replays them instead of sampling again; null until recorded, or when a chunk
    /// did not start on a 64-element boundary.
    /// </summary>
    private ulong[]? _kept;
    private bool _keptWhole = true;

    /// <summary>
    /// <see cref="Apply"/>, remembering the outcome for <see cref="TryReplay"/> (kept elements are δ unchanged and dropped
    /// ones +0 unless each kept one is divided by its p).
    /// </summary>
    public void ApplyAndRemember(IMergeKernels kernels, Span<float> delta, long offset)
    {
        Apply(kernels, delta, offset);
        if (!Samples || _divide || !_keptWhole)
            return;
        if (offset % 64 != 0)
        {
            _keptWhole = false;
            _kept = null;
            return;
        }
        _kept ??= new ulong[KeepMask.Words(_tensorLength)];
        KeepMask.Record(delta, _kept.AsSpan((int)(offset / 64)));
    }

    /// <summary>MagPrune of the chunk at <paramref name="offset"/> from the decisions <see cref="ApplyAndRemember"/> recorded for every chunk; false when there are none.</summary>
    public bool TryReplay(Span<float> delta, long offset)
    {
        if (_kept is null || !_keptWhole)
            return false;
        KeepMask.Replay(delta, _kept.AsSpan((int)(offset / 64)));
        return true;
    }

    /// <summary>MagPrune of the chunk at <paramref name="offset"/>, in place.</summary>
    public void Apply(IMergeKernels kernels, Span<float> delta, long offset)
    {
        if (_density >= 1) return;
        if (_density <= 0)
        {
            delta.Clear();
            return;
        }
        if (!Samples) return;
        long end = offset + delta.Length;
        long wholeStart = (offset + _slice - 1) / _slice * _slice, wholeEnd = end / _slice * _slice;
        if (wholeStart < wholeEnd)
            RankMagnitudeSampling.Sample(kernels, delta.Slice((int)(wholeStart - offset), (int)(wholeEnd - wholeStart)),
                _length, _inner, _density, _epsilon, _divide, _key, wholeStart);
        foreach (var (slice, start, pieceEnd) in CutPieces(offset, delta.Length))
            _cutSlices[slice].AsSpan((int)(start - slice * _slice), (int)(pieceEnd - start)).CopyTo(delta.Slice((int)(start - offset)));
    }

    /// <summary>The pieces [start, end) of the chunk [offset, offset + count) that belong to slices it does not hold whole.</summary>
    private List<(long Slice, long Start, long End)> CutPieces(long offset, int count)
    {
        var pieces = new List<(long, long, long)>(2);
        long end = offset + count;
        long first = offset / _slice, last = (end - 1) / _slice;
        if (count == 0) return pieces;
        foreach (long slice in first == last ? new[] { first } : new[] { first, last })
        {
            long sliceStart = slice * _slice, sliceEnd = Math.Min(sliceStart + _slice, _tensorLength);
            if (sliceStart >= offset && sliceEnd <= end) continue; // held whole
            pieces.Add((slice, Math.Max(sliceStart, offset), Math.Min(sliceEnd, end)));
        }
        return pieces;
    }
}
