using System.Text.Json.Nodes;
using Weld.Engine.Models;

namespace Weld.Engine.Evaluation;

/// <summary>The hyper-parameters of a Llama-family decoder, read from a Hugging Face <c>config.json</c>.</summary>
/// <param name="HiddenSize"><c>hidden_size</c>.</param>
/// <param name="IntermediateSize"><c>intermediate_size</c> (the SwiGLU width).</param>
/// <param name="LayerCount"><c>num_hidden_layers</c>.</param>
/// <param name="HeadCount"><c>num_attention_heads</c>.</param>
/// <param name="KeyValueHeadCount"><c>num_key_value_heads</c> (grouped-query attention; defaults to the head count).</param>
/// <param name="HeadDim"><c>head_dim</c> (defaults to hidden_size / num_attention_heads).</param>
/// <param name="VocabSize"><c>vocab_size</c>.</param>
/// <param name="RmsNormEps"><c>rms_norm_eps</c>.</param>
/// <param name="RopeTheta"><c>rope_theta</c>.</param>
/// <param name="TieWordEmbeddings"><c>tie_word_embeddings</c>: lm_head reuses the embedding matrix; null when the
/// config does not say (then the checkpoint decides: tied when it has no <c>lm_head.weight</c>).</param>
/// <param name="RopeScaling">Llama-3 style frequency scaling, or null.</param>
/// <param name="ExpertCount">Mixtral's <c>num_local_experts</c> / Qwen2-MoE's <c>num_experts</c>: 0 for a dense model,
/// else the sparse layers' MLP is a mixture of this many SwiGLU experts.</param>
/// <param name="ExpertsPerToken"><c>num_experts_per_tok</c> (top-k); 0 for a dense model.</param>
/// <param name="MoeLayout">How the experts are named and routed (Mixtral unless the config says Qwen2-MoE).</param>
/// <param name="ExpertIntermediateSize">Qwen2-MoE's <c>moe_intermediate_size</c> (each expert's width); 0: the
/// experts are <paramref name="IntermediateSize"/> wide (Mixtral).</param>
/// <param name="SharedExpertIntermediateSize">Qwen2-MoE's <c>shared_expert_intermediate_size</c>; 0: no shared expert.</param>
/// <param name="NormalizeTopK">Whether the k routing weights are renormalised to sum to 1 (Mixtral: always;
/// Qwen2-MoE: <c>norm_topk_prob</c>).</param>
/// <param name="DecoderSparseStep">Qwen2-MoE's <c>decoder_sparse_step</c>: layer ℓ is sparse when (ℓ + 1) is a multiple of it.</param>
/// <param name="MlpOnlyLayers">Qwen2-MoE's <c>mlp_only_layers</c>: layers with a dense MLP of width <paramref name="IntermediateSize"/>.</param>
public sealed record LlamaConfig(int HiddenSize, int IntermediateSize, int LayerCount, int HeadCount, int KeyValueHeadCount,
    int HeadDim, int VocabSize, double RmsNormEps, double RopeTheta, bool? TieWordEmbeddings, Llama3RopeScaling? RopeScaling = null,
    int ExpertCount = 0, int ExpertsPerToken = 0, MoeLayout MoeLayout = MoeLayout.Mixtral, int ExpertIntermediateSize = 0,
    int SharedExpertIntermediateSize = 0, bool NormalizeTopK = true, int DecoderSparseStep = 1, IReadOnlyList<int>? MlpOnlyLayers = null)
{
    /// <summary>Whether some MLPs are sparse mixtures of experts.</summary>
    public bool IsMoe => ExpertCount > 0;

    /// <summary>Each routed expert's SwiGLU width.</summary>
    public int ExpertWidth => ExpertIntermediateSize > 0 ? ExpertIntermediateSize : IntermediateSize;

    /// <summary>Whether layer <paramref name="layer"/>'s MLP is a sparse mixture (else a dense SwiGLU of <see cref="IntermediateSize"/>).</summary>
    public bool IsSparseLayer(int layer) =>
        IsMoe && (MlpOnlyLayers is null || !MlpOnlyLayers.Contains(layer)) && (layer + 1) % DecoderSparseStep == 0;

    /// <summary>Reads and validates the decoder fields of <paramref name="config"/>.</summary>
    /// <exception cref="InvalidModelFileException">A field is missing, not a positive number, or inconsistent.</exception>
    public static LlamaConfig FromModelConfig(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        string file = config.FilePath ?? "config.json";
        JsonObject raw = config.Raw;
        int hidden = RequiredInt(raw, file, "hidden_size");
        int heads = RequiredInt(raw, file, "num_attention_heads");
        int kvHeads = OptionalInt(raw, file, "num_key_value_heads") ?? heads;
        int headDim = OptionalInt(raw, file, "head_dim") ?? hidden / heads;
        if (heads % kvHeads != 0)
            throw new InvalidModelFileException(file, $"num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kvHeads}).");
        if (headDim % 2 != 0)
            throw new InvalidModelFileException(file, $"head_dim ({headDim}) must be even for rotary embeddings.");
        LlamaConfig moe = ReadExperts(config, file);
        string activation = raw["hidden_act"] is JsonValue act && act.TryGetValue(out string? name) ? name : "silu";
        if (activation != "silu")
            throw new InvalidModelFileException(file, $"hidden_act '{activation}' is not supported (Llama-family models use 'silu').");

        return new LlamaConfig(
            hidden,
            RequiredInt(raw, file, "intermediate_size"),
            RequiredInt(raw, file, "num_hidden_layers"),
            heads,
            kvHeads,
            headDim,
            RequiredInt(raw, file, "vocab_size"),
            OptionalDouble(raw, file, "rms_norm_eps") ?? 1e-6,
            OptionalDouble(raw, file, "rope_theta") ?? 10000.0,
            raw["tie_word_embeddings"] is JsonValue tie && tie.TryGetValue(out bool tied) ? tied : null,
            Llama3RopeScaling.Read(raw, file)) with
        {
            ExpertCount = moe.ExpertCount, ExpertsPerToken = moe.ExpertsPerToken, MoeLayout = moe.MoeLayout,
            ExpertIntermediateSize = moe.ExpertIntermediateSize, SharedExpertIntermediateSize = moe.SharedExpertIntermediateSize,
            NormalizeTopK = moe.NormalizeTopK, DecoderSparseStep = moe.DecoderSparseStep, MlpOnlyLayers = moe.MlpOnlyLayers,
        };
    }

    /// <summary>
    /// The mixture-of-experts fields, in a config that carries nothing else: Mixtral (<c>model_type</c> "mixtral" or a
    /// MixtralForCausalLM) must give <c>num_local_experts</c> and may give <c>num_experts_per_tok</c> (transformers'
    /// default 2); Qwen2-MoE (<c>qwen2_moe</c> / Qwen2MoeForCausalLM) must give <c>num_experts</c> and takes the rest
    /// with Qwen2MoeConfig's defaults (top-4, moe_intermediate_size 1408, shared_expert_intermediate_size 5632,
    /// norm_topk_prob false, decoder_sparse_step 1, no mlp_only_layers); Qwen3-MoE (<c>qwen3_moe</c>) likewise with
    /// Qwen3MoeConfig's (top-8, moe_intermediate_size 768, no shared expert). Other MoE layouts (DeepSeek) are
    /// refused rather than scored as dense models.
    /// </summary>
    private static LlamaConfig ReadExperts(ModelConfig config, string file)
    {
        JsonObject raw = config.Raw;
        var none = new LlamaConfig(0, 0, 0, 0, 0, 0, 0, 0, 0, null);
        bool mixtral = config.ModelType == "mixtral" || config.Architecture == "MixtralForCausalLM";
        bool qwen2 = config.ModelType == "qwen2_moe" || config.Architecture == "Qwen2MoeForCausalLM";
        bool qwen3 = config.ModelType == "qwen3_moe" || config.Architecture == "Qwen3MoeForCausalLM";
        if (mixtral)
        {
            int experts = OptionalInt(raw, file, "num_local_experts")
                ?? throw new InvalidModelFileException(file, "'num_local_experts' is missing; a Mixtral model needs it.");
            int perToken = OptionalInt(raw, file, "num_experts_per_tok") ?? 2;
            if (perToken > experts)
                throw new InvalidModelFileException(file, $"num_experts_per_tok ({perToken}) exceeds num_local_experts ({experts}).");
            return none with { ExpertCount = experts, ExpertsPerToken = perToken };
        }

        if (qwen2 || qwen3)
        {
            string name = qwen2 ? "Qwen2-MoE" : "Qwen3-MoE";
            int experts = OptionalInt(raw, file, "num_experts")
                ?? throw new InvalidModelFileException(file, $"'num_experts' is missing; a {name} model needs it.");
            int perToken = OptionalInt(raw, file, "num_experts_per_tok") ?? (qwen2 ? 4 : 8);
            if (perToken > experts)
                throw new InvalidModelFileException(file, $"num_experts_per_tok ({perToken}) exceeds num_experts ({experts}).");
            bool normalize = raw["norm_topk_prob"] switch
            {
                null => false,
                JsonValue v when v.TryGetValue(out bool b) => b,
                var other => throw new InvalidModelFileException(file, $"'norm_topk_prob' must be true or false, not {other.ToJsonString()}."),
            };
            var mlpOnly = new List<int>();
            if (raw["mlp_only_layers"] is JsonArray layers)
            {
                foreach (JsonNode? item in layers)
                    mlpOnly.Add(item is JsonValue n && n.TryGetValue(out int layer) && layer >= 0 ? layer
                        : throw new InvalidModelFileException(file, $"'mlp_only_layers' must list layer indices, not {item?.ToJsonString() ?? "null"}."));
            }
            else if (raw["mlp_only_layers"] is not null)
            {
                throw new InvalidModelFileException(file, "'mlp_only_layers' must be a list of layer indices.");
            }

            return none with
            {
                ExpertCount = experts, ExpertsPerToken = perToken, MoeLayout = qwen2 ? MoeLayout.Qwen2Moe : MoeLayout.Qwen3Moe,
                ExpertIntermediateSize = OptionalInt(raw, file, "moe_intermediate_size") ?? (qwen2 ? 1408 : 768),
                SharedExpertIntermediateSize = qwen2 ? OptionalInt(raw, file, "shared_expert_intermediate_size") ?? 5632 : 0,
                NormalizeTopK = normalize,
                DecoderSparseStep = OptionalInt(raw, file, "decoder_sparse_step") ?? 1,
                MlpOnlyLayers = mlpOnly,
            };
        }

        foreach (string key in (string[])["num_experts", "num_local_experts", "n_routed_experts"])
            if (raw[key] is not null)
                throw new InvalidModelFileException(file,
                    $"'{key}' says this is a mixture of experts of model_type '{config.ModelType}'; only Mixtral (model_type 'mixtral'), Qwen2-MoE ('qwen2_moe') and Qwen3-MoE ('qwen3_moe') models can be evaluated.");
        return none;
    }

    private static int RequiredInt(JsonObject raw, string file, string key) =>
        OptionalInt(raw, file, key) ?? throw new InvalidModelFileException(file, $"'{key}' is missing; a Llama-family decoder needs it.");

    internal static int? OptionalInt(JsonObject raw, string file, string key)
    {
        if (raw[key] is null) return null;
        if (raw[key] is JsonValue value && value.TryGetValue(out double number) && number == Math.Floor(number) && number is >= 1 and <= int.MaxValue)
            return (int)number;
        throw new InvalidModelFileException(file, $"'{key}' must be a positive integer, not {raw[key]!.ToJsonString()}.");
    }

    internal static double? OptionalDouble(JsonObject raw, string file, string key)
    {
        if (raw[key] is null) return null;
        if (raw[key] is JsonValue value && value.TryGetValue(out double number) && double.IsFinite(number) && number > 0)
            return number;
        throw new InvalidModelFileException(file, $"'{key}' must be a positive number, not {raw[key]!.ToJsonString()}.");
    }
}

/// <summary>How a mixture-of-experts checkpoint names its experts and routes tokens to them.</summary>
public enum MoeLayout
{
    /// <summary>Mixtral: <c>block_sparse_moe.gate</c> and <c>experts.N.w1/w2/w3</c>; softmax over all experts, top-k,
    /// the k weights renormalised; no shared expert.</summary>
    Mixtral,

    /// <summary>Qwen2-MoE: <c>mlp.gate</c>, <c>mlp.experts.N.gate_proj/up_proj/down_proj</c>, <c>mlp.shared_expert.*</c>
    /// and <c>mlp.shared_expert_gate</c>; softmax over all experts, top-k, renormalised only with <c>norm_topk_prob</c>;
    /// plus the shared expert scaled by sigmoid(shared_expert_gate·x).</summary>
    Qwen2Moe,

    /// <summary>Qwen3-MoE: Qwen2-MoE's names and routing without a shared expert (and Qwen3 attention's q/k norms).</summary>
    Qwen3Moe,
}

/// <summary>The <c>rope_scaling</c> of Llama 3.1+ (<c>rope_type: llama3</c>): long wavelengths slowed by a factor.</summary>
/// <param name="Factor"><c>factor</c>.</param>
/// <param name="LowFrequencyFactor"><c>low_freq_factor</c>.</param>
/// <param name="HighFrequencyFactor"><c>high_freq_factor</c>.</param>
/// <param name="OriginalContextLength"><c>original_max_position_embeddings</c>.</param>
public sealed record Llama3RopeScaling(double Factor, double LowFrequencyFactor, double HighFrequencyFactor, int OriginalContextLength)
{
    internal static Llama3RopeScaling? Read(JsonObject raw, string file)
    {
        if (raw["rope_scaling"] is null) return null;
        if (raw["rope_scaling"] is not JsonObject scaling)
            throw new InvalidModelFileException(file, "'rope_scaling' must be an object or null.");
        string? type = (scaling["rope_type"] ?? scaling["type"]) is JsonValue v && v.TryGetValue(out string? t) ? t : null;
        if (type == "default") return null;
        if (type != "llama3")
            throw new InvalidModelFileException(file, $"rope_scaling type '{type}' is not supported (supported: default, llama3).");
        return new Llama3RopeScaling(
            LlamaConfig.OptionalDouble(scaling, file, "factor") ?? throw Missing(file, "factor"),
            LlamaConfig.OptionalDouble(scaling, file, "low_freq_factor") ?? throw Missing(file, "low_freq_factor"),
            LlamaConfig.OptionalDouble(scaling, file, "high_freq_factor") ?? throw Missing(file, "high_freq_factor"),
            LlamaConfig.OptionalInt(scaling, file, "original_max_position_embeddings") ?? throw Missing(file, "original_max_position_embeddings"));
    }

    private static InvalidModelFileException Missing(string file, string key) =>
        new(file, $"rope_scaling (llama3) needs '{key}'.");
}
