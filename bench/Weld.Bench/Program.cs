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
// `... -- cuda-bench [OUT_DIR] [ELEMENTS]` measures the CUDA kernels on device 0 against a D2D copy (bench/gpu/README.md).
if (args.Length >= 1 && args[0] == "cuda-bench")
{
    string outDir = args.Length > 1 ? args[1] : Environment.GetEnvironmentVariable("OUT") ?? ".";
    long elements = args.Length > 2 ? long.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 64L << 20;
    return CudaKernelBenchmarks.Run(outDir, elements);
}
// `... -- gpu-tests TESTS.dll...` runs the CUDA/NVRTC tests of built test assemblies without the SDK (bench/gpu/run.sh).
if (args.Length >= 2 && args[0] == "gpu-tests")
    return GpuTestRunner.Run(args[1..]);
BenchmarkSwitcher.FromAssembly(typeof(SyntheticModels).Assembly).Run(args);
return 0;
