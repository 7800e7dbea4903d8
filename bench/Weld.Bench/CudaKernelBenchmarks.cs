using System.Diagnostics;
using System.Globalization;
using System.Text;
using Weld.Kernels;
using Weld.Kernels.Cuda;

namespace Weld.Bench;

/// <summary>
/// Device-resident bandwidth of every CUDA kernel, each against a device-to-device copy (cuMemcpyDtoD) timed in the
/// same run, plus host↔device bandwidth from pinned memory and through the backend's own staging path.
/// Run with <c>dotnet Weld.Bench.dll cuda-bench [OUT_DIR] [ELEMENTS]</c> (see bench/gpu/README.md).
/// </summary>
/// <remarks>
/// Not a BenchmarkDotNet class: GPU work is asynchronous, so each figure is timed with CUDA events around
/// <see cref="Repeats"/> back-to-back launches on the compute stream (after warm-up launches), best of
/// <see cref="Rounds"/> rounds. GB/s counts the bytes a kernel must read plus write (the copy: n read + n written).
/// </remarks>
public static unsafe class CudaKernelBenchmarks
{
    private const int Repeats = 20;
    private const int Rounds = 5;
    private const int Models = 3;

    /// <summary>One measured figure.</summary>
    /// <param name="Name">What ran.</param>
    /// <param name="Bytes">Bytes read plus written per run.</param>
    /// <param name="Milliseconds">Best time of one run.</param>
    /// <param name="Target">The ratio to the copy the kernel should reach (0: none).</param>
    public readonly record struct Figure(string Name, long Bytes, double Milliseconds, double Target)
    {
        /// <summary>Bytes moved per second, in GB/s.</summary>
        public double GigabytesPerSecond => Bytes / (Milliseconds * 1e-3) / 1e9;
    }

    /// <summary>Runs every measurement on device 0 and writes <c>cuda-bench.md</c> and <c>cuda-bench.csv</c> into <paramref name="outDir"/>.</summary>
    /// <param name="outDir">Folder for the results (created).</param>
    /// <param name="elements">float32 elements per tensor (default 64M: 256 MiB, far beyond L2).</param>
    /// <returns>0 when every kernel met its target, 2 when one did not, 3 when there is no usable device.</returns>
    public static int Run(string outDir, long elements)
    {
        if (!CudaKernels.IsAvailable(0, out string reason))
        {
            Console.Error.WriteLine($"cuda-bench: {reason}");
            return 3;
        }
        using var kernels = new CudaKernels(0);
        Directory.CreateDirectory(outDir);
        var figures = Measure(kernels, elements, out Figure copy);
        string report = Format(kernels, elements, copy, figures, out bool allMet);
        Console.Write(report);
        File.WriteAllText(Path.Combine(outDir, "cuda-bench.md"), report);
        var csv = new StringBuilder("name,bytes,ms,gbps,ratio_to_copy,target\n");
        foreach (Figure f in figures.Prepend(copy))
            csv.Append(CultureInfo.InvariantCulture, $"{f.Name},{f.Bytes},{f.Milliseconds:F4},{f.GigabytesPerSecond:F1},{f.GigabytesPerSecond / copy.GigabytesPerSecond:F3},{f.Target}\n");
        File.WriteAllText(Path.Combine(outDir, "cuda-bench.csv"), csv.ToString());
        return allMet ? 0 : 2;
    }

    private static List<Figure> Measure(CudaKernels kernels, long n, out Figure copy)
    {
        kernels.Device.MakeCurrent();
        nint stream = kernels.Device.ComputeStream;
        DeviceMemoryPool pool = kernels.Pool;
        long floatBytes = n * sizeof(float), halfBytes = n * sizeof(ushort);
        ulong stacked = pool.Rent(Models * floatBytes).Pointer;
        ulong pristine = pool.Rent(floatBytes).Pointer;
        ulong work = pool.Rent(floatBytes).Pointer;
        ulong output = pool.Rent(floatBytes).Pointer;
        ulong halves = pool.Rent(halfBytes).Pointer;
        ulong weights = pool.Rent(Models * sizeof(float)).Pointer;
        ulong partials = pool.Rent((long)CudaKernels.ReductionPartialsFor(n) * sizeof(double)).Pointer;
        ulong packed = pool.Rent((n + 7) / 8).Pointer;
        ulong counters = pool.Rent(2 * Models * sizeof(ulong)).Pointer;
        Fill(kernels, stacked, Models * n, pristine, n, weights);

        var events = new EventPair();
        try
        {
            copy = new Figure("d2d copy (cuMemcpyDtoD)", 2 * floatBytes, events.Time(stream, () =>
                CudaDriverNative.Check(CudaDriverNative.cuMemcpyDtoDAsync_v2(output, pristine, (nuint)floatBytes, stream), "cuMemcpyDtoDAsync_v2")), 0);
            // Narrowing first, so the widening kernels read real 16-bit values (f16 ones, from the last narrowing).
            var figures = new List<Figure>
            {
                new("f32 -> bf16 (RNE)", floatBytes + halfBytes, events.Time(stream, () => kernels.LaunchConversion("f32_to_bf16", pristine, halves, n)), 0.8),
                new("f32 -> f16 (RNE)", floatBytes + halfBytes, events.Time(stream, () => kernels.LaunchConversion("f32_to_f16", pristine, halves, n)), 0.8),
                new("bf16 -> f32", halfBytes + floatBytes, events.Time(stream, () => kernels.LaunchConversion("bf16_to_f32", halves, output, n)), 0.8),
                new("f16 -> f32", halfBytes + floatBytes, events.Time(stream, () => kernels.LaunchConversion("f16_to_f32", halves, output, n)), 0.8),
                new($"weighted sum (K={Models})", (Models + 1) * floatBytes, events.Time(stream, () => kernels.LaunchWeightedSum(stacked, weights, Models, n, output)), 0.8),
                new("axpby", 3 * floatBytes, events.Time(stream, () => kernels.LaunchAxpby(0.5f, pristine, 2f, stacked, output, n)), 0.8),
                new("scale (in place)", 2 * floatBytes, events.Time(stream, () => kernels.LaunchScalar("scale", work, 1.0f, n)), 0.8),
                new("divide (in place)", 2 * floatBytes, events.Time(stream, () => kernels.LaunchScalar("divide", work, 1.0f, n)), 0.8),
                new($"subtract rows (K={Models}, in place)", (2 * Models + 1) * floatBytes, events.Time(stream, () => kernels.LaunchSubtractRows(stacked, Models, pristine, n)), 0.8),
                new($"TIES sign consensus (K={Models}, fused)", (Models + 1) * floatBytes, events.Time(stream, () =>
                    kernels.LaunchSignConsensus(stacked, weights, Models, n, SignElection.Sum, true, output)), 0.6),
                new("DARE drop+rescale (p=0.5, in place)", 2 * floatBytes, events.Time(stream, () =>
                    kernels.LaunchDropAndRescale(work, n, 0.5f, true, new PhiloxKey(1, 2, 3))), 0),
                new("dot (f64, CPU order)", 2 * floatBytes, events.Time(stream, () => kernels.LaunchReduction("dot_f64", pristine, work, n, partials)), 0),
                new("sum of squares (f64)", floatBytes, events.Time(stream, () => kernels.LaunchReduction("sum_of_squares_f64", pristine, 0, n, partials)), 0),
                new("sum of abs (f64)", floatBytes, events.Time(stream, () => kernels.LaunchReduction("sum_of_abs_f64", pristine, 0, n, partials)), 0),
            };
            figures.AddRange(MeasureMethodKernels(kernels, events, stacked, pristine, weights, packed, counters, output, n));
            figures.Add(TimeTopK(kernels, pristine, work, n));
            figures.AddRange(TimeHostTransfers(kernels, events, n));
            return figures;
        }
        finally
        {
            events.Dispose();
        }
    }

    /// <summary>
    /// The newer methods' kernels (methods.cu) on device buffers: the K = 3 stacked rows serve as task vectors, models
    /// and (for Fisher) Fisher tensors alike, the three weights as λ_k and RAM's scales. Report-only (no target yet).
    /// </summary>
    private static IEnumerable<Figure> MeasureMethodKernels(CudaKernels kernels, EventPair events, ulong stacked, ulong single,
        ulong weights, ulong packed, ulong counters, ulong output, long n)
    {
        nint stream = kernels.Device.ComputeStream;
        long floatBytes = n * sizeof(float);
        ulong secondRow = stacked + (ulong)floatBytes;
        return
        [
            new($"MagMax select largest |x| (K={Models})", (Models + 1) * floatBytes, events.Time(stream, () =>
                kernels.LaunchSelectLargestMagnitude(stacked, Models, n, output)), 0),
            new("TALL mask (packed bits + count)", 2 * floatBytes + (n + 7) / 8, events.Time(stream, () =>
                kernels.LaunchTallMask(stacked, secondRow, 0.4f, n, packed, counters)), 0),
            new("TALL restore (base + masked τ_MTL)", 3 * floatBytes + (n + 7) / 8, events.Time(stream, () =>
                kernels.LaunchTallRestore(single, secondRow, packed, n, output)), 0),
            new($"Consensus merge (K={Models})", (Models + 1) * floatBytes, events.Time(stream, () =>
                kernels.LaunchConsensusMerge(stacked, weights, Models, n, 2, output)), 0),
            new($"Fisher merge (K={Models})", (2 * Models + 1) * floatBytes, events.Time(stream, () =>
                kernels.LaunchFisherMerge(stacked, stacked, weights, Models, n, 1e-8f, output)), 0),
            new("NearSwap", 3 * floatBytes, events.Time(stream, () => kernels.LaunchNearSwap(single, stacked, 0.001f, n, output)), 0),
            new($"RAM merge (K={Models})", (Models + 2) * floatBytes, events.Time(stream, () =>
                kernels.LaunchRamMerge(stacked, single, weights, Models, n, 1e-3f, output)), 0),
            new($"RAM+ contribution counts (K={Models})", Models * floatBytes, events.Time(stream, () =>
                kernels.LaunchRamContributionCounts(stacked, Models, n, 1e-3f, counters)), 0),
            new($"SCE variance across rows (K={Models}, f64)", (Models + 1) * floatBytes, events.Time(stream, () =>
                kernels.LaunchVarianceAcrossRows(stacked, Models, n, output, counters)), 0),
            new($"SCE sign-erased mix (K={Models})", (Models + 1) * floatBytes, events.Time(stream, () =>
                kernels.LaunchSignErasedMix(stacked, weights, Models, n, 1e-6f, output)), 0),
            new("LiNeS scale from base (in place)", 3 * floatBytes, events.Time(stream, () =>
                kernels.LaunchScaleFromBase(single, output, 0.5f, n)), 0),
            // K rows of ⌈n / K⌉ so the K weights on the device serve as the per-row ratios.
            new($"Model Stock axpby rows ({Models} rows, in place)", 3 * floatBytes, events.Time(stream, () =>
                kernels.LaunchAxpbyRows(output, weights, single, weights, (n + Models - 1) / Models, n)), 0),
            new("Arcee Fusion gate (in place over the scores)", 4 * floatBytes, events.Time(stream, () =>
                kernels.LaunchKeepImportantChanges(single, secondRow, 0f, output, n)), 0),
            new("Arcee Fusion scores (rows of 4096, f64 softmax + KL, a thread per row)", 3 * (n / 4096 * 4096) * sizeof(float), events.Time(stream, () =>
                kernels.LaunchSoftmaxDivergenceScores(secondRow, single, 4096, n / 4096, output)), 0),
            new("DELLA rank sampling (fibers of 4096, shared-memory sort)", 2 * (n / 4096 * 4096) * sizeof(float), events.Time(stream, () =>
                kernels.LaunchRankMagnitudeSample(single, output, n / 4096, 4096, 1, 0.4f, 0.1f, 0.5f, true, new PhiloxKey(1, 2, 3))), 0),
            new("DELLA rank sampling (64 fibers of 14336, counted ranks)", 2L * Math.Min(64, n / 14336) * 14336 * sizeof(float), events.Time(stream, () =>
                kernels.LaunchRankMagnitudeSample(single, output, Math.Min(64, n / 14336), 14336, 1, 0.4f, 0.1f, 0.5f, true, new PhiloxKey(1, 2, 3))), 0),
        ];
    }

    /// <summary>
    /// Top-k (k = 10%) end to end on the device: three histogram passes with a small download each, the tie count
    /// per tile and the mask. Wall-clock per call (the host walks the histograms), input restored before each call.
    /// Bytes: the n read and n written that the operation needs at the least.
    /// </summary>
    private static Figure TimeTopK(CudaKernels kernels, ulong pristine, ulong work, long n)
    {
        nint stream = kernels.Device.ComputeStream;
        double best = double.MaxValue;
        for (int round = 0; round < Rounds + 2; round++)
        {
            CudaDriverNative.Check(CudaDriverNative.cuMemcpyDtoDAsync_v2(work, pristine, (nuint)(n * sizeof(float)), stream), "cuMemcpyDtoDAsync_v2");
            kernels.Device.SynchronizeCompute();
            long start = Stopwatch.GetTimestamp();
            using (var call = new CudaKernels.Call(kernels))
                kernels.KeepTopKOnDevice(call, work, n, n / 10);
            double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (round >= 2)
                best = Math.Min(best, ms);
        }
        return new Figure("top-k 10% (radix select + mask)", 2 * n * sizeof(float), best, 0.5);
    }

    /// <summary>Host→device and device→host from pinned memory (the link's ceiling) and a host-span call end to end.</summary>
    private static IEnumerable<Figure> TimeHostTransfers(CudaKernels kernels, EventPair events, long n)
    {
        nint stream = kernels.Device.ComputeStream;
        long bytes = n * sizeof(float);
        ulong device = kernels.Pool.Rent(bytes).Pointer;
        void* allocated;
        CudaDriverNative.Check(CudaDriverNative.cuMemHostAlloc(&allocated, (nuint)bytes, CudaDriverNative.HostAllocPortable), "cuMemHostAlloc");
        void* pinned = allocated; // a copy: the lambdas below may not capture a local whose address was taken
        var figures = new List<Figure>();
        try
        {
            figures.Add(new Figure("h2d from pinned host memory", bytes, events.Time(stream, () =>
                CudaDriverNative.Check(CudaDriverNative.cuMemcpyHtoDAsync_v2(device, pinned, (nuint)bytes, stream), "cuMemcpyHtoDAsync_v2"), repeats: 3), 0));
            figures.Add(new Figure("d2h to pinned host memory", bytes, events.Time(stream, () =>
                CudaDriverNative.Check(CudaDriverNative.cuMemcpyDtoHAsync_v2(pinned, device, (nuint)bytes, stream), "cuMemcpyDtoHAsync_v2"), repeats: 3), 0));
        }
        finally
        {
            CudaDriverNative.cuMemFreeHost(pinned);
        }

        // The IMergeKernels path as the merge executor uses it: managed arrays in and out through pinned staging.
        int length = (int)Math.Min(n, 16L << 20);
        var stacked = new float[Models * length];
        var result = new float[length];
        new System.Random(7).NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(stacked.AsSpan()));
        for (int i = 0; i < stacked.Length; i++)
            if (!float.IsFinite(stacked[i])) stacked[i] = 0f;
        float[] weights = [0.5f, 0.3f, 0.2f];
        double best = double.MaxValue;
        for (int round = 0; round < Rounds + 1; round++)
        {
            long start = Stopwatch.GetTimestamp();
            kernels.WeightedSum(stacked, weights, result);
            double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (round >= 1)
                best = Math.Min(best, ms);
        }
        figures.Add(new Figure($"host-span WeightedSum K={Models} (upload+compute+download, {length >> 20}M)", (Models + 1) * (long)length * sizeof(float), best, 0));
        return figures;
    }

    /// <summary>Fills the inputs on the host in slices (small finite values, a few exact ties) and uploads them.</summary>
    private static void Fill(CudaKernels kernels, ulong stacked, long stackedLength, ulong single, long length, ulong weights)
    {
        var random = new System.Random(20240501);
        var slice = new float[1 << 20];
        void Upload(ulong destination, long count)
        {
            for (long offset = 0; offset < count; offset += slice.Length)
            {
                int size = (int)Math.Min(slice.Length, count - offset);
                for (int i = 0; i < size; i++)
                    slice[i] = i % 97 == 0 ? 0.001f : (float)(random.NextDouble() - 0.5) * 0.02f;
                fixed (float* host = slice)
                    kernels.Staging.Upload(host, (long)size * sizeof(float), destination + (ulong)(offset * sizeof(float)));
            }
        }
        Upload(stacked, stackedLength);
        Upload(single, length);
        float* w = stackalloc float[] { 0.5f, 0.3f, 0.2f };
        kernels.Staging.Upload(w, Models * sizeof(float), weights);
        kernels.Device.SynchronizeCompute();
    }

    private static string Format(CudaKernels kernels, long n, Figure copy, List<Figure> figures, out bool allMet)
    {
        allMet = true;
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"# CUDA kernels on {kernels.DeviceName} (sm_{kernels.ComputeCapability}, PTX for compute_{kernels.Architecture})\n\n");
        text.Append(CultureInfo.InvariantCulture, $"{n:N0} float32 elements per tensor; best of {Rounds} rounds of {Repeats} launches; GB/s = bytes read + written per second.\n\n");
        text.Append("| what | GB/s | ratio to D2D copy | target | met |\n| --- | ---: | ---: | ---: | --- |\n");
        text.Append(CultureInfo.InvariantCulture, $"| {copy.Name} | {copy.GigabytesPerSecond:F0} | 1.00 | | |\n");
        foreach (Figure f in figures)
        {
            double ratio = f.GigabytesPerSecond / copy.GigabytesPerSecond;
            bool met = f.Target == 0 || ratio >= f.Target;
            allMet &= met;
            string target = f.Target == 0 ? "" : f.Target.ToString("F1", CultureInfo.InvariantCulture);
            string verdict = f.Target == 0 ? "" : met ? "yes" : "NO";
            text.Append(CultureInfo.InvariantCulture, $"| {f.Name} | {f.GigabytesPerSecond:F0} | {ratio:F2} | {target} | {verdict} |\n");
        }
        return text.ToString();
    }

    /// <summary>Two timing events on one stream.</summary>
    private sealed class EventPair : IDisposable
    {
        private readonly nint _start;
        private readonly nint _end;

        public EventPair()
        {
            nint start, end;
            CudaDriverNative.Check(CudaDriverNative.cuEventCreate(&start, CudaDriverNative.EventDefault), "cuEventCreate");
            CudaDriverNative.Check(CudaDriverNative.cuEventCreate(&end, CudaDriverNative.EventDefault), "cuEventCreate");
            _start = start;
            _end = end;
        }

        /// <summary>Best per-launch milliseconds of <paramref name="launch"/> over the rounds (after 3 warm-up launches).</summary>
        public double Time(nint stream, Action launch, int repeats = Repeats)
        {
            for (int i = 0; i < 3; i++)
                launch();
            double best = double.MaxValue;
            for (int round = 0; round < Rounds; round++)
            {
                CudaDriverNative.Check(CudaDriverNative.cuEventRecord(_start, stream), "cuEventRecord");
                for (int i = 0; i < repeats; i++)
                    launch();
                CudaDriverNative.Check(CudaDriverNative.cuEventRecord(_end, stream), "cuEventRecord");
                CudaDriverNative.Check(CudaDriverNative.cuEventSynchronize(_end), "cuEventSynchronize");
                float ms;
                CudaDriverNative.Check(CudaDriverNative.cuEventElapsedTime(&ms, _start, _end), "cuEventElapsedTime");
                best = Math.Min(best, ms / repeats);
            }
            return best;
        }

        public void Dispose()
        {
            CudaDriverNative.cuEventDestroy_v2(_start);
            CudaDriverNative.cuEventDestroy_v2(_end);
        }
    }
}
