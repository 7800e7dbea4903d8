using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;

namespace Weld.Engine.Moe;

/// <summary>What <see cref="MoeBuilder.Build"/> did (or, for a dry run, would do).</summary>
/// <param name="Experts">Routed experts per layer.</param>
/// <param name="Layers">Decoder layers.</param>
/// <param name="Tensors">Tensors in the output.</param>
/// <param name="OutputBytes">Bytes of tensor data in the output.</param>
/// <param name="DType">The output dtype.</param>
/// <param name="GateVectors">The gate vectors, [layer][gated expert][hidden]: the routed experts' router rows, then
/// a shared expert's gate (null for a dry run).</param>
/// <param name="Shards">The output's safetensors files (one <c>model.safetensors</c>, or shards with an index).</param>
/// <param name="Architecture">The layout written.</param>
public sealed record MoeBuildResult(int Experts, int Layers, int Tensors, long OutputBytes, DType DType, float[][][]? GateVectors,
    IReadOnlyList<ShardPlan> Shards, MoeOutputArchitecture Architecture = MoeOutputArchitecture.Mixtral);

/// <summary>
/// mergekit-moe: every layer's MLP becomes a sparse block whose expert i is expert model i's MLP, with
/// <c>noise_scale</c> Gaussian noise added to expert weights and <c>residual_scale</c> multiplying the down
/// projection; all other tensors come from <c>base_model</c>; the router of layer ℓ is row i = expert i's gate
/// vector for ℓ (see <see cref="MoeGates"/>). Mixtral output (<c>gate_proj→w1</c>, <c>down_proj→w2</c>,
/// <c>up_proj→w3</c> under <c>block_sparse_moe</c>) or, with one shared expert, Qwen2-MoE output (mergekit's
/// "Qwen MoE": <c>mlp.experts.N.*_proj</c>, <c>mlp.shared_expert.*_proj</c> from the shared model, <c>mlp.gate</c>,
/// <c>mlp.shared_expert_gate</c> = the shared expert's gate vector, zero q/k/v biases where the base has none), or,
/// from Qwen3 models, Qwen3-MoE output (the same names without a shared expert).
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
    /// <exception cref="WeldException">An input is missing or not a decoder the chosen layout takes, the experts do
    /// not fit the base, no output architecture fits, or <paramref name="maxShardBytes"/> is not positive.</exception>
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
            var shared = new ModelFolder[config.SharedExperts.Count];
            for (int i = 0; i < shared.Length; i++)
                shared[i] = Open(config.SharedExperts[i].SourceModel, $"shared expert {i}", config.SharedExperts[i].Line);

            string baseWhere = $"{config.SourcePath}:{config.BaseModelLine}: base_model '{config.BaseModel}'";
            ModelConfig baseConfig = baseModel.Config ?? throw new WeldException($"{baseWhere}: has no config.json.");
            var inputs = new List<(ModelFolder Model, ModelConfig Config, string Where)> { (baseModel, baseConfig, baseWhere) };
            for (int i = 0; i < experts.Length; i++)
            {
                string where = $"{config.SourcePath}:{config.Experts[i].Line}: expert {i} '{config.Experts[i].SourceModel}'";
                inputs.Add((experts[i], experts[i].Config ?? throw new WeldException($"{where}: has no config.json."), where));
            }

            for (int i = 0; i < shared.Length; i++)
            {
                string where = $"{config.SourcePath}:{config.SharedExperts[i].Line}: shared expert {i} '{config.SharedExperts[i].SourceModel}'";
                inputs.Add((shared[i], shared[i].Config ?? throw new WeldException($"{where}: has no config.json."), where));
            }

            MoeOutputArchitecture architecture = MoeArchitectureSelection.Select(config, baseConfig.ModelType,
                inputs.Skip(1).Take(experts.Length).Select(x => x.Config.ModelType).ToArray(),
                inputs.Skip(1 + experts.Length).Select(x => x.Config.ModelType).ToArray());
            LlamaConfig llama = LlamaConfig.FromModelConfig(baseConfig);
            foreach ((ModelFolder model, _, string where) in inputs) CheckDecoder(model, architecture, where);
            foreach ((ModelFolder model, _, string where) in inputs.Skip(1))
                foreach (string name in baseModel.TensorNames.Where(n => MlpWeight().IsMatch(n)))
                {
                    if (!model.Contains(name)) throw new WeldException($"{where}: has no tensor '{name}'.");
                    long[] a = baseModel.GetTensor(name).Shape, b = model.GetTensor(name).Shape;
                    if (!a.AsSpan().SequenceEqual(b))
                        throw new WeldException($"{where}: tensor '{name}' is [{string.Join(", ", b)}], the base's is [{string.Join(", ", a)}].");
                }

            DType dtype = config.DType is { } d ? DTypes.FromTorchDType(d)
                : baseConfig.TorchDType is { } t ? DTypes.FromTorchDType(t)
                : baseModel.GetTensor(baseModel.TensorNames[0]).DType;
            if (!DTypes.IsFloatingPoint(dtype)) throw new WeldException($"{config.SourcePath}: dtype '{DTypes.ToTorchDType(dtype)}' is not a floating-point type.");

            List<(TensorHeader Header, Func<float[]?> Values, ModelTensor? Copy)> plan =
                Plan(config, architecture, baseModel, experts, shared, llama, dtype, seed);
            long bytes = plan.Sum(p => p.Header.ByteLength);
            IReadOnlyList<ShardPlan> shards = ShardLayout.Plan(plan.Select(p => p.Header).ToArray(), maxShardBytes);
            int e = experts.Length;
            log($"MoE: {ArchitectureName(architecture)}, {e} experts{(shared.Length > 0 ? " + 1 shared" : "")} × {llama.LayerCount} layers, top-{config.ExpertsPerToken}, gate_mode {config.GateMode}, dtype {DTypes.ToTorchDType(dtype)}; "
                + $"{plan.Count} tensors, {bytes.ToString("N0", CultureInfo.InvariantCulture)} bytes in {shards.Count} shard(s)");
            if ((e & (e - 1)) != 0) log($"note: {e} experts is not a power of two (llama.cpp cannot load such a model; transformers can).");
            if (dryRun) return new MoeBuildResult(e, llama.LayerCount, plan.Count, bytes, dtype, null, shards, architecture);

            using var output = new OutputFolder(outputPath, overwrite,
                [config.SourcePath, .. inputs.Select(x => x.Model.Path)]);
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
                        float[] data = values() ?? GateRows(header.Name, gates, e, llama);
                        shard.WriteFloat32(data);
                    }

                    if (++done % 64 == 0 || done == plan.Count) log($"tensors {done}/{plan.Count}");
                }

                writer.Complete();
            }

            string json = architecture switch
            {
                MoeOutputArchitecture.Mixtral => OutputConfig(baseConfig, e, config.ExpertsPerToken, dtype),
                MoeOutputArchitecture.Qwen2Moe => Qwen2MoeConfig(baseConfig, llama, e, config.ExpertsPerToken, dtype),
                _ => Qwen3MoeConfig(baseConfig, llama, e, config.ExpertsPerToken, dtype),
            };
            File.WriteAllText(Path.Combine(output.WorkPath, "config.json"), json);
            foreach (string side in baseModel.SideFiles)
            {
                string name = Path.GetFileName(side);
                if (name is "config.json" || name == ShardIndex.FileName) continue;
                File.Copy(side, Path.Combine(output.WorkPath, name));
            }

            output.Commit();
            return new MoeBuildResult(e, llama.LayerCount, plan.Count, bytes, dtype, gates, shards, architecture);
        }
        finally
        {
            foreach (ModelFolder folder in opened) folder.Dispose();
        }
    }

    /// <summary>The class name transformers loads the output as.</summary>
    public static string ArchitectureName(MoeOutputArchitecture architecture) => architecture switch
    {
        MoeOutputArchitecture.Mixtral => "MixtralForCausalLM",
        MoeOutputArchitecture.Qwen2Moe => "Qwen2MoeForCausalLM",
        _ => "Qwen3MoeForCausalLM",
    };

    private static void CheckDecoder(ModelFolder model, MoeOutputArchitecture architecture, string where)
    {
        // model_type was checked by the architecture selection; here the tensors the layout needs.
        if (!model.Contains("model.layers.0.mlp.gate_proj.weight"))
            throw new WeldException($"{where}: has no model.layers.0.mlp.gate_proj.weight; not a Llama-layout checkpoint.");
        foreach (string name in model.TensorNames)
        {
            if (!name.Contains("_proj.bias", StringComparison.Ordinal)) continue;
            bool qkv = name.Contains(".self_attn.q_proj.", StringComparison.Ordinal) || name.Contains(".self_attn.k_proj.", StringComparison.Ordinal)
                || name.Contains(".self_attn.v_proj.", StringComparison.Ordinal);
            if (architecture == MoeOutputArchitecture.Mixtral)
                throw new WeldException($"{where}: has projection biases ('{name}'); Mixtral has none.");
            if (architecture == MoeOutputArchitecture.Qwen2Moe && !qkv)
                throw new WeldException($"{where}: has a bias '{name}'; Qwen2-MoE has biases on q/k/v only.");
            if (name.Contains(".mlp.", StringComparison.Ordinal))
                throw new WeldException($"{where}: has an MLP bias '{name}'; Qwen3-MoE experts have none.");
        }
    }

    /// <summary>The output tensors in name order: how each is produced (a copy, computed values, or gate rows when the values are null).</summary>
    private static List<(TensorHeader, Func<float[]?>, ModelTensor?)> Plan(MoeConfig config, MoeOutputArchitecture architecture,
        ModelFolder baseModel, ModelFolder[] experts, ModelFolder[] shared, LlamaConfig llama, DType dtype, int seed)
    {
        bool qwen = architecture != MoeOutputArchitecture.Mixtral, sharedExpert = architecture == MoeOutputArchitecture.Qwen2Moe;
        var plan = new List<(TensorHeader, Func<float[]?>, ModelTensor?)>();
        void AddExpert(string outputName, ModelFolder model, MoeExpert expert, string name, bool residual, int index)
        {
            ModelTensor source = model.GetTensor(name);
            // A per-tensor noise seed, so the output does not depend on the order tensors are written in.
            bool changed = expert.NoiseScale is not null || (residual && expert.ResidualScale is not null);
            plan.Add((new TensorHeader(outputName, dtype, source.Shape),
                () => NoiseAndScale(ReadAll(source), expert, residual, StableSeed(seed, name, index)),
                changed ? null : source));
        }

        foreach (string name in baseModel.TensorNames)
        {
            ModelTensor tensor = baseModel.GetTensor(name);
            Match match = MlpWeight().Match(name);
            if (!match.Success)
            {
                plan.Add((new TensorHeader(name, dtype, tensor.Shape), () => ReadAll(tensor), tensor));
                continue;
            }

            string layer = match.Groups[1].Value, projection = match.Groups[2].Value;
            bool residual = projection == "down_proj";
            string mixtral = projection switch { "gate_proj" => "w1", "down_proj" => "w2", _ => "w3" };
            for (int i = 0; i < experts.Length; i++)
            {
                string outputName = qwen ? $"model.layers.{layer}.mlp.experts.{i}.{projection}.weight"
                    : $"model.layers.{layer}.block_sparse_moe.experts.{i}.{mixtral}.weight";
                AddExpert(outputName, experts[i], config.Experts[i], name, residual, i);
            }

            if (sharedExpert) AddExpert($"model.layers.{layer}.mlp.shared_expert.{projection}.weight", shared[0], config.SharedExperts[0], name, residual, experts.Length);
        }

        int h = llama.HiddenSize;
        for (int l = 0; l < llama.LayerCount; l++)
        {
            if (!qwen)
            {
                plan.Add((new TensorHeader($"model.layers.{l}.block_sparse_moe.gate.weight", dtype, [experts.Length, h]), () => null, null));
                continue;
            }

            plan.Add((new TensorHeader($"model.layers.{l}.mlp.gate.weight", dtype, [experts.Length, h]), () => null, null));
            if (!sharedExpert) continue;
            plan.Add((new TensorHeader($"model.layers.{l}.mlp.shared_expert_gate.weight", dtype, [1, h]), () => null, null));
            // Qwen2-MoE's attention always has q/k/v biases; a base without them gets zeros (as mergekit writes).
            foreach ((string projection, int width) in (ReadOnlySpan<(string, int)>)[("q_proj", llama.HeadCount * llama.HeadDim),
                         ("k_proj", llama.KeyValueHeadCount * llama.HeadDim), ("v_proj", llama.KeyValueHeadCount * llama.HeadDim)])
            {
                string bias = $"model.layers.{l}.self_attn.{projection}.bias";
                if (!baseModel.Contains(bias)) plan.Add((new TensorHeader(bias, dtype, [width]), () => new float[width], null));
            }
        }

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

    /// <summary>A router's rows (the routed experts' gate vectors) or a shared expert gate's single row.</summary>
    private static float[] GateRows(string name, float[][][] gates, int experts, LlamaConfig llama)
    {
        int layer = int.Parse(name.Split('.')[2], CultureInfo.InvariantCulture);
        float[][] vectors = gates[layer];
        (int first, int count) = name.EndsWith(".shared_expert_gate.weight", StringComparison.Ordinal) ? (experts, 1) : (0, experts);
        var values = new float[count * llama.HiddenSize];
        for (int e = 0; e < count; e++) vectors[first + e].CopyTo(values, e * llama.HiddenSize);
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

    /// <summary>
    /// The base's (Qwen3) config.json as mergekit's Qwen3 MoE config: <c>Qwen3MoeForCausalLM</c>, <c>num_experts</c>,
    /// <c>num_experts_per_tok</c>, <c>decoder_sparse_step</c> 1, <c>norm_topk_prob</c> true, <c>moe_intermediate_size</c>
    /// equal to the base's <c>intermediate_size</c>.
    /// </summary>
    internal static string Qwen3MoeConfig(ModelConfig baseConfig, LlamaConfig llama, int experts, int perToken, DType dtype)
    {
        var json = (JsonObject)baseConfig.Raw.DeepClone();
        json["architectures"] = new JsonArray("Qwen3MoeForCausalLM");
        json["model_type"] = "qwen3_moe";
        json["num_experts"] = experts;
        json["num_experts_per_tok"] = perToken;
        json["decoder_sparse_step"] = 1;
        json["norm_topk_prob"] = true;
        json["moe_intermediate_size"] = llama.IntermediateSize;
        json["mlp_only_layers"] = new JsonArray();
        json["output_router_logits"] = false;
        json["router_aux_loss_coef"] = 0.001;
        json["torch_dtype"] = DTypes.ToTorchDType(dtype);
        json.Remove("dtype");
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    /// <summary>
    /// The base's config.json as mergekit's Qwen MoE config: <c>Qwen2MoeForCausalLM</c>, <c>num_experts</c>,
    /// <c>num_experts_per_tok</c>, <c>decoder_sparse_step</c> 1 (every layer sparse), <c>norm_topk_prob</c> true,
    /// expert and shared-expert widths equal to the base's <c>intermediate_size</c>, no sliding window.
    /// </summary>
    internal static string Qwen2MoeConfig(ModelConfig baseConfig, LlamaConfig llama, int experts, int perToken, DType dtype)
    {
        var json = (JsonObject)baseConfig.Raw.DeepClone();
        json["architectures"] = new JsonArray("Qwen2MoeForCausalLM");
        json["model_type"] = "qwen2_moe";
        json["num_experts"] = experts;
        json["num_experts_per_tok"] = perToken;
        json["decoder_sparse_step"] = 1;
        json["norm_topk_prob"] = true;
        json["moe_intermediate_size"] = llama.IntermediateSize;
        json["shared_expert_intermediate_size"] = llama.IntermediateSize;
        json["mlp_only_layers"] = new JsonArray();
        json["sliding_window"] = null;
        json["use_sliding_window"] = false;
        json["output_router_logits"] = false;
        json["router_aux_loss_coef"] = 0.001;
        json["torch_dtype"] = DTypes.ToTorchDType(dtype);
        json.Remove("dtype");
        foreach (string llamaOnly in (string[])["mlp_bias", "attention_bias", "pretraining_tp"]) json.Remove(llamaOnly);
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }
}
