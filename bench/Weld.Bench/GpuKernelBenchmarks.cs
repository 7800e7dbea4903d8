using System.Diagnostics;
using System.Globalization;
using System.Text;
using ILGPU;
using ILGPU.Runtime;
using Weld.Kernels;
using Weld.Kernels.Gpu;
using Weld.Kernels.Random;

namespace Weld.Bench;

/// <summary>
/// The GPU kernels' speed, each against a device-to-device copy of the same bytes timed in the same run:
/// <c>dotnet Weld.Bench.dll gpu-bench [OUT_DIR] [ELEMENTS] [DEVICE]</c> (bench/gpu/README.md).
/// </summary>
/// <remarks>
/// A small harness, not BenchmarkDotNet: GPU work is asynchronous, so each figure is a <see cref="Stopwatch"/>
/// around <see cref="Repeats"/> back-to-back launches on the backend's stream followed by one synchronize, after
/// warm-up launches (the first compiles the kernel), best of <see cref="Rounds"/> rounds. GB/s counts the bytes a
/// kernel must read plus write; the copy reads n and writes n. Three tables: device-resident kernels (inputs already
/// on the device: the kernels' own speed), host-span operations (upload + kernels + download through
/// <see cref="IMergeKernels"/>, what a merge sees) against the host link, and every kernel PtxExport finds, timed or
/// not, so a kernel without a bench case shows as a gap rather than going unnoticed.
/// </remarks>
public static class GpuKernelBenchmarks
{
    private const int Repeats = 20;
    private const int Rounds = 5;
    private const int Models = 3;

    /// <summary>One measured figure.</summary>
    /// <param name="Name">What ran.</param>
    /// <param name="Bytes">Bytes read plus written per run.</param>
    /// <param name="Milliseconds">Best time of one run (NaN: not run).</param>
    /// <param name="Target">The ratio to the copy the kernel should reach (0: none).</param>
    /// <param name="Note">Why it did not run, or what it covers.</param>
    public readonly record struct Figure(string Name, long Bytes, double Milliseconds, double Target, string Note = "")
    {
        /// <summary>Bytes moved per second, in GB/s.</summary>
        public double GigabytesPerSecond => Bytes / (Milliseconds * 1e-3) / 1e9;
    }

    /// <summary>Measures on <paramref name="device"/> and writes <c>gpu-bench.md</c> and <c>gpu-bench.csv</c> into <paramref name="outDir"/>.</summary>
    /// <param name="outDir">Folder for the results (created).</param>
    /// <param name="elements">float32 elements per tensor (64M by default: 256 MiB, far beyond the H200's 50 MB L2).</param>
    /// <param name="device">cuda, cuda:N or ilgpu-cpu (the emulator: a smoke test of the harness, not a speed).</param>
    /// <returns>0 when every timed kernel met its target, 2 when one did not, 3 when the device is not there.</returns>
    public static int Run(string outDir, long elements, string device)
    {
        if (!KernelBackends.IsDeviceName(device) || device is "cpu" or "auto")
        {
            Console.Error.WriteLine($"gpu-bench: '{device}' is not a GPU device (cuda, cuda:N or ilgpu-cpu)");
            return 3;
        }
        IMergeKernels selected;
        string reason;
        try
        {
            selected = KernelBackends.Select(device, -1, out reason);
        }
        catch (Exception error) when (error is InvalidOperationException || KernelBackends.IsDeviceFailure(error))
        {
            Console.Error.WriteLine($"gpu-bench: {error.Message.Split('\n', 2)[0]}");
            return 3;
        }
        using var kernels = (GpuKernels)selected;
        Directory.CreateDirectory(outDir);
        Console.WriteLine($"gpu-bench: {reason}; {elements:N0} float32 elements per tensor");

        var resident = new List<Figure>();
        Figure copy = MeasureDeviceResident(kernels, elements, resident);
        var hostSpan = MeasureHostSpan(kernels, elements, out Figure link);
        string report = Format(kernels, reason, elements, copy, resident, link, hostSpan, out bool allMet);
        Console.Write(report);
        File.WriteAllText(Path.Combine(outDir, "gpu-bench.md"), report);
        var csv = new StringBuilder("table,name,bytes,ms,gbps,ratio,target,note\n");
        foreach (Figure f in resident.Prepend(copy))
            csv.Append(CultureInfo.InvariantCulture, $"device,{f.Name},{f.Bytes},{f.Milliseconds:F4},{f.GigabytesPerSecond:F2},{f.GigabytesPerSecond / copy.GigabytesPerSecond:F3},{f.Target},{f.Note}\n");
        foreach (Figure f in hostSpan.Prepend(link))
            csv.Append(CultureInfo.InvariantCulture, $"host-span,{f.Name},{f.Bytes},{f.Milliseconds:F4},{f.GigabytesPerSecond:F2},{f.GigabytesPerSecond / link.GigabytesPerSecond:F3},{f.Target},{f.Note}\n");
        File.WriteAllText(Path.Combine(outDir, "gpu-bench.csv"), csv.ToString());
        return allMet ? 0 : 2;
    }

    /// <summary>
    /// The device-resident table. Add a kernel here with its launch on device buffers (see WeightedSum): the
    /// kernel list at the end of the report names every kernel that has no case yet.
    /// </summary>
    private static Figure MeasureDeviceResident(GpuKernels kernels, long n, List<Figure> figures)
    {
        Accelerator accelerator = kernels.Accelerator;
        AcceleratorStream stream = kernels.Stream;
        accelerator.Bind();
        using MemoryBuffer1D<float, Stride1D.Dense> stacked = accelerator.Allocate1D<float>(Models * n);
        using MemoryBuffer1D<float, Stride1D.Dense> output = accelerator.Allocate1D<float>(n);
        using MemoryBuffer1D<float, Stride1D.Dense> weights = accelerator.Allocate1D<float>(Models);
        Fill(stacked.View, stream);
        weights.View.CopyFromCPU(stream, [0.5f, -0.25f, 1.5f]);
        stream.Synchronize();
        long floatBytes = n * sizeof(float);

        var source = stacked.View.SubView(0, n);
        var copy = new Figure("d2d copy (4n bytes)", 2 * floatBytes,
            Time(stream, () => source.CopyTo(stream, output.View)), 0);

        var weightedSum = accelerator.LoadKernel<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, long, ArrayView<float>>>(
            new Action<ArrayView<float>, ArrayView<float>, int, long, ArrayView<float>>(ElementwiseKernels.WeightedSum).Method);
        KernelConfig grid = kernels.GridFor(n);
        figures.Add(new Figure("ElementwiseKernels.WeightedSum (K=3)", (Models + 1) * floatBytes,
            Time(stream, () => weightedSum(stream, grid, stacked.View, weights.View, Models, n, output.View)), 0.8));
        return copy;
    }

    /// <summary>
    /// The host-span table: each operation through <see cref="IMergeKernels"/> (upload, kernels, download), against
    /// an upload + download of 4n bytes (the link). An operation whose kernel has not landed shows as pending.
    /// </summary>
    private static List<Figure> MeasureHostSpan(GpuKernels kernels, long elements, out Figure link)
    {
        // The host-span path holds everything in managed arrays: at most 16M elements (a 64 MiB tensor) per row.
        int n = (int)Math.Min(elements, 16L << 20);
        long bytes = (long)n * sizeof(float);
        var random = new System.Random(1);
        var stacked = new float[Models * n];
        for (int i = 0; i < stacked.Length; i++) stacked[i] = (float)(random.NextDouble() * 2 - 1);
        float[] a = stacked.AsSpan(0, n).ToArray(), b = stacked.AsSpan(n, n).ToArray();
        var output = new float[n];
        var work = new float[n];
        var twoRows = new float[2 * n];
        float[] weights = [0.5f, -0.25f, 1.5f];

        AcceleratorStream stream = kernels.Stream;
        using MemoryBuffer1D<float, Stride1D.Dense> device = kernels.Accelerator.Allocate1D<float>(n);
        link = new Figure("upload + download (pageable, 4n each)", 2 * bytes, Time(stream, () =>
        {
            device.View.CopyFromCPU(stream, a);
            device.View.CopyToCPU(stream, work);
        }, repeats: 3), 0);

        var figures = new List<Figure>
        {
            HostSpan("WeightedSum (K=3)", (Models + 1) * bytes, 0, () => kernels.WeightedSum(stacked, weights, output)),
            HostSpan("SignConsensusMerge (K=3, sum, normalised)", (Models + 1) * bytes, 0,
                () => kernels.SignConsensusMerge(stacked, weights, SignElection.Sum, normalize: true, output)),
            HostSpan("KeepTopK (10%)", 2 * bytes, 0, () =>
            {
                a.CopyTo(work, 0);
                kernels.KeepTopK(work, n / 10);
            }),
            HostSpan("DropAndRescale (p=0.3)", 2 * bytes, 0, () =>
            {
                a.CopyTo(work, 0);
                kernels.DropAndRescale(work, 0.3f, rescale: true, new PhiloxKey(1, 2, 3));
            }),
            HostSpan("SubtractRows (K=2)", 5 * bytes, 0, () =>
            {
                stacked.AsSpan(0, 2 * n).CopyTo(twoRows);
                kernels.SubtractRows(twoRows, b);
            }),
            HostSpan("Axpby", 3 * bytes, 0, () => kernels.Axpby(0.5f, a, 2f, b, output)),
            HostSpan("Scale", 2 * bytes, 0, () => kernels.Scale(work, 1.0001f)),
            HostSpan("Divide", 2 * bytes, 0, () => kernels.Divide(work, 1.0001f)),
            HostSpan("Dot (float64)", 2 * bytes, 0, () => kernels.Dot(a, b)),
            HostSpan("SumOfSquares (float64)", bytes, 0, () => kernels.SumOfSquares(a)),
            HostSpan("SumOfAbs (float64)", bytes, 0, () => kernels.SumOfAbs(a)),
        };
        return figures;

        Figure HostSpan(string name, long moved, double target, Action call)
        {
            try
            {
                call(); // warm-up: compiles the kernels
                double best = double.MaxValue;
                for (int round = 0; round < 3; round++)
                {
                    var watch = Stopwatch.StartNew();
                    call();
                    best = Math.Min(best, watch.Elapsed.TotalMilliseconds);
                }
                return new Figure(name, moved, best, target);
            }
            catch (NotImplementedException)
            {
                return new Figure(name, moved, double.NaN, target, "pending: kernel not implemented");
            }
        }
    }

    private static double Time(AcceleratorStream stream, Action launch, int repeats = Repeats)
    {
        for (int i = 0; i < 3; i++) launch();
        stream.Synchronize();
        double best = double.MaxValue;
        for (int round = 0; round < Rounds; round++)
        {
            var watch = Stopwatch.StartNew();
            for (int i = 0; i < repeats; i++) launch();
            stream.Synchronize();
            best = Math.Min(best, watch.Elapsed.TotalMilliseconds / repeats);
        }
        return best;
    }

    private static void Fill(ArrayView<float> view, AcceleratorStream stream)
    {
        // One 1M-element pattern uploaded repeatedly: the values only need to be ordinary finite floats.
        var random = new System.Random(7);
        var pattern = new float[(int)Math.Min(view.Length, 1 << 20)];
        for (int i = 0; i < pattern.Length; i++) pattern[i] = (float)(random.NextDouble() * 2 - 1);
        for (long at = 0; at < view.Length; at += pattern.Length)
        {
            long count = Math.Min(pattern.Length, view.Length - at);
            view.SubView(at, count).CopyFromCPU(stream, pattern.AsSpan(0, (int)count));
        }
    }

    private static string Format(GpuKernels kernels, string reason, long n, Figure copy, List<Figure> resident, Figure link,
        List<Figure> hostSpan, out bool allMet)
    {
        var inv = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        allMet = true;
        text.AppendLine(inv, $"# GPU kernel bench: {reason}");
        text.AppendLine();
        text.AppendLine(inv, $"{n:N0} float32 elements per tensor ({n * 4 / (1 << 20):N0} MiB); best of {Rounds} rounds of {Repeats} launches, Stopwatch + synchronize.");
        if (!kernels.Device.IsCuda)
            text.AppendLine("ILGPU's CPU accelerator: a smoke test of the harness, not a GPU speed.");
        text.AppendLine();
        text.AppendLine("## Device-resident kernels vs a device-to-device copy");
        text.AppendLine();
        text.AppendLine("| kernel | bytes moved | ms | GB/s | ratio to copy | target | met |");
        text.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
        text.AppendLine(inv, $"| {copy.Name} | {copy.Bytes:N0} | {copy.Milliseconds:F3} | {copy.GigabytesPerSecond:F1} | 1.00 | | |");
        var timed = new HashSet<string>(StringComparer.Ordinal);
        foreach (Figure f in resident)
        {
            double ratio = f.GigabytesPerSecond / copy.GigabytesPerSecond;
            bool met = f.Target <= 0 || ratio >= f.Target;
            // The targets are for a GPU; the emulator only checks that the harness runs.
            if (kernels.Device.IsCuda)
                allMet &= met;
            timed.Add(f.Name.Split(' ', 2)[0]);
            text.AppendLine(inv, $"| {f.Name} | {f.Bytes:N0} | {f.Milliseconds:F3} | {f.GigabytesPerSecond:F1} | {ratio:F2} | {(f.Target > 0 ? $"≥ {f.Target:F1}" : "")} | {(f.Target > 0 ? (met ? "yes" : "**no**") : "")} |");
        }
        text.AppendLine();
        text.AppendLine("## Host-span operations (upload + kernels + download) vs the link");
        text.AppendLine();
        text.AppendLine("| operation | bytes counted | ms | GB/s | ratio to link |");
        text.AppendLine("| --- | ---: | ---: | ---: | ---: |");
        text.AppendLine(inv, $"| {link.Name} | {link.Bytes:N0} | {link.Milliseconds:F3} | {link.GigabytesPerSecond:F1} | 1.00 |");
        foreach (Figure f in hostSpan)
        {
            text.AppendLine(double.IsNaN(f.Milliseconds)
                ? $"| {f.Name} | {f.Bytes:N0} | | | {f.Note} |"
                : string.Create(inv, $"| {f.Name} | {f.Bytes:N0} | {f.Milliseconds:F3} | {f.GigabytesPerSecond:F1} | {f.GigabytesPerSecond / link.GigabytesPerSecond:F2} |"));
        }
        text.AppendLine();
        text.AppendLine("## Every GPU kernel");
        text.AppendLine();
        var untimed = PtxExport.Kernels().Select(PtxExport.NameOf).Where(name => !timed.Contains(name)).ToList();
        text.AppendLine(inv, $"{timed.Count} of {timed.Count + untimed.Count} kernels have a device-resident case{(untimed.Count > 0 ? "; no case yet: " + string.Join(", ", untimed) : ".")}");
        return text.ToString();
    }
}
