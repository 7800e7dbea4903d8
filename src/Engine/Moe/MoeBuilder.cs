using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;

namespace Weld.Engine.Moe;

/// <summary>What <see cref="MoeBuilder.Build"/> did (or, for a dry run, would do).</summary>
/// <param name="Experts">Experts per layer.</param>
/// <param name="Layers">Decoder layers.</param>
/// <param name="Tensors">Tensors in the output.</param>
/// <param name="OutputBytes">Bytes of tensor data in the output.</param>
/// <param name="DType">The output dtype.</param>
/// <param name="GateVectors">The router weights, [layer][expert][hidden] (null for a dry run).</param>
/// <param name="Shards">The output's safetensors files (one <c>model.safetensors</c>, or shards with an index).</param>
public sealed record MoeBuildResult(int Experts, int Layers, int Tensors, long OutputBytes, DType DType, float[][][]? GateVectors,
    IReadOnlyList<ShardPlan> Shards);

/// <summary>
/// mergekit-moe for Mixtral output: every layer's MLP becomes a <c>block_sparse_moe</c> whose expert i is expert
/// model i's MLP (<c>gate_proj→w1</c>, <c>down_proj→w2</c>, <c>up_proj→w3</c>), with <c>noise_scale</c> Gaussian
/// noise added to expert weights and <c>residual_scale</c> multiplying <c>w2</c>; all other tensors come from
/// <c>base_model</c>; the router of layer ℓ is row i = expert i's gate vector for ℓ (see <see cref="MoeGates"/>).
/// </summary>
/// <remarks>
/// Memory: tensors stream one at a time (one expert tensor as float32 at a time). The <c>hidden</c> gate modes run
/// the base over the prompts one layer at a time (<see cref="LlamaModel.StreamLayerInputs"/>): one layer's weights
/// in float32 plus the prompts' hidden states, where mergekit loads the whole base.
/// </remarks>
public static partial class MoeBuilder
{
    /// <summary>The default largest output shard: 5B bytes, as <c>weld merge --out-shard-size</c> (mergekit's default).</summary>
    public const long DefaultMaxShardBytes = 5_000_000_000;

    [GeneratedRegex(@"^model\.layers\.(\d+)\.mlp\.(gate_proj|up_proj|down_proj)\.weight$")]
    private static partial Regex MlpWeight();

    /// <summary>Builds the MoE described by <paramref name="config"/> into <paramref name="outputPath"/> (atomically).</summary>
    /// <param name="config">The parsed mergekit-moe config.</param>
    /// <param name="outputPath">The folder to create.</param>
    /// <param name="overwrite">Whether an existing Weld output may be replaced.</param>
    /// <param name="dryRun">Check the inputs and report the plan without computing gates or writing.</param>
    /// <param name="seed">Seeds random gates and expert noise.</param>
    /// <param name="log">Progress lines.</param>
    /// <param name="cancel">Cancels between tensors.</param>
    /// <param name="maxShardBytes">The largest output shard in bytes (a larger tensor gets a shard of its own);
    /// the default is <c>weld merge</c>'s 5B.</param>
    /// <exception cref="WeldException">An input is missing, not a Llama/Mistral decoder, the experts do not fit the
    /// base, or <paramref name="maxShardBytes"/> is not positive.</exception>
    public static MoeBuildResult Build(MoeConfig config, string outputPath, bool overwrite, bool dryRun, int seed,
        Action<string>? log = null, CancellationToken cancel = default, long maxShardBytes = DefaultMaxShardBytes)
    {
        ArgumentNullException.ThrowIfNull(config);
        log ??= _ => { };
        string configFolder = Path.GetDirectoryName(Path.GetFullPath(config.SourcePath)) ?? ".";
        var opened = new List<ModelFolder>();
        try
        {
            ModelFolder Open(string path, string role, int line)
            {
                string resolved = Directory.Exists(path) || File.Exists(path) || Path.IsPathRooted(path) ? path : Path.Combine(configFolder, path);
                try
                {
                    ModelFolder folder = ModelFolder.Open(resolved);
                    opened.Add(folder);
                    return folder;
                }
                catch (WeldException e)
                {
                    throw new WeldException($"{config.SourcePath}:{line}: {role} '{path}': {e.Message}", e);
                }
            }

            ModelFolder baseModel = Open(config.BaseModel, "base_model", config.BaseModelLine);
            var experts = new ModelFolder[config.Experts.Count];
            for (int i = 0; i < experts.Length; i++)
                experts[i] = Open(config.Experts[i].SourceModel, $"expert {i}", config.Experts[i].Line);

            ModelConfig baseConfig = baseModel.Config
                ?? throw new WeldException($"{config.SourcePath}:{config.BaseModelLine}: base_model '{config.BaseModel}' has no config.json.");
            CheckDecoder(baseModel, baseConfig, $"{config.SourcePath}:{config.BaseModelLine}: base_model '{config.BaseModel}'");
            LlamaConfig llama = LlamaConfig.FromModelConfig(baseConfig);
            if (baseModel.TensorNames.Any(n => n.Contains("_proj.bias", StringComparison.Ordinal)))
                throw new WeldException($"{config.SourcePath}:{config.BaseModelLine}: base_model '{config.BaseModel}' has projection biases; Mixtral has none.");
            for (int i = 0; i < experts.Length; i++)
            {
                string where = $"{config.SourcePath}:{config.Experts[i].Line}: expert {i} '{config.Experts[i].SourceModel}'";
                ModelConfig expertConfig = experts[i].Config ?? throw new WeldException($"{where}: has no config.json.");
                CheckDecoder(experts[i], expertConfig, where);
                if (expertConfig.ModelType != baseConfig.ModelType)
                    throw new WeldException($"{where}: model_type '{expertConfig.ModelType}' differs from the base's '{baseConfig.ModelType}'; Mixtral output needs one architecture.");
                foreach (string name in baseModel.TensorNames.Where(n => MlpWeight().IsMatch(n)))
                {
                    if (!experts[i].Contains(name)) throw new WeldException($"{where}: has no tensor '{name}'.");
                    long[] a = baseModel.GetTensor(name).Shape, b = experts[i].GetTensor(name).Shape;
                    if (!a.AsSpan().SequenceEqual(b))
                        throw new WeldException($"{where}: tensor '{name}' is [{string.Join(", ", b)}], the base's is [{string.Join(", ", a)}].");
                }
            }

            DType dtype = config.DType is { } d ? DTypes.FromTorchDType(d)
                : baseConfig.TorchDType is { } t ? DTypes.FromTorchDType(t)
                : baseModel.GetTensor(baseModel.TensorNames[0]).DType;
            if (!DTypes.IsFloatingPoint(dtype)) throw new WeldException($"{config.SourcePath}: dtype '{DTypes.ToTorchDType(dtype)}' is not a floating-point type.");

            List<(TensorHeader Header, Func<float[]?> Values, ModelTensor? Copy)> plan = Plan(config, baseModel, experts, llama, dtype, seed);
            long bytes = plan.Sum(p => p.Header.ByteLength);
            IReadOnlyList<ShardPlan> shards = ShardLayout.Plan(plan.Select(p => p.Header).ToArray(), maxShardBytes);
            int e = experts.Length;
            log($"MoE: {e} experts × {llama.LayerCount} layers, top-{config.ExpertsPerToken}, gate_mode {config.GateMode}, dtype {DTypes.ToTorchDType(dtype)}; "
                + $"{plan.Count} tensors, {bytes.ToString("N0", CultureInfo.InvariantCulture)} bytes in {shards.Count} shard(s)");
            if ((e & (e - 1)) != 0) log($"note: {e} experts is not a power of two (llama.cpp cannot load such a model; transformers can).");
            if (dryRun) return new MoeBuildResult(e, llama.LayerCount, plan.Count, bytes, dtype, null, shards);

            using var output = new OutputFolder(outputPath, overwrite,
                [config.SourcePath, baseModel.Path, .. experts.Select(x => x.Path)]);
            float[][][] gates = MoeGates.Compute(config, baseModel, llama, seed, log, cancel);
            using (var writer = new ShardedTensorWriter(output.WorkPath, plan.Select(p => p.Header).ToArray(), maxShardBytes))
            {
                int done = 0;
                foreach ((TensorHeader header, Func<float[]?> values, ModelTensor? copy) in plan)
                {
                    cancel.ThrowIfCancellationRequested();
                    SafeTensorsWriter shard = writer.For(header.Name);
                    if (copy is { } source && source.DType == header.DType)
                    {
                        const int Chunk = 1 << 26;
                        for (long offset = 0; offset < source.Info.ByteLength; offset += Chunk)
                            shard.WriteBytes(source.File.GetBytes(source.Info, offset, (int)Math.Min(Chunk, source.Info.ByteLength - offset)));
                    }
                    else
                    {
                        float[] data = values() ?? RouterRow(header.Name, gates, llama);
                        shard.WriteFloat32(data);
                    }

                    if (++done % 64 == 0 || done == plan.Count) log($"tensors {done}/{plan.Count}");
                }

                writer.Complete();
            }

            File.WriteAllText(Path.Combine(output.WorkPath, "config.json"), OutputConfig(baseConfig, e, config.ExpertsPerToken, dtype));
            foreach (string side in baseModel.SideFiles)
            {
                string name = Path.GetFileName(side);
                if (name is "config.json" || name == ShardIndex.FileName) continue;
                File.Copy(side, Path.Combine(output.WorkPath, name));
            }

            output.Commit();
            return new MoeBuildResult(e, llama.LayerCount, plan.Count, bytes, dtype, gates, shards);
        }
        finally
        {
            foreach (ModelFolder folder in opened) folder.Dispose();
        }
    }

    private static void CheckDecoder(ModelFolder model, ModelConfig config, string where)
    {
        if (config.ModelType is not ("llama" or "mistral"))
            throw new WeldException($"{where}: model_type '{config.ModelType}'; Mixtral output needs Llama or Mistral models.");
        if (!model.Contains("model.layers.0.mlp.gate_proj.weight"))
            throw new WeldException($"{where}: has no model.layers.0.mlp.gate_proj.weight; not a Llama-layout checkpoint.");
    }

    /// <summary>The output tensors in name order: how each is produced (a copy, expert values, or a router).</summary>
    private static List<(TensorHeader, Func<float[]?>, ModelTensor?)> Plan(MoeConfig config, ModelFolder baseModel, ModelFolder[] experts,
        LlamaConfig llama, DType dtype, int seed)
    {
        var plan = new List<(TensorHeader, Func<float[]?>, ModelTensor?)>();
        foreach (string name in baseModel.TensorNames)
        {
            ModelTensor tensor = baseModel.GetTensor(name);
            Match match = MlpWeight().Match(name);
            if (!match.Success)
            {
                plan.Add((new TensorHeader(name, dtype, tensor.Shape), () => ReadAll(tensor), tensor));
                continue;
            }

            string layer = match.Groups[1].Value;
            string w = match.Groups[2].Value switch { "gate_proj" => "w1", "down_proj" => "w2", _ => "w3" };
            for (int i = 0; i < experts.Length; i++)
            {
                MoeExpert expert = config.Experts[i];
                ModelTensor source = experts[i].GetTensor(name);
                bool residual = w == "w2";
                // A per-tensor noise seed, so the output does not depend on the order tensors are written in.
                bool changed = expert.NoiseScale is not null || (residual && expert.ResidualScale is not null);
                plan.Add((new TensorHeader($"model.layers.{layer}.block_sparse_moe.experts.{i}.{w}.weight", dtype, source.Shape),
                    () => NoiseAndScale(ReadAll(source), expert, residual, StableSeed(seed, name, i)),
                    changed ? null : source));
            }
        }

        for (int l = 0; l < llama.LayerCount; l++)
            plan.Add((new TensorHeader($"model.layers.{l}.block_sparse_moe.gate.weight", dtype, [experts.Length, llama.HiddenSize]), () => null, null));
        plan.Sort((a, b) => string.CompareOrdinal(a.Item1.Name, b.Item1.Name));
        return plan;
    }

    private static int StableSeed(int seed, string name, int expert)
    {
        unchecked
        {
            int h = seed * 31 + expert;
            foreach (char c in name) h = h * 31 + c;
            return h;
        }
    }

    private static float[] ReadAll(ModelTensor tensor)
    {
        var values = new float[tensor.ElementCount];
        tensor.ReadFloat32(0, values);
        return values;
    }

    /// <summary>mergekit's <c>noise_and_scale</c>: + N(0, noise_scale²) noise, then ×residual_scale on w2.</summary>
    private static float[] NoiseAndScale(float[] values, MoeExpert expert, bool residual, int seed)
    {
        if (expert.NoiseScale is double noise)
        {
            var random = new Random(seed);
            for (int i = 0; i < values.Length; i++) values[i] += (float)(noise * MoeGates.Gaussian(random));
        }

        if (residual && expert.ResidualScale is double scale)
            for (int i = 0; i < values.Length; i++) values[i] = (float)(values[i] * scale);
        return values;
    }

    private static float[] RouterRow(string name, float[][][] gates, LlamaConfig llama)
    {
        int layer = int.Parse(name.Split('.')[2], CultureInfo.InvariantCulture);
        float[][] vectors = gates[layer];
        var values = new float[vectors.Length * llama.HiddenSize];
        for (int e = 0; e < vectors.Length; e++) vectors[e].CopyTo(values, e * llama.HiddenSize);
        return values;
    }

    /// <summary>The base's config.json as a Mixtral config (transformers' MixtralConfig reads the Llama fields it shares).</summary>
    internal static string OutputConfig(ModelConfig baseConfig, int experts, int perToken, DType dtype)
    {
        var json = (JsonObject)baseConfig.Raw.DeepClone();
        json["architectures"] = new JsonArray("MixtralForCausalLM");
        json["model_type"] = "mixtral";
        json["num_local_experts"] = experts;
        json["num_experts_per_tok"] = perToken;
        json["sliding_window"] = null;
        json["output_router_logits"] = false;
        json["router_aux_loss_coef"] = 0.001;
        json["torch_dtype"] = DTypes.ToTorchDType(dtype);
        json.Remove("dtype");
        foreach (string llamaOnly in (string[])["mlp_bias", "attention_bias", "pretraining_tp"]) json.Remove(llamaOnly);
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }
}
