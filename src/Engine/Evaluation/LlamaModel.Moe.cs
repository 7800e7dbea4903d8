using System.Numerics.Tensors;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Evaluation;

/// <summary>Mixtral's and Qwen2-MoE's sparse MoE blocks, and the per-layer hidden states that MoE router initialisation reads.</summary>
public sealed partial class LlamaModel
{
    /// <summary>
    /// One layer's sparse block: the router [E, h] and each expert's gate (Mixtral w1), up (w3) and down (w2)
    /// projections; for Qwen2-MoE also the shared expert and its gate [1, h].
    /// </summary>
    private sealed record MoeWeights(float[] Router, float[][] W1, float[][] W3, float[][] W2, SharedExpert? Shared)
    {
        public static MoeWeights Load(LlamaConfig config, TensorSet weights, int layer)
        {
            int h = config.HiddenSize, inter = config.ExpertWidth, e = config.ExpertCount;
            bool qwen = config.MoeLayout != MoeLayout.Mixtral;
            string p = qwen ? $"model.layers.{layer}.mlp." : $"model.layers.{layer}.block_sparse_moe.";
            (string gate, string up, string down) = qwen ? ("gate_proj", "up_proj", "down_proj") : ("w1", "w3", "w2");
            var w1 = new float[e][];
            var w2 = new float[e][];
            var w3 = new float[e][];
            for (int i = 0; i < e; i++)
            {
                w1[i] = weights.Get($"{p}experts.{i}.{gate}.weight", inter, h);
                w2[i] = weights.Get($"{p}experts.{i}.{down}.weight", h, inter);
                w3[i] = weights.Get($"{p}experts.{i}.{up}.weight", inter, h);
            }

            SharedExpert? shared = null;
            if (config.MoeLayout == MoeLayout.Qwen2Moe && config.SharedExpertIntermediateSize > 0)
            {
                int s = config.SharedExpertIntermediateSize;
                shared = new SharedExpert(
                    weights.Get(p + "shared_expert.gate_proj.weight", s, h),
                    weights.Get(p + "shared_expert.up_proj.weight", s, h),
                    weights.Get(p + "shared_expert.down_proj.weight", h, s),
                    weights.Get(p + "shared_expert_gate.weight", 1, h));
            }

            return new MoeWeights(weights.Get(p + "gate.weight", e, h), w1, w3, w2, shared);
        }
    }

    /// <summary>Qwen2-MoE's shared expert (a SwiGLU MLP every token goes through) and its sigmoid gate [1, h].</summary>
    private sealed record SharedExpert(float[] Gate, float[] Up, float[] Down, float[] Scale);

    /// <summary>Receives, per MoE layer, each routed row's top-k experts and its router logits (for routing statistics).</summary>
    /// <param name="layer">The layer index.</param>
    /// <param name="rows">Rows (tokens) in this batch.</param>
    /// <param name="logits">rows × E router logits.</param>
    /// <param name="chosen">rows × k chosen expert indices, best first.</param>
    public delegate void RoutingObserver(int layer, int rows, ReadOnlySpan<float> logits, ReadOnlySpan<int> chosen);

    /// <summary>Optional observer of every routing decision of <see cref="ScoreWindows"/> (MoE models only).</summary>
    public RoutingObserver? Routing { get; set; }

    /// <summary>
    /// Hugging Face <c>MixtralSparseMoeBlock</c> / <c>Qwen2MoeSparseMoeBlock</c> / <c>Qwen3MoeSparseMoeBlock</c>: logits = gate(x); softmax over all E
    /// in float32; top-k by probability (ties to the lower index, as <c>torch.topk</c> on CPU); Mixtral renormalises
    /// the k weights to sum to 1 (equal to a softmax over the k logits), the Qwen ones only with <c>norm_topk_prob</c>;
    /// output = Σ weightᵢ·down(silu(gate x)·up x), plus for Qwen2-MoE sigmoid(shared_expert_gate·x)·shared_expert(x).
    /// </summary>
    private void SparseMoe(MoeWeights moe, int layerIndex, float[] input, float[] output, int rows)
    {
        LlamaConfig c = Config;
        int h = c.HiddenSize, inter = c.ExpertWidth, e = c.ExpertCount, k = c.ExpertsPerToken;
        bool normalize = c.MoeLayout == MoeLayout.Mixtral || c.NormalizeTopK;
        var logits = new float[rows * e];
        Linear(input, moe.Router, null, logits, rows, h, e);
        var chosen = new int[rows * k];
        var weight = new float[rows * k];
        Parallel.For(0, rows, Options, () => new float[e], (r, _, probabilities) =>
        {
            ReadOnlySpan<float> z = logits.AsSpan(r * e, e);
            TensorPrimitives.SoftMax(z, probabilities);
            Span<int> top = chosen.AsSpan(r * k, k);
            Span<float> w = weight.AsSpan(r * k, k);
            for (int j = 0; j < k; j++)
            {
                int best = -1;
                for (int x = 0; x < e; x++)
                {
                    if (top[..j].Contains(x)) continue;
                    if (best < 0 || probabilities[x] > probabilities[best]) best = x;
                }

                top[j] = best;
                w[j] = probabilities[best];
            }

            if (normalize)
            {
                float sum = TensorPrimitives.Sum(w);
                TensorPrimitives.Divide(w, sum, w);
            }

            return probabilities;
        }, _ => { });
        Routing?.Invoke(layerIndex, rows, logits, chosen);

        Array.Clear(output, 0, rows * h);
        var members = new List<(int Row, float Weight)>[e];
        for (int x = 0; x < e; x++) members[x] = [];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < k; j++)
                members[chosen[r * k + j]].Add((r, weight[r * k + j]));

        for (int x = 0; x < e; x++)
        {
            List<(int Row, float Weight)> routed = members[x];
            int n = routed.Count;
            if (n == 0) continue;
            var gathered = new float[n * h];
            for (int i = 0; i < n; i++) input.AsSpan(routed[i].Row * h, h).CopyTo(gathered.AsSpan(i * h, h));
            var gate = new float[n * inter];
            var up = new float[n * inter];
            var down = new float[n * h];
            Linear(gathered, moe.W1[x], null, gate, n, h, inter);
            Linear(gathered, moe.W3[x], null, up, n, h, inter);
            SwiGlu(gate, up, n, inter);
            Linear(gate, moe.W2[x], null, down, n, inter, h);
            for (int i = 0; i < n; i++)
            {
                Span<float> target = output.AsSpan(routed[i].Row * h, h);
                ReadOnlySpan<float> value = down.AsSpan(i * h, h);
                float scale = routed[i].Weight;
                for (int d = 0; d < h; d++) target[d] += scale * value[d];
            }
        }

        if (moe.Shared is { } shared) AddSharedExpert(shared, input, output, rows);
    }

    /// <summary><c>output += sigmoid(shared_expert_gate·x)·down(silu(gate x)·up x)</c> for every row.</summary>
    private void AddSharedExpert(SharedExpert shared, float[] input, float[] output, int rows)
    {
        int h = Config.HiddenSize, width = Config.SharedExpertIntermediateSize;
        var gate = new float[rows * width];
        var up = new float[rows * width];
        var down = new float[rows * h];
        var scale = new float[rows];
        Linear(input, shared.Gate, null, gate, rows, h, width);
        Linear(input, shared.Up, null, up, rows, h, width);
        SwiGlu(gate, up, rows, width);
        Linear(gate, shared.Down, null, down, rows, width, h);
        Linear(input, shared.Scale, null, scale, rows, h, 1);
        for (int r = 0; r < rows; r++)
        {
            float sigmoid = 1f / (1f + MathF.Exp(-scale[r]));
            Span<float> target = output.AsSpan(r * h, h);
            ReadOnlySpan<float> value = down.AsSpan(r * h, h);
            for (int d = 0; d < h; d++) target[d] += sigmoid * value[d];
        }
    }

    /// <summary>
    /// The input of every layer (the residual stream before <c>input_layernorm</c>, i.e. Hugging Face's
    /// <c>output.hidden_states[:-1]</c>) for one sequence: at its last token, or averaged over its tokens.
    /// </summary>
    /// <param name="tokens">The sequence (at least one token).</param>
    /// <param name="averageOverSequence">Average over positions (mergekit's <c>hidden_avg</c>) instead of the last position.</param>
    /// <returns>LayerCount vectors of hidden_size values.</returns>
    /// <exception cref="WeldException">A token id is outside the vocabulary, or no tokens.</exception>
    public float[][] LayerInputs(ReadOnlySpan<int> tokens, bool averageOverSequence)
    {
        if (tokens.Length == 0) throw new WeldException("cannot run the model over an empty sequence.");
        foreach (int token in tokens)
            if ((uint)token >= (uint)Config.VocabSize)
                throw new WeldException($"token id {token} is outside the model's vocabulary (vocab_size {Config.VocabSize}).");
        int h = Config.HiddenSize, t = tokens.Length;
        var result = new float[Config.LayerCount][];
        Forward(tokens, 1, t, (layer, x) => result[layer] = Summarise(x, t, h, averageOverSequence));
        return result;
    }
}
