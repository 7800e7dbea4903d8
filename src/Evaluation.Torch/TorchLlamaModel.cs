using TorchSharp;
using Weld.Engine;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using static TorchSharp.torch;

namespace Weld.Evaluation.Torch;

/// <summary>
/// The Llama-family decoder (with Qwen3's q/k head norms, and the Mixtral, Qwen2-MoE and Qwen3-MoE sparse layouts)
/// as TorchSharp modules on libtorch's CPU kernels: the same function as the built-in <see cref="LlamaModel"/>
/// (RMSNorm, rotary with Llama-3 scaling, grouped-query causal attention, SwiGLU or top-k experts with an optional
/// shared expert, decoder_sparse_step / mlp_only_layers, tied or untied lm_head, optional q/k/v/o biases), with the
/// weights read straight from safetensors in their stored type.
/// </summary>
public sealed class TorchLlamaModel : nn.Module<Tensor, Tensor>, ICausalLanguageModel
{
    private readonly Tensor _embedding;
    private readonly DecoderLayer[] _layers;
    private readonly RmsNorm _finalNorm;
    private readonly Projection _lmHead;
    private readonly float[] _inverseFrequencies;

    private TorchLlamaModel(LlamaConfig config, ModelFolder model, TorchComputeType compute) : base("llama")
    {
        Config = config;
        ComputeType = compute;
        int h = config.HiddenSize, q = config.HeadCount * config.HeadDim, kv = config.KeyValueHeadCount * config.HeadDim;
        int inter = config.IntermediateSize, expertWidth = config.ExpertWidth;
        Tensor embedding = SafeTensorsLoader.Load(model, "model.embed_tokens.weight", config.VocabSize, h);
        _embedding = embedding.to_type(ScalarType.Float32);
        _layers = new DecoderLayer[config.LayerCount];
        for (int i = 0; i < config.LayerCount; i++)
        {
            string p = $"model.layers.{i}.";
            Projection Linear(string name, long outFeatures, long inFeatures, bool mayHaveBias) =>
                new(name, SafeTensorsLoader.Load(model, p + name + ".weight", outFeatures, inFeatures),
                    mayHaveBias && model.Contains(p + name + ".bias") ? SafeTensorsLoader.Load(model, p + name + ".bias", outFeatures) : null,
                    compute);
            // Qwen3's per-head norms, present or not exactly as the built-in loader reads them.
            RmsNorm? HeadNorm(string name) => model.Contains(p + name + ".weight")
                ? new RmsNorm(name, SafeTensorsLoader.Load(model, p + name + ".weight", config.HeadDim), config.RmsNormEps)
                : null;
            var attention = new Attention("self_attn",
                Linear("self_attn.q_proj", q, h, true), Linear("self_attn.k_proj", kv, h, true),
                Linear("self_attn.v_proj", kv, h, true), Linear("self_attn.o_proj", h, q, true),
                HeadNorm("self_attn.q_norm"), HeadNorm("self_attn.k_norm"), config);
            nn.Module<Tensor, Tensor> mlp = config.IsSparseLayer(i)
                ? SparseBlock(config, Linear, expertWidth, h)
                : new SwiGlu("mlp", Linear("mlp.gate_proj", inter, h, false), Linear("mlp.up_proj", inter, h, false),
                    Linear("mlp.down_proj", h, inter, false));

            _layers[i] = new DecoderLayer($"layers.{i}",
                new RmsNorm("input_layernorm", SafeTensorsLoader.Load(model, p + "input_layernorm.weight", h), config.RmsNormEps),
                attention,
                new RmsNorm("post_attention_layernorm", SafeTensorsLoader.Load(model, p + "post_attention_layernorm.weight", h), config.RmsNormEps),
                mlp);
            register_module($"layers_{i}", _layers[i]);
        }

        _finalNorm = new RmsNorm("norm", SafeTensorsLoader.Load(model, "model.norm.weight", h), config.RmsNormEps);
        // The built-in engine's rule: the config's tie_word_embeddings, else tied exactly when there is no lm_head.
        bool tied = config.TieWordEmbeddings ?? !model.Contains("lm_head.weight");
        _lmHead = new Projection("lm_head", tied ? embedding : SafeTensorsLoader.Load(model, "lm_head.weight", config.VocabSize, h), null, compute);
        register_buffer("embed_tokens", _embedding);
        register_module("norm", _finalNorm);
        register_module("lm_head", _lmHead);
        _inverseFrequencies = RotaryEmbedding.InverseFrequencies(config.HeadDim, config.RopeTheta, config.RopeScaling);
    }

    /// <summary>
    /// One layer's sparse block under the built-in loader's names: Mixtral's <c>block_sparse_moe.gate</c> and
    /// <c>experts.N.w1/w3/w2</c>; Qwen2-MoE / Qwen3-MoE's <c>mlp.gate</c> and <c>mlp.experts.N.gate_proj/up_proj/down_proj</c>,
    /// plus Qwen2-MoE's <c>mlp.shared_expert.*</c> and <c>mlp.shared_expert_gate</c> when shared_expert_intermediate_size &gt; 0.
    /// </summary>
    private static SparseMoe SparseBlock(LlamaConfig config, Func<string, long, long, bool, Projection> linear, int width, int h)
    {
        bool mixtral = config.MoeLayout == MoeLayout.Mixtral;
        string prefix = mixtral ? "block_sparse_moe." : "mlp.";
        (string gate, string up, string down) = mixtral ? ("w1", "w3", "w2") : ("gate_proj", "up_proj", "down_proj");
        var experts = new SwiGlu[config.ExpertCount];
        for (int e = 0; e < experts.Length; e++)
        {
            string x = $"{prefix}experts.{e}.";
            experts[e] = new SwiGlu($"expert{e}", linear(x + gate, width, h, false), linear(x + up, width, h, false),
                linear(x + down, h, width, false));
        }

        SwiGlu? shared = null;
        Projection? sharedGate = null;
        if (config.MoeLayout == MoeLayout.Qwen2Moe && config.SharedExpertIntermediateSize > 0)
        {
            int s = config.SharedExpertIntermediateSize;
            string x = prefix + "shared_expert.";
            shared = new SwiGlu("shared_expert", linear(x + "gate_proj", s, h, false), linear(x + "up_proj", s, h, false),
                linear(x + "down_proj", h, s, false));
            sharedGate = linear(prefix + "shared_expert_gate", 1, h, false);
        }

        return new SparseMoe(prefix.TrimEnd('.'), linear(prefix + "gate", config.ExpertCount, h, false), experts,
            config.ExpertsPerToken, mixtral || config.NormalizeTopK, shared, sharedGate);
    }

    /// <inheritdoc />
    public LlamaConfig Config { get; }

    /// <summary>The element type the projections run in.</summary>
    public TorchComputeType ComputeType { get; }

    /// <summary>Loads a Llama-family (Llama, Qwen2, Qwen3, Mixtral, Qwen2-MoE, Qwen3-MoE) model folder; the tensors keep their stored type until the compute copy.</summary>
    /// <param name="model">The model folder.</param>
    /// <param name="compute">Projections in float32 or bfloat16.</param>
    /// <param name="threads">libtorch intra-op threads; -1 leaves libtorch's default (all cores).</param>
    /// <exception cref="WeldException">No config.json, not a Llama-family decoder, a tensor missing or misshapen, or libtorch cannot load.</exception>
    public static TorchLlamaModel Load(ModelFolder model, TorchComputeType compute = TorchComputeType.Float32, int threads = -1)
    {
        ArgumentNullException.ThrowIfNull(model);
        ModelConfig config = model.Config
            ?? throw new WeldException($"{model.Path}: has no config.json; cannot build a forward pass.");
        LlamaConfig llama = LlamaConfig.FromModelConfig(config);
        TorchRuntime.EnsureLoaded();
        if (threads > 0) torch.set_num_threads(threads);
        using var grad = no_grad();
        return new TorchLlamaModel(llama, model, compute);
    }

    /// <summary>Final-normed hidden states [B, T, h] of token ids [B, T] (int64).</summary>
    public override Tensor forward(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        long t = tokens.shape[1];
        var indices = new float[t];
        for (int i = 0; i < indices.Length; i++) indices[i] = i;
        using Tensor positions = tensor(indices).unsqueeze(1);
        using Tensor frequencies = tensor(_inverseFrequencies).unsqueeze(0);
        // Angles as the float32 product position·inv_freq, then duplicated to [freqs, freqs] (Hugging Face's layout).
        Tensor angles = positions * frequencies;
        Tensor doubled = cat([angles, angles], -1);
        Tensor cos = doubled.cos(), sin = doubled.sin();
        Tensor x = _embedding.index_select(0, tokens.flatten()).view(tokens.shape[0], t, Config.HiddenSize);
        foreach (DecoderLayer layer in _layers) x = layer.forward(x, cos, sin);
        return _finalNorm.forward(x).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void ScoreTokens(ReadOnlySpan<int> tokens, int windowCount, int windowLength, Span<double> tokenNll)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(windowLength, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(windowCount, 1);
        ArgumentOutOfRangeException.ThrowIfNotEqual(tokens.Length, windowCount * windowLength, nameof(tokens));
        ArgumentOutOfRangeException.ThrowIfLessThan(tokenNll.Length, windowCount * (windowLength - 1), nameof(tokenNll));
        var ids = new long[tokens.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            // Checked here: an index outside the embedding inside libtorch is a native error, not a message.
            if ((uint)tokens[i] >= (uint)Config.VocabSize)
                throw new WeldException($"token id {tokens[i]} is outside the model's vocabulary (vocab_size {Config.VocabSize}).");
            ids[i] = tokens[i];
        }

        using var grad = no_grad();
        using var scope = NewDisposeScope();
        Tensor input = tensor(ids, [windowCount, windowLength]);
        Tensor hidden = forward(input).narrow(1, 0, windowLength - 1).reshape(-1, Config.HiddenSize);
        Tensor targets = input.narrow(1, 1, windowLength - 1).reshape(-1, 1);
        long rows = hidden.shape[0];
        // About 64 MiB of logits at a time, whatever the vocabulary.
        long blockRows = Math.Max(1, Math.Min(rows, (16 << 20) / Config.VocabSize));
        for (long start = 0; start < rows; start += blockRows)
        {
            using var block = NewDisposeScope();
            long count = Math.Min(blockRows, rows - start);
            Tensor logits = _lmHead.forward(hidden.narrow(0, start, count));
            Tensor nll = -logits.log_softmax(-1).gather(-1, targets.narrow(0, start, count)).squeeze(-1);
            double[] values = nll.to_type(ScalarType.Float64).data<double>().ToArray();
            values.AsSpan().CopyTo(tokenNll.Slice((int)start, (int)count));
        }
    }
}
