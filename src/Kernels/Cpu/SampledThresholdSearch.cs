namespace Weld.Kernels.Cpu;

/// <summary>
/// The exact top-k magnitude cut of a tensor seen in chunks, as <see cref="MagnitudeThresholdSearch"/> finds it, but in
/// one counting pass when a sample brackets the cut: a sample of the first chunk gives a key bracket, every chunk's
/// keys below the bracket are counted and those inside it gathered, and the cut is selected among the gathered keys.
/// </summary>
/// <remarks>
/// The histogram search reads the tensor twice (bits 30..15, then 14..0) and scatters every key into 64K bins; this
/// pass only compares each key against two bounds and keeps the few percent inside them, so a streamed TIES tensor
/// (the embedding of a 1B model at the default memory limit) is read twice instead of three times. When the cut falls
/// outside the bracket (a first chunk unlike the rest of the tensor, or keys so tied that no useful bracket exists)
/// the search goes on with the two histogram passes: the cut is exact either way, only <see cref="PassesLeft"/>
/// differs. A bracket of at most ~1M distinct keys (task vectors of bf16 weights take few distinct values, with heavy
/// ties) is counted per key (8 MiB); a wider one gathers its keys (a few percent of the tensor, given up beyond an
/// eighth of it; when the sample already puts three quarters of that eighth in the bracket, the search skips the
/// sampled pass and counts with the two histogram passes from the start: two passes, not three). Either lives until <see cref="EndPass"/>.
/// </remarks>
public sealed unsafe class SampledThresholdSearch
{
    /// <summary>A first chunk shorter than this is no sample: the search runs the histogram passes.</summary>
    public const int MinimumSampleChunk = 1 << 20;

    // One percent of the sample's positions on each side beyond the binomial margin: room for the rest of the tensor
    // to differ a little from its first chunk.
    private const int ExtraMargin = SampledMagnitudeSelect.SampleSize / 100;

    /// <summary>A bracket of at most this many distinct keys is counted per key instead of gathered (8 MiB of counts).</summary>
    private const int MaxCountedKeys = (1 << 20) + 1;

    private readonly long _length;
    private long _keep;
    private long _rank;
    private bool _passClosed;
    private readonly object _gate = new();
    private MagnitudeThresholdSearch? _histogram;
    private bool _bracketed;
    private bool _missed;
    private int _low, _high;
    private long _countBelow;
    private int[] _gathered = [];
    private long[]? _counts; // per key of a narrow bracket (bf16-derived keys: few distinct values, heavy ties)
    private long _gatheredCount;

    /// <summary>Starts a search for the <paramref name="keep"/> largest magnitudes of <paramref name="length"/> elements.</summary>
    public SampledThresholdSearch(long length, long keep)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfNegative(keep);
        _length = length;
        _keep = Math.Min(keep, length);
        _rank = length - _keep; // the k-th largest key sits at ascending rank n − k
        if (_keep == 0)
            Finish(int.MaxValue, 0, 0); // nothing lies above the largest key, no tie is kept
        else if (_keep == length)
            Finish(0, long.MaxValue, 0); // every key is at least 0
    }

    /// <summary>True when the cut is known.</summary>
    public bool IsComplete { get; private set; }

    /// <summary>
    /// Counting passes still needed at most: 3 before the first (one sampled, then two histogram passes if the bracket
    /// misses), 0 once <see cref="IsComplete"/>. It only ever decreases.
    /// </summary>
    public int PassesLeft => IsComplete ? 0 : _histogram is { } h ? 2 - h.Pass : 3;

    /// <summary>Elements with a larger key are kept.</summary>
    public int ThresholdKey { get; private set; }

    /// <summary>How many elements with key == <see cref="ThresholdKey"/> are kept, lowest indices first.</summary>
    public long TiesToKeep { get; private set; }

    /// <summary>
    /// Elements with a smaller key than <see cref="ThresholdKey"/> (as <see cref="MagnitudeThresholdSearch.CountBelow"/>):
    /// exact for 0 &lt; keep &lt; length and for keep = length (0); not known for keep = 0.
    /// </summary>
    public long CountBelow { get; private set; }

    /// <summary>
    /// Replaces the keep count before the first pass closes, for a caller that learns it only by the end of that pass
    /// (SCE's k = ⌊select_topk · #{var ≠ 0}⌋ counts the nonzero variances in the pass that samples and counts them).
    /// The bracket was sampled for the count given at construction, an estimate; the cut stays exact for the new count,
    /// and when the bracket does not hold it the histogram passes follow, as for any miss.
    /// </summary>
    /// <exception cref="InvalidOperationException">A pass was closed, or the search began complete (keep 0 or the
    /// length, so it counted nothing) and the new count needs the counts.</exception>
    public void Retarget(long keep)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(keep);
        keep = Math.Min(keep, _length);
        if (_passClosed)
            throw new InvalidOperationException("The keep count can only change before the first pass closes.");
        if (keep == _keep)
            return;
        bool special = keep == 0 || keep == _length;
        if (IsComplete && !special)
            throw new InvalidOperationException("A search that began complete counted nothing: start it with 0 < keep < length.");
        _keep = keep;
        _rank = _length - keep;
        _histogram?.Retarget(keep);
        if (keep == 0)
            Finish(int.MaxValue, 0, 0);
        else if (keep == _length)
            Finish(0, long.MaxValue, 0);
    }

    /// <summary>Counts one chunk in the current pass (the first chunk observed gives the sample).</summary>
    public void Observe(IMergeKernels kernels, ReadOnlySpan<float> chunk)
    {
        if (IsComplete) return;
        if (_histogram is { } histogram)
        {
            histogram.Observe(kernels, chunk);
            return;
        }
        fixed (float* data = chunk)
        {
            if (!_bracketed && !TryBracket(data, chunk.Length))
            {
                // No sample to be had: this pass becomes the first histogram pass.
                _histogram = new MagnitudeThresholdSearch(_length, _keep);
                _histogram.Observe(kernels, chunk);
                return;
            }
            if (!_missed) Gather(data, chunk.Length, Options(kernels));
        }
    }

    /// <summary>Closes the current pass after every chunk was observed once.</summary>
    public void EndPass()
    {
        _passClosed = true;
        if (IsComplete) return;
        if (_histogram is { } histogram)
        {
            histogram.EndPass();
            if (histogram.IsComplete) Finish(histogram.ThresholdKey, histogram.TiesToKeep, histogram.CountBelow);
            return;
        }
        if (!_missed && _counts is { } counts && _rank >= _countBelow && _rank < _countBelow + _gatheredCount)
        {
            // Walk the bracket's keys upward until the running count passes the rank.
            long cumulative = _countBelow;
            int offset = 0;
            while (cumulative + counts[offset] <= _rank) cumulative += counts[offset++];
            Finish(_low + offset, _keep - (_length - cumulative - counts[offset]), cumulative);
        }
        else if (!_missed && _counts is null && _rank >= _countBelow && _rank < _countBelow + _gatheredCount)
        {
            // A radix select on key − low (digits from the top of the bracket's width: two passes for a bracket of up to
            // 2^22 keys), not on all 31 bits of the keys (three passes, once per tensor, so mostly in unoptimized code).
            int count = (int)_gatheredCount;
            Span<int> equalPerChunk = stackalloc int[1];
            MagnitudeRank inner = BracketSelect.Select(_gathered, count, [count], 1, _low, _high, _rank - _countBelow, equalPerChunk);
            long above = _length - _countBelow - inner.CountBelow - inner.CountEqual;
            Finish(inner.Key, _keep - above, _countBelow + inner.CountBelow);
        }
        else
        {
            // The bracket missed the cut: the two histogram passes follow.
            _histogram = new MagnitudeThresholdSearch(_length, _keep);
        }
        _gathered = [];
        _counts = null;
    }

    private bool TryBracket(float* data, int length)
    {
        _bracketed = true;
        if (length < MinimumSampleChunk)
            return false;
        long rank = (long)((double)_rank / _length * length);
        if (!SampledMagnitudeSelect.TryBracket((int*)data, length, Math.Min(rank, length - 1), out _low, out _high, out double share, ExtraMargin))
            return false;
        if ((long)_high - _low < MaxCountedKeys)
            _counts = new long[_high - _low + 1];
        else if (share * _length > 0.75 * Cap)
            return false; // the sample already fills most of the gathering cap: a miss is likely, take the two histogram passes now
        else
            _gathered = new int[(int)Math.Min(Cap, (long)(1.5 * share * _length) + ChunkedParallel.ChunkLength)];
        return true;
    }

    /// <summary>Counts the chunk's keys below the bracket and appends those inside it (in any order: only the multiset counts).</summary>
    private void Gather(float* data, int length, ParallelOptions options)
    {
        nint address = (nint)data;
        ChunkedParallel.For(length, options, chunk =>
        {
            int size = ChunkedParallel.ChunkSize(chunk, length);
            int[] band = System.Buffers.ArrayPool<int>.Shared.Rent(size);
            try
            {
                int stored;
                long below;
                fixed (int* destination = band)
                    stored = SampledMagnitudeSelect.Partition((int*)address + ChunkedParallel.ChunkStart(chunk), size, _low, _high, destination, size, out below);
                lock (_gate)
                {
                    _countBelow += below;
                    if (_counts is { } counts)
                    {
                        foreach (int key in band.AsSpan(0, stored)) counts[key - _low]++;
                        _gatheredCount += stored;
                        return;
                    }
                    if (_missed) return;
                    if (_gatheredCount + stored > Cap)
                    {
                        // Far more keys inside the bracket than the sample promised: give up on it.
                        _missed = true;
                        _gathered = [];
                        return;
                    }
                    if (_gatheredCount + stored > _gathered.Length)
                        Array.Resize(ref _gathered, (int)Math.Min(Cap, Math.Max(2L * _gathered.Length, _gatheredCount + stored)));
                    band.AsSpan(0, stored).CopyTo(_gathered.AsSpan((int)_gatheredCount));
                    _gatheredCount += stored;
                }
            }
            finally
            {
                System.Buffers.ArrayPool<int>.Shared.Return(band);
            }
        });
    }

    /// <summary>The most keys gathered before the bracket is given up.</summary>
    private long Cap => Math.Min(_length / 8 + 1, Array.MaxLength);

    private static ParallelOptions Options(IMergeKernels kernels) =>
        new() { MaxDegreeOfParallelism = kernels is CpuKernels cpu ? cpu.MaxDegreeOfParallelism : -1 };

    private void Finish(int key, long ties, long countBelow)
    {
        ThresholdKey = key;
        TiesToKeep = ties;
        CountBelow = countBelow;
        IsComplete = true;
    }
}
