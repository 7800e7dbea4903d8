using System.Runtime.InteropServices;
using System.Diagnostics;
using System.Threading.Channels;
using Weld.Engine.Methods;
using Weld.Engine.Models;
using Weld.Engine.Planning;
using Weld.Engine.SafeTensors;
using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Execution;

/// <summary>What a merge is doing when it reports progress.</summary>
public enum MergeStage
{
    /// <summary>Opening the models (folding <c>model+lora</c> adapters), planning, checking kept shards: no tensor computed yet.</summary>
    Planning,

    /// <summary>Computing and writing tensors; <see cref="MergeProgress.BytesWritten"/> counts up to <see cref="MergeProgress.BytesToWrite"/>.</summary>
    Merging,

    /// <summary>Every shard written: writing the index, config, tokenizer and card, renaming the folder into place.</summary>
    Finishing,
}

/// <summary>
/// Progress of a running merge: one report when the merge starts (<see cref="MergeStage.Planning"/>, before any file
/// is opened), one when the tensors start (<see cref="MergeStage.Merging"/>, nothing written yet), one after each
/// chunk of a tensor cut into chunks and after each output tensor, and one at <see cref="MergeStage.Finishing"/>.
/// <see cref="BytesWritten"/> never decreases and ends at <see cref="BytesToWrite"/>: the ETA is bytes, not tensors.
/// </summary>
/// <param name="TensorsDone">Output tensors finished.</param>
/// <param name="TensorCount">Output tensors in all (this run's shards; 0 while planning).</param>
/// <param name="BytesRead">Input bytes read so far.</param>
/// <param name="BytesWritten">Output tensor bytes written so far.</param>
/// <param name="CurrentTensor">The tensor just finished (or being written, after a chunk; empty outside <see cref="MergeStage.Merging"/>).</param>
public readonly record struct MergeProgress(int TensorsDone, int TensorCount, long BytesRead, long BytesWritten, string CurrentTensor)
{
    /// <summary>The stage of the merge.</summary>
    public MergeStage Stage { get; init; } = MergeStage.Merging;

    /// <summary>Output tensor bytes this run writes in all (0 while planning).</summary>
    public long BytesToWrite { get; init; }
}

/// <summary>What a finished merge did.</summary>
/// <param name="Tensors">Output tensors written.</param>
/// <param name="BytesRead">Input bytes read.</param>
/// <param name="BytesWritten">Output tensor bytes written.</param>
/// <param name="Elapsed">Wall time.</param>
/// <param name="Shards">The whole output's shard layout.</param>
/// <param name="ShardsWritten">Shards written by this run (resumed or other parts' shards excluded).</param>
/// <param name="PeakBufferBytes">Most working-buffer bytes held at once (never above the memory limit, except while a tensor on the whole-tensor fallback, <see cref="MergeOptions.WholeTensorLimitBytes"/>, is held).</param>
public sealed record MergeSummary(int Tensors, long BytesRead, long BytesWritten, TimeSpan Elapsed,
    IReadOnlyList<ShardPlan> Shards, IReadOnlyList<string> ShardsWritten, long PeakBufferBytes);

/// <summary>
/// Runs a <see cref="MergePlan"/> as a three-stage pipeline under a hard memory budget:
/// a loader reads and converts the next tensors' inputs, the compute stage runs the method, a writer converts
/// and appends results to the current shard. Tensors too large for the budget are cut into chunks: in one pass
/// when the method is elementwise, in statistics passes then an apply pass when it streams
/// (<see cref="IStreamingMergeMethod"/>: TIES, DARE, Breadcrumbs, DELLA, SCE, the SLERP family, Model Stock). Output bytes depend only on the plan, never on timing or thread count.
/// </summary>
public sealed class MergeExecutor
{
    /// <summary>
    /// Elements per work item of <see cref="ReadStack"/>: a base slice of 1 MiB of float32 stays in the core's L2
    /// cache while the inputs' slices subtract it, and a 1M-element projection still makes four items per core pair.
    /// </summary>
    private const int StackReadChunk = 1 << 18;

    /// <summary>Bytes per item when an integer / boolean tensor is copied unchanged.</summary>
    private const int CopyChunkBytes = 4 << 20;

    /// <summary>
    /// Elements per tile of the fused elementwise path: the rows of one tile (a few inputs × 64 KiB of float32) stay
    /// in the core's L2 cache between decoding, merging and encoding.
    /// </summary>
    internal const int TileElements = 1 << 14;

    /// <summary>
    /// Most elements per item of the fused elementwise path (16 MiB of bf16 output). Larger items buy nothing (the tiles
    /// are the unit of work) and cost fresh memory: on the bench VM first-touching a page costs about 1 s of CPU per GB
    /// (the kernel zeroes it, the hypervisor backs it), and 250 MB items made linear's peak 0.65 GB.
    /// </summary>
    internal const long FusedItemElements = 1 << 23;

    /// <summary>
    /// Most stacks of decoded inputs alive at once: the one the compute stage merges and the one the loader reads next.
    /// The loader reading further ahead buys nothing (the compute stage takes one stack at a time) but takes more of the
    /// budget as fresh memory: on the bench VM the kernel's zeroing of fresh pages cost 0.3–2 s of CPU per GB, and a
    /// deeper queue of 1B-model MLP stacks filled the 1 GB budget (bench/RESULTS.md, "Working memory reuse").
    /// </summary>
    internal const int InputStacksInFlight = 2;

    /// <summary>
    /// Most float32 results alive at once: the one the loader prepares with its stack, the one the compute stage
    /// fills, the one the writer encodes. A deeper queue towards the writer only holds fresh memory (see
    /// <see cref="InputStacksInFlight"/>).
    /// </summary>
    internal const int ResultsInFlight = 3;

    private readonly IMergeKernels _kernels;
    private readonly CpuKernels _tileKernels = new(1);
    private readonly int _parallelism;
    private readonly FloatBufferPool _pool;

    /// <summary>
    /// With an explicit thread count N, the loader, compute and writer stages take turns at their CPU work (each uses at
    /// most N threads), so the merge never keeps more than N cores busy; without one (all cores) they overlap freely.
    /// Held only around CPU work, never across a channel or a pool wait, so the stages cannot deadlock on it.
    /// </summary>
    private readonly SemaphoreSlim? _cpuGate;

    /// <summary>Creates an executor.</summary>
    /// <param name="kernels">The arithmetic backend.</param>
    /// <param name="memoryLimitBytes">Hard budget for working buffers.</param>
    /// <param name="parallelism">Threads converting input chunks (-1: all cores).</param>
    public MergeExecutor(IMergeKernels kernels, long memoryLimitBytes, int parallelism = -1)
    {
        _kernels = kernels;
        _parallelism = parallelism;
        _pool = new FloatBufferPool(memoryLimitBytes);
        _cpuGate = parallelism > 0 ? new SemaphoreSlim(1, 1) : null;
    }

    /// <summary>Enters the CPU gate (when there is one) until the returned turn is disposed.</summary>
    private CpuTurn EnterCpu(CancellationToken cancel)
    {
        _cpuGate?.Wait(cancel);
        return new CpuTurn(_cpuGate);
    }

    private readonly struct CpuTurn(SemaphoreSlim? gate) : IDisposable
    {
        public void Dispose() => gate?.Release();
    }

    /// <summary>
    /// Run elementwise methods on the CPU tile by tile (default on): each tile's inputs are decoded from the mapped
    /// files into cache-sized float32 rows, merged and encoded straight into the output dtype, so no tensor-sized
    /// float32 copy of any input or of the result is ever made. Output bytes are the same either way.
    /// </summary>
    public bool FuseElementwise { get; init; } = true;

    /// <summary>Write shards with <c>O_DIRECT</c> where the file system allows it (see <see cref="MergeOptions.DirectIo"/>).</summary>
    public bool DirectIo { get; init; }

    /// <summary>
    /// Do DARE's drop while decoding the task vectors (<see cref="IDropsWhileDecoding"/>; default on). Test seam: off
    /// leaves the drop to the method's own pass, which must give the same bytes.
    /// </summary>
    internal bool DropInDecode { get; init; } = true;

    /// <summary>
    /// Let NaN and ±Inf in input tensors through (mergekit's behaviour). Off by default: every value read is checked
    /// (a SIMD scan of the stored bits fused into the read) and the first non-finite one stops the merge with
    /// <see cref="NonFiniteInputException"/>, naming the file and tensor, before the output is committed.
    /// </summary>
    public bool AllowNonFinite { get; init; }

    /// <summary>
    /// When set, a tensor the method must merge whole (<see cref="WholeTensors"/>) whose buffers exceed the memory limit
    /// may raise the pool to this many bytes while it is loaded and merged (the pipeline drains around it: its rents
    /// wait until everything held together fits); one that needs more fails before any tensor is read. Null: the
    /// memory limit is hard for every tensor.
    /// </summary>
    public long? WholeTensorLimitBytes { get; init; }

    /// <summary>Peak working-buffer bytes of the runs so far.</summary>
    public long PeakBufferBytes => _pool.PeakBytes;

    /// <summary>
    /// Writes the shards named in <paramref name="shardsToWrite"/> (all when null) of <paramref name="plan"/>'s layout
    /// into <paramref name="folder"/>; <paramref name="shardDone"/> is called after each shard is complete and synced,
    /// with the checksum of the file as written (<see cref="ShardChecksum"/>: <c>crc32c:</c> + hex).
    /// </summary>
    public MergeSummary Execute(MergePlan plan, IReadOnlyList<ModelFolder> models, string folder, long maxShardBytes,
        ISet<string>? shardsToWrite = null, Action<ShardPlan, string>? shardDone = null,
        IProgress<MergeProgress>? progress = null, CancellationToken cancel = default)
    {
        var clock = Stopwatch.StartNew();
        var headers = plan.Tensors.Select(t => t.Header).ToArray();
        IReadOnlyList<ShardPlan> shards = ShardLayout.Plan(headers, maxShardBytes);
        var selected = shards.Where(s => shardsToWrite is null || shardsToWrite.Contains(s.FileName)).ToList();
        var taskIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < plan.Tensors.Count; i++) taskIndex[plan.Tensors[i].Header.Name] = i;
        foreach (ShardPlan shard in selected)
            foreach (TensorHeader h in shard.Tensors)
                CheckFits(plan, plan.Tensors[taskIndex[h.Name]]);

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var loaded = Channel.CreateBounded<WorkItem>(new BoundedChannelOptions(2) { SingleReader = true, SingleWriter = true });
        var computed = Channel.CreateBounded<WorkItem>(new BoundedChannelOptions(2) { SingleReader = true, SingleWriter = true });
        int tensorCount = selected.Sum(s => s.Tensors.Count);
        var counters = new Counters { BytesToWrite = selected.Sum(s => s.Tensors.Sum(t => t.ByteLength)) };
        progress?.Report(new MergeProgress(0, tensorCount, 0, 0, "") { Stage = MergeStage.Merging, BytesToWrite = counters.BytesToWrite });

        using var stacks = new SemaphoreSlim(InputStacksInFlight, InputStacksInFlight);
        using var results = new SemaphoreSlim(ResultsInFlight, ResultsInFlight);
        var inFlight = new InFlight(stacks, results);
        // Each stage blocks for most of its life (on its neighbours' turns and channels): on threads of their own they
        // leave the thread pool's workers to the parallel loops inside the stages.
        Task loader = StartStage(() => Stage(stop, loaded.Writer, () => Load(plan, models, selected, taskIndex, loaded.Writer, counters, inFlight, stop.Token)));
        Task compute = StartStage(() => Stage(stop, computed.Writer, () => Compute(plan, models, loaded.Reader, computed.Writer, inFlight, stop.Token)));
        Task writer = StartStage(() => Stage(stop, null, () => Write(folder, selected, computed.Reader, counters, tensorCount, shardDone, progress, inFlight, stop.Token)));
        try
        {
            Task.WaitAll(loader, compute, writer);
        }
        catch (AggregateException e)
        {
            // Report the first real failure, not the cancellations it caused downstream.
            // Parallel loops inside a stage wrap their errors once more, and a stage reading a failed channel sees
            // ChannelClosedException around the real cause: unwrap both, so a bad input stays a WeldException.
            var all = e.Flatten().InnerExceptions.Select(Unwrap).ToList();
            Exception first = all.FirstOrDefault(x => x is WeldException)
                ?? all.FirstOrDefault(x => x is not OperationCanceledException) ?? all[0];
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(first).Throw();
        }
        finally
        {
            // Every stage has stopped: free the buffers, including those of items a failure left in the channels.
            _pool.ReleaseAll();
        }
        return new MergeSummary(counters.Tensors, counters.BytesRead, counters.BytesWritten, clock.Elapsed, shards,
            selected.Select(s => s.FileName).ToArray(), _pool.PeakBytes);
    }

    /// <summary>The cause under <see cref="ChannelClosedException"/> and (single-cause) <see cref="AggregateException"/> wrappers.</summary>
    private static Exception Unwrap(Exception e)
    {
        while (true)
        {
            if (e is ChannelClosedException { InnerException: { } inner }) e = inner;
            else if (e is AggregateException aggregate)
            {
                var causes = aggregate.Flatten().InnerExceptions;
                e = causes.FirstOrDefault(x => x is not OperationCanceledException) ?? causes[0];
            }
            else return e;
        }
    }

    private static Task StartStage(Action stage) =>
        Task.Factory.StartNew(stage, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>Runs a stage; on failure cancels the others and fails its output channel.</summary>
    private static void Stage(CancellationTokenSource stop, ChannelWriter<WorkItem>? output, Action body)
    {
        try
        {
            body();
            output?.Complete();
        }
        catch (Exception e)
        {
            output?.Complete(e);
            stop.Cancel();
            throw;
        }
    }

    private void CheckFits(MergePlan plan, TensorTask task)
    {
        if (task.CopyFrom is not null)
        {
            long floats = (Math.Min(task.Header.ByteLength, CopyChunkBytes) + 3) / 4;
            if (_pool.CanFit(floats)) return;
            throw new WeldException($"tensor {task.Header.Name}: a copy chunk of {floats * 4:N0} bytes is above the memory limit of {_pool.LimitBytes:N0} bytes; raise --memory-limit");
        }
        long rows = task.Rows;
        if (IsFused(plan, task))
        {
            // One item's encoded output plus the tiles' scratch rows of every worker.
            long chunk = Math.Min(task.ElementCount, TensorMergeInputs.ChunkAlignment);
            int tileLength = (int)Math.Max(1, Math.Min(chunk, TileElements));
            long floats = (chunk * DTypes.SizeOf(task.Header.DType) + 3) / 4 + (long)TileWorkers((int)((chunk + tileLength - 1) / tileLength)) * (rows + 1) * tileLength;
            if (_pool.CanFit(floats)) return;
            throw new WeldException(
                $"tensor {task.Header.Name}: one chunk of {chunk:N0} elements and its tiles ({floats * sizeof(float):N0} bytes) " +
                $"are above the memory limit of {_pool.LimitBytes:N0} bytes; raise --memory-limit");
        }
        long whole = (rows + 1) * task.ElementCount;
        if (WholeTensorLimitBytes is long raised && WholeTensors.MustBeWhole(plan, task) && !_pool.CanFit(whole))
        {
            long working = WholeTensors.WorkingBytes(plan, task);
            if (whole * sizeof(float) + working <= raised) return;
            throw new WeldException(
                $"tensor {task.Header.Name} ({task.ElementCount:N0} elements, {rows} inputs): {plan.Method.Name} needs the whole tensor in memory, " +
                $"{whole * sizeof(float) + working:N0} bytes ({whole * sizeof(float):N0} of float32 buffers{(working > 0 ? $" + {working:N0} of its own working memory" : "")}), " +
                $"above the {raised:N0} bytes this machine can safely give a tensor (half its memory)");
        }
        if (_pool.CanFit(whole) || plan.Method.Traits.Elementwise || CanStream(plan, task))
        {
            long smallest = (rows + 1) * Math.Min(task.ElementCount, TensorMergeInputs.ChunkAlignment);
            if (_pool.CanFit(smallest)) return;
            throw new WeldException(
                $"tensor {task.Header.Name}: even one chunk of {Math.Min(task.ElementCount, TensorMergeInputs.ChunkAlignment):N0} elements × {rows + 1} buffers " +
                $"({smallest * sizeof(float):N0} bytes) is above the memory limit of {_pool.LimitBytes:N0} bytes; raise --memory-limit");
        }
        throw new WeldException(
            $"tensor {task.Header.Name} ({task.ElementCount:N0} elements, {rows} inputs): {plan.Method.Name} needs the whole tensor in memory, " +
            $"{whole * sizeof(float):N0} bytes of float32 buffers, above the memory limit of {_pool.LimitBytes:N0} bytes; raise --memory-limit");
    }

    private static bool CanStream(MergePlan plan, TensorTask task) =>
        plan.Method is IStreamingMergeMethod streaming && streaming.CanStream(task.ModelParameters, task.Global);

    /// <summary>Elements per chunk when a tensor is cut: about a quarter of the budget per item, so several are in flight.</summary>
    private long ChunkElements(int rows)
    {
        long target = _pool.LimitBytes / sizeof(float) / 4 / (rows + 1);
        return Math.Max(TensorMergeInputs.ChunkAlignment, target / TensorMergeInputs.ChunkAlignment * TensorMergeInputs.ChunkAlignment);
    }

    private void Load(MergePlan plan, IReadOnlyList<ModelFolder> models, List<ShardPlan> shards, Dictionary<string, int> taskIndex,
        ChannelWriter<WorkItem> output, Counters counters, InFlight inFlight, CancellationToken cancel)
    {
        foreach (ShardPlan shard in shards)
        {
            foreach (TensorHeader header in shard.Tensors)
            {
                TensorTask task = plan.Tensors[taskIndex[header.Name]];
                if (task.CopyFrom is { } copy)
                {
                    LoadCopy(models, task, copy, output, counters, cancel);
                    continue;
                }
                int rows = task.Rows;
                long n = task.ElementCount;
                long chunk = n;
                IStreamingTensorMerge? stream = null;
                StreamPasses? ended = null;
                int passes = 0;
                // A tensor whose buffers take more than half the budget is cut into chunks (keeping two items in
                // flight): in one pass for elementwise methods, in statistics passes + an apply pass for streaming ones.
                bool large = (rows + 1) * n * sizeof(float) > _pool.LimitBytes / 2;
                bool fused = IsFused(plan, task);
                bool taskVectors = TakesTaskVectors(plan, task);
                RandomDrop?[]? drops = taskVectors ? DropsInDecode(plan, task) : null;
                if (fused)
                {
                    // Only the encoded output is buffered: items of about a quarter of the budget each, and no larger than
                    // FusedItemElements, so the few buffer sizes in use are reused from the pool instead of fresh pages.
                    long target = Math.Min(_pool.LimitBytes / 4 / DTypes.SizeOf(header.DType), FusedItemElements);
                    chunk = Math.Min(n, Math.Max(TensorMergeInputs.ChunkAlignment, target / TensorMergeInputs.ChunkAlignment * TensorMergeInputs.ChunkAlignment));
                }
                else if (plan.Method.Traits.Elementwise)
                {
                    chunk = Math.Min(n, ChunkElements(rows));
                }
                else if (large && CanStream(plan, task))
                {
                    chunk = Math.Min(n, ChunkElements(rows));
                    stream = ((IStreamingMergeMethod)plan.Method).BeginTensor(Inputs(plan, task, Memory<float>.Empty, ReadOnlyMemory<float>.Empty, 0, n));
                    ended = new StreamPasses();
                    passes = stream.StatisticsPasses;
                }
                // A tensor that must be merged whole and is above the limit takes the raised budget (CheckFits allowed it).
                // The method's own working memory is left out of the pool: the buffers wait until they fit beside it.
                long limit = WholeTensorLimitBytes is long raised && WholeTensors.MustBeWhole(plan, task) && WholeTensors.BufferBytes(task) > _pool.LimitBytes
                    ? raised - WholeTensors.WorkingBytes(plan, task) : _pool.LimitBytes;
                if (chunk > Array.MaxLength / Math.Max(rows, 1))
                    throw new WeldException($"tensor {header.Name}: {n:N0} elements × {rows} inputs do not fit one in-memory stack; lower --memory-limit so it is processed in chunks");
                for (int pass = 0; pass <= passes; pass++)
                {
                    if (ended is not null && pass > 0)
                    {
                        // A pass may show that fewer passes are needed: wait until the compute stage has closed the
                        // previous one (the pipeline drains once per pass boundary) and ask again.
                        ended.WaitForNextEnd(cancel);
                        passes = stream!.StatisticsPasses;
                        if (pass > passes) throw new InvalidOperationException($"tensor {header.Name}: the streamed merge asked for fewer passes than it already had");
                    }
                    bool apply = pass == passes;
                    for (long offset = 0; offset < n || (n == 0 && offset == 0); offset += Math.Max(chunk, 1))
                    {
                        int length = (int)Math.Min(chunk, n - offset);
                        if (fused)
                        {
                            // The compute stage reads the tiles itself; here the pages are mapped ahead of it.
                            long fusedBytes = 0;
                            foreach (TensorSource source in RowSources(task))
                            {
                                ModelTensor tensor = Resolve(models, source, offset, length, header.Name);
                                if (source.Rows is null) tensor.Prefetch(offset, length);
                                fusedBytes += (long)length * DTypes.SizeOf(tensor.Info.DType);
                            }
                            Interlocked.Add(ref counters.BytesRead, fusedBytes);
                            var tiled = new WorkItem(task, offset, length, offset + length >= n, null, null, Fused: true);
                            if (!output.TryWrite(tiled))
                                output.WriteAsync(tiled, cancel).AsTask().GetAwaiter().GetResult();
                            if (n == 0) break;
                            continue;
                        }
                        // One stack ahead of the compute stage at most (InputStacksInFlight; the compute stage releases
                        // it), and one result ahead of the writer's (ResultsInFlight; the writer releases it).
                        inFlight.Stacks.Wait(cancel);
                        NativeFloatBuffer inputs = _pool.Rent(rows * length, limit, cancel);
                        if (apply) inFlight.Results.Wait(cancel);
                        NativeFloatBuffer? result = apply ? _pool.Rent(length, limit, cancel) : null;
                        long bytes = 0;
                        // The drop's norm partials are statistics: a streamed tensor's apply pass needs none.
                        ItemDrops? dropped = drops is null ? null : NewItemDrops(drops, length, withNorms: stream is null || !apply);
                        using (EnterCpu(cancel))
                            bytes = ReadStack(models, task, offset, length, inputs.Memory, taskVectors, dropped);
                        Interlocked.Add(ref counters.BytesRead, bytes);
                        bool last = offset + length >= n;
                        var item = new WorkItem(task, offset, length, last, inputs, result, stream, pass, Ended: ended, TaskVectors: taskVectors,
                            Dropped: dropped?.Drops);
                        if (!output.TryWrite(item))
                            output.WriteAsync(item, cancel).AsTask().GetAwaiter().GetResult();
                        if (n == 0) break;
                    }
                }
            }
        }
    }

    /// <summary>Queues the stored bytes of a copied (integer / boolean) tensor in chunks; the writer appends them as they are.</summary>
    private void LoadCopy(IReadOnlyList<ModelFolder> models, TensorTask task, TensorSource copy, ChannelWriter<WorkItem> output,
        Counters counters, CancellationToken cancel)
    {
        ModelTensor tensor = models[copy.Model].GetTensor(copy.TensorName);
        int size = DTypes.SizeOf(task.Header.DType);
        long n = task.ElementCount;
        long chunk = Math.Max(1, CopyChunkBytes / size);
        for (long offset = 0; offset < n || (n == 0 && offset == 0); offset += chunk)
        {
            int length = (int)Math.Min(chunk, n - offset);
            NativeFloatBuffer bytes = _pool.Rent(checked((int)(((long)length * size + 3) / 4)), cancel);
            tensor.ReadBytes(offset * size, MemoryMarshal.AsBytes(bytes.Span).Slice(0, length * size));
            Interlocked.Add(ref counters.BytesRead, (long)length * size);
            var item = new WorkItem(task, offset, length, offset + length >= n, null, bytes, Fused: true, Copy: true);
            if (!output.TryWrite(item))
                output.WriteAsync(item, cancel).AsTask().GetAwaiter().GetResult();
            if (n == 0) break;
        }
    }

    /// <summary>
    /// True when the loader forms the task vectors θ_k − θ_base while decoding the rows (in the same pass, instead of
    /// the method's own pass over them): the method takes them (<see cref="MethodTraits.TakesTaskVectors"/>), there is a
    /// base, and the CPU computes (a GPU backend subtracts on the device, where the pass is cheap).
    /// </summary>
    private bool TakesTaskVectors(MergePlan plan, TensorTask task) =>
        plan.Method.Traits.TakesTaskVectors && task.Base is not null && _kernels is CpuKernels;

    /// <summary>
    /// The drop of each input row that the method wants done in the decode (<see cref="IDropsWhileDecoding"/>), or null
    /// when it wants none: asked once per tensor, where the loader forms the task vectors.
    /// </summary>
    private RandomDrop?[]? DropsInDecode(MergePlan plan, TensorTask task)
    {
        if (!DropInDecode || plan.Method is not IDropsWhileDecoding method) return null;
        TensorMergeInputs description = Inputs(plan, task, Memory<float>.Empty, ReadOnlyMemory<float>.Empty, 0, task.ElementCount);
        var drops = new RandomDrop?[task.Inputs.Count];
        bool any = false;
        for (int i = 0; i < drops.Length; i++)
        {
            drops[i] = method.DropInDecode(description, i);
            any |= drops[i] is not null;
        }
        return any ? drops : null;
    }

    /// <summary>One item's drops and the norm partials its rows' decode fills (none without <paramref name="withNorms"/>).</summary>
    private static ItemDrops NewItemDrops(RandomDrop?[] drops, int length, bool withNorms)
    {
        var itemDrops = new RandomDrop?[drops.Length];
        bool norms = false;
        for (int i = 0; i < drops.Length; i++)
        {
            itemDrops[i] = drops[i] is { } drop ? drop with { WithNorms = drop.WithNorms && withNorms } : null;
            norms |= itemDrops[i] is { WithNorms: true };
        }
        int perRow = norms ? DecodeDrop.NormPartials(length) : 0;
        double[] partials = norms ? new double[drops.Length * perRow] : [];
        return new ItemDrops(itemDrops, partials, perRow, new DecodedDrops(itemDrops, partials, perRow));
    }

    /// <summary>An item's drops as the loader uses them (per row, with the row's slice of the partials) and as the method sees them.</summary>
    private sealed record ItemDrops(RandomDrop?[] PerRow, double[] Partials, int PartialsPerRow, DecodedDrops Drops)
    {
        public RandomDrop? Drop(int row) => PerRow[row];

        public Memory<double> RowPartials(int row) =>
            PerRow[row] is { WithNorms: true } ? Partials.AsMemory(row * PartialsPerRow, PartialsPerRow) : Memory<double>.Empty;
    }

    /// <summary>What the method sees for one tensor or one chunk of it.</summary>
    private TensorMergeInputs Inputs(MergePlan plan, TensorTask task, Memory<float> models, ReadOnlyMemory<float> baseline, long offset, long length,
        ReadOnlyMemory<float> auxiliary = default, IMergeKernels? kernels = null, bool taskVectors = false, DecodedDrops? dropped = null)
    {
        int k = task.Inputs.Count;
        var indices = new int[k];
        for (int i = 0; i < k; i++) indices[i] = task.Inputs[i].RecipeIndex;
        bool whole = offset == 0 && length == task.ElementCount;
        return new TensorMergeInputs
        {
            Kernels = kernels ?? _kernels,
            TensorName = task.Header.Name,
            Shape = whole ? task.Header.Shape : [length],
            Models = models,
            Base = baseline,
            ModelsAreTaskVectors = taskVectors,
            DecodedDrops = dropped,
            Auxiliary = auxiliary,
            ModelParameters = task.ModelParameters,
            Global = task.Global,
            ModelIndices = indices,
            Seed = plan.Seed,
            TensorHash = TensorNameHash.Compute(task.Header.Name),
            Offset = offset,
            TensorLength = task.ElementCount,
        };
    }

    private void Compute(MergePlan plan, IReadOnlyList<ModelFolder> models, ChannelReader<WorkItem> input, ChannelWriter<WorkItem> output,
        InFlight inFlight, CancellationToken cancel)
    {
        while (input.WaitToReadAsync(cancel).AsTask().GetAwaiter().GetResult())
        {
            while (input.TryRead(out WorkItem? item))
            {
                TensorTask task = item.Task;
                if (item.Copy)
                {
                    output.WriteAsync(item, cancel).AsTask().GetAwaiter().GetResult();
                    continue;
                }
                if (item.Fused)
                {
                    NativeFloatBuffer encoded = _pool.Rent(checked((int)(((long)item.Length * DTypes.SizeOf(task.Header.DType) + 3) / 4)), cancel);
                    MergeTiles(plan, task, models, item.Offset, item.Length, encoded, cancel);
                    output.WriteAsync(item with { Output = encoded }, cancel).AsTask().GetAwaiter().GetResult();
                    continue;
                }
                int k = task.Inputs.Count;
                Memory<float> data = item.Inputs!.Memory;
                TensorMergeInputs inputs = Inputs(plan, task, data.Slice(0, k * item.Length),
                    task.Base is null ? ReadOnlyMemory<float>.Empty : data.Slice(k * item.Length, item.Length),
                    item.Offset, item.Length, data.Slice((task.Rows - task.Auxiliary.Count) * item.Length, task.Auxiliary.Count * item.Length),
                    taskVectors: item.TaskVectors, dropped: item.Dropped);
                if (item.Stream is { } stream && item.Pass < stream.StatisticsPasses)
                {
                    using (EnterCpu(cancel))
                    {
                        stream.Observe(item.Pass, inputs);
                        if (item.Last) stream.EndPass(item.Pass);
                    }
                    if (item.Last) item.Ended!.End();
                    _pool.Return(item.Inputs);
                    inFlight.Stacks.Release();
                    continue; // statistics only: nothing to write
                }
                using (EnterCpu(cancel))
                {
                    Span<float> result = item.Output!.Span.Slice(0, item.Length);
                    if (item.Stream is { } streamed)
                        streamed.Merge(inputs, result);
                    else
                        plan.Method.Merge(inputs, result);
                    if (task.LinesScale is double scale)
                        LayerScaling.Apply(inputs.Kernels, inputs.Base.Span, result, (float)scale);
                }
                _pool.Return(item.Inputs);
                inFlight.Stacks.Release();
                output.WriteAsync(item with { Inputs = null }, cancel).AsTask().GetAwaiter().GetResult();
            }
        }
    }

    private void Write(string folder, List<ShardPlan> shards, ChannelReader<WorkItem> input, Counters counters, int tensorCount,
        Action<ShardPlan, string>? shardDone, IProgress<MergeProgress>? progress, InFlight inFlight, CancellationToken cancel)
    {
        // A finished shard is synced to disk (and reported) in the background while the next one is written, so the
        // pipeline does not stall for each fsync; shards are still reported in order, each only once it is durable.
        Task synced = Task.CompletedTask;
        bool failed = true;
        try
        {
            foreach (ShardPlan shard in shards)
            {
                var writer = new SafeTensorsWriter(Path.Combine(folder, shard.FileName), shard.Tensors, null, DirectIo);
                try
                {
                    foreach (TensorHeader header in shard.Tensors)
                    {
                        cancel.ThrowIfCancellationRequested(); // stop at the next tensor, even with finished ones queued
                        while (true)
                        {
                            WorkItem item = ReadNext(input, cancel);
                            Debug.Assert(item.Task.Header.Name == header.Name);
                            using (EnterCpu(cancel))
                            {
                                if (item.Fused)
                                    writer.WriteBytes(MemoryMarshal.AsBytes(item.Output!.Span).Slice(0, item.Length * DTypes.SizeOf(header.DType)));
                                else
                                    writer.WriteFloat32(item.Output!.Span.Slice(0, item.Length));
                            }
                            _pool.Return(item.Output);
                            if (!item.Fused) inFlight.Results.Release(); // a float32 result the loader took a turn for
                            counters.BytesWritten += (long)item.Length * DTypes.SizeOf(header.DType);
                            if (item.Last) break;
                            // A tensor cut into chunks: report each chunk, so a large embedding shows progress too.
                            progress?.Report(new MergeProgress(counters.Tensors, tensorCount, Interlocked.Read(ref counters.BytesRead), counters.BytesWritten, header.Name)
                                { BytesToWrite = counters.BytesToWrite });
                        }
                        counters.Tensors++;
                        progress?.Report(new MergeProgress(counters.Tensors, tensorCount, Interlocked.Read(ref counters.BytesRead), counters.BytesWritten, header.Name)
                            { BytesToWrite = counters.BytesToWrite });
                    }
                }
                catch
                {
                    writer.Dispose();
                    throw;
                }
                Task previous = synced;
                synced = Task.Run(() =>
                {
                    string checksum;
                    using (writer)
                    {
                        writer.Complete();
                        checksum = writer.Checksum!;
                    }
                    previous.GetAwaiter().GetResult();
                    shardDone?.Invoke(shard, checksum);
                });
            }
            synced.GetAwaiter().GetResult();
            failed = false;
        }
        finally
        {
            // On a failure, let the shard being synced finish and be recorded (for --resume) before the caller
            // cleans up; its own error, if any, is secondary to the one already propagating.
            if (failed)
                try { synced.GetAwaiter().GetResult(); } catch (Exception) { }
        }
    }

    private static WorkItem ReadNext(ChannelReader<WorkItem> input, CancellationToken cancel)
    {
        if (input.TryRead(out WorkItem? item)) return item;
        return input.ReadAsync(cancel).AsTask().GetAwaiter().GetResult();
    }

    /// <summary>
    /// Reads elements [offset, offset + length) of every row of <paramref name="task"/>'s stack as float32 into
    /// <paramref name="stack"/> (inputs, then the base, then auxiliary tensors, <paramref name="length"/> each); with
    /// <paramref name="taskVectors"/> the inputs become θ_k − θ_base. One parallel loop over column chunks of
    /// <see cref="StackReadChunk"/> elements: each chunk decodes the base's slice first, then the inputs' slices minus
    /// it while it is still in cache, so the subtraction never reads the base row back from memory, and a tensor of
    /// a million elements still spreads over every core. Each element's value does not depend on the chunking.
    /// </summary>
    /// <returns>The stored bytes read.</returns>
    private long ReadStack(IReadOnlyList<ModelFolder> models, TensorTask task, long offset, int length, Memory<float> stack, bool taskVectors,
        ItemDrops? dropped)
    {
        string outputName = task.Header.Name;
        int inputs = task.Inputs.Count, auxiliaryStart = task.Rows - task.Auxiliary.Count;
        // (source, row in the stack) in reading order: the base first, so its slice is ready to subtract.
        var sources = new List<(TensorSource Source, int Row)>(task.Rows);
        if (task.Base is { } b) sources.Add((b, inputs));
        for (int i = 0; i < inputs; i++) sources.Add((task.Inputs[i], i));
        for (int i = 0; i < task.Auxiliary.Count; i++) sources.Add((task.Auxiliary[i], auxiliaryStart + i));
        var tensors = new ModelTensor[sources.Count];
        long bytes = 0;
        for (int s = 0; s < sources.Count; s++)
        {
            tensors[s] = Resolve(models, sources[s].Source, offset, length, outputName);
            bytes += (long)length * DTypes.SizeOf(tensors[s].Info.DType);
        }
        bool subtract = taskVectors && task.Base is not null;
        bool check = !AllowNonFinite;
        int chunks = (length + StackReadChunk - 1) / StackReadChunk;
        void ReadChunk(int c)
        {
            int start = c * StackReadChunk;
            int size = Math.Min(StackReadChunk, length - start);
            Span<float> all = stack.Span;
            ReadOnlySpan<float> baseSlice = subtract ? all.Slice(inputs * length + start, size) : default;
            for (int s = 0; s < sources.Count; s++)
            {
                (TensorSource source, int row) = sources[s];
                bool minusBase = subtract && row < inputs;
                // DARE's drop rides in the decode (IDropsWhileDecoding); each chunk fills its own norm partials
                // (StackReadChunk is a multiple of DecodeDrop.NormChunkLength).
                RandomDrop? drop = row < inputs ? dropped?.Drop(row) : null;
                Span<double> norms = drop is { WithNorms: true } ? dropped!.RowPartials(row).Span.Slice(start / DecodeDrop.NormChunkLength * 2) : default;
                ReadSource(models, source, tensors[s], offset + start, all.Slice(row * length + start, size), check,
                    minusBase ? baseSlice : default, drop, norms);
            }
        }
        if (chunks <= 1 || _parallelism == 1)
        {
            for (int c = 0; c < chunks; c++) ReadChunk(c);
        }
        else
        {
            Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = _parallelism }, ReadChunk);
        }
        return bytes;
    }

    private static ModelTensor Resolve(IReadOnlyList<ModelFolder> models, TensorSource source, long offset, long length, string outputName)
    {
        ModelTensor tensor = models[source.Model].GetTensor(source.TensorName);
        if (source.Rows is { } map)
        {
            if (map.ElementCount < offset + length)
                throw new WeldException($"{models[source.Model].Path}: tensor {source.TensorName} in the output vocabulary has {map.ElementCount:N0} elements, {outputName} needs {offset + length:N0}");
            return tensor;
        }
        if (tensor.Info.ElementCount < offset + length)
            throw new WeldException($"{models[source.Model].Path}: tensor {source.TensorName} has {tensor.Info.ElementCount:N0} elements, {outputName} needs {offset + length:N0}");
        return tensor;
    }

    /// <summary>
    /// Reads a source's elements: the stored tensor, or its rows permuted into the output vocabulary; minus
    /// <paramref name="subtrahend"/> when it is not empty (fused into the conversion for a stored tensor).
    /// </summary>
    private static void ReadSource(IReadOnlyList<ModelFolder> models, TensorSource source, ModelTensor tensor, long offset, Span<float> destination, bool check,
        ReadOnlySpan<float> subtrahend = default, RandomDrop? drop = null, Span<double> norms = default)
    {
        if (source.Rows is { } map)
        {
            map.Read(models, offset, destination, check);
            if (!subtrahend.IsEmpty) System.Numerics.Tensors.TensorPrimitives.Subtract(destination, subtrahend, destination);
            if (drop is { } gathered) DecodeDrop.Apply(destination, offset, gathered, norms);
        }
        else tensor.ReadFloat32(offset, destination, check, subtrahend, drop, norms);
    }

    /// <summary>The sources of a task's input rows in stacking order: inputs, the base, auxiliary tensors.</summary>
    private static IEnumerable<TensorSource> RowSources(TensorTask task)
    {
        foreach (TensorSource source in task.Inputs) yield return source;
        if (task.Base is { } b) yield return b;
        foreach (TensorSource source in task.Auxiliary) yield return source;
    }

    /// <summary>True when the tensor runs on the fused elementwise path (CPU kernels, an elementwise method, a float output).</summary>
    private bool IsFused(MergePlan plan, TensorTask task) =>
        FuseElementwise && plan.Method.Traits.Elementwise && _kernels is CpuKernels && DTypes.IsFloatingPoint(task.Header.DType);

    /// <summary>Workers for <paramref name="tiles"/> tiles: one per thread allowed, never more than there are tiles.</summary>
    private int TileWorkers(int tiles) => Math.Max(1, Math.Min(tiles, _parallelism == -1 ? Environment.ProcessorCount : _parallelism));

    /// <summary>
    /// Merges elements [offset, offset + length) tile by tile on all workers: decode each input's tile from its
    /// mapping, run the method on the tile with single-threaded kernels, encode the result into
    /// <paramref name="encoded"/>. Tiles are assigned to workers round-robin; every tile's bytes depend only on its
    /// inputs (the method is elementwise), so the output is the same on any number of threads.
    /// </summary>
    private void MergeTiles(MergePlan plan, TensorTask task, IReadOnlyList<ModelFolder> models, long offset, int length,
        NativeFloatBuffer encoded, CancellationToken cancel)
    {
        TensorSource[] sources = RowSources(task).ToArray();
        var tensors = new ModelTensor[sources.Length];
        for (int i = 0; i < sources.Length; i++) tensors[i] = Resolve(models, sources[i], offset, length, task.Header.Name);
        int rows = sources.Length, k = task.Inputs.Count, auxiliaryStart = rows - task.Auxiliary.Count;
        int tileLength = Math.Max(1, Math.Min(TileElements, length));
        int tiles = length == 0 ? 0 : (length + tileLength - 1) / tileLength;
        int workers = TileWorkers(tiles);
        int stride = (rows + 1) * tileLength;
        NativeFloatBuffer scratch = _pool.Rent(workers * stride, cancel);
        DType dtype = task.Header.DType;
        int size = DTypes.SizeOf(dtype);
        try
        {
            using CpuTurn turn = EnterCpu(cancel);
            Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers, CancellationToken = cancel }, worker =>
            {
                Memory<float> own = scratch.Memory.Slice(worker * stride, stride);
                for (int tile = worker; tile < tiles; tile += workers)
                {
                    int start = tile * tileLength;
                    int count = Math.Min(tileLength, length - start);
                    Memory<float> data = own.Slice(0, rows * count);
                    for (int r = 0; r < rows; r++)
                        ReadSource(models, sources[r], tensors[r], offset + start, data.Span.Slice(r * count, count), !AllowNonFinite);
                    Span<float> result = own.Span.Slice(rows * count, count);
                    TensorMergeInputs inputs = Inputs(plan, task, data.Slice(0, k * count),
                        task.Base is null ? ReadOnlyMemory<float>.Empty : data.Slice(k * count, count),
                        offset + start, count, data.Slice(auxiliaryStart * count, task.Auxiliary.Count * count), _tileKernels);
                    plan.Method.Merge(inputs, result);
                    if (task.LinesScale is double scale)
                        LayerScaling.Apply(inputs.Kernels, inputs.Base.Span, result, (float)scale);
                    FloatEncoding.Encode(dtype, result, MemoryMarshal.AsBytes(encoded.Span).Slice(start * size, count * size));
                }
            });
        }
        finally
        {
            _pool.Return(scratch);
        }
    }

    /// <summary>
    /// One tensor (or one chunk of it) travelling through the pipeline; a streamed tensor's chunks come once per
    /// statistics pass (no output buffer) and once more for the apply pass (<c>Pass == StatisticsPasses</c>); a fused
    /// item carries no inputs (the compute stage reads its tiles) and its output buffer holds encoded bytes.
    /// </summary>
    private sealed record WorkItem(TensorTask Task, long Offset, int Length, bool Last, NativeFloatBuffer? Inputs, NativeFloatBuffer? Output,
        IStreamingTensorMerge? Stream = null, int Pass = 0, bool Fused = false, bool Copy = false, StreamPasses? Ended = null,
        bool TaskVectors = false, DecodedDrops? Dropped = null);

    /// <summary>Counts the statistics passes of one streamed tensor that the compute stage has closed; the loader waits on it.</summary>
    private sealed class StreamPasses
    {
        private readonly SemaphoreSlim _ended = new(0);

        /// <summary>Called by the compute stage after <see cref="IStreamingTensorMerge.EndPass"/>.</summary>
        public void End() => _ended.Release();

        /// <summary>Blocks until the next pass is closed (passes close in order, one release each).</summary>
        public void WaitForNextEnd(CancellationToken cancel) => _ended.Wait(cancel);
    }

    /// <summary>The turns that bound how far the loader runs ahead (<see cref="InputStacksInFlight"/>, <see cref="ResultsInFlight"/>).</summary>
    private sealed record InFlight(SemaphoreSlim Stacks, SemaphoreSlim Results);

    private sealed class Counters
    {
        public long BytesToWrite;
        public long BytesRead;
        public long BytesWritten;
        public int Tensors;
    }
}
