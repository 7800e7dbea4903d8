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
// `... -- eval-verify [ZOO]` checks the forward pass on every zoo model × domain against reference_metrics.json.
if (args.Length >= 1 && args[0] == "eval-verify")
    return EvalVerification.Run(args.Length > 1 ? args[1] : null);
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
