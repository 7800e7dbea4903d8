using System.Numerics.Tensors;
using Weld.Engine.Models;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Evaluation;

/// <summary>
/// A Llama-family decoder (RMSNorm, RoPE, grouped-query causal attention, SwiGLU MLP or a sparse mixture of SwiGLU
/// experts: Mixtral, Qwen2-MoE, Qwen3-MoE; Qwen3's q/k norms; tied or untied lm_head) held
/// in float32, scoring fixed-length windows without a KV cache: many windows go through each layer at once, so every
/// projection is one large GEMM over windows × positions.
/// </summary>
/// <remarks>
/// Follows Hugging Face's <c>LlamaForCausalLM</c> with eager attention in float32. Optional q/k/v/o biases
/// (<c>attention_bias</c>, as in Qwen2) are applied when the checkpoint has them.
/// </remarks>
public sealed partial class LlamaModel : ICausalLanguageModel
{
    private readonly float[] _embedding;
    private readonly LayerWeights[] _layers;
    private readonly float[] _finalNorm;
    private readonly float[] _lmHead;
    private readonly int _maxDegreeOfParallelism;

    /// <summary>Builds the model from in-memory tensors named as in Hugging Face's Llama layout.</summary>
    /// <param name="config">The decoder's hyper-parameters.</param>
    /// <param name="weights">Tensors <c>model.embed_tokens.weight</c>, <c>model.layers.{i}.…</c>, <c>model.norm.weight</c>, <c>lm_head.weight</c>.</param>
    /// <param name="maxDegreeOfParallelism">Most threads; -1 for all cores.</param>
    /// <exception cref="InvalidModelFileException">A tensor is missing or has the wrong shape.</exception>
    public LlamaModel(LlamaConfig config, TensorSet weights, int maxDegreeOfParallelism = -1)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        Config = config;
        _maxDegreeOfParallelism = maxDegreeOfParallelism;
        int h = config.HiddenSize;
        _embedding = weights.Get("model.embed_tokens.weight", config.VocabSize, h);
        _layers = new LayerWeights[config.LayerCount];
        for (int i = 0; i < config.LayerCount; i++) _layers[i] = LayerWeights.Load(config, weights, i);

        _finalNorm = weights.Get("model.norm.weight", h);
        // transformers ties by sharing the embedding when the config says so, whatever lm_head.weight the file holds;
        // a config that does not say is taken as tied exactly when the checkpoint has no lm_head.
        bool tied = config.TieWordEmbeddings ?? !weights.Contains("lm_head.weight");
        _lmHead = tied ? _embedding : weights.Get("lm_head.weight", config.VocabSize, h);
    }

    /// <summary>The decoder's hyper-parameters.</summary>
    public LlamaConfig Config { get; }

    /// <summary>Loads a Llama-family model folder (config.json + safetensors in any dtype) into float32.</summary>
    /// <exception cref="WeldException">The folder has no config.json or is not a Llama-family decoder.</exception>
    public static LlamaModel Load(ModelFolder model, int maxDegreeOfParallelism = -1)
    {
        ArgumentNullException.ThrowIfNull(model);
        ModelConfig config = model.Config
            ?? throw new WeldException($"{model.Path}: has no config.json; cannot build a forward pass.");
        return new LlamaModel(LlamaConfig.FromModelConfig(config), TensorSet.Load(model), maxDegreeOfParallelism);
    }

    /// <summary>
    /// Runs <paramref name="windowCount"/> windows of <paramref name="windowLength"/> tokens, each from position 0,
    /// and returns, per window, the summed negative log-likelihood (nats) of tokens 1..T−1 given the tokens before them.
    /// </summary>
    /// <param name="tokens">windowCount × windowLength token ids, window after window.</param>
    /// <param name="windowCount">Windows in this batch.</param>
    /// <param name="windowLength">Tokens per window (≥ 2).</param>
    /// <param name="windowNll">Receives one summed NLL per window.</param>
    /// <exception cref="WeldException">A token id is outside the vocabulary.</exception>
    public void ScoreWindows(ReadOnlySpan<int> tokens, int windowCount, int windowLength, Span<double> windowNll)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(windowLength, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(windowCount, 1);
        ArgumentOutOfRangeException.ThrowIfNotEqual(tokens.Length, windowCount * windowLength, nameof(tokens));
        ArgumentOutOfRangeException.ThrowIfLessThan(windowNll.Length, windowCount, nameof(windowNll));
        var tokenNll = new double[windowCount * (windowLength - 1)];
        ScoreTokens(tokens, windowCount, windowLength, tokenNll);
        // Summed in token order so the result does not depend on scheduling.
        for (int w = 0; w < windowCount; w++)
        {
            double sum = 0;
            for (int t = 0; t < windowLength - 1; t++) sum += tokenNll[w * (windowLength - 1) + t];
            windowNll[w] = sum;
        }
    }

    /// <inheritdoc />
    public void ScoreTokens(ReadOnlySpan<int> tokens, int windowCount, int windowLength, Span<double> tokenNll)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(windowLength, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(windowCount, 1);
        ArgumentOutOfRangeException.ThrowIfNotEqual(tokens.Length, windowCount * windowLength, nameof(tokens));
        ArgumentOutOfRangeException.ThrowIfLessThan(tokenNll.Length, windowCount * (windowLength - 1), nameof(tokenNll));
        float[] normed = Forward(tokens, windowCount, windowLength, null);
        ScoreLogits(normed, tokens, windowCount, windowLength, tokenNll);
    }

    /// <summary>
    /// Runs the decoder over the windows and returns the final-normed hidden states (rows × hidden);
    /// <paramref name="layerInput"/>, when given, sees each layer's input (the residual stream before
    /// <c>input_layernorm</c>: Hugging Face's <c>hidden_states[i]</c>) before the layer runs.
    /// </summary>
    private float[] Forward(ReadOnlySpan<int> tokens, int windowCount, int windowLength, Action<int, float[]>? layerInput)
    {
        LlamaConfig c = Config;
        foreach (int token in tokens)
            if ((uint)token >= (uint)c.VocabSize)
                throw new WeldException($"token id {token} is outside the model's vocabulary (vocab_size {c.VocabSize}).");

        int rows = tokens.Length, h = c.HiddenSize;
        var rope = new RotaryEmbedding(c.HeadDim, windowLength, c.RopeTheta, c.RopeScaling);
        var x = new float[rows * h];
        var buffers = new LayerBuffers(c, rows);
        for (int r = 0; r < rows; r++)
            _embedding.AsSpan(tokens[r] * h, h).CopyTo(x.AsSpan(r * h, h));

        for (int layerIndex = 0; layerIndex < _layers.Length; layerIndex++)
        {
            layerInput?.Invoke(layerIndex, x);
            RunLayer(_layers[layerIndex], layerIndex, x, buffers, rope, windowCount, windowLength);
        }

        float[] normed = buffers.Normed;
        RmsNorm(x, _finalNorm, normed, rows, h);
        return normed;
    }

    /// <summary>One decoder layer in place on the residual stream <paramref name="x"/> (windowCount × windowLength rows).</summary>
    private void RunLayer(LayerWeights layer, int layerIndex, float[] x, LayerBuffers b, RotaryEmbedding rope, int windowCount, int windowLength)
    {
        LlamaConfig c = Config;
        int rows = windowCount * windowLength;
        int h = c.HiddenSize, qWidth = c.HeadCount * c.HeadDim, kvWidth = c.KeyValueHeadCount * c.HeadDim;
        RmsNorm(x, layer.InputNorm, b.Normed, rows, h);
        Linear(b.Normed, layer.Q, layer.QBias, b.Q, rows, h, qWidth);
        Linear(b.Normed, layer.K, layer.KBias, b.K, rows, h, kvWidth);
        Linear(b.Normed, layer.V, layer.VBias, b.V, rows, h, kvWidth);
        // Qwen3: RMSNorm of every head's query and key over head_dim, before the rotation.
        if (layer.QNorm is { } qNorm) RmsNorm(b.Q, qNorm, b.Q, rows * c.HeadCount, c.HeadDim);
        if (layer.KNorm is { } kNorm) RmsNorm(b.K, kNorm, b.K, rows * c.KeyValueHeadCount, c.HeadDim);
        ApplyRope(rope, b.Q, rows, windowLength, c.HeadCount, c.HeadDim);
        ApplyRope(rope, b.K, rows, windowLength, c.KeyValueHeadCount, c.HeadDim);
        Attend(b.Q, b.K, b.V, b.Attention, windowCount, windowLength);
        Linear(b.Attention, layer.O, layer.OBias, b.Projected, rows, qWidth, h);
        TensorPrimitives.Add(x, b.Projected, x);

        RmsNorm(x, layer.PostAttentionNorm, b.Normed, rows, h);
        if (layer.Moe is { } moe)
        {
            SparseMoe(moe, layerIndex, b.Normed, b.Projected, rows);
        }
        else
        {
            Linear(b.Normed, layer.Gate!, null, b.Gate, rows, h, c.IntermediateSize);
            Linear(b.Normed, layer.Up!, null, b.Up, rows, h, c.IntermediateSize);
            SwiGlu(b.Gate, b.Up, rows, c.IntermediateSize);
            Linear(b.Gate, layer.Down!, null, b.Projected, rows, c.IntermediateSize, h);
        }

        TensorPrimitives.Add(x, b.Projected, x);
    }

    /// <summary>The activations of one layer over <c>rows</c> rows, reused from layer to layer.</summary>
    private sealed class LayerBuffers(LlamaConfig c, int rows)
    {
        public readonly float[] Normed = new float[rows * c.HiddenSize];
        public readonly float[] Projected = new float[rows * c.HiddenSize];
        public readonly float[] Q = new float[rows * c.HeadCount * c.HeadDim];
        public readonly float[] K = new float[rows * c.KeyValueHeadCount * c.HeadDim];
        public readonly float[] V = new float[rows * c.KeyValueHeadCount * c.HeadDim];
        public readonly float[] Attention = new float[rows * c.HeadCount * c.HeadDim];
        public readonly float[] Gate = new float[HasDenseLayer(c) ? rows * c.IntermediateSize : 0];
        public readonly float[] Up = new float[HasDenseLayer(c) ? rows * c.IntermediateSize : 0];

        private static bool HasDenseLayer(LlamaConfig c)
        {
            for (int l = 0; l < c.LayerCount; l++)
                if (!c.IsSparseLayer(l)) return true;
            return false;
        }
    }

    private ParallelOptions Options => new() { MaxDegreeOfParallelism = _maxDegreeOfParallelism };

    private void Linear(float[] input, float[] weight, float[]? bias, float[] output, int rows, int inFeatures, int outFeatures)
    {
        Gemm.Multiply(input.AsSpan(0, rows * inFeatures), weight, output.AsSpan(0, rows * outFeatures), rows, inFeatures, outFeatures,
            transposeB: true, _maxDegreeOfParallelism);
        if (bias is null) return;
        for (int r = 0; r < rows; r++)
        {
            Span<float> row = output.AsSpan(r * outFeatures, outFeatures);
            TensorPrimitives.Add(row, bias, row);
        }
    }

    /// <summary><c>x·rsqrt(mean(x²) + ε)·w</c> per row (HF order: normalise, then scale by the weight).</summary>
    private void RmsNorm(float[] input, float[] weight, float[] output, int rows, int width)
    {
        float eps = (float)Config.RmsNormEps;
        Parallel.For(0, rows, Options, r =>
        {
            ReadOnlySpan<float> row = input.AsSpan(r * width, width);
            Span<float> result = output.AsSpan(r * width, width);
            float meanSquare = TensorPrimitives.SumOfSquares(row) / width;
            float scale = 1f / MathF.Sqrt(meanSquare + eps);
            TensorPrimitives.Multiply(row, scale, result);
            TensorPrimitives.Multiply(result, weight, result);
        });
    }

    private void ApplyRope(RotaryEmbedding rope, float[] values, int rows, int windowLength, int heads, int headDim)
    {
        Parallel.For(0, rows, Options, r =>
        {
            int position = r % windowLength;
            for (int head = 0; head < heads; head++)
                rope.Apply(values.AsSpan((r * heads + head) * headDim, headDim), position);
        });
    }

    /// <summary>Causal softmax(q·kᵀ/√d)·v per window and query head; each kv head serves heads/kvHeads consecutive query heads.</summary>
    /// <remarks>
    /// One work item per (window, head): the head's q, k and v are gathered into contiguous T × d blocks so that the
    /// scores and the weighted sum of values are two small single-threaded GEMMs instead of T² short dot products.
    /// The scores above the diagonal are computed and then ignored (masked), as eager attention does.
    /// </remarks>
    private void Attend(float[] q, float[] k, float[] v, float[] output, int windowCount, int windowLength)
    {
        LlamaConfig c = Config;
        int d = c.HeadDim, heads = c.HeadCount, kvHeads = c.KeyValueHeadCount, group = heads / kvHeads;
        int qStride = heads * d, kvStride = kvHeads * d, t = windowLength;
        float scale = 1f / MathF.Sqrt(d);
        Parallel.For(0, windowCount * heads, Options, () => new AttentionScratch(t, d), (item, _, scratch) =>
        {
            int window = item / heads, head = item % heads, kvHead = head / group;
            int firstRow = window * t;
            for (int i = 0; i < t; i++)
            {
                q.AsSpan((firstRow + i) * qStride + head * d, d).CopyTo(scratch.Q.AsSpan(i * d, d));
                k.AsSpan((firstRow + i) * kvStride + kvHead * d, d).CopyTo(scratch.K.AsSpan(i * d, d));
                v.AsSpan((firstRow + i) * kvStride + kvHead * d, d).CopyTo(scratch.V.AsSpan(i * d, d));
            }

            Gemm.Multiply(scratch.Q, scratch.K, scratch.Scores, t, d, t, transposeB: true, maxDegreeOfParallelism: 1);
            for (int i = 0; i < t; i++)
            {
                Span<float> row = scratch.Scores.AsSpan(i * t, t);
                Span<float> visible = row[..(i + 1)];
                TensorPrimitives.Multiply(visible, scale, visible);
                float max = TensorPrimitives.Max(visible);
                TensorPrimitives.Subtract(visible, max, visible);
                TensorPrimitives.Exp(visible, visible);
                float sum = TensorPrimitives.Sum(visible);
                TensorPrimitives.Divide(visible, sum, visible);
                row[(i + 1)..].Clear(); // masked: exp(−∞) = 0
            }

            Gemm.Multiply(scratch.Scores, scratch.V, scratch.Q, t, t, d, transposeB: false, maxDegreeOfParallelism: 1);
            for (int i = 0; i < t; i++)
                scratch.Q.AsSpan(i * d, d).CopyTo(output.AsSpan((firstRow + i) * qStride + head * d, d));
            return scratch;
        }, _ => { });
    }

    /// <summary>Per-thread buffers of one attention work item.</summary>
    private sealed class AttentionScratch(int t, int d)
    {
        public readonly float[] Q = new float[t * d];
        public readonly float[] K = new float[t * d];
        public readonly float[] V = new float[t * d];
        public readonly float[] Scores = new float[t * t];
    }

    /// <summary><c>gate ← silu(gate)·up</c>.</summary>
    private void SwiGlu(float[] gate, float[] up, int rows, int width)
    {
        Parallel.For(0, rows, Options, r =>
        {
            Span<float> g = gate.AsSpan(r * width, width);
            ReadOnlySpan<float> u = up.AsSpan(r * width, width);
            for (int i = 0; i < g.Length; i++)
            {
                float value = g[i];
                g[i] = value / (1f + MathF.Exp(-value)) * u[i];
            }
        });
    }

    /// <summary>lm_head over bounded row blocks, then log-softmax NLL of each next token (the windows' last rows predict nothing).</summary>
    private void ScoreLogits(float[] hidden, ReadOnlySpan<int> tokens, int windowCount, int windowLength, Span<double> tokenNll)
    {
        LlamaConfig c = Config;
        int h = c.HiddenSize, vocab = c.VocabSize;
        // About 64 MiB of logits at a time, whatever the vocabulary.
        int blockRows = Math.Max(1, Math.Min(tokens.Length, (16 << 20) / vocab));
        var logits = new float[blockRows * vocab];
        var rowNll = new double[tokens.Length];
        int[] targets = tokens.ToArray();
        for (int start = 0; start < tokens.Length; start += blockRows)
        {
            int count = Math.Min(blockRows, tokens.Length - start);
            Gemm.Multiply(hidden.AsSpan(start * h, count * h), _lmHead, logits.AsSpan(0, count * vocab), count, h, vocab,
                transposeB: true, _maxDegreeOfParallelism);
            int blockStart = start;
            Parallel.For(0, count, Options, () => new float[vocab], (i, _, scratch) =>
            {
                int row = blockStart + i;
                if (row % windowLength == windowLength - 1) return scratch; // the last position predicts nothing in its window
                ReadOnlySpan<float> z = logits.AsSpan(i * vocab, vocab);
                float max = TensorPrimitives.Max(z);
                TensorPrimitives.Subtract(z, max, scratch);
                TensorPrimitives.Exp(scratch, scratch);
                double logSumExp = max + Math.Log(TensorPrimitives.Sum(scratch));
                rowNll[row] = logSumExp - z[targets[row + 1]];
                return scratch;
            }, _ => { });
        }

        for (int w = 0; w < windowCount; w++)
            rowNll.AsSpan(w * windowLength, windowLength - 1).CopyTo(tokenNll.Slice(w * (windowLength - 1), windowLength - 1));
    }

    private sealed record LayerWeights(float[] InputNorm, float[] Q, float[] K, float[] V, float[] O,
        float[]? QBias, float[]? KBias, float[]? VBias, float[]? OBias,
        float[] PostAttentionNorm, float[]? Gate, float[]? Up, float[]? Down, MoeWeights? Moe, float[]? QNorm, float[]? KNorm)
    {
        /// <summary>Layer <paramref name="i"/>'s tensors from <paramref name="weights"/> (which may hold only that layer).</summary>
        public static LayerWeights Load(LlamaConfig config, TensorSet weights, int i)
        {
            int h = config.HiddenSize, q = config.HeadCount * config.HeadDim, kv = config.KeyValueHeadCount * config.HeadDim;
            int inter = config.IntermediateSize;
            bool sparse = config.IsSparseLayer(i);
            string p = $"model.layers.{i}.";
            return new LayerWeights(
                weights.Get(p + "input_layernorm.weight", h),
                weights.Get(p + "self_attn.q_proj.weight", q, h),
                weights.Get(p + "self_attn.k_proj.weight", kv, h),
                weights.Get(p + "self_attn.v_proj.weight", kv, h),
                weights.Get(p + "self_attn.o_proj.weight", h, q),
                OptionalBias(weights, p + "self_attn.q_proj.bias", q),
                OptionalBias(weights, p + "self_attn.k_proj.bias", kv),
                OptionalBias(weights, p + "self_attn.v_proj.bias", kv),
                OptionalBias(weights, p + "self_attn.o_proj.bias", h),
                weights.Get(p + "post_attention_layernorm.weight", h),
                sparse ? null : weights.Get(p + "mlp.gate_proj.weight", inter, h),
                sparse ? null : weights.Get(p + "mlp.up_proj.weight", inter, h),
                sparse ? null : weights.Get(p + "mlp.down_proj.weight", h, inter),
                sparse ? MoeWeights.Load(config, weights, i) : null,
                OptionalBias(weights, p + "self_attn.q_norm.weight", config.HeadDim),
                OptionalBias(weights, p + "self_attn.k_norm.weight", config.HeadDim));
        }

        /// <summary>An optional vector (a bias, or Qwen3's q_norm/k_norm weight).</summary>
        private static float[]? OptionalBias(TensorSet weights, string name, int length) =>
            weights.Contains(name) ? weights.Get(name, length) : null;
    }
}
