using BenchmarkDotNet.Running;
using Weld.Bench;

// `dotnet run -c Release --project bench/Weld.Bench -- --filter '*'` runs every benchmark; each benchmark class
// carries its own baseline (a same-run memory copy) so results are ratios.
// `... -- make-models DIR [FINE_TUNES]` writes the synthetic 1B-shaped models of the end-to-end bench.
if (args.Length >= 2 && args[0] == "make-models")
{
    SyntheticModels.Write(args[1], args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 2);
    return 0;
}
// `... -- checksum-speed` times the shard checksum (CRC32C) against SHA-256 on one core over 1 GiB: GB/s each,
// best of 5 (CPU time of one thread, so other load on the machine does not count).
if (args.Length >= 1 && args[0] == "checksum-speed")
{
    var data = new byte[1 << 30];
    new System.Random(1).NextBytes(data.AsSpan(0, 1 << 20));
    for (int i = 1; i < 1024; i++) data.AsSpan(0, 1 << 20).CopyTo(data.AsSpan(i << 20));
    double Best(Action work)
    {
        double best = double.MaxValue;
        for (int r = 0; r < 5; r++)
        {
            var t0 = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
            work();
            best = Math.Min(best, (System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime - t0).TotalSeconds);
        }
        return data.Length / 1e9 / best;
    }
    double crc = Best(() => Weld.Engine.SafeTensors.ShardChecksum.Compute(data));
    // The shard writer checksums each 4 MiB block right after filling it: the same GiB as 256 passes over one block in cache.
    double crcBlock = Best(() => { for (int i = 0; i < 256; i++) Weld.Engine.SafeTensors.ShardChecksum.Compute(data.AsSpan(0, 4 << 20)); });
    double sha = Best(() => System.Security.Cryptography.SHA256.HashData(data));
    Console.WriteLine(System.FormattableString.Invariant($"CRC32C {crc:F2} GB/s ({crcBlock:F2} GB/s over a 4 MiB block in cache), SHA-256 {sha:F2} GB/s (one core, CPU time, best of 5)"));
    return 0;
}
// `... -- dare-speed` times DARE's Philox words, drop and drop-with-norms on one core per vector width (CPU time, best of 5).
if (args.Length >= 1 && args[0] == "dare-speed")
    return DropAndRescaleSpeed.Run();
// `... -- combine-speed` times the task-vector combine with the L1 factors as Scale passes and as pre-scales (one core, CPU time).
if (args.Length >= 1 && args[0] == "combine-speed")
    return CombineSpeed.Run();
// `... -- della-speed [--float32] [FIBER_LENGTH...]` times DELLA's rank sampling on one core (ns/element, CPU time, best of 9).
if (args.Length >= 1 && args[0] == "della-speed")
    return DellaSpeed.Run(args[1..]);
// `... -- sce-speed` times SCE's variance, Σ δ² and mix on one core, out of cache and in cache (CPU time, best of 5).
if (args.Length >= 1 && args[0] == "sce-speed")
    return SceSpeed.Run();
// `... -- mask-speed` times TIES' and Breadcrumbs' selection + combine with a mask pass and with the mask deferred (one core).
if (args.Length >= 1 && args[0] == "mask-speed")
    return DeferredMaskSpeed.Run();
// `... -- topk-speed` times the magnitude selections (top-k, band, streamed top-k) on one core (CPU time, best of 5).
if (args.Length >= 1 && args[0] == "topk-speed")
    return TopKSpeed.Run();
// `... -- eval-verify [ZOO]` checks the forward pass on every zoo model × domain against reference_metrics.json.
if (args.Length >= 1 && args[0] == "eval-verify")
    return EvalVerification.Run(args.Length > 1 ? args[1] : null);
// `... -- eval-engines [MODEL] [TEXT] [ROUNDS]` compares the built-in and TorchSharp engines' tokens per second.
if (args.Length >= 1 && args[0] == "eval-engines")
    return EngineComparison.Run(args.Length > 1 ? args[1] : null, args.Length > 2 ? args[2] : null,
        args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 3);
// `... -- ptx DIR [sm_XY]` writes one .ptx file per GPU kernel (default: the newest architecture ILGPU targets); no GPU needed.
if (args.Length >= 2 && args[0] == "ptx")
    return PtxCommand.Run(args[1], args.Length > 2 ? args[2] : null);
// `... -- gpu-bench [OUT_DIR] [ELEMENTS] [DEVICE]` times the GPU kernels against a device-to-device copy (bench/gpu/README.md).
if (args.Length >= 1 && args[0] == "gpu-bench")
{
    string outDir = args.Length > 1 ? args[1] : Environment.GetEnvironmentVariable("OUT") ?? ".";
    long elements = args.Length > 2 ? long.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 64L << 20;
    return GpuKernelBenchmarks.Run(outDir, elements, args.Length > 3 ? args[3] : "cuda");
}
// `... -- gpu-probe` prints whether ILGPU finds CUDA device 0 (exit 0) or why not (exit 3): bench/gpu/run.sh picks its device by it.
if (args.Length >= 1 && args[0] == "gpu-probe")
{
    bool found = Weld.Kernels.Gpu.GpuDevice.ProbeCuda(0, out string missing);
    Console.WriteLine(found ? "cuda" : $"ilgpu-cpu ({missing})");
    return found ? 0 : 3;
}
// `... -- gpu-tests [--device cuda|ilgpu-cpu] TESTS.dll...` runs the GPU tests of built test assemblies without the SDK (bench/gpu/run.sh).
if (args.Length >= 2 && args[0] == "gpu-tests")
    return GpuTestRunner.Run(args[1..]);
BenchmarkSwitcher.FromAssembly(typeof(SyntheticModels).Assembly).Run(args);
return 0;
