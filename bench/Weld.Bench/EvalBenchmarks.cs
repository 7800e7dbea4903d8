using System.Globalization;
using System.Runtime.Intrinsics;
using System.Text.Json.Nodes;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Kernels.Cpu;

namespace Weld.Bench;

/// <summary>Shows operations per second: with <c>OperationsPerInvoke</c> = tokens or FLOPs, that is tokens/s or FLOP/s.</summary>
public sealed class OperationsPerSecondConfig : ManualConfig
{
    /// <summary>Adds the Op/s column.</summary>
    public OperationsPerSecondConfig() => AddColumn(StatisticColumn.OperationsPerSecond);
}

/// <summary>
/// Weld's forward pass: scored tokens per second (the Op/s column) on the zoo's byte-level LM (the full 32 KiB
/// protocol on prose) and on a 1B-shaped synthetic Llama (random bf16 weights written to a temp folder; 4 windows
/// of 128 random tokens).
/// </summary>
[Config(typeof(OperationsPerSecondConfig))]
public class EvalBenchmarks
{
    private const int ZooTokens = 256 * 127;
    private const int SyntheticWindows = 4, SyntheticWindow = 128;
    private LlamaModel _zoo = null!;
    private LlamaModel _synthetic = null!;
    private string _zooText = "";
    private int[] _syntheticTokens = [];
    private string _syntheticFolder = "";

    /// <summary>Loads the zoo model; writes and loads the synthetic 1B model (a few minutes, ~2.5 GB on disk, ~5 GB in memory).</summary>
    [GlobalSetup]
    public void Setup()
    {
        string zoo = ZooFolder();
        using (var folder = ModelFolder.Open(Path.Combine(zoo, "lm-base"))) _zoo = LlamaModel.Load(folder);
        _zooText = Path.Combine(zoo, "eval", "prose.txt");

        _syntheticFolder = Path.Combine(Path.GetTempPath(), "weld-eval-bench-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        SyntheticModels.Write(_syntheticFolder, fineTunes: 0);
        using (var folder = ModelFolder.Open(Path.Combine(_syntheticFolder, "base"))) _synthetic = LlamaModel.Load(folder);
        var random = new Random(7);
        _syntheticTokens = new int[SyntheticWindows * SyntheticWindow];
        for (int i = 0; i < _syntheticTokens.Length; i++) _syntheticTokens[i] = random.Next(_synthetic.Config.VocabSize);
    }

    /// <summary>Removes the synthetic model.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        if (Directory.Exists(_syntheticFolder)) Directory.Delete(_syntheticFolder, recursive: true);
    }

    /// <summary>lm-base on the first 32 KiB of prose: 256 windows × 127 scored tokens.</summary>
    [Benchmark(OperationsPerInvoke = ZooTokens)]
    public double ZooLmTokens() => PerplexityEvaluator.EvaluateFile(_zoo, ByteTokenizer.Instance, _zooText).TotalNll;

    /// <summary>The 1B-shaped model on 4 windows of 128 tokens (one batch).</summary>
    [Benchmark(OperationsPerInvoke = SyntheticWindows * (SyntheticWindow - 1))]
    public double Synthetic1BTokens() =>
        PerplexityEvaluator.Evaluate(_synthetic, _syntheticTokens, new PerplexityOptions { Window = SyntheticWindow }).TotalNll;

    /// <summary>The zoo folder: <c>WELD_SHARED_MODELS</c>, else <c>shared/models</c> above the working directory, else /work/shared/models.</summary>
    internal static string ZooFolder()
    {
        if (Environment.GetEnvironmentVariable("WELD_SHARED_MODELS") is { Length: > 0 } configured) return configured;
        for (string? dir = Directory.GetCurrentDirectory(); dir is not null; dir = Path.GetDirectoryName(dir))
        {
            string candidate = Path.Combine(dir, "shared", "models");
            if (Directory.Exists(candidate)) return candidate;
        }

        return "/work/shared/models";
    }
}

/// <summary>
/// GEMM throughput (Op/s = FLOP/s, 2·m·k·n per product) against the machine's float32 peak measured in the same
/// run: a tight loop of independent 256-bit fused multiply-adds (the vector width the GEMM uses) on every core.
/// </summary>
[Config(typeof(OperationsPerSecondConfig))]
public class GemmBenchmarks
{
    private const int Flops = 1 << 30;
    private float[] _a = [], _b = [], _c = [];
    private float[] _q = [], _w = [], _out = [];

    /// <summary>Threads (-1: all cores; 1: one core, to compare with the one-core peak).</summary>
    [Params(1, -1)]
    public int Threads { get; set; }

    /// <summary>Random operands.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(3);
        static float[] Fill(Random r, int n)
        {
            var x = new float[n];
            for (int i = 0; i < n; i++) x[i] = (float)(r.NextDouble() - 0.5);
            return x;
        }

        _a = Fill(random, 1024 * 1024);
        _b = Fill(random, 1024 * 512);
        _c = new float[1024 * 512];
        _q = Fill(random, 128 * 2048);
        _w = Fill(random, 2048 * 2048);
        _out = new float[128 * 2048];
    }

    /// <summary>1024 × 1024 by 1024 × 512 (B row-major).</summary>
    [Benchmark(OperationsPerInvoke = Flops)]
    public void Square1024x512() => Gemm.Multiply(_a, _b, _c, 1024, 1024, 512, transposeB: false, Threads);

    /// <summary>One 128-token window through a 2048 × 2048 Linear weight (Bᵀ layout, as the forward pass uses it).</summary>
    [Benchmark(OperationsPerInvoke = Flops)]
    public void Window128Linear2048() => Gemm.Multiply(_q, _w, _out, 128, 2048, 2048, transposeB: true, Threads);

    /// <summary>The peak: 2^30 FLOPs of independent FMAs in registers, split over the cores (or one core).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Flops)]
    public float PeakFma()
    {
        int workers = Threads == -1 ? Environment.ProcessorCount : Threads;
        // Per iteration: 8 accumulators × 8 lanes × 2 FLOPs = 128.
        long iterations = Flops / 128 / workers;
        var sums = new float[workers];
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w => sums[w] = FmaLoop(iterations));
        float total = 0;
        foreach (float s in sums) total += s;
        return total;
    }

    private static float FmaLoop(long iterations)
    {
        Vector256<float> x = Vector256.Create(0.999f), y = Vector256.Create(1e-7f);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (long i = 0; i < iterations; i++)
        {
            // Eight independent chains hide the FMA latency (4 cycles × 2 ports).
            a0 = Vector256.FusedMultiplyAdd(a0, x, y);
            a1 = Vector256.FusedMultiplyAdd(a1, x, y);
            a2 = Vector256.FusedMultiplyAdd(a2, x, y);
            a3 = Vector256.FusedMultiplyAdd(a3, x, y);
            a4 = Vector256.FusedMultiplyAdd(a4, x, y);
            a5 = Vector256.FusedMultiplyAdd(a5, x, y);
            a6 = Vector256.FusedMultiplyAdd(a6, x, y);
            a7 = Vector256.FusedMultiplyAdd(a7, x, y);
        }

        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7);
    }
}

/// <summary>
/// The full perplexity table (every single zoo model on every domain) against reference_metrics.json, timed:
/// <c>dotnet run -c Release --project bench/Weld.Bench -- eval-verify [ZOO]</c>. The unit tests cover one domain
/// per model; this checks all 24 cells.
/// </summary>
internal static class EvalVerification
{
    private static readonly string[] s_models = ["lm-base", "lm-ft-prose", "lm-ft-c", "lm-ft-python", "lm-ft-markup", "lm-ft-c-sharded"];
    private static readonly string[] s_domains = ["prose", "c", "python", "markup"];

    /// <summary>Prints one line per cell and returns 0 when every perplexity is within 1e-3 relative of the reference.</summary>
    public static int Run(string? zoo)
    {
        zoo ??= EvalBenchmarks.ZooFolder();
        var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(zoo, "reference_metrics.json")))!;
        int failures = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        foreach (string name in s_models)
        {
            using var folder = ModelFolder.Open(Path.Combine(zoo, name));
            LlamaModel model = LlamaModel.Load(folder);
            foreach (string domain in s_domains)
            {
                PerplexityResult r = PerplexityEvaluator.EvaluateFile(model, ByteTokenizer.Instance, Path.Combine(zoo, "eval", domain + ".txt"));
                double expected = (double)reference["metrics"]![name]!["ppl"]![domain]!["ppl_fp32_forward"]!;
                double relative = Math.Abs(r.Perplexity - expected) / expected;
                bool ok = relative <= 1e-3;
                if (!ok) failures++;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{name,-16} {domain,-7} ppl {r.Perplexity,9:F5}  reference {expected,9:F5}  rel {relative:E2}  {r.TokensPerSecond,8:F0} tok/s  {(ok ? "ok" : "FAIL")}"));
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{s_models.Length * s_domains.Length} cells in {clock.Elapsed.TotalSeconds:F1} s, {failures} outside 1e-3"));
        return failures == 0 ? 0 : 1;
    }
}
