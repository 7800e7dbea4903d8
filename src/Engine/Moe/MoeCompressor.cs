using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;

namespace Weld.Engine.Moe;

/// <summary>Settings of <see cref="MoeCompressor.Compress"/>.</summary>
/// <param name="Experts">K, the experts per layer after merging (1 ≤ K &lt; E).</param>
/// <param name="CalibrationTexts">Text files whose tokens give the routing statistics.</param>
/// <param name="Window">Tokens per calibration window (windows run independently, as in <c>weld eval</c>).</param>
/// <param name="Bytes">Bytes read from each text after <paramref name="Skip"/> (0: to its end).</param>
/// <param name="Skip">Bytes skipped at the start of each text (keeps calibration apart from an evaluation prefix).</param>
/// <param name="LowRank">Optional low-rank truncation of the merged experts' matrices.</param>
/// <param name="Seed">Seeds weight matching's visiting order and the SVD sketches.</param>
/// <param name="Overwrite">Whether an existing Weld output may be replaced.</param>
/// <param name="DryRun">Check the inputs and report the plan without calibrating or writing.</param>
/// <param name="Threads">Worker threads of the calibration pass and the SVD (-1: all cores); the output does not depend on it.</param>
/// <param name="MaxShardBytes">The largest output shard in bytes (as <c>weld merge --out-shard-size</c>; default 5B).</param>
public sealed record MoeCompressionSettings(int Experts, IReadOnlyList<string> CalibrationTexts, int Window = 128, int Bytes = 32768, int Skip = 0,
    LowRankTarget? LowRank = null, int Seed = 0, bool Overwrite = false, bool DryRun = false, int Threads = -1,
    long MaxShardBytes = MoeBuilder.DefaultMaxShardBytes);

/// <summary>What <see cref="MoeCompressor.Compress"/> did (or, for a dry run, would do).</summary>
/// <param name="ExpertsBefore">E.</param>
/// <param name="ExpertsAfter">K.</param>
/// <param name="Layers">MoE layers.</param>
/// <param name="ExpertsPerToken">Top-k of the output (the input's, capped at K).</param>
/// <param name="Tensors">Tensors in the output.</param>
/// <param name="BytesBefore">Tensor bytes of the input.</param>
/// <param name="BytesAfter">Tensor bytes of the output (merged experts stored dense).</param>
/// <param name="FactoredBytes">With low rank: the output's tensor bytes had each truncated expert matrix been stored
/// as its two factors [rows, r] and [r, columns] in the same dtype (null without low rank or for a dry run).</param>
/// <param name="Groups">Per layer, the grouping (empty for a dry run).</param>
/// <param name="Frequencies">Per layer, each original expert's activation frequency (empty for a dry run).</param>
/// <param name="CalibrationTokens">Tokens the calibration pass ran.</param>
/// <param name="Ranks">With low rank: the rank kept for each merged matrix, by output tensor name.</param>
/// <param name="MaxRelativeError">With low rank: the largest relative error of a truncated matrix (float32, before the output dtype's rounding).</param>
public sealed record MoeCompressResult(int ExpertsBefore, int ExpertsAfter, int Layers, int ExpertsPerToken, int Tensors,
    long BytesBefore, long BytesAfter, long? FactoredBytes, IReadOnlyList<ExpertGroups> Groups, IReadOnlyList<double[]> Frequencies,
    long CalibrationTokens, IReadOnlyDictionary<string, int> Ranks, double MaxRelativeError);

/// <summary>
/// MC-SMoE (Li et al., "Merge, Then Compress: Demystify Efficient SMoE with Hints from Its Routing Policy", ICLR 2024)
/// on a Mixtral-layout MoE: routing statistics from calibration text, per layer K dominant experts and a grouping of the
/// others around them (<see cref="ExpertGrouping"/>), alignment and frequency-weighted merging of each group
/// (<see cref="ExpertMerging"/>), optionally a low-rank truncation of the merged matrices (<see cref="ExpertLowRank"/>).
/// </summary>
/// <remarks>
/// Output: a Mixtral checkpoint with <c>num_local_experts</c> = K; output expert g of a layer is the merge of the group
/// whose dominant expert is the g-th smallest dominant index, and its router row is the dominant expert's row
/// (MC-SMoE's reference code instead keeps all E rows and points every member at one shared merged expert, which a
/// Mixtral config cannot express with fewer experts). <c>num_experts_per_tok</c> is capped at K. Every other tensor is
/// copied byte for byte; merged experts keep the input's dtype. Memory: the calibration pass holds the model in
/// float32, as <c>weld eval</c> does; the merge then reads one group's experts at a time.
/// </remarks>
public static partial class MoeCompressor
{
    [GeneratedRegex(@"^model\.layers\.(\d+)\.block_sparse_moe\.(experts\.(\d+)\.(w1|w2|w3)|gate)\.weight$")]
    private static partial Regex MoeTensor();

    /// <summary>Compresses the MoE at <paramref name="modelPath"/> into <paramref name="outputPath"/> (atomically).</summary>
    /// <exception cref="WeldException">The model is not a Mixtral-layout MoE, K is out of range, a text cannot be read
    /// or is shorter than one window, or the output may not be written.</exception>
    public static MoeCompressResult Compress(string modelPath, string outputPath, MoeCompressionSettings options,
        Action<string>? log = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        ArgumentNullException.ThrowIfNull(options);
        log ??= _ => { };
        using ModelFolder model = ModelFolder.Open(modelPath);
        ModelConfig config = model.Config ?? throw new WeldException($"{modelPath}: has no config.json; moe-compress needs a Mixtral-layout MoE.");
        LlamaConfig llama = LlamaConfig.FromModelConfig(config);
        if (!llama.IsMoe)
            throw new WeldException($"{modelPath}: is not a mixture of experts (model_type '{config.ModelType}', no num_local_experts); moe-compress needs a Mixtral-layout MoE such as `weld moe` writes.");
        if (llama.MoeLayout != MoeLayout.Mixtral)
            throw new WeldException($"{modelPath}: is a {llama.MoeLayout} MoE (model_type '{config.ModelType}'); moe-compress merges Mixtral-layout experts only.");
        int e = llama.ExpertCount, k = options.Experts, layers = llama.LayerCount;
        if (k < 1) throw new WeldException($"--experts {k}: must be at least 1.");
        if (k >= e) throw new WeldException($"--experts {k}: must be fewer than the model's {e} experts per layer ({modelPath}).");
        if (options.CalibrationTexts.Count == 0) throw new WeldException("give at least one calibration text with --text FILE.");
        if (options.Window < 2) throw new WeldException($"--window {options.Window}: must be at least 2 tokens.");
        if (options.Bytes < 0 || options.Skip < 0) throw new WeldException("--bytes and --skip must not be negative.");
        if (options.LowRank is { } target && (target.Rank < 0 || !double.IsFinite(target.ErrorBudget) || target.ErrorBudget < 0 || (target.Rank == 0 && target.ErrorBudget == 0)))
            throw new WeldException("--rank must be at least 1 and --error a finite number > 0.");
        foreach (string text in options.CalibrationTexts)
            if (!File.Exists(text)) throw new WeldException($"{text}: calibration text not found.");
        List<CalibrationText> texts = ReadTexts(model, llama, options);

        int h = llama.HiddenSize, inter = llama.IntermediateSize;
        CheckExperts(model, llama);
        int perToken = Math.Min(llama.ExpertsPerToken, k);
        List<TensorHeader> headers = Plan(model, llama, k);
        long bytesAfter = headers.Sum(x => x.ByteLength);
        int shardCount = ShardLayout.Plan(headers, options.MaxShardBytes).Count;
        string plan = string.Create(CultureInfo.InvariantCulture,
            $"MC-SMoE: {e} → {k} experts × {layers} layers, top-{llama.ExpertsPerToken} → top-{perToken}; {headers.Count} tensors, {model.TotalBytes:N0} → {bytesAfter:N0} bytes in {shardCount} shard(s)");
        if (options.DryRun)
        {
            log(plan);
            return new MoeCompressResult(e, k, layers, perToken, headers.Count, model.TotalBytes, bytesAfter, null, [], [], 0,
                new Dictionary<string, int>(), 0);
        }

        var inputs = new List<string> { model.Path };
        inputs.AddRange(options.CalibrationTexts);
        using var output = new OutputFolder(outputPath, overwrite: options.Overwrite, inputs);
        log(plan);

        (RoutingStatistics statistics, long tokens) = Calibrate(model, llama, texts, options, log, cancel);
        ReleaseLargeArrays(model.ParameterCount); // the float32 copy of the model the calibration ran on
        var groups = new ExpertGroups[layers];
        var frequencies = new double[layers][];
        for (int l = 0; l < layers; l++)
        {
            frequencies[l] = statistics.Frequencies(l);
            groups[l] = ExpertGrouping.Group(frequencies[l], statistics.LogitCosines(l), k);
            log($"layer {l}: " + string.Join(" ", Enumerable.Range(0, k).Select(g => "{" + string.Join(",", groups[l].Members(g)) + "}"))
                + " (frequency " + string.Join(" ", frequencies[l].Select(f => f.ToString("F3", CultureInfo.InvariantCulture))) + ")");
        }

        var ranks = new Dictionary<string, int>(StringComparer.Ordinal);
        double maxError = 0;
        long factored = 0;
        (int Layer, int Group, ExpertWeights Weights)? cached = null;
        using (var shards = new ShardedTensorWriter(output.WorkPath, headers, options.MaxShardBytes))
        {
            int done = 0;
            foreach (TensorHeader header in headers)
            {
                cancel.ThrowIfCancellationRequested();
                SafeTensorsWriter writer = shards.For(header.Name);
                Match match = MoeTensor().Match(header.Name);
                if (!match.Success)
                {
                    CopyBytes(model.GetTensor(header.Name), writer);
                    factored += header.ByteLength;
                }
                else
                {
                    int layer = int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
                    if (match.Groups[2].Value == "gate")
                    {
                        writer.WriteFloat32(ReducedRouter(model, layer, groups[layer], h));
                        factored += header.ByteLength;
                    }
                    else
                    {
                        int group = int.Parse(match.Groups[3].Value, CultureInfo.InvariantCulture);
                        if (cached is not { } c || c.Layer != layer || c.Group != group)
                        {
                            cached = null;
                            ReleaseLargeArrays(3L * h * inter); // the previous group's members, sums and similarity matrix
                            cached = (layer, group, MergeGroup(model, layer, groups[layer], frequencies[layer], group, h, inter, options.Seed, log));
                        }

                        ExpertWeights merged = cached.Value.Weights;
                        string w = match.Groups[4].Value;
                        float[] values = w == "w1" ? merged.W1 : w == "w2" ? merged.W2 : merged.W3;
                        (int rows, int columns) = w == "w2" ? (h, inter) : (inter, h);
                        long stored = header.ByteLength;
                        if (options.LowRank is { } lowRank)
                        {
                            LowRankOutcome outcome = ExpertLowRank.Truncate(values, rows, columns, lowRank, StableSeed(options.Seed, header.Name), options.Threads);
                            ranks[header.Name] = outcome.Rank;
                            maxError = Math.Max(maxError, outcome.RelativeError);
                            long factors = (long)outcome.Rank * (rows + columns) * DTypes.SizeOf(header.DType);
                            if (factors < stored) stored = factors;
                        }

                        factored += stored;
                        writer.WriteFloat32(values);
                    }
                }

                if (++done % 64 == 0 || done == headers.Count) log($"tensors {done}/{headers.Count}");
            }

            shards.Complete();
        }

        var json = (JsonObject)config.Raw.DeepClone();
        json["num_local_experts"] = k;
        json["num_experts_per_tok"] = perToken;
        File.WriteAllText(Path.Combine(output.WorkPath, "config.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        foreach (string side in model.SideFiles)
        {
            string name = Path.GetFileName(side);
            if (name is "config.json" || name == ShardIndex.FileName) continue;
            File.Copy(side, Path.Combine(output.WorkPath, name));
        }

        output.Commit();
        return new MoeCompressResult(e, k, layers, perToken, headers.Count, model.TotalBytes, bytesAfter,
            options.LowRank is null ? null : factored, groups, frequencies, tokens, ranks, maxError);
    }

    private static void CheckExperts(ModelFolder model, LlamaConfig llama)
    {
        int h = llama.HiddenSize, inter = llama.IntermediateSize;
        void Expect(string name, params long[] shape)
        {
            if (!model.Contains(name)) throw new WeldException($"{model.Path}: has no tensor '{name}'; not a Mixtral-layout MoE of {llama.ExpertCount} experts.");
            long[] actual = model.GetTensor(name).Shape;
            if (!actual.AsSpan().SequenceEqual(shape))
                throw new WeldException($"{model.Path}: tensor '{name}' is [{string.Join(", ", actual)}]; the config implies [{string.Join(", ", shape)}].");
        }

        for (int l = 0; l < llama.LayerCount; l++)
        {
            string p = $"model.layers.{l}.block_sparse_moe.";
            Expect(p + "gate.weight", llama.ExpertCount, h);
            for (int x = 0; x < llama.ExpertCount; x++)
            {
                Expect($"{p}experts.{x}.w1.weight", inter, h);
                Expect($"{p}experts.{x}.w2.weight", h, inter);
                Expect($"{p}experts.{x}.w3.weight", inter, h);
            }
        }
    }

    /// <summary>Output headers in name order: the input's non-expert tensors, K experts and a K-row router per layer.</summary>
    private static List<TensorHeader> Plan(ModelFolder model, LlamaConfig llama, int k)
    {
        var headers = new List<TensorHeader>();
        foreach (string name in model.TensorNames)
        {
            ModelTensor tensor = model.GetTensor(name);
            Match match = MoeTensor().Match(name);
            if (!match.Success) headers.Add(new TensorHeader(name, tensor.DType, tensor.Shape));
            else if (match.Groups[2].Value == "gate") headers.Add(new TensorHeader(name, tensor.DType, [k, llama.HiddenSize]));
            else if (int.Parse(match.Groups[3].Value, CultureInfo.InvariantCulture) < k) headers.Add(new TensorHeader(name, tensor.DType, tensor.Shape));
        }

        headers.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return headers;
    }

    /// <summary>Runs the model over every calibration text with a routing observer; the float32 model is dropped afterwards.</summary>
    private static (RoutingStatistics, long) Calibrate(ModelFolder folder, LlamaConfig llama, IReadOnlyList<CalibrationText> texts, MoeCompressionSettings options,
        Action<string> log, CancellationToken cancel)
    {
        var statistics = new RoutingStatistics(llama.LayerCount, llama.ExpertCount);
        LlamaModel model = LlamaModel.Load(folder, options.Threads);
        model.Routing = statistics.Observe;
        long tokens = 0;
        foreach (CalibrationText text in texts)
        {
            cancel.ThrowIfCancellationRequested();
            PerplexityResult result = PerplexityEvaluator.Evaluate(model, text.Tokens, new PerplexityOptions { Window = options.Window });
            tokens += (long)result.Windows * options.Window;
            log(string.Create(CultureInfo.InvariantCulture,
                $"calibration {text.Path}: {result.Windows} windows of {options.Window} tokens (bytes {text.Start}..{text.End}), perplexity {result.Perplexity:F4}"));
        }

        model.Routing = null;
        return (statistics, tokens);
    }

    /// <summary>One calibration text's tokens: bytes [Start, End) of the file after --skip and --bytes.</summary>
    private sealed record CalibrationText(string Path, int[] Tokens, int Start, int End);

    /// <summary>Reads and tokenizes every calibration text up front, so that a short or unreadable one fails before any work.</summary>
    private static List<CalibrationText> ReadTexts(ModelFolder folder, LlamaConfig llama, MoeCompressionSettings options)
    {
        ITokenizer tokenizer = PerplexityEvaluator.TokenizerFor(folder, llama);
        var texts = new List<CalibrationText>();
        foreach (string text in options.CalibrationTexts)
        {
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(text);
            }
            catch (Exception x) when (x is IOException or UnauthorizedAccessException)
            {
                throw new WeldException($"{text}: cannot read the calibration text ({x.Message}).", x);
            }

            int start = Math.Min(options.Skip, bytes.Length);
            int length = options.Bytes > 0 ? Math.Min(options.Bytes, bytes.Length - start) : bytes.Length - start;
            int[] ids = tokenizer.Encode(bytes.AsSpan(start, length));
            if (ids.Length < options.Window)
                throw new WeldException($"{text}: {ids.Length} tokens after skipping {options.Skip} bytes, fewer than one calibration window of {options.Window}.");
            texts.Add(new CalibrationText(text, ids, start, start + length));
        }

        return texts;
    }

    private static ExpertWeights ReadExpert(ModelFolder model, int layer, int expert)
    {
        string p = $"model.layers.{layer}.block_sparse_moe.experts.{expert}.";
        return new ExpertWeights(ReadAll(model.GetTensor(p + "w1.weight")), ReadAll(model.GetTensor(p + "w2.weight")), ReadAll(model.GetTensor(p + "w3.weight")));
    }

    /// <summary>Reads group <paramref name="group"/>'s experts (one group at a time) and merges them.</summary>
    private static ExpertWeights MergeGroup(ModelFolder model, int layer, ExpertGroups groups, double[] frequency, int group, int h, int inter, int seed,
        Action<string> log)
    {
        int[] members = groups.Members(group);
        var weights = new double[members.Length];
        for (int m = 0; m < members.Length; m++) weights[m] = frequency[members[m]];
        // One member besides the dominant expert at a time; the previous member's float32 copies and weight
        // matching's similarity matrices are garbage by the time the next one is read.
        (ExpertWeights merged, int[][] permutations) = ExpertMerging.Merge(members.Length, m =>
        {
            if (m > 1) ReleaseLargeArrays(3L * h * inter);
            return ReadExpert(model, layer, members[m]);
        }, weights, h, inter, seed);
        int moved = 0;
        foreach (int[] p in permutations)
            for (int i = 0; i < p.Length; i++)
                if (p[i] != i) moved++;
        log($"layer {layer} group {group} {{{string.Join(",", members)}}}: merged; alignment moved {moved} of {(members.Length - 1) * inter} hidden units");
        return merged;
    }

    /// <summary>The router of the K groups: row g is the dominant expert's row of the input router.</summary>
    private static float[] ReducedRouter(ModelFolder model, int layer, ExpertGroups groups, int h)
    {
        float[] router = ReadAll(model.GetTensor($"model.layers.{layer}.block_sparse_moe.gate.weight"));
        var reduced = new float[groups.Dominant.Length * h];
        for (int g = 0; g < groups.Dominant.Length; g++) router.AsSpan(groups.Dominant[g] * h, h).CopyTo(reduced.AsSpan(g * h, h));
        return reduced;
    }

    /// <summary>
    /// Returns large garbage (a model's float32 copy, a group's experts) to the OS before the next large allocation:
    /// left to itself the GC lets large-object garbage pile up, so peak memory would grow with the model instead of
    /// with one group (as <see cref="Compression.LowRankCompressor"/> does for its tensors).
    /// </summary>
    private static void ReleaseLargeArrays(long elements)
    {
        if (elements >= 16 << 20) GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }

    private static void CopyBytes(ModelTensor source, SafeTensorsWriter writer)
    {
        const int Chunk = 1 << 26;
        for (long offset = 0; offset < source.Info.ByteLength; offset += Chunk)
            writer.WriteBytes(source.File.GetBytes(source.Info, offset, (int)Math.Min(Chunk, source.Info.ByteLength - offset)));
    }

    private static float[] ReadAll(ModelTensor tensor)
    {
        var values = new float[tensor.ElementCount];
        tensor.ReadFloat32(0, values);
        return values;
    }

    /// <summary>A per-tensor sketch seed, so the output does not depend on the order tensors are written in.</summary>
    private static ulong StableSeed(int seed, string name)
    {
        unchecked
        {
            ulong hash = (ulong)(uint)seed * 1099511628211UL ^ 14695981039346656037UL;
            foreach (char c in name) hash = (hash ^ c) * 1099511628211UL;
            return hash;
        }
    }
}
