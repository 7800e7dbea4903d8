using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Methods;

/// <summary>
/// Model Breadcrumbs' two-sided cut (<see cref="IMergeKernels.KeepMagnitudeBand"/>) of a task vector seen in chunks.
/// In the ascending (magnitude, index) order the band keeps ranks [dropBottom, n − dropTop): counting passes find
/// the key at rank dropBottom (the first kept) and at rank n − dropTop (the first dropped) and how many elements lie
/// below each — one pass when a sample of the first chunk brackets both cuts, three when one misses
/// (<see cref="SampledThresholdSearch"/>: exact either way); then each chunk, in index order, drops what lies beyond
/// the keys and the ties on the wrong side of their rank, the tie budgets carried from chunk to chunk.
/// </summary>
internal sealed class MagnitudeBand
{
    private readonly long _length;
    private readonly long _dropBottom;
    private readonly long _dropTop;
    private readonly bool _dropsAll;
    private readonly SampledThresholdSearch? _lower;
    private readonly SampledThresholdSearch? _upper;
    private int _lowerKey;
    private long _lowerTiesToDrop;
    private int _upperKey = int.MaxValue;
    private long _upperTiesToKeep = long.MaxValue;
    private long _lowerTiesLeft;
    private long _upperTiesLeft;

    /// <summary>The band of <paramref name="length"/> elements without the lowest <paramref name="dropBottom"/> and highest <paramref name="dropTop"/>.</summary>
    public MagnitudeBand(long length, long dropBottom, long dropTop)
    {
        _length = length;
        _dropBottom = dropBottom;
        _dropTop = dropTop;
        if (dropBottom + dropTop >= length)
        {
            _dropsAll = true;
            return;
        }
        // Keeping the n − dropBottom largest puts the threshold at ascending rank dropBottom; keeping the dropTop
        // largest at rank n − dropTop. Both keep counts lie in [1, n − 1], so both searches count.
        if (dropBottom > 0) _lower = new SampledThresholdSearch(length, length - dropBottom);
        if (dropTop > 0) _upper = new SampledThresholdSearch(length, dropTop);
    }

    /// <summary>Whether counting passes are needed (a cut on either side).</summary>
    public bool NeedsSearch => _lower is not null || _upper is not null;

    /// <summary>
    /// Counting passes still needed at most: 3 before the first (one sampled, two more if a bracket misses), 0 once
    /// both cuts are known. It only ever decreases.
    /// </summary>
    public int PassesLeft => Math.Max(_lower?.PassesLeft ?? 0, _upper?.PassesLeft ?? 0);

    /// <summary>Counts one chunk in the current counting pass.</summary>
    public void Observe(IMergeKernels kernels, ReadOnlySpan<float> chunk)
    {
        _lower?.Observe(kernels, chunk);
        _upper?.Observe(kernels, chunk);
    }

    /// <summary>Closes a counting pass; after the last one the cuts are known.</summary>
    public void EndPass()
    {
        _lower?.EndPass();
        _upper?.EndPass();
        if (_lower is { IsComplete: true } lower)
        {
            // Ties at the first kept key hold ranks CountBelow, CountBelow + 1, … by index: those below dropBottom leave.
            _lowerKey = lower.ThresholdKey;
            _lowerTiesToDrop = _dropBottom - lower.CountBelow;
        }
        if (_upper is { IsComplete: true } upper)
        {
            // Ties at the first dropped key: those below rank n − dropTop stay.
            _upperKey = upper.ThresholdKey;
            _upperTiesToKeep = _length - _dropTop - upper.CountBelow;
        }
    }

    /// <summary>Cuts the chunk at tensor index <paramref name="offset"/>; chunks come in index order from offset 0.</summary>
    public void Apply(IMergeKernels kernels, Span<float> chunk, long offset)
    {
        if (_dropsAll)
        {
            chunk.Clear();
            return;
        }
        if (!NeedsSearch) return;
        if (offset == 0)
        {
            _lowerTiesLeft = _lowerTiesToDrop;
            _upperTiesLeft = _upperTiesToKeep;
        }
        var (dropped, kept) = kernels.KeepMagnitudeBandChunk(chunk, _lowerKey, _lowerTiesLeft, _upperKey, _upperTiesLeft);
        _lowerTiesLeft -= dropped;
        _upperTiesLeft -= kept;
    }
}
