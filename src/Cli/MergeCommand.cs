using System.Globalization;
using CommandLine;
using Spectre.Console;
using Weld.Engine;
using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.Methods;
using Weld.Engine.Planning;
using Weld.Engine.SafeTensors;
using Weld.Kernels;

namespace Weld.Cli;

[Verb("merge", HelpText = "Merge models as a mergekit YAML recipe says (alias: mergekit-yaml CONFIG OUT).")]
internal sealed class MergeOptions
{
    [Value(0, MetaName = "RECIPE", Required = true, HelpText = "The recipe (mergekit YAML).")]
    public string Recipe { get; set; } = "";

    [Option('o', "output", HelpText = "Output folder (written beside it, renamed into place when complete).")]
    public string? Output { get; set; }

    [Value(1, MetaName = "OUT", HelpText = "Output folder, as mergekit-yaml takes it (same as -o).")]
    public string? OutputPositional { get; set; }

    [Option("out-shard-size", Default = "5B", HelpText = "Largest output shard: bytes with K/M/B suffixes (mergekit's parse_kmb).")]
    public string OutShardSize { get; set; } = "5B";

    [Option("random-seed", HelpText = "Seed for random masks (DARE). Same seed, same bytes, on any thread count.")]
    public ulong? RandomSeed { get; set; }

    [Option('j', "num-threads", Default = -1, HelpText = "Worker threads (-1: all cores). Output bytes do not depend on it.")]
    public int Threads { get; set; }

    [Option("device", Default = "auto", HelpText = "Where the kernels run: auto (CUDA device 0 when ILGPU finds one, else cpu) | cpu | cuda[:N] | ilgpu-cpu (the GPU kernels on ILGPU's CPU accelerator: slow, for checking recipes and kernels without a GPU). Output bytes are the same on every device.")]
    public string Device { get; set; } = "auto";

    [Option("cuda", HelpText = "mergekit's flag: same as --device cuda.")]
    public bool Cuda { get; set; }

    [Option("memory-limit", HelpText = "Hard budget for working buffers: bytes with K/M/B suffixes (2B = 2·10⁹). Default: 1/8 of the machine's memory, between 256M and 1B (--dry-run says what it picked); without this flag a tensor the method cannot stream may take up to half the machine's memory.")]
    public string? MemoryLimit { get; set; }

    [Option("resume", HelpText = "Reuse the shards an interrupted run of the same command finished.")]
    public bool Resume { get; set; }

    [Option("part", HelpText = "Compute only part I of N of the output shards (I/N, 1-based); then run `weld finalize OUT`.")]
    public string? Part { get; set; }

    [Option("no-direct-io", HelpText = "Write shards through the page cache instead of with O_DIRECT (Linux; the default falls back by itself where the file system refuses it).")]
    public bool NoDirectIo { get; set; }

    [Option("allow-non-finite", HelpText = "Merge input tensors that hold NaN or Inf (mergekit's behaviour); by default the first one is an error naming the file and tensor.")]
    public bool AllowNonFinite { get; set; }

    [Option("overwrite", HelpText = "Replace an existing output folder.")]
    public bool Overwrite { get; set; }

    [Option("dry-run", HelpText = "Validate and print the plan (tensors, bytes, shards) without merging.")]
    public bool DryRun { get; set; }

    [Option("no-copy-tokenizer", HelpText = "Do not copy tokenizer / side files into the output.")]
    public bool NoCopyTokenizer { get; set; }

    [Option("no-write-model-card", HelpText = "Do not write README.md and mergekit_config.yml.")]
    public bool NoWriteModelCard { get; set; }

    [Option("no-safe-serialization", HelpText = "Refused: Weld writes safetensors only (pickle checkpoints can execute code).")]
    public bool NoSafeSerialization { get; set; }

    [Option('q', "quiet", HelpText = "No progress or summary.")]
    public bool Quiet { get; set; }

    [Option('v', "verbose", FlagCounter = true, HelpText = "More log lines (repeatable).")]
    public int Verbose { get; set; }

    // mergekit flags accepted for compatibility; they change nothing in Weld (see README).
    [Option("copy-tokenizer", Hidden = true)] public bool CopyTokenizer { get; set; }
    [Option("write-model-card", Hidden = true)] public bool WriteModelCard { get; set; }
    [Option("safe-serialization", Hidden = true)] public bool SafeSerialization { get; set; }
    [Option("allow-crimes", HelpText = "Accepted (mergekit); Weld checks shapes, not architectures.")] public bool AllowCrimes { get; set; }
    [Option("lazy-unpickle", HelpText = "Accepted (mergekit); no effect: Weld memory-maps safetensors.")] public bool LazyUnpickle { get; set; }
    [Option("low-cpu-memory", HelpText = "Accepted (mergekit); no effect: Weld always streams.")] public bool LowCpuMemory { get; set; }
    [Option("clone-tensors", Hidden = true)] public bool CloneTensors { get; set; }
    [Option("trust-remote-code", Hidden = true)] public bool TrustRemoteCode { get; set; }
    [Option("read-to-gpu", Hidden = true)] public bool ReadToGpu { get; set; }
    [Option("multi-gpu", Hidden = true)] public bool MultiGpu { get; set; }
    [Option("gpu-rich", Hidden = true)] public bool GpuRich { get; set; }
    [Option("transformers-cache", Hidden = true)] public string? TransformersCache { get; set; }
    [Option("lora-merge-cache", Hidden = true)] public string? LoraMergeCache { get; set; }
    [Option("lora-merge-dtype", Hidden = true)] public string? LoraMergeDType { get; set; }
}

/// <summary><c>weld merge RECIPE -o OUT</c>.</summary>
internal static class MergeCommand
{
    public static int Run(MergeOptions options, CliConsole console, CancellationToken cancel)
    {
        string? output = options.Output ?? options.OutputPositional;
        if (options.NoSafeSerialization)
            throw new WeldException("--no-safe-serialization is refused: Weld writes safetensors only (pickle checkpoints can execute arbitrary code when loaded)");
        string device = options.Cuda ? "cuda" : options.Device;
        CheckDevice(device);
        // Checked here so that a bad value is a usage message, not the kernels' ArgumentOutOfRangeException (exit 70).
        if (options.Threads is 0 or < -1)
            throw new WeldException($"-j/--num-threads {options.Threads}: use a positive thread count, or -1 for all cores");

        MergeRecipe recipe = RecipeParser.Load(options.Recipe);
        long shardBytes = ByteSize.Parse(options.OutShardSize);
        if (options.DryRun)
        {
            using var models = new ModelSet(Path.GetDirectoryName(Path.GetFullPath(options.Recipe)), recipe.SourceName);
            MergePlan plan = MergeRunner.Plan(recipe, models, options.RandomSeed ?? 0);
            PlanReport.Write(plan, models, shardBytes, ParseMemoryLimit(options.MemoryLimit), console.Out,
                options.MemoryLimit is null ? DefaultMemoryLimit.Explain(DefaultMemoryLimit.MachineBytes) : $"{options.MemoryLimit} (given)",
                options.Part is null ? null : PartSelection.Parse(options.Part), WholeTensorLimit(options));
            return ExitCodes.Ok;
        }
        if (output is null)
            throw new WeldException("no output folder: give -o OUT (or OUT after the recipe, as mergekit-yaml takes it)");

        Action<string> log = options.Quiet ? _ => { } : console.Info;
        IMergeKernels kernels = SelectKernels(device, options.Threads, out string deviceReason);
        using var ownedKernels = kernels as IDisposable;
        var mergeOptions = new Engine.Execution.MergeOptions
        {
            OutputPath = output,
            MaxShardBytes = shardBytes,
            CopyTokenizer = !options.NoCopyTokenizer,
            WriteModelCard = !options.NoWriteModelCard,
            Seed = options.RandomSeed ?? 0,
            Overwrite = options.Overwrite,
            Threads = options.Threads,
            Kernels = kernels,
            MemoryLimitBytes = ParseMemoryLimit(options.MemoryLimit),
            WholeTensorLimitBytes = WholeTensorLimit(options),
            Resume = options.Resume,
            DirectIo = !options.NoDirectIo,
            AllowNonFinite = options.AllowNonFinite,
            Part = options.Part is null ? null : PartSelection.Parse(options.Part),
        };
        MergeSummary summary;
        try
        {
            using var plain = console.IsInteractive || options.Quiet ? null : new PlainProgress(console.Err, TimeSpan.FromSeconds(2));
            summary = console.IsInteractive && !options.Quiet
                ? RunWithProgressBar(recipe, mergeOptions, log, cancel)
                : MergeRunner.Run(recipe, mergeOptions, plain, log, cancel);
        }
        catch (Exception error) when (KernelBackends.IsDeviceFailure(error))
        {
            // A device failure mid-merge (out of device memory, a lost device): name the device, not a stack trace.
            throw new WeldException($"--device {device} ({deviceReason}): {error.Message}");
        }
        if (!options.Quiet)
        {
            // After the merge, not before: an input error must stay the first line on stderr.
            console.Info($"device: {deviceReason}");
            double seconds = summary.Elapsed.TotalSeconds;
            double gbps = (summary.BytesRead + summary.BytesWritten) / 1e9 / Math.Max(seconds, 1e-9);
            console.Info(string.Create(CultureInfo.InvariantCulture,
                $"merged {summary.Tensors} tensors into {output} ({summary.Shards.Count} shard(s)): read {summary.BytesRead / 1e6:F1} MB, wrote {summary.BytesWritten / 1e6:F1} MB in {seconds:F2} s ({gbps:F2} GB/s)"));
        }
        return ExitCodes.Ok;
    }

    private static long ParseMemoryLimit(string? text)
    {
        if (text is null) return DefaultMemoryLimit.Bytes;
        long bytes = ByteSize.Parse(text);
        if (bytes < 16_000_000)
            throw new WeldException($"--memory-limit {text}: at least 16M is needed for the working buffers");
        return bytes;
    }

    /// <summary>
    /// Without --memory-limit, a tensor the method cannot stream may raise the budget to half the machine's memory
    /// (<see cref="DefaultMemoryLimit.WholeTensorFor"/>); a given limit stays hard.
    /// </summary>
    private static long? WholeTensorLimit(MergeOptions options) => options.MemoryLimit is null ? DefaultMemoryLimit.WholeTensorBytes : null;

    private static void CheckDevice(string device)
    {
        if (KernelBackends.IsDeviceName(device)) return;
        throw new WeldException($"--device {device}: expected {KernelBackends.Names}");
    }

    private static IMergeKernels SelectKernels(string device, int threads, out string reason)
    {
        try
        {
            return KernelBackends.Select(device, threads, out reason);
        }
        catch (Exception error) when (error is ArgumentException or InvalidOperationException || KernelBackends.IsDeviceFailure(error))
        {
            throw new WeldException($"--device {device}: {error.Message.Split('\n', 2)[0]}");
        }
    }

    private static MergeSummary RunWithProgressBar(MergeRecipe recipe, Engine.Execution.MergeOptions options, Action<string> log, CancellationToken cancel)
    {
        MergeSummary? summary = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                // Shown from the first second: opening the models (and folding model+lora adapters) comes first.
                var task = ctx.AddTask("planning: opening the models", maxValue: 1);
                var gate = new object();
                var progress = new SyncProgress(p =>
                {
                    lock (gate)
                    {
                        switch (p.Stage)
                        {
                            case MergeStage.Planning:
                                task.Description = "planning: opening the models";
                                break;
                            case MergeStage.Merging:
                                // The bar and its remaining time run on bytes, not tensors: one large embedding is a
                                // large share of the work.
                                task.MaxValue = Math.Max(1, p.BytesToWrite);
                                task.Value = Math.Max(task.Value, p.BytesWritten);
                                task.Description = $"merging {p.TensorsDone}/{p.TensorCount}";
                                break;
                            case MergeStage.Finishing:
                                task.Value = task.MaxValue;
                                task.Description = "finishing: index, config, tokenizer";
                                break;
                        }
                    }
                });
                summary = MergeRunner.Run(recipe, options, progress, log, cancel);
            });
        return summary!;
    }

    /// <summary>Reports on the engine's thread, in order (<see cref="Progress{T}"/> posts to the thread pool, out of order).</summary>
    private sealed class SyncProgress(Action<MergeProgress> report) : IProgress<MergeProgress>
    {
        public void Report(MergeProgress value) => report(value);
    }
}

/// <summary>
/// Progress as plain lines (a pipe or CI log): one every 10% of the bytes to write, with the time left estimated from
/// bytes done over bytes to do. While planning takes longer than <c>planningDelay</c> (opening large models, folding
/// adapters), a line says so; a quick planning prints nothing, so an input error stays the only line on stderr.
/// </summary>
internal sealed class PlainProgress : IProgress<MergeProgress>, IDisposable
{
    private readonly TextWriter _writer;
    private readonly Func<TimeSpan> _clock;
    private readonly TimeSpan _planningDelay;
    private readonly object _gate = new();
    private Timer? _planningTimer;
    private bool _planning;
    private int _lastDecile = -1;
    private TimeSpan _mergeStart;

    public PlainProgress(TextWriter writer, TimeSpan planningDelay, Func<TimeSpan>? clock = null)
    {
        _writer = writer;
        _planningDelay = planningDelay;
        if (clock is null)
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            clock = () => watch.Elapsed;
        }
        _clock = clock;
    }

    public void Report(MergeProgress value)
    {
        lock (_gate)
        {
            if (value.Stage == MergeStage.Planning)
            {
                _planning = true;
                if (_planningDelay <= TimeSpan.Zero) WritePlanning();
                else _planningTimer ??= new Timer(_ => { lock (_gate) if (_planning) WritePlanning(); }, null, _planningDelay, Timeout.InfiniteTimeSpan);
                return;
            }
            _planning = false;
            _planningTimer?.Dispose();
            _planningTimer = null;
            if (value.Stage != MergeStage.Merging) return;
            if (value.TensorsDone == 0 && value.BytesWritten == 0)
            {
                _mergeStart = _clock();
                return;
            }
            int decile = (int)(value.BytesWritten * 10 / Math.Max(1, value.BytesToWrite));
            if (decile == _lastDecile) return;
            _lastDecile = decile;
            TimeSpan? left = Remaining(value.BytesWritten, value.BytesToWrite, _clock() - _mergeStart);
            _writer.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"[{decile * 10,3}%] {value.TensorsDone}/{value.TensorCount} tensors, wrote {value.BytesWritten / 1e6:F1} of {value.BytesToWrite / 1e6:F1} MB (read {value.BytesRead / 1e6:F1} MB){(left is { } l ? $", about {Math.Ceiling(l.TotalSeconds):F0} s left" : "")}"));
        }
    }

    /// <summary>Time left when <paramref name="done"/> of <paramref name="total"/> bytes took <paramref name="elapsed"/> (null before any byte).</summary>
    public static TimeSpan? Remaining(long done, long total, TimeSpan elapsed) =>
        done <= 0 || total <= 0 ? null : TimeSpan.FromTicks((long)(elapsed.Ticks * (double)Math.Max(0, total - done) / done));

    private void WritePlanning()
    {
        _writer.WriteLine("planning: opening the models and checking the recipe");
        _planning = false; // once
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _planningTimer?.Dispose();
            _planningTimer = null;
            _planning = false;
        }
    }
}

/// <summary>The plan as text: method, models, tensors, bytes, shards, memory estimate.</summary>
internal static class PlanReport
{
    public static void Write(MergePlan plan, ModelSet models, long shardBytes, long memoryLimit, TextWriter writer, string? limitReason = null,
        PartSelection? part = null, long? wholeTensorLimit = null)
    {
        var inv = CultureInfo.InvariantCulture;
        long read = 0;
        long largestStack = 0;
        foreach (var t in plan.Tensors)
        {
            int inputs = t.Rows; // inputs, base, auxiliary tensors (fisher's Fisher diagonals)
            foreach (var s in t.Inputs.Concat(t.Base is null ? [] : [t.Base]).Concat(t.Auxiliary).Concat(t.CopyFrom is null ? [] : [t.CopyFrom]))
                read += t.ElementCount * DTypes.SizeOf(models.Folders[s.Model].GetTensor(s.TensorName).Info.DType);
            largestStack = Math.Max(largestStack, t.ElementCount * 4 * (inputs + 1));
        }
        var shards = ShardLayout.Plan(plan.Tensors.Select(t => t.Header).ToArray(), shardBytes);
        writer.WriteLine($"method:   {plan.Method.Name}");
        for (int i = 0; i < plan.ModelPaths.Count; i++) writer.WriteLine($"model {i}:  {plan.ModelPaths[i]}");
        writer.WriteLine(string.Create(inv, $"tensors:  {plan.Tensors.Count}"));
        writer.WriteLine(string.Create(inv, $"read:     {read:N0} bytes"));
        writer.WriteLine(string.Create(inv, $"write:    {plan.OutputBytes:N0} bytes in {shards.Count} shard(s)"));
        if (part is { } p)
        {
            IReadOnlySet<string> mine = p.Select(shards);
            writer.WriteLine(string.Create(inv, $"part:     {p.Index}/{p.Count}: {mine.Count} of the {shards.Count} shard(s)")
                + (mine.Count == 0 ? " (nothing to compute: more parts than shards; this part only records that it ran)" : ": " + string.Join(", ", mine.Order(StringComparer.Ordinal))));
        }
        // The pipeline keeps up to two tensors in flight; a tensor over half the budget is cut into chunks, in one pass
        // (elementwise methods) or in statistics passes + an apply pass (streaming methods: TIES, DARE, Breadcrumbs, DELLA, SCE, the SLERP family, Model Stock).
        bool chunks = plan.Method.Traits.Elementwise
            || (plan.Method is IStreamingMergeMethod streaming && plan.Tensors.All(t => t.CopyFrom is not null || streaming.CanStream(t.ModelParameters, t.Global)));
        long peak = chunks ? Math.Min(memoryLimit, 2 * largestStack) : Math.Min(2 * largestStack, Math.Max(memoryLimit, largestStack));
        if (limitReason is not null) writer.WriteLine($"memory:   --memory-limit {limitReason}");
        writer.WriteLine(string.Create(inv, $"memory:   largest tensor needs {largestStack:N0} bytes of float32 buffers; peak about {peak:N0} bytes (--memory-limit {memoryLimit:N0})"));
        if (largestStack > memoryLimit / 2 && chunks)
            writer.WriteLine(string.Create(inv, $"memory:   tensors above {memoryLimit / 2:N0} bytes of buffers are merged in chunks{(plan.Method.Traits.Elementwise ? "" : ", reading them again for each statistics pass")}"));
        IReadOnlyList<TensorTask> whole = WholeTensors.AboveBudget(plan, memoryLimit);
        if (whole.Count > 0 && wholeTensorLimit is long raised)
        {
            // No --memory-limit: each of these is merged in one piece with the budget raised for it (the pipeline drains around it).
            writer.WriteLine(string.Create(inv, $"memory:   {whole.Count} tensor(s) {plan.Method.Name} cannot stream are above the budget: each is merged whole, the budget raised for it up to {raised:N0} bytes (half the machine's memory)"));
            foreach (TensorTask t in whole)
            {
                long need = WholeTensors.NeededBytes(plan, t), working = WholeTensors.WorkingBytes(plan, t);
                writer.WriteLine(string.Create(inv, $"  whole tensor {t.Header.Name}: {need:N0} bytes ({WholeTensors.BufferBytes(t):N0} of float32 buffers")
                    + (working > 0 ? string.Create(inv, $" + {working:N0} of the method's own working memory)") : ")")
                    + (need > raised ? " - more than this machine can safely give: the merge will fail" : ""));
            }
        }
        else if (largestStack > memoryLimit && !chunks)
        {
            writer.WriteLine(string.Create(inv, $"warning:  {plan.Method.Name} needs whole tensors in memory: raise --memory-limit to at least {largestStack:N0}"));
            foreach (TensorTask t in whole)
                writer.WriteLine(string.Create(inv, $"  whole tensor {t.Header.Name}: {WholeTensors.BufferBytes(t):N0} bytes of float32 buffers (above --memory-limit: the merge will fail)"));
        }
        foreach (var shard in shards)
            writer.WriteLine(string.Create(inv, $"  {shard.FileName}: {shard.Tensors.Count} tensors, {shard.DataBytes:N0} bytes"));
        foreach (string note in plan.Notes) writer.WriteLine($"note: {note}");
        if (plan.Vocabulary is { } v)
        {
            var quote = new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
            writer.WriteLine(string.Create(inv, $"vocabulary: {v.Tokens.Count} tokens, {v.Rows} rows{(v.Rows > v.Tokens.Count ? $" ({v.Rows - v.Tokens.Count} padding)" : "")}; tokenizer from {v.Source.Path}")
                + (v.Added.Count == 0 ? "" : string.Create(inv, $"; {v.Added.Count} added: ") + string.Join(", ", v.Added.Select(a => string.Create(inv, $"{a.Id} {System.Text.Json.JsonSerializer.Serialize(a.Content, quote)}")))));
            foreach (var (model, own, other) in v.RowCounts())
                writer.WriteLine(string.Create(inv, $"  rows of model {model}: {own} its own")
                    + string.Concat(other.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => string.Create(inv, $", {kv.Value} {kv.Key}"))));
        }
        foreach (var t in plan.Tensors)
            writer.WriteLine($"  {t.Header.Name} [{string.Join(", ", t.Header.Shape)}] {DTypes.ToName(t.Header.DType)} <- {string.Join(", ", t.Inputs.Select(s => $"{s.Model}:{s.TensorName}"))}{(t.Base is { } b ? $" (base {b.Model}:{b.TensorName})" : "")}{(t.CopyFrom is { } c ? $" copied unchanged from {c.Model}:{c.TensorName} (not floating point)" : "")}"
                + (t.Auxiliary.Count > 0 ? $" (auxiliary {string.Join(", ", t.Auxiliary.Select(s => $"{s.Model}:{s.TensorName}"))})" : "")
                + (t.LinesScale is double scale ? string.Create(inv, $" (lines scale {scale:R})") : ""));
    }
}
