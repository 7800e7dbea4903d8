using System.Runtime.InteropServices;

namespace Weld.Kernels.Cuda;

/// <summary>
/// The CUDA backend: hand-written kernels (<c>src/Kernels/Cuda/*.cu</c>) compiled by NVRTC for the device present,
/// launched through the driver API. Host spans in and out: each call uploads its inputs through pinned staging
/// buffers (on a copy stream), runs on the compute stream, and downloads the result. Device buffers come from a
/// pool and are reused across calls.
/// </summary>
/// <remarks>
/// Results are bit-identical to <see cref="Cpu.CpuKernels"/> for every elementwise method, the top-k and band masks
/// and DARE (NaN payloads aside: the GPU returns canonical NaNs where x86 keeps payloads); the float64 reductions
/// add in the CPU's order too, so they return the same bits. Calls are serialised by a lock: one backend, one device,
/// one call at a time.
/// </remarks>
public sealed unsafe partial class CudaKernels : IMergeKernels, IDisposable
{
    private const int Threads = 256;
    private const int ReductionThreads = 64; // WELD_REDUCE_THREADS in reduce.cu
    private const int ReductionLanes = 8; // WELD_REDUCE_LANES: accumulators per chunk, as ReductionKernels has
    private const int Tile = 4096; // WELD_TILE in select.cu
    private const int KeyMask = 0x7FFFFFFF;

    private readonly CudaDevice _device;
    private readonly CudaKernelModule _module;
    private readonly DeviceMemoryPool _pool = new();
    private readonly PinnedStaging _staging;
    private readonly Lock _gate = new();
    private bool _disposed;

    /// <summary>Opens device <paramref name="deviceOrdinal"/> and compiles (or loads from the PTX cache) the kernels.</summary>
    /// <param name="deviceOrdinal">The N of cuda:N.</param>
    /// <exception cref="CudaException">No usable device, no NVRTC, or a CUDA call failed.</exception>
    public CudaKernels(int deviceOrdinal = 0)
    {
        _device = new CudaDevice(deviceOrdinal);
        try
        {
            if (!NvrtcCompiler.TryLoad(out string reason))
                throw new CudaException(reason);
            _module = new CudaKernelModule(_device.ComputeCapability, $"{_device.Name} sm_{_device.ComputeCapability}");
            _staging = new PinnedStaging(_device);
        }
        catch
        {
            _device.Dispose();
            throw;
        }
    }

    /// <summary>Whether <see cref="CudaKernels(int)"/> can start: driver, device and NVRTC present.</summary>
    /// <param name="deviceOrdinal">The N of cuda:N.</param>
    /// <param name="reason">Why not, in one line ("" when it can).</param>
    public static bool IsAvailable(int deviceOrdinal, out string reason)
    {
        if (!CudaDevice.Probe(deviceOrdinal, out reason))
            return false;
        if (!NvrtcCompiler.TryLoad(out string nvrtcProblem))
        {
            reason = nvrtcProblem;
            return false;
        }
        return true;
    }

    /// <inheritdoc />
    public string Name => $"cuda:{_device.Ordinal}";

    /// <summary>The device's name (for example "NVIDIA H100 80GB HBM3").</summary>
    public string DeviceName => _device.Name;

    /// <summary>The device's compute capability ×10.</summary>
    public int ComputeCapability => _device.ComputeCapability;

    /// <summary>The virtual architecture the kernels were compiled for (×10).</summary>
    public int Architecture => _module.Architecture;

    internal CudaDevice Device => _device;

    internal CudaKernelModule Module => _module;

    internal DeviceMemoryPool Pool => _pool;

    internal PinnedStaging Staging => _staging;

    internal Lock Gate => _gate;

    // ------------------------------------------------------------------ IMergeKernels

    /// <inheritdoc />
    public void WeightedSum(ReadOnlySpan<float> stacked, ReadOnlySpan<float> weights, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stacked.Length, weights.Length, length, nameof(stacked));
        if (length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer source = call.Upload(stacked);
        DeviceBuffer weightBuffer = call.Upload(weights);
        DeviceBuffer result = call.Rent((long)length * sizeof(float));
        LaunchWeightedSum(source.Pointer, weightBuffer.Pointer, weights.Length, length, result.Pointer);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void SubtractRows(Span<float> stacked, ReadOnlySpan<float> baseline)
    {
        int length = baseline.Length;
        int rows = StackedRows.Count(stacked.Length, length, nameof(stacked));
        if (rows == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer data = call.Upload(stacked);
        DeviceBuffer baselineBuffer = call.Upload(baseline);
        LaunchSubtractRows(data.Pointer, rows, baselineBuffer.Pointer, length);
        call.Download(data, stacked);
    }

    /// <inheritdoc />
    public TopKSelection KeepTopK(Span<float> values, long k)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        int length = values.Length;
        if (k == 0)
        {
            values.Clear();
            return new TopKSelection(float.PositiveInfinity, 0, 0);
        }
        long kept = Math.Min(k, length);
        if (kept == 0)
            return new TopKSelection(float.PositiveInfinity, 0, 0);

        using var call = new Call(this);
        DeviceBuffer data = call.Upload(values);
        TopKSelection selection = KeepTopKOnDevice(call, data.Pointer, length, kept);
        if (kept < length)
            call.Download(data, values);
        return selection;
    }

    /// <inheritdoc />
    public void KeepMagnitudeBand(Span<float> values, long dropBottom, long dropTop)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(dropBottom);
        ArgumentOutOfRangeException.ThrowIfNegative(dropTop);
        int length = values.Length;
        if (dropBottom + dropTop >= length)
        {
            values.Clear();
            return;
        }
        if (dropBottom == 0 && dropTop == 0)
            return;

        using var call = new Call(this);
        DeviceBuffer data = call.Upload(values);
        CutOnDevice? lower = null, upper = null;
        if (dropBottom > 0)
        {
            // The last element dropped at the bottom sits at rank dropBottom − 1; its ties leave lowest indices first.
            MagnitudeRankOnDevice cut = SelectRank(call, data.Pointer, length, dropBottom - 1);
            lower = new CutOnDevice(cut.Key, 0, dropBottom - cut.CountBelow, cut.CountEqual);
        }
        if (dropTop > 0)
        {
            // The first element dropped at the top sits at rank n − dropTop; its ties leave highest indices first.
            MagnitudeRankOnDevice cut = SelectRank(call, data.Pointer, length, length - dropTop);
            long droppedAtCut = cut.CountBelow + cut.CountEqual - (length - dropTop);
            upper = new CutOnDevice(cut.Key, cut.CountEqual - droppedAtCut, cut.CountEqual, cut.CountEqual);
        }
        ApplyMask(call, data.Pointer, length, lower, upper);
        call.Download(data, values);
    }

    /// <inheritdoc />
    public void DropAndRescale(Span<float> values, float density, bool rescale, PhiloxKey key, long firstIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstIndex);
        if (float.IsNaN(density) || density < 0f)
            throw new ArgumentOutOfRangeException(nameof(density), density, "The keep probability must be in [0, 1].");
        if (density >= 1f || values.Length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer data = call.Upload(values);
        LaunchDropAndRescale(data.Pointer, values.Length, density, rescale, key, firstIndex);
        call.Download(data, values);
    }

    /// <inheritdoc />
    public void MagnitudeHistogram(ReadOnlySpan<float> values, int prefix, int shift, int width, Span<long> histogram)
    {
        if (width is < 1 or > 16 || shift < 0 || shift + width > 31)
            throw new ArgumentOutOfRangeException(nameof(width), width, "Digits are 1 to 16 bits inside the 31-bit magnitude key.");
        int bins = 1 << width;
        if (histogram.Length < bins)
            throw new ArgumentException($"The histogram needs {bins} entries.", nameof(histogram));
        if (values.Length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer data = call.Upload(values);
        DeviceBuffer counts = call.Rent((long)bins * sizeof(uint));
        LaunchHistogram(data.Pointer, values.Length, prefix, shift, width, counts.Pointer);
        uint[] host = new uint[bins];
        fixed (uint* destination = host)
            _staging.Download(counts.Pointer, destination, (long)bins * sizeof(uint));
        for (int digit = 0; digit < bins; digit++)
            histogram[digit] += host[digit];
    }

    /// <inheritdoc />
    public long KeepAboveMagnitude(Span<float> values, int thresholdKey, long tiesToKeep)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(thresholdKey);
        ArgumentOutOfRangeException.ThrowIfNegative(tiesToKeep);
        int length = values.Length;
        if (length == 0)
            return 0;
        using var call = new Call(this);
        DeviceBuffer data = call.Upload(values);
        long tiles = (length + Tile - 1) / Tile;
        DeviceBuffer tileCounts = CountKeyPerTile(call, data.Pointer, length, tiles, (uint)thresholdKey, out uint[] perTile);
        long equal = 0;
        foreach (uint count in perTile)
            equal += count;
        long kept = Math.Min(tiesToKeep, equal);
        // A lower cut at the threshold: keys below leave, ties from tie index `kept` on leave.
        CutArgument lower;
        ulong tiesBefore = 0, countsPointer = 0;
        if (kept >= equal)
            lower = new CutArgument((uint)thresholdKey, CutMode.KeepTies, 0, 0);
        else if (kept == 0)
            lower = new CutArgument((uint)thresholdKey, CutMode.DropTies, 0, 0);
        else
        {
            tiesBefore = UploadTiesBefore(call, perTile);
            countsPointer = tileCounts.Pointer;
            lower = new CutArgument((uint)thresholdKey, CutMode.ByIndex, kept, long.MaxValue);
        }
        LaunchMask(data.Pointer, length, tiles, lower, tiesBefore, countsPointer, new CutArgument(0, CutMode.None, 0, 0), 0, 0);
        call.Download(data, values);
        return kept;
    }

    /// <inheritdoc />
    public void SignConsensusMerge(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> weights,
        SignElection election, bool normalize, Span<float> output)
    {
        if (election is not (SignElection.Sum or SignElection.Count))
            throw new ArgumentOutOfRangeException(nameof(election), election, "Unknown sign election.");
        int length = output.Length;
        RequireStacked(stackedDeltas.Length, weights.Length, length, nameof(stackedDeltas));
        if (length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer source = call.Upload(stackedDeltas);
        DeviceBuffer weightBuffer = call.Upload(weights);
        DeviceBuffer result = call.Rent((long)length * sizeof(float));
        LaunchSignConsensus(source.Pointer, weightBuffer.Pointer, weights.Length, length, election, normalize, result.Pointer);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length)
            throw new ArgumentException($"Expected {a.Length} elements, got {b.Length}.", nameof(b));
        if (a.Length == 0)
            return 0;
        using var call = new Call(this);
        DeviceBuffer left = call.Upload(a);
        DeviceBuffer right = call.Upload(b);
        return Reduce(call, "dot_f64", left.Pointer, right.Pointer, a.Length);
    }

    /// <inheritdoc />
    public double SumOfSquares(ReadOnlySpan<float> x)
    {
        if (x.Length == 0)
            return 0;
        using var call = new Call(this);
        DeviceBuffer data = call.Upload(x);
        return Reduce(call, "sum_of_squares_f64", data.Pointer, 0, x.Length);
    }

    /// <inheritdoc />
    public double SumOfAbs(ReadOnlySpan<float> x)
    {
        if (x.Length == 0)
            return 0;
        using var call = new Call(this);
        DeviceBuffer data = call.Upload(x);
        return Reduce(call, "sum_of_abs_f64", data.Pointer, 0, x.Length);
    }

    /// <inheritdoc />
    public void Axpby(float a, ReadOnlySpan<float> x, float b, ReadOnlySpan<float> y, Span<float> output)
    {
        if (x.Length != output.Length)
            throw new ArgumentException($"Expected {output.Length} elements, got {x.Length}.", nameof(x));
        if (y.Length != output.Length)
            throw new ArgumentException($"Expected {output.Length} elements, got {y.Length}.", nameof(y));
        if (output.Length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer left = call.Upload(x);
        DeviceBuffer right = call.Upload(y);
        DeviceBuffer result = call.Rent((long)output.Length * sizeof(float));
        LaunchAxpby(a, left.Pointer, b, right.Pointer, result.Pointer, output.Length);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void Scale(Span<float> values, float factor) => InPlace(values, "scale", factor);

    /// <inheritdoc />
    public void Divide(Span<float> values, float divisor) => InPlace(values, "divide", divisor);

    // ------------------------------------------------------------------ storage conversions

    /// <summary>Widens bf16 bit patterns to float32 on the device (bit-identical to <see cref="FloatConversions.Bf16ToSingle(ReadOnlySpan{ushort}, Span{float})"/>).</summary>
    public void Bf16ToSingle(ReadOnlySpan<ushort> source, Span<float> destination) => Widen("bf16_to_f32", source, destination);

    /// <summary>Widens fp16 bit patterns to float32 on the device (bit-identical to <see cref="FloatConversions.HalfToSingle(ReadOnlySpan{ushort}, Span{float})"/>).</summary>
    public void HalfToSingle(ReadOnlySpan<ushort> source, Span<float> destination) => Widen("f16_to_f32", source, destination);

    /// <summary>Narrows float32 to bf16 on the device, nearest even (bit-identical to <see cref="FloatConversions.SingleToBf16(ReadOnlySpan{float}, Span{ushort})"/>).</summary>
    public void SingleToBf16(ReadOnlySpan<float> source, Span<ushort> destination) => Narrow("f32_to_bf16", source, destination);

    /// <summary>Narrows float32 to fp16 on the device, nearest even (bit-identical to <see cref="FloatConversions.SingleToHalf(ReadOnlySpan{float}, Span{ushort})"/>).</summary>
    public void SingleToHalf(ReadOnlySpan<float> source, Span<ushort> destination) => Narrow("f32_to_f16", source, destination);

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            _device.MakeCurrent();
            _device.SynchronizeCompute();
            _staging.Dispose();
            _pool.Dispose();
            _module.Dispose();
            _device.Dispose();
        }
    }

    // ------------------------------------------------------------------ launches on device buffers (also used by the bench)

    internal uint GridFor(long work) =>
        (uint)Math.Clamp((work + Threads - 1) / Threads, 1, (long)_device.MultiprocessorCount * 32);

    internal void LaunchWeightedSum(ulong stacked, ulong weights, int rows, long length, ulong output)
    {
        long n = length;
        void** arguments = stackalloc void*[] { &stacked, &weights, &rows, &n, &output };
        _module.Launch("weighted_sum", GridFor(length / 4 + 1), 1, Threads, _device.ComputeStream, arguments);
    }

    internal void LaunchSignConsensus(ulong stacked, ulong weights, int rows, long length, SignElection election, bool normalize, ulong output)
    {
        long n = length;
        int countElection = election == SignElection.Count ? 1 : 0;
        int normalizeFlag = normalize ? 1 : 0;
        void** arguments = stackalloc void*[] { &stacked, &weights, &rows, &n, &countElection, &normalizeFlag, &output };
        _module.Launch("sign_consensus_merge", GridFor(length), 1, Threads, _device.ComputeStream, arguments);
    }

    internal void LaunchDropAndRescale(ulong values, long length, float density, bool rescale, PhiloxKey key, long firstIndex = 0)
    {
        long n = length, first = firstIndex;
        int rescaleFlag = rescale ? 1 : 0;
        ulong seed = key.Seed;
        uint tensorHash = key.TensorHash, modelIndex = key.ModelIndex;
        void** arguments = stackalloc void*[] { &values, &n, &density, &rescaleFlag, &seed, &tensorHash, &modelIndex, &first };
        _module.Launch("drop_and_rescale", GridFor((length + 3) / 4 + 1), 1, Threads, _device.ComputeStream, arguments);
    }

    /// <summary>Zeroes and fills a histogram of 2^width digits (radix_histogram) on the compute stream.</summary>
    internal void LaunchHistogram(ulong data, long length, int prefix, int shift, int width, ulong histogram)
    {
        ulong bits = data, histogramPointer = histogram;
        long n = length;
        int prefixShift = shift + width;
        uint prefixValue = (uint)prefix;
        CudaDriverNative.Check(CudaDriverNative.cuMemsetD32Async(histogram, 0, (nuint)(1 << width), _device.ComputeStream), "cuMemsetD32Async");
        void** arguments = stackalloc void*[] { &bits, &n, &shift, &width, &prefixShift, &prefixValue, &histogramPointer };
        _module.Launch("radix_histogram", GridFor(length / 4 + 1), 1, Threads, _device.ComputeStream, arguments);
    }

    internal void LaunchAxpby(float a, ulong x, float b, ulong y, ulong output, long length)
    {
        long n = length;
        void** arguments = stackalloc void*[] { &a, &x, &b, &y, &output, &n };
        _module.Launch("axpby", GridFor(length / 4 + 1), 1, Threads, _device.ComputeStream, arguments);
    }

    internal void LaunchScalar(string kernel, ulong values, float scalar, long length)
    {
        long n = length;
        void** arguments = stackalloc void*[] { &values, &scalar, &n };
        _module.Launch(kernel, GridFor(length / 4 + 1), 1, Threads, _device.ComputeStream, arguments);
    }

    internal void LaunchConversion(string kernel, ulong source, ulong destination, long length)
    {
        long n = length;
        void** arguments = stackalloc void*[] { &source, &destination, &n };
        _module.Launch(kernel, GridFor(length / 8 + 1), 1, Threads, _device.ComputeStream, arguments);
    }

    internal void LaunchReduction(string kernel, ulong a, ulong b, long length, ulong partials)
    {
        long n = length;
        uint blocks = (uint)((ReductionPartialsFor(length) * ReductionLanes + ReductionThreads - 1) / ReductionThreads);
        if (kernel == "dot_f64")
        {
            void** arguments = stackalloc void*[] { &a, &b, &n, &partials };
            _module.Launch(kernel, blocks, 1, ReductionThreads, _device.ComputeStream, arguments);
        }
        else
        {
            void** arguments = stackalloc void*[] { &a, &n, &partials };
            _module.Launch(kernel, blocks, 1, ReductionThreads, _device.ComputeStream, arguments);
        }
    }

    /// <summary>
    /// Partials a reduction writes: one per 64K-element chunk, the CPU's chunking (reduce.cu sums each chunk in
    /// CpuKernels' order, and <see cref="Reduce"/> adds the partials in chunk order, so results match the CPU's bits).
    /// </summary>
    internal static int ReductionPartialsFor(long length) => Cpu.ChunkedParallel.ChunkCount(length);

    internal void LaunchSubtractRows(ulong stacked, int rows, ulong baseline, long length)
    {
        ulong rowsPointer = stacked, baselinePointer = baseline;
        long n = length;
        void** arguments = stackalloc void*[] { &rowsPointer, &baselinePointer, &n };
        for (int firstRow = 0; firstRow < rows; firstRow += 65535) // gridDim.y is at most 65535
        {
            rowsPointer = stacked + (ulong)firstRow * (ulong)length * sizeof(float);
            _module.Launch("subtract_rows", GridFor(length), (uint)Math.Min(65535, rows - firstRow), Threads, _device.ComputeStream, arguments);
        }
    }

    /// <summary>Keeps the <paramref name="kept"/> (1 ≤ kept ≤ length) largest magnitudes of a device array in place.</summary>
    internal TopKSelection KeepTopKOnDevice(Call call, ulong data, long length, long kept)
    {
        // The k-th largest key sits at ascending rank n − k; ties keep the lowest flat indices.
        MagnitudeRankOnDevice threshold = SelectRank(call, data, length, length - kept);
        long above = length - threshold.CountBelow - threshold.CountEqual;
        long keptAtThreshold = kept - above;
        if (kept < length)
        {
            var lower = new CutOnDevice(threshold.Key, keptAtThreshold, threshold.CountEqual, threshold.CountEqual);
            ApplyMask(call, data, length, lower, null);
        }
        return new TopKSelection(BitConverter.Int32BitsToSingle(threshold.Key), above, keptAtThreshold);
    }

    /// <summary>Exact rank select on a device array, leaving the data untouched (three histogram passes).</summary>
    internal MagnitudeRankOnDevice SelectRank(Call call, ulong data, long length, long rank)
    {
        ReadOnlySpan<int> shifts = [20, 10, 0];
        ReadOnlySpan<int> widths = [11, 10, 10];
        DeviceBuffer histogram = call.Rent(2048 * sizeof(uint));
        uint* counts = stackalloc uint[2048];
        long countBelow = 0;
        int prefix = 0, digit = 0;
        for (int pass = 0; pass < 3; pass++)
        {
            int width = widths[pass];
            int bins = 1 << width;
            LaunchHistogram(data, length, prefix, shifts[pass], width, histogram.Pointer);
            _staging.Download(histogram.Pointer, counts, (long)bins * sizeof(uint));

            // Walk the digits upward until the running count passes the rank left inside this prefix.
            long remaining = rank - countBelow, cumulative = 0;
            for (digit = 0; digit < bins; digit++)
            {
                if (cumulative + counts[digit] > remaining)
                    break;
                cumulative += counts[digit];
            }
            if (digit == bins)
                throw new InvalidOperationException($"Radix select lost rank {rank} of {length} (pass {pass}).");
            countBelow += cumulative;
            prefix = (prefix << width) | digit;
        }
        return new MagnitudeRankOnDevice(prefix, countBelow, counts[digit]);
    }

    /// <summary>Zeroes what the cuts drop, numbering ties at a cut in flat index order where a tile needs it.</summary>
    internal void ApplyMask(Call call, ulong data, long length, CutOnDevice? lower, CutOnDevice? upper)
    {
        long tiles = (length + Tile - 1) / Tile;
        CutArgument lowerCut = Prepare(call, data, length, tiles, lower, out ulong lowerBefore, out ulong lowerCounts);
        CutArgument upperCut = Prepare(call, data, length, tiles, upper, out ulong upperBefore, out ulong upperCounts);
        LaunchMask(data, length, tiles, lowerCut, lowerBefore, lowerCounts, upperCut, upperBefore, upperCounts);
    }

    private void LaunchMask(ulong data, long length, long tiles, CutArgument lowerCut, ulong lowerBefore, ulong lowerCounts,
        CutArgument upperCut, ulong upperBefore, ulong upperCounts)
    {
        ulong bits = data;
        long n = length;
        void** arguments = stackalloc void*[] { &bits, &n, &lowerCut, &lowerBefore, &lowerCounts, &upperCut, &upperBefore, &upperCounts };
        _module.Launch("magnitude_mask", (uint)tiles, 1, Threads, _device.ComputeStream, arguments);
    }

    private CutArgument Prepare(Call call, ulong data, long length, long tiles, CutOnDevice? cut, out ulong tiesBefore, out ulong tileCounts)
    {
        tiesBefore = 0;
        tileCounts = 0;
        if (cut is not { } c)
            return new CutArgument(0, CutMode.None, 0, 0);
        if (c.DropStart >= c.DropEnd)
            return new CutArgument((uint)c.Key, CutMode.KeepTies, 0, 0);
        if (c.DropStart <= 0 && c.DropEnd >= c.CountEqual)
            return new CutArgument((uint)c.Key, CutMode.DropTies, 0, 0);

        // Some ties stay and some go: count the key per tile, then give each tile its first tie index.
        DeviceBuffer counts = CountKeyPerTile(call, data, length, tiles, (uint)c.Key, out uint[] perTile);
        tiesBefore = UploadTiesBefore(call, perTile);
        tileCounts = counts.Pointer;
        return new CutArgument((uint)c.Key, CutMode.ByIndex, c.DropStart, c.DropEnd);
    }

    /// <summary>Elements equal to <paramref name="key"/> per tile, on the device (returned) and on the host.</summary>
    private DeviceBuffer CountKeyPerTile(Call call, ulong data, long length, long tiles, uint key, out uint[] perTile)
    {
        DeviceBuffer counts = call.Rent(tiles * sizeof(uint));
        ulong bits = data, countsPointer = counts.Pointer;
        uint sought = key;
        long n = length;
        void** arguments = stackalloc void*[] { &bits, &n, &sought, &countsPointer };
        _module.Launch("count_key_per_tile", (uint)tiles, 1, Threads, _device.ComputeStream, arguments);
        perTile = new uint[tiles];
        fixed (uint* host = perTile)
            _staging.Download(counts.Pointer, host, tiles * sizeof(uint));
        return counts;
    }

    /// <summary>Uploads the exclusive prefix sum of <paramref name="perTile"/>: each tile's first tie index.</summary>
    private ulong UploadTiesBefore(Call call, uint[] perTile)
    {
        var prefix = new long[perTile.Length];
        long running = 0;
        for (int tile = 0; tile < perTile.Length; tile++)
        {
            prefix[tile] = running;
            running += perTile[tile];
        }
        DeviceBuffer before = call.Rent(prefix.Length * (long)sizeof(long));
        fixed (long* host = prefix)
            _staging.Upload(host, prefix.Length * (long)sizeof(long), before.Pointer);
        return before.Pointer;
    }

    private double Reduce(Call call, string kernel, ulong a, ulong b, long length)
    {
        int chunks = ReductionPartialsFor(length);
        DeviceBuffer partials = call.Rent((long)chunks * sizeof(double));
        LaunchReduction(kernel, a, b, length, partials.Pointer);
        double[] host = new double[chunks];
        fixed (double* destination = host)
            _staging.Download(partials.Pointer, destination, (long)chunks * sizeof(double));
        // Chunk order from +0, as CpuKernels adds its partials.
        double total = 0;
        for (int chunk = 0; chunk < chunks; chunk++)
            total += host[chunk];
        return total;
    }

    private void InPlace(Span<float> values, string kernel, float scalar)
    {
        if (values.Length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer data = call.Upload(values);
        LaunchScalar(kernel, data.Pointer, scalar, values.Length);
        call.Download(data, values);
    }

    private void Widen(string kernel, ReadOnlySpan<ushort> source, Span<float> destination) => Convert(kernel, source, destination);

    private void Narrow(string kernel, ReadOnlySpan<float> source, Span<ushort> destination) => Convert(kernel, source, destination);

    /// <summary>One conversion kernel over a host span: upload, convert element by element, download.</summary>
    private void Convert<TSource, TDestination>(string kernel, ReadOnlySpan<TSource> source, Span<TDestination> destination)
        where TSource : unmanaged where TDestination : unmanaged
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"Destination holds {destination.Length} elements, fewer than the {source.Length} source elements.", nameof(destination));
        if (source.Length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer input = call.Upload(source);
        DeviceBuffer output = call.Rent((long)source.Length * sizeof(TDestination));
        LaunchConversion(kernel, input.Pointer, output.Pointer, source.Length);
        call.Download(output, destination[..source.Length]);
    }

    private static void RequireStacked(int stackedLength, int rows, int rowLength, string parameter)
    {
        if ((long)rows * rowLength != stackedLength)
            throw new ArgumentException(
                $"Expected {rows} stacked rows of {rowLength} elements ({(long)rows * rowLength}), got {stackedLength}.", parameter);
    }

    /// <summary>
    /// One backend call: holds the lock, makes the context current, tracks rented buffers, and on dispose waits for
    /// the compute stream before the buffers go back to the pool.
    /// </summary>
    internal ref struct Call
    {
        private readonly CudaKernels _owner;
        private readonly List<DeviceBuffer> _rented;

        public Call(CudaKernels owner)
        {
            _owner = owner;
            owner._gate.Enter();
            _rented = [];
            try
            {
                ObjectDisposedException.ThrowIf(owner._disposed, owner);
                owner._device.MakeCurrent();
            }
            catch
            {
                owner._gate.Exit();
                throw;
            }
        }

        public readonly DeviceBuffer Rent(long bytes)
        {
            DeviceBuffer buffer = _owner._pool.Rent(bytes);
            _rented.Add(buffer);
            return buffer;
        }

        public readonly DeviceBuffer Upload<T>(ReadOnlySpan<T> source) where T : unmanaged
        {
            long bytes = (long)source.Length * sizeof(T);
            DeviceBuffer buffer = Rent(bytes);
            fixed (T* host = source)
                _owner._staging.Upload(host, bytes, buffer.Pointer);
            return buffer;
        }

        public readonly DeviceBuffer Upload<T>(Span<T> source) where T : unmanaged => Upload((ReadOnlySpan<T>)source);

        public readonly void Download<T>(DeviceBuffer buffer, Span<T> destination) where T : unmanaged
        {
            fixed (T* host = destination)
                _owner._staging.Download(buffer.Pointer, host, (long)destination.Length * sizeof(T));
        }

        public readonly void Dispose()
        {
            try
            {
                _owner._device.SynchronizeCompute();
            }
            finally
            {
                foreach (DeviceBuffer buffer in _rented)
                    _owner._pool.Return(buffer);
                _owner._gate.Exit();
            }
        }
    }
}

/// <summary>A key at a rank of the magnitude order on the device, with the counts below and at it.</summary>
internal readonly record struct MagnitudeRankOnDevice(int Key, long CountBelow, long CountEqual);

/// <summary>One side of a magnitude band on the device: ties with index in [DropStart, DropEnd) are dropped.</summary>
internal readonly record struct CutOnDevice(int Key, long DropStart, long DropEnd, long CountEqual);

/// <summary>How magnitude_mask treats one cut (WELD_CUT_* in select.cu).</summary>
internal enum CutMode
{
    None = 0,
    KeepTies = 1,
    DropTies = 2,
    ByIndex = 3,
}

/// <summary>The WeldCut struct of select.cu, passed by value: { u32 key; int mode; i64 drop_start; i64 drop_end; }.</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly record struct CutArgument(uint Key, CutMode Mode, long DropStart, long DropEnd);
