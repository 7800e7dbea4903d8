using System.Runtime.InteropServices;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Compression;

/// <summary>Settings of <see cref="LowRankCompressor.Compress"/>.</summary>
/// <param name="ErrorBudget">
/// Relative error budget E per tensor: ‖W_restored − W_ft‖_F ≤ E·‖W_ft‖_F, measured on what decompress writes
/// (after rounding to the fine-tune's dtype). 0 stores every changed tensor exactly.
/// </param>
/// <param name="Seed">Seed of the randomized SVD sketches; the output bytes are a function of the inputs and the seed.</param>
/// <param name="Overwrite">Whether an existing output folder may be replaced.</param>
public sealed record LowRankCompressionOptions(double ErrorBudget, ulong Seed = 0, bool Overwrite = false);

/// <summary>Progress of a compress or decompress run, reported after each tensor.</summary>
/// <param name="TensorsDone">Tensors finished.</param>
/// <param name="TensorCount">Tensors in all.</param>
/// <param name="CurrentTensor">The tensor just finished.</param>
public readonly record struct LowRankProgress(int TensorsDone, int TensorCount, string CurrentTensor);

/// <summary>What <see cref="LowRankCompressor.Compress"/> wrote.</summary>
/// <param name="Manifest">The manifest written (every tensor's kind, rank, error and bytes).</param>
/// <param name="CompressedBytes">Size of the compressed tensor file (header included).</param>
/// <param name="OriginalBytes">Tensor bytes of the fine-tune.</param>
public sealed record LowRankCompressionResult(LowRankManifest Manifest, long CompressedBytes, long OriginalBytes)
{
    /// <summary>Compressed bytes / fine-tune bytes.</summary>
    public double SizeRatio => OriginalBytes == 0 ? 0 : (double)CompressedBytes / OriginalBytes;

    /// <summary>The largest relative error of any tensor.</summary>
    public double MaxRelativeError
    {
        get
        {
            double max = 0;
            foreach (LowRankTensorEntry t in Manifest.Tensors) max = Math.Max(max, t.RelativeError);
            return max;
        }
    }
}

/// <summary>What <see cref="LowRankCompressor.Decompress"/> wrote.</summary>
/// <param name="Tensors">Tensors written.</param>
/// <param name="Shards">File names of the shards written, in order.</param>
/// <param name="BytesWritten">Tensor bytes written.</param>
public sealed record LowRankDecompressionResult(int Tensors, IReadOnlyList<string> Shards, long BytesWritten);

/// <summary>
/// Stores a fine-tune as base-relative low-rank residuals: per 2-D tensor, ΔW = W_ft − W_base (float32) is replaced by
/// the smallest-rank truncated SVD A·B whose restored weight meets the relative error budget; other tensors are
/// stored exactly or, when bit-identical to the base, not at all. <see cref="Decompress"/> restores a full checkpoint.
/// </summary>
/// <remarks>
/// Compressed folder: <see cref="DataFileName"/> (a tensor X stored exactly keeps its name and dtype; a low-rank X
/// becomes <c>X.lowrank_a</c> [rows, r] = U·Σ and <c>X.lowrank_b</c> [r, columns] = Vᵀ, both F32),
/// <see cref="LowRankManifest.FileName"/>, and the fine-tune's config and tokenizer files.
/// Factors are float32 rather than the fine-tune's dtype so that the only rounding is the final one to the output
/// dtype, which the compressor applies when it measures the error: the error reported is the error decompress produces.
/// </remarks>
public static class LowRankCompressor
{
    /// <summary>The compressed tensor file inside a compressed folder.</summary>
    public const string DataFileName = "lowrank.safetensors";

    /// <summary>First sketch rank; doubled until the budget is met or the factors would stop being smaller.</summary>
    private const int InitialRank = 16;

    private const int CopyChunkBytes = 1 << 24;

    private const long SmallTensorElements = 1 << 20;

    // A tensor this large leaves gigabytes of float32 arrays behind (target, base, residual, restored, the sketch).
    private const long LargeTensorElements = 16 << 20;

    /// <summary>
    /// Returns a large tensor's arrays to the OS before the next tensor allocates its own: left to itself the GC lets
    /// large-object garbage pile up on a machine with free RAM (24 GB RSS for a 1B model), so peak memory would grow
    /// with the model instead of with its largest tensor.
    /// </summary>
    private static void ReleaseLargeArrays(long elements)
    {
        if (elements >= LargeTensorElements)
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }

    /// <summary>Compresses <paramref name="fineTunePath"/> relative to <paramref name="basePath"/> into the folder <paramref name="outputFolder"/>.</summary>
    /// <param name="fineTunePath">The fine-tuned model (folder or file).</param>
    /// <param name="basePath">The base model it was tuned from.</param>
    /// <param name="outputFolder">The compressed folder to create (written aside and renamed into place when complete).</param>
    /// <param name="options">Budget, seed, overwrite.</param>
    /// <param name="progress">Receives a report after each tensor.</param>
    /// <param name="cancel">Stops between tensors; nothing is left behind.</param>
    /// <returns>The manifest and sizes.</returns>
    /// <exception cref="WeldException">The budget is negative or not finite, a model cannot be read, or the output exists.</exception>
    public static LowRankCompressionResult Compress(string fineTunePath, string basePath, string outputFolder, LowRankCompressionOptions options,
        IProgress<LowRankProgress>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!double.IsFinite(options.ErrorBudget) || options.ErrorBudget < 0)
            throw new WeldException($"the error budget {options.ErrorBudget} must be a finite number >= 0");
        using var fineTune = ModelFolder.Open(fineTunePath);
        using var baseline = ModelFolder.Open(basePath);
        using var output = new OutputFolder(outputFolder, options.Overwrite, [fineTune.Path, baseline.Path]);
        string fingerprint = LowRankManifest.Fingerprint(baseline);

        // Pass 1 decides each tensor's kind and rank and spills the factors to a scratch file, so that pass 2 can
        // write the safetensors header (which needs every shape) without holding the factors in memory.
        string scratchPath = Path.Combine(output.WorkPath, "factors.scratch");
        var entries = new List<LowRankTensorEntry>(fineTune.TensorNames.Count);
        var scratchOffsets = new List<long>(fineTune.TensorNames.Count);
        using (var scratch = new FileStream(scratchPath, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 20, FileOptions.DeleteOnClose))
        {
            int done = 0;
            foreach (string name in fineTune.TensorNames)
            {
                cancel.ThrowIfCancellationRequested();
                scratchOffsets.Add(scratch.Position);
                ModelTensor tensor = fineTune.GetTensor(name);
                entries.Add(CompressTensor(tensor, baseline, options, scratch));
                ReleaseLargeArrays(tensor.ElementCount);
                progress?.Report(new LowRankProgress(++done, fineTune.TensorNames.Count, name));
            }

            var headers = new List<TensorHeader>();
            foreach (LowRankTensorEntry e in entries)
            {
                if (e.Kind == LowRankTensorKind.Exact) headers.Add(new TensorHeader(e.Name, e.DType, e.Shape));
                else if (e.Kind == LowRankTensorKind.LowRank)
                {
                    headers.Add(new TensorHeader(e.FactorAName, DType.F32, [e.Shape[0], e.Rank]));
                    headers.Add(new TensorHeader(e.FactorBName, DType.F32, [e.Rank, e.Shape[1]]));
                }
            }
            string dataPath = Path.Combine(output.WorkPath, DataFileName);
            using (var writer = new SafeTensorsWriter(dataPath, headers, new Dictionary<string, string> { ["format"] = LowRankManifest.Format }))
            {
                var buffer = new byte[CopyChunkBytes];
                for (int i = 0; i < entries.Count; i++)
                {
                    cancel.ThrowIfCancellationRequested();
                    LowRankTensorEntry e = entries[i];
                    if (e.Kind == LowRankTensorKind.Exact) CopyTensorBytes(fineTune.GetTensor(e.Name), writer);
                    else if (e.Kind == LowRankTensorKind.LowRank)
                    {
                        scratch.Position = scratchOffsets[i];
                        for (long left = e.StoredBytes; left > 0;)
                        {
                            int take = (int)Math.Min(buffer.Length, left);
                            scratch.ReadExactly(buffer, 0, take);
                            writer.WriteBytes(buffer.AsSpan(0, take));
                            left -= take;
                        }
                    }
                }
                writer.Complete();
            }
        }

        var manifest = new LowRankManifest(baseline.TensorNames.Count, fingerprint, options.ErrorBudget, options.Seed, entries);
        manifest.Write(output.WorkPath);
        CopySideFiles(fineTune, output.WorkPath);
        long compressedBytes = new FileInfo(Path.Combine(output.WorkPath, DataFileName)).Length;
        output.Commit();
        return new LowRankCompressionResult(manifest, compressedBytes, fineTune.TotalBytes);
    }

    /// <summary>
    /// Restores the full checkpoint of a folder <see cref="Compress"/> wrote into <paramref name="outputFolder"/>, every
    /// tensor in the fine-tune's dtype, sharded like <c>weld merge</c> (index file when sharded), with the side files.
    /// </summary>
    /// <param name="compressedFolder">The compressed folder.</param>
    /// <param name="basePath">The base it was compressed against (checked by tensor count and content hash).</param>
    /// <param name="outputFolder">The model folder to create (written aside and renamed into place when complete).</param>
    /// <param name="maxShardBytes">Largest shard's data bytes.</param>
    /// <param name="overwrite">Whether an existing output folder may be replaced.</param>
    /// <param name="progress">Receives a report after each tensor.</param>
    /// <param name="cancel">Stops between tensors; nothing is left behind.</param>
    /// <returns>What was written.</returns>
    /// <exception cref="WeldException">The manifest or data file is missing or corrupt, or the base is not the one compressed against.</exception>
    public static LowRankDecompressionResult Decompress(string compressedFolder, string basePath, string outputFolder, long maxShardBytes, bool overwrite,
        IProgress<LowRankProgress>? progress = null, CancellationToken cancel = default)
    {
        LowRankManifest manifest = LowRankManifest.Read(compressedFolder);
        string manifestPath = Path.Combine(compressedFolder, LowRankManifest.FileName);
        string dataPath = Path.Combine(compressedFolder, DataFileName);
        if (!File.Exists(dataPath)) throw new InvalidModelFileException(dataPath, "missing: the compressed tensors are not there");
        using var baseline = ModelFolder.Open(basePath);
        if (baseline.TensorNames.Count != manifest.BaseTensorCount)
            throw new WeldException($"{baseline.Path}: wrong base: it has {baseline.TensorNames.Count} tensors, but {manifestPath} was compressed against a base with {manifest.BaseTensorCount}");
        if (LowRankManifest.Fingerprint(baseline) != manifest.BaseFingerprint)
            throw new WeldException($"{baseline.Path}: wrong base: its tensors' SHA-256 differs from the base {manifestPath} was compressed against");
        using SafeTensorsFile data = SafeTensorsFile.Open(dataPath);
        foreach (LowRankTensorEntry e in manifest.Tensors) Validate(e, baseline, data);

        var headers = manifest.Tensors.Select(e => new TensorHeader(e.Name, e.DType, e.Shape)).ToArray();
        IReadOnlyList<ShardPlan> shards = ShardLayout.Plan(headers, maxShardBytes);
        var byName = manifest.Tensors.ToDictionary(e => e.Name, StringComparer.Ordinal);
        using var output = new OutputFolder(outputFolder, overwrite, [compressedFolder, baseline.Path]);
        int done = 0;
        long bytes = 0;
        foreach (ShardPlan shard in shards)
        {
            using var writer = new SafeTensorsWriter(Path.Combine(output.WorkPath, shard.FileName), shard.Tensors, null);
            foreach (TensorHeader header in shard.Tensors)
            {
                cancel.ThrowIfCancellationRequested();
                LowRankTensorEntry e = byName[header.Name];
                switch (e.Kind)
                {
                    case LowRankTensorKind.SameAsBase: CopyTensorBytes(baseline.GetTensor(e.Name), writer); break;
                    case LowRankTensorKind.Exact: CopyTensorBytes(new ModelTensor(data, data.GetTensor(e.Name)), writer); break;
                    default: writer.WriteFloat32(RestoreLowRank(e, baseline, data)); break;
                }
                ReleaseLargeArrays(header.ElementCount);
                bytes += header.ByteLength;
                progress?.Report(new LowRankProgress(++done, headers.Length, e.Name));
            }
            writer.Complete();
        }
        if (shards.Count > 1) ShardIndex.Write(output.WorkPath, shards);
        foreach (string file in Directory.EnumerateFiles(compressedFolder))
        {
            string fileName = Path.GetFileName(file);
            if (fileName != DataFileName && fileName != LowRankManifest.FileName && !fileName.EndsWith(".safetensors", StringComparison.Ordinal)
                && fileName != ShardIndex.FileName)
                File.Copy(file, Path.Combine(output.WorkPath, fileName), overwrite: true);
        }
        output.Commit();
        return new LowRankDecompressionResult(headers.Length, shards.Select(s => s.FileName).ToArray(), bytes);
    }

    private static LowRankTensorEntry CompressTensor(ModelTensor ft, ModelFolder baseline, LowRankCompressionOptions options, FileStream scratch)
    {
        LowRankTensorEntry Exact() => new(ft.Name, ft.DType, ft.Shape, LowRankTensorKind.Exact, 0, 0, 1, ft.Info.ByteLength);

        if (!baseline.Contains(ft.Name)) return Exact();
        ModelTensor b = baseline.GetTensor(ft.Name);
        if (!b.Shape.AsSpan().SequenceEqual(ft.Shape)) return Exact();
        if (b.DType == ft.DType && BytesEqual(ft, b))
            return new LowRankTensorEntry(ft.Name, ft.DType, ft.Shape, LowRankTensorKind.SameAsBase, 0, 0, 1, 0);
        // Only dtypes whose values float32 holds exactly (and rounds back to) can be restored within a measured budget.
        bool restorable = (ft.DType is DType.F32 or DType.F16 or DType.BF16) && DTypes.IsFloatingPoint(b.DType) && b.DType != DType.F64;
        if (!restorable || ft.Shape.Length != 2 || options.ErrorBudget == 0) return Exact();

        int m = checked((int)ft.Shape[0]), n = checked((int)ft.Shape[1]);
        // Factors must be smaller in bytes than the tensor they replace, or storing it exactly is both smaller and exact.
        long denseBytes = ft.Info.ByteLength;
        int maxRank = (int)Math.Min(Math.Min(m, n), (denseBytes - 1) / ((long)(m + n) * sizeof(float)));
        if (maxRank < 1) return Exact();

        int count = checked(m * n);
        var target = new float[count];
        var baseValues = new float[count];
        ft.ReadFloat32(0, target);
        b.ReadFloat32(0, baseValues);
        var delta = new float[count];
        double targetEnergy = 0, deltaEnergy = 0;
        for (int i = 0; i < count; i++)
        {
            delta[i] = target[i] - baseValues[i];
            targetEnergy += (double)target[i] * target[i];
            deltaEnergy += (double)delta[i] * delta[i];
        }
        double budget = options.ErrorBudget * Math.Sqrt(targetEnergy);
        if (!double.IsFinite(budget) || !double.IsFinite(deltaEnergy)) return Exact();

        var restored = new float[count];
        int sketchRank = Math.Min(maxRank, InitialRank);
        while (true)
        {
            TruncatedSvd svd = RandomizedSvd.Compute(delta, m, n, sketchRank, options.Seed, maxDegreeOfParallelism: Parallelism(count));
            // Tail-energy identity: U_r Σ_r V_rᵀ is the projection of ΔW on span(U_r), so its error is ‖ΔW‖² − Σ_{i<r} σ_i².
            // It picks the first candidate; the error that counts is then measured on the rounded restored weight.
            double kept = 0;
            for (int rank = 1; rank <= sketchRank; rank++)
            {
                kept += (double)svd.S[rank - 1] * svd.S[rank - 1];
                if (deltaEnergy - kept > budget * budget) continue;
                float[] a = FactorA(svd, rank);
                Restore(baseValues, a, svd.Vt.AsSpan(0, rank * n), m, rank, n, restored);
                RoundTrip(ft.DType, restored);
                double error = ErrorEnergy(restored, target);
                if (error > budget * budget) continue;
                // The rounded float32 factors are what decompress reads: write exactly those bytes.
                scratch.Write(MemoryMarshal.AsBytes(a.AsSpan()));
                scratch.Write(MemoryMarshal.AsBytes(svd.Vt.AsSpan(0, rank * n)));
                double energyKept = deltaEnergy == 0 ? 1 : Math.Min(1, kept / deltaEnergy);
                double relative = targetEnergy == 0 ? 0 : Math.Sqrt(error / targetEnergy);
                return new LowRankTensorEntry(ft.Name, ft.DType, ft.Shape, LowRankTensorKind.LowRank, rank, relative, energyKept,
                    (long)rank * (m + n) * sizeof(float));
            }
            if (sketchRank == maxRank) return Exact();
            // Give up early when even an optimistic spectrum (every σ beyond the sketch as large as 1.25·σ_k) could not
            // meet the budget at the largest rank that pays: a full-rank residual would otherwise cost a sketch of
            // every doubling up to maxRank only to be stored exactly. The margin covers the sketch's underestimate of σ_k.
            double last = 1.25 * svd.S[sketchRank - 1];
            if (deltaEnergy - kept - (maxRank - sketchRank) * last * last > budget * budget) return Exact();
            sketchRank = Math.Min(maxRank, sketchRank * 2);
        }
    }

    /// <summary>Threads for the products of an m·n-element tensor: one for small ones, where scheduling costs more than it saves (the result is the same).</summary>
    private static int Parallelism(long elements) => elements < SmallTensorElements ? 1 : -1;

    private static float[] FactorA(TruncatedSvd svd, int rank)
    {
        var a = new float[svd.Rows * rank];
        for (int i = 0; i < svd.Rows; i++)
            for (int j = 0; j < rank; j++)
                a[i * rank + j] = svd.U[i * svd.Rank + j] * svd.S[j];
        return a;
    }

    /// <summary>W_base + A·B in float32: the one computation both the compressor's check and decompress run.</summary>
    private static void Restore(ReadOnlySpan<float> baseValues, ReadOnlySpan<float> a, ReadOnlySpan<float> b, int m, int rank, int n, Span<float> destination)
    {
        Gemm.Multiply(a, b, destination, m, rank, n, maxDegreeOfParallelism: Parallelism((long)m * n));
        for (int i = 0; i < baseValues.Length; i++) destination[i] += baseValues[i];
    }

    private static float[] RestoreLowRank(LowRankTensorEntry e, ModelFolder baseline, SafeTensorsFile data)
    {
        int m = (int)e.Shape[0], n = (int)e.Shape[1];
        var baseValues = new float[m * n];
        baseline.GetTensor(e.Name).ReadFloat32(0, baseValues);
        var a = new float[m * e.Rank];
        var b = new float[e.Rank * n];
        data.ReadFloat32(data.GetTensor(e.FactorAName), 0, a);
        data.ReadFloat32(data.GetTensor(e.FactorBName), 0, b);
        var restored = new float[m * n];
        Restore(baseValues, a, b, m, e.Rank, n, restored);
        return restored;
    }

    /// <summary>Rounds in place as the writer will store the values (round to nearest even), then widens back.</summary>
    private static void RoundTrip(DType dtype, Span<float> values)
    {
        if (dtype == DType.F32) return;
        var bits = new ushort[values.Length];
        if (dtype == DType.BF16)
        {
            FloatConversions.SingleToBf16(values, bits);
            FloatConversions.Bf16ToSingle(bits, values);
        }
        else
        {
            FloatConversions.SingleToHalf(values, bits);
            FloatConversions.HalfToSingle(bits, values);
        }
    }

    private static double ErrorEnergy(ReadOnlySpan<float> restored, ReadOnlySpan<float> target)
    {
        double sum = 0;
        for (int i = 0; i < restored.Length; i++)
        {
            double d = (double)restored[i] - target[i];
            sum += d * d;
        }
        return sum;
    }

    private static void Validate(LowRankTensorEntry e, ModelFolder baseline, SafeTensorsFile data)
    {
        string shape = "[" + string.Join(", ", e.Shape) + "]";
        switch (e.Kind)
        {
            case LowRankTensorKind.SameAsBase:
                if (!baseline.Contains(e.Name) || baseline.GetTensor(e.Name).DType != e.DType || !baseline.GetTensor(e.Name).Shape.AsSpan().SequenceEqual(e.Shape))
                    throw new InvalidModelFileException(baseline.Path, $"tensor {e.Name}: the compressed model stores it as the base's {DTypes.ToName(e.DType)} {shape}, which this base does not have");
                break;
            case LowRankTensorKind.Exact:
                if (!data.TryGetTensor(e.Name, out TensorInfo exact) || exact.DType != e.DType || !exact.Shape.AsSpan().SequenceEqual(e.Shape))
                    throw new InvalidModelFileException(data.FilePath, $"tensor {e.Name}: missing or not {DTypes.ToName(e.DType)} {shape} as the manifest says");
                break;
            default:
                if (!baseline.Contains(e.Name) || !baseline.GetTensor(e.Name).Shape.AsSpan().SequenceEqual(e.Shape))
                    throw new InvalidModelFileException(baseline.Path, $"tensor {e.Name}: the base has no {shape} tensor to add the low-rank residual to");
                if (!data.TryGetTensor(e.FactorAName, out TensorInfo a) || a.DType != DType.F32 || !a.Shape.AsSpan().SequenceEqual([e.Shape[0], e.Rank])
                    || !data.TryGetTensor(e.FactorBName, out TensorInfo b) || b.DType != DType.F32 || !b.Shape.AsSpan().SequenceEqual([e.Rank, e.Shape[1]]))
                    throw new InvalidModelFileException(data.FilePath, $"tensor {e.Name}: factors {e.FactorAName} F32 [{e.Shape[0]}, {e.Rank}] and {e.FactorBName} F32 [{e.Rank}, {e.Shape[1]}] missing or of another shape");
                break;
        }
    }

    private static bool BytesEqual(ModelTensor x, ModelTensor y)
    {
        if (x.Info.ByteLength != y.Info.ByteLength) return false;
        for (long offset = 0; offset < x.Info.ByteLength; offset += CopyChunkBytes)
        {
            int take = (int)Math.Min(CopyChunkBytes, x.Info.ByteLength - offset);
            if (!x.File.GetBytes(x.Info, offset, take).SequenceEqual(y.File.GetBytes(y.Info, offset, take))) return false;
        }
        return true;
    }

    private static void CopyTensorBytes(ModelTensor tensor, SafeTensorsWriter writer)
    {
        for (long offset = 0; offset < tensor.Info.ByteLength; offset += CopyChunkBytes)
            writer.WriteBytes(tensor.File.GetBytes(tensor.Info, offset, (int)Math.Min(CopyChunkBytes, tensor.Info.ByteLength - offset)));
    }

    private static void CopySideFiles(ModelFolder fineTune, string folder)
    {
        if (fineTune.Config?.FilePath is { } config) File.Copy(config, Path.Combine(folder, "config.json"), overwrite: true);
        foreach (string file in fineTune.SideFiles)
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)), overwrite: true);
    }
}
