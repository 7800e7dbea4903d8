using System.Numerics.Tensors;
using System.Text;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;

namespace Weld.Engine.Moe;

/// <summary>
/// Router initialisation as mergekit-moe's <c>get_gate_params</c> defines it, giving [layer][expert][hidden]:
/// <list type="bullet">
/// <item><c>hidden</c> / <c>hidden_last</c>: the base model runs over each prompt; for every layer ℓ the input of
/// layer ℓ (the residual stream before its <c>input_layernorm</c>: transformers' <c>hidden_states[ℓ]</c>, so layer 0
/// sees the token embeddings) at the prompt's last token, averaged over the expert's positive prompts; the same
/// average over the negative prompts is subtracted; each layer's vector is scaled to unit L2 norm (norm clamped at
/// 1e-8).</item>
/// <item><c>hidden_avg</c>: the same with each prompt's hidden states averaged over its tokens.</item>
/// <item><c>cheap_embed</c>: the sum of the token embeddings over every token of every positive prompt, unit-normed;
/// the negative prompts' unit-normed sum is subtracted and the difference unit-normed again; the same vector for
/// every layer.</item>
/// <item><c>random</c>: N(0, 1) entries (not normalised); <c>uniform_random</c>: U(−1/√h, 1/√h), torch.nn.Linear's
/// default initialisation. Seeded by <c>--seed</c>.</item>
/// </list>
/// </summary>
/// <remarks>
/// Differences from mergekit, deliberate: each prompt runs on its own (unpadded) in float32 (mergekit pads a batch and runs in
/// bfloat16, so with right padding its "last token" of a shorter prompt is a pad token); the tokenizer's BOS is not
/// prepended (Weld's tokenizers do not add special tokens; the zoo's byte-level models have none).
/// </remarks>
public static class MoeGates
{
    /// <summary>Computes every layer's gate vectors: one row per <see cref="MoeConfig.GatedExperts"/> entry (the routed
    /// experts' router rows, then any shared expert's gate).</summary>
    /// <exception cref="WeldException">A prompt tokenizes to nothing, or the base model cannot run.</exception>
    public static float[][][] Compute(MoeConfig config, ModelFolder baseModel, LlamaConfig llama, int seed, Action<string> log,
        CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        IReadOnlyList<MoeExpert> gated = config.GatedExperts;
        int layers = llama.LayerCount, h = llama.HiddenSize, e = gated.Count;
        var gates = new float[layers][][];
        for (int l = 0; l < layers; l++) gates[l] = new float[e][];

        if (config.RandomGates)
        {
            var random = new Random(seed);
            double bound = Math.Sqrt(1.0 / h);
            // mergekit draws one (layers, experts, hidden) tensor in that order.
            for (int l = 0; l < layers; l++)
                for (int x = 0; x < e; x++)
                {
                    var row = new float[h];
                    for (int i = 0; i < h; i++)
                        row[i] = config.GateMode == "random" ? (float)Gaussian(random) : (float)((random.NextDouble() * 2 - 1) * bound);
                    gates[l][x] = row;
                }

            return gates;
        }

        ITokenizer tokenizer = PerplexityEvaluator.TokenizerFor(baseModel, llama);
        Func<IReadOnlyList<string>, float[][]> embed;
        if (config.GateMode == "cheap_embed")
        {
            ModelTensor table = baseModel.GetTensor("model.embed_tokens.weight");
            embed = prompts =>
            {
                var sum = new float[h];
                var row = new float[h];
                foreach (string prompt in prompts)
                    foreach (int token in Tokenize(tokenizer, prompt, llama))
                    {
                        table.ReadFloat32((long)token * h, row);
                        TensorPrimitives.Add(sum, row, sum);
                    }

                Normalize(sum);
                return Enumerable.Repeat(sum, layers).Select(v => (float[])v.Clone()).ToArray();
            };
        }
        else
        {
            // Every distinct prompt runs once, all of them through one layer at a time (one layer's weights in memory).
            var prompts = new List<string>();
            var index = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (MoeExpert expert in gated)
                foreach (string prompt in expert.PositivePrompts.Concat(expert.NegativePrompts))
                    if (index.TryAdd(prompt, prompts.Count)) prompts.Add(prompt);
            int[][] sequences = prompts.Select(p => Tokenize(tokenizer, p, llama)).ToArray();
            log($"running {prompts.Count} prompt(s) through {baseModel.Path} one layer at a time (float32, one layer's weights in memory)");
            float[][][] states = LlamaModel.StreamLayerInputs(baseModel, sequences, config.GateMode == "hidden_avg",
                layerDone: layer => log($"prompts: layer {layer + 1}/{layers}"), cancel: cancel);
            embed = group =>
            {
                // Summed in prompt order, as the whole-model pass summed them prompt after prompt.
                var mean = new float[layers][];
                for (int l = 0; l < layers; l++) mean[l] = new float[h];
                foreach (string prompt in group)
                {
                    float[][] promptStates = states[index[prompt]];
                    for (int l = 0; l < layers; l++) TensorPrimitives.Add(mean[l], promptStates[l], mean[l]);
                }

                for (int l = 0; l < layers; l++) TensorPrimitives.Divide(mean[l], group.Count, mean[l]);
                return mean;
            };
        }

        for (int x = 0; x < e; x++)
        {
            MoeExpert expert = gated[x];
            string role = x < config.Experts.Count ? $"expert {x}" : $"shared expert {x - config.Experts.Count}";
            log($"{role} ({expert.SourceModel}): {expert.PositivePrompts.Count} positive, {expert.NegativePrompts.Count} negative prompt(s)");
            float[][] vectors = embed(expert.PositivePrompts);
            if (expert.NegativePrompts.Count > 0)
            {
                float[][] negative = embed(expert.NegativePrompts);
                for (int l = 0; l < layers; l++) TensorPrimitives.Subtract(vectors[l], negative[l], vectors[l]);
            }

            for (int l = 0; l < layers; l++)
            {
                Normalize(vectors[l]);
                gates[l][x] = vectors[l];
            }
        }

        WarnDegenerate(gates, log);
        return gates;
    }

    private static int[] Tokenize(ITokenizer tokenizer, string prompt, LlamaConfig llama)
    {
        int[] tokens = tokenizer.Encode(Encoding.UTF8.GetBytes(prompt));
        if (tokens.Length == 0) throw new WeldException($"the prompt '{prompt}' tokenizes to nothing; give a non-empty prompt.");
        return tokens;
    }

    private static void Normalize(Span<float> vector)
    {
        float norm = MathF.Max(TensorPrimitives.Norm(vector), 1e-8f);
        TensorPrimitives.Divide(vector, norm, vector);
    }

    /// <summary>Like mergekit's <c>warn_degenerate_gates</c> in spirit: flags layers where two experts' router rows nearly coincide.</summary>
    private static void WarnDegenerate(float[][][] gates, Action<string> log)
    {
        var degenerate = new List<int>();
        for (int l = 0; l < gates.Length; l++)
        {
            bool close = false;
            for (int a = 0; a < gates[l].Length && !close; a++)
                for (int b = a + 1; b < gates[l].Length && !close; b++)
                    close = TensorPrimitives.CosineSimilarity(gates[l][a], gates[l][b]) > 0.98f;
            if (close) degenerate.Add(l);
        }

        if (degenerate.Count > 0)
            log($"warning: layer(s) {string.Join(", ", degenerate)} have near-identical router rows (cosine > 0.98): your prompts may be too similar; some experts will be underused.");
    }

    /// <summary>A standard normal draw (Box–Muller).</summary>
    internal static double Gaussian(Random random)
    {
        double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
