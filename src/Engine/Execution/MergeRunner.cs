using Weld.Engine.Alignment;
using Weld.Engine.Config;
using Weld.Engine.Models;
using Weld.Engine.Planning;
using Weld.Engine.SafeTensors;
using Weld.Engine.Tokenizers;
using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Execution;

/// <summary>Options of one merge (the CLI's flags; embedders set them directly).</summary>
public sealed class MergeOptions
{
    /// <summary>Output folder; created atomically (written beside it, renamed into place when complete).</summary>
    public required string OutputPath { get; init; }

    /// <summary>Largest output shard in bytes (mergekit's --out-shard-size; default 5B = 5·10⁹).</summary>
    public long MaxShardBytes { get; init; } = 5_000_000_000;

    /// <summary>Hard budget for working buffers in bytes (default: <see cref="DefaultMemoryLimit.Bytes"/>, from the machine's memory).</summary>
    public long MemoryLimitBytes { get; init; } = DefaultMemoryLimit.Bytes;

    /// <summary>
    /// When set, a tensor the method must merge whole (<see cref="WholeTensors"/>) whose buffers exceed
    /// <see cref="MemoryLimitBytes"/> may take up to this many bytes of buffers in all (the pipeline drains around it);
    /// one that needs more fails before any tensor is merged. Null (default): such a tensor fails, as the limit is hard.
    /// The CLI sets <see cref="DefaultMemoryLimit.WholeTensorBytes"/> when no <c>--memory-limit</c> is given.
    /// </summary>
    public long? WholeTensorLimitBytes { get; init; }

    /// <summary>Copy tokenizer and side files from the tokenizer source (default on).</summary>
    public bool CopyTokenizer { get; init; } = true;

    /// <summary>Write README.md (model card) and mergekit_config.yml (default on).</summary>
    public bool WriteModelCard { get; init; } = true;

    /// <summary>Random seed for the methods that draw masks (DARE).</summary>
    public ulong Seed { get; init; }

    /// <summary>Replace an existing output folder.</summary>
    public bool Overwrite { get; init; }

    /// <summary>Reuse the shards an interrupted run of the same plan finished.</summary>
    public bool Resume { get; init; }

    /// <summary>Compute only this part of the shards (scale-out); <c>weld finalize</c> assembles the parts.</summary>
    public PartSelection? Part { get; init; }

    /// <summary>
    /// Write output shards with <c>O_DIRECT</c> (default on; Linux, where the file system allows it): the bytes go
    /// from Weld's buffers to the device without being copied into the page cache. Output bytes are the same either way.
    /// </summary>
    public bool DirectIo { get; init; } = true;

    /// <summary>
    /// Run elementwise methods tile by tile on the CPU, decoding inputs and encoding the output in cache-sized tiles
    /// (default on). Output bytes are the same either way; off is the plain path that converts whole chunks to float32.
    /// </summary>
    public bool FuseElementwise { get; init; } = true;

    /// <summary>
    /// Merge input tensors that hold NaN or ±Inf, as mergekit does (default off: the first one is an error naming the
    /// file and tensor; see <see cref="MergeExecutor.AllowNonFinite"/>).
    /// </summary>
    public bool AllowNonFinite { get; init; }

    /// <summary>Test seam: false leaves DARE's drop to the method's own pass instead of the decode (<see cref="MergeExecutor.DropInDecode"/>).</summary>
    internal bool DropInDecode { get; init; } = true;

    /// <summary>Threads for kernels and reads (-1: all cores).</summary>
    public int Threads { get; init; } = -1;

    /// <summary>The arithmetic backend; null picks the CPU kernels with <see cref="Threads"/>.</summary>
    public IMergeKernels? Kernels { get; init; }
}

/// <summary>
/// Weld's main entry point for embedders: recipe in, merged Hugging Face folder out.
/// <code>
///   var recipe = RecipeParser.Load("recipe.yml");
///   MergeSummary s = MergeRunner.Run(recipe, new MergeOptions { OutputPath = "out" });
/// </code>
/// </summary>
public static class MergeRunner
{
    /// <summary>Plans the recipe (validating everything) without reading tensor data.</summary>
    public static MergePlan Plan(MergeRecipe recipe, ModelSet models, ulong seed = 0) => MergePlanner.Plan(recipe, models, seed);

    /// <summary>
    /// Runs a whole merge (or one part of it). The output appears only when complete; after a failure the
    /// finished shards stay in the hidden partial folder when there are any, for <see cref="MergeOptions.Resume"/>.
    /// </summary>
    public static MergeSummary Run(MergeRecipe recipe, MergeOptions options, IProgress<MergeProgress>? progress = null,
        Action<string>? log = null, CancellationToken cancel = default)
    {
        // First, before any file is opened (folding a model+lora reference alone can take minutes).
        progress?.Report(new MergeProgress(0, 0, 0, 0, "") { Stage = MergeStage.Planning });
        string outputPath = OutputFolder.CheckedTargetPath(options.OutputPath);
        if (options.Threads == 0 || options.Threads < -1)
            throw new WeldException($"threads = {options.Threads}: use a positive thread count, or -1 for all cores");
        if (recipe.AlignTo is not null && options.Part is { Count: > 1 })
            throw new RecipeException($"{recipe.SourceName}: align_to cannot be combined with --part (each part would align into its own temporary copies); align with `weld align` first.");
        PartSelection part = options.Part ?? new PartSelection(1, 1);
        bool single = part.Count == 1;
        string? partName = single ? null : $"{part.Index}-of-{part.Count}";
        // One writer per output, checked first: a second merge fails at once, not after planning (which may fold
        // adapters or align models for minutes). Where the parent folder does not exist yet, the output folder takes it.
        OutputLock? early = Directory.Exists(Path.GetDirectoryName(outputPath)) ? OutputLock.Acquire(outputPath, partName, log) : null;
        try
        {
            return Run(recipe, options, outputPath, part, early, progress, log, cancel);
        }
        finally
        {
            early?.Dispose(); // normally the output folder's already (disposing twice is harmless)
        }
    }

    private static MergeSummary Run(MergeRecipe recipe, MergeOptions options, string outputPath, PartSelection part, OutputLock? early,
        IProgress<MergeProgress>? progress, Action<string>? log, CancellationToken cancel)
    {
        bool single = part.Count == 1;
        using RecipeAlignment? alignment = recipe.AlignTo is null ? null : RecipeAlignment.Prepare(recipe, RecipeFolder(recipe), log);
        using var models = new ModelSet(RecipeFolder(recipe), recipe.SourceName) { Redirect = alignment is null ? null : alignment.AlignedPath };
        MergePlan plan = MergePlanner.Plan(recipe, models, options.Seed);
        foreach (string note in plan.Notes) log?.Invoke(note);

        IReadOnlyList<ShardPlan> shards = ShardLayout.Plan(plan.Tensors.Select(t => t.Header).ToArray(), options.MaxShardBytes);
        IReadOnlySet<string> partShards = part.Select(shards);
        string planHash = MergeProgressFile.ComputePlanHash(recipe.YamlText, options.Seed, options.MaxShardBytes, shards, models);

        using var output = OutputFolder.OpenResumable(outputPath, options.Overwrite, Inputs(recipe, models),
            single ? null : $"{part.Index}-of-{part.Count}", log, early);
        // Until this run has decided what to keep, what is in the partial folder (other parts, an interrupted run) stays.
        output.KeepOnDispose = true;
        // The lock is held: a stale partial folder of an earlier whole run can go now (never another writer's).
        if (single && !options.Resume) output.ClearWork();
        var record = new MergeProgressFile
        {
            PlanHash = planHash, RecipeText = recipe.YamlText, RecipePath = recipe.SourceName, Part = part,
            Seed = options.Seed, MaxShardBytes = options.MaxShardBytes, PartShards = partShards.Order(StringComparer.Ordinal).ToArray(),
        };
        var toWrite = new HashSet<string>(partShards, StringComparer.Ordinal);
        foreach ((string done, string sha256) in ReusableShards(output.WorkPath, part, planHash, shards, options.Resume, log))
        {
            toWrite.Remove(done);
            record.Completed.Add(done);
            record.Checksums[done] = sha256;
        }
        record.Write(output.WorkPath);
        output.KeepOnDispose = false;

        IMergeKernels kernels = options.Kernels ?? new CpuKernels(options.Threads);
        var executor = new MergeExecutor(kernels, options.MemoryLimitBytes, options.Threads) { WholeTensorLimitBytes = options.WholeTensorLimitBytes, DirectIo = options.DirectIo, FuseElementwise = options.FuseElementwise, AllowNonFinite = options.AllowNonFinite, DropInDecode = options.DropInDecode };
        MergeSummary summary;
        try
        {
            DiskSpace.EnsureRoomFor(outputPath, output.WorkPath, shards.Where(s => toWrite.Contains(s.FileName)).Sum(s => s.DataBytes));
            summary = executor.Execute(plan, models.Folders, output.WorkPath, options.MaxShardBytes, toWrite,
                (shard, sha256) =>
                {
                    lock (record)
                    {
                        record.Completed.Add(shard.FileName);
                        record.Checksums[shard.FileName] = sha256;
                        record.Write(output.WorkPath);
                    }
                }, progress, cancel);
        }
        catch (Exception error)
        {
            // Keep finished shards for --resume (and other parts' work); otherwise leave nothing behind.
            output.KeepOnDispose = !single || record.Completed.Count > 0;
            if (output.KeepOnDispose) RemoveUnfinishedShards(output.WorkPath, shards, record);
            if (DiskSpace.IsDiskFull(error))
            {
                long left = shards.Where(s => partShards.Contains(s.FileName) && !record.Completed.Contains(s.FileName)).Sum(s => s.DataBytes);
                throw DiskSpace.Full(outputPath, output.WorkPath, error, left,
                    output.KeepOnDispose ? $"{record.Completed.Count} finished shard(s) kept in {output.WorkPath}; free space, then run the same command with --resume"
                        : "the partial output was removed");
            }
            if (output.KeepOnDispose && single)
                log?.Invoke($"{record.Completed.Count} finished shard(s) kept in {output.WorkPath}; run the same command with --resume to continue");
            throw;
        }

        if (!single)
        {
            output.KeepOnDispose = true;
            log?.Invoke($"part {part} done ({summary.ShardsWritten.Count} shard(s) written); when every part is done, run `weld finalize {options.OutputPath}`");
            return summary;
        }
        cancel.ThrowIfCancellationRequested();
        progress?.Report(new MergeProgress(summary.Tensors, summary.Tensors, summary.BytesRead, summary.BytesWritten, "")
            { Stage = MergeStage.Finishing, BytesToWrite = summary.BytesWritten });
        try
        {
            Assemble(recipe, models, plan, shards, output, options.CopyTokenizer, options.WriteModelCard, log);
        }
        catch (Exception error) when (DiskSpace.IsDiskFull(error))
        {
            output.KeepOnDispose = true;
            throw DiskSpace.Full(outputPath, output.WorkPath, error, 0,
                $"every shard is finished and kept in {output.WorkPath}; free space, then run the same command with --resume");
        }
        return summary;
    }

    /// <summary>
    /// Assembles a merge computed in parts: checks that every part finished every shard of the same plan (each
    /// shard against the checksum recorded when it was written), writes the index, config, tokenizer and card, and
    /// renames the folder into place.
    /// </summary>
    public static void Finalize(string outputPath, bool copyTokenizer = true, bool writeModelCard = true, bool overwrite = false)
    {
        outputPath = OutputFolder.CheckedTargetPath(outputPath);
        string partial = OutputFolder.PartialPathFor(outputPath);
        IReadOnlyList<MergeProgressFile> parts = MergeProgressFile.ReadAll(partial);
        if (parts.Count == 0)
            throw new WeldException($"{outputPath}: nothing to finalize (no {partial} with progress files); run `weld merge ... --part I/N` first");
        MergeProgressFile first = parts[0];
        int count = first.Part.Count;
        foreach (var p in parts)
            if (p.PlanHash != first.PlanHash || p.Part.Count != count)
                throw new WeldException($"{partial}: parts come from different plans (recipe, seed, shard size or inputs differ): {MergeProgressFile.FileName(p.Part)} vs {MergeProgressFile.FileName(first.Part)}");
        var missing = Enumerable.Range(1, count).Where(i => parts.All(p => p.Part.Index != i)).ToArray();
        if (missing.Length > 0)
            throw new WeldException($"{outputPath}: part(s) {string.Join(", ", missing.Select(i => $"{i}/{count}"))} have not run");

        MergeRecipe recipe = RecipeParser.Parse(first.RecipeText, first.RecipePath);
        using var models = new ModelSet(RecipeFolder(recipe), recipe.SourceName);
        MergePlan plan = MergePlanner.Plan(recipe, models, first.Seed);
        IReadOnlyList<ShardPlan> shards = ShardLayout.Plan(plan.Tensors.Select(t => t.Header).ToArray(), first.MaxShardBytes);
        // The whole output's lock: no part may still be writing while the shards are checked and the folder committed.
        using var output = OutputFolder.OpenResumable(outputPath, overwrite, Inputs(recipe, models));
        output.KeepOnDispose = true;
        if (MergeProgressFile.ComputePlanHash(recipe.YamlText, first.Seed, first.MaxShardBytes, shards, models) != first.PlanHash)
            throw new WeldException($"{outputPath}: the input models changed since the parts ran; run the parts again");
        foreach (var shard in shards)
        {
            MergeProgressFile? owner = parts.FirstOrDefault(p => p.Completed.Contains(shard.FileName));
            if (owner is null)
                throw new WeldException($"{outputPath}: shard {shard.FileName} is not finished; re-run its part with --resume");
            if (!owner.Checksums.ContainsKey(shard.FileName))
                throw new WeldException($"{outputPath}: shard {Path.Combine(partial, shard.FileName)} has no recorded checksum (written by an older Weld); re-run part {owner.Part} with --resume");
            if (!owner.ShardMatches(partial, shard))
                throw new WeldException($"{outputPath}: shard {Path.Combine(partial, shard.FileName)} does not match the checksum recorded when it was written (damaged since); re-run part {owner.Part} with --resume");
        }

        Assemble(recipe, models, plan, shards, output, copyTokenizer, writeModelCard);
    }

    /// <summary>What an output may not be, hold or lie inside: the models, adapters and the recipe file.</summary>
    private static IEnumerable<string> Inputs(MergeRecipe recipe, ModelSet models)
    {
        foreach (string path in models.InputPaths) yield return path;
        if (File.Exists(recipe.SourceName)) yield return recipe.SourceName;
    }

    /// <summary>Deletes shard files of this part that are not recorded as finished (a shard cut off half-written).</summary>
    private static void RemoveUnfinishedShards(string folder, IReadOnlyList<ShardPlan> shards, MergeProgressFile record)
    {
        foreach (ShardPlan shard in shards)
        {
            if (!record.PartShards.Contains(shard.FileName) || record.Completed.Contains(shard.FileName)) continue;
            try
            {
                File.Delete(Path.Combine(folder, shard.FileName));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Best effort on an error path: a resume rewrites it anyway.
            }
        }
    }

    private static IEnumerable<(string Shard, string Sha256)> ReusableShards(string folder, PartSelection part, string planHash, IReadOnlyList<ShardPlan> shards,
        bool resume, Action<string>? log)
    {
        string path = Path.Combine(folder, MergeProgressFile.FileName(part));
        if (!File.Exists(path)) yield break;
        MergeProgressFile previous = MergeProgressFile.Read(path);
        if (!resume || previous.PlanHash != planHash)
        {
            if (resume) log?.Invoke($"--resume: the plan changed since the interrupted run (recipe, seed, shard size or inputs); starting part {part} again");
            foreach (string shard in previous.Completed) File.Delete(Path.Combine(folder, shard));
            yield break;
        }
        int reused = 0;
        foreach (ShardPlan shard in shards)
        {
            if (!previous.Completed.Contains(shard.FileName)) continue;
            if (previous.ShardMatches(folder, shard))
            {
                reused++;
                yield return (shard.FileName, previous.Checksums[shard.FileName]);
            }
            else
            {
                log?.Invoke($"--resume: {shard.FileName} does not match its recorded checksum; computing it again");
            }
        }
        log?.Invoke($"--resume: reusing {reused} finished shard(s)");
    }

    private static void Assemble(MergeRecipe recipe, ModelSet models, MergePlan plan, IReadOnlyList<ShardPlan> shards,
        OutputFolder output, bool copyTokenizer, bool writeModelCard, Action<string>? log = null)
    {
        foreach (string file in Directory.GetFiles(output.WorkPath, "weld-progress-*.json")) File.Delete(file);
        if (shards.Count > 1) ShardIndex.Write(output.WorkPath, shards);
        ModelFolder template = TemplateModel(recipe, models);
        DType outputDType = plan.Tensors.Count > 0 ? plan.Tensors[0].Header.DType : DType.F32;
        bool writesHead = plan.Tensors.Any(t => t.Header.Name.Contains("lm_head", StringComparison.Ordinal));
        OutputSideFiles.WriteConfig(output.WorkPath, template.Config, outputDType, plan.OutputLayerCount, writesHead);
        if (plan.Vocabulary is { } vocabulary)
        {
            TokenizerFiles.SetVocabSize(output.WorkPath, vocabulary);
            if (copyTokenizer)
            {
                OutputSideFiles.CopySideFiles(output.WorkPath, vocabulary.Source);
                TokenizerFiles.Write(output.WorkPath, vocabulary);
            }
        }
        else if (copyTokenizer) OutputSideFiles.CopySideFiles(output.WorkPath, TokenizerModel(recipe, models, template));
        ChatTemplates.Apply(recipe, output.WorkPath, copyTokenizer, ChatTemplateCandidates(recipe, models), log);
        if (writeModelCard)
        {
            OutputSideFiles.WriteRecipe(output.WorkPath, recipe.YamlText);
            OutputSideFiles.WriteModelCard(output.WorkPath, recipe.MergeMethod, recipe.BaseModel?.ToString(),
                ReferencedModels(recipe), recipe.YamlText);
        }
        output.Commit();
    }

    private static string? RecipeFolder(MergeRecipe recipe) =>
        File.Exists(recipe.SourceName) ? Path.GetDirectoryName(Path.GetFullPath(recipe.SourceName)) : null;

    /// <summary>The model whose config.json the output starts from: the base, else the first model (mergekit).</summary>
    private static ModelFolder TemplateModel(MergeRecipe recipe, ModelSet models) =>
        recipe.BaseModel is { } b ? models[b] : models[RecipeParameters.SourceModels(recipe, 0)[0]];

    private static ModelFolder TokenizerModel(MergeRecipe recipe, ModelSet models, ModelFolder template) =>
        recipe.TokenizerSource is { Kind: TokenizerSourceKind.Model, Model: { } m } ? models[m] : template;

    /// <summary>The models <c>chat_template: auto</c> polls: the base, then every model in recipe order.</summary>
    private static IEnumerable<ModelFolder> ChatTemplateCandidates(MergeRecipe recipe, ModelSet models)
    {
        if (recipe.BaseModel is { } b) yield return models[b];
        for (int s = 0; s < recipe.SliceCount; s++)
            foreach (ModelReference r in RecipeParameters.SourceModels(recipe, s))
                if (!r.Equals(recipe.BaseModel)) yield return models[r];
    }

    private static List<string> ReferencedModels(MergeRecipe recipe)
    {
        var names = new List<string>();
        for (int s = 0; s < recipe.SliceCount; s++)
            foreach (ModelReference r in RecipeParameters.SourceModels(recipe, s))
                if (!names.Contains(r.ToString())) names.Add(r.ToString());
        return names;
    }
}
