using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>
/// The forward pass on a tiny random decoder against a plain float64 implementation written here from the
/// Transformers definitions: covers what the zoo does not (tied embeddings, head_dim ≠ hidden/heads, 4:1 GQA,
/// another rope_theta), and batching / thread-count independence.
/// </summary>
public partial class LlamaModelTests
{
    private const int Hidden = 16, Heads = 4, KvHeads = 1, HeadDim = 6, Intermediate = 24, Layers = 2, Vocab = 32;
    private const double Theta = 1000, Eps = 1e-5;

    private static (LlamaConfig Config, TensorSet Weights) TinyModel(bool tied)
    {
        string json = $$"""
            {"hidden_size": {{Hidden}}, "intermediate_size": {{Intermediate}}, "num_hidden_layers": {{Layers}},
             "num_attention_heads": {{Heads}}, "num_key_value_heads": {{KvHeads}}, "head_dim": {{HeadDim}},
             "vocab_size": {{Vocab}}, "rms_norm_eps": {{Eps}}, "rope_theta": {{Theta}}, "tie_word_embeddings": {{(tied ? "true" : "false")}}}
            """;
        LlamaConfig config = LlamaConfig.FromModelConfig(ModelConfig.Parse(json));
        var random = new Random(tied ? 5 : 6);
        var weights = new TensorSet("tiny");
        void Add(string name, float scale, float offset, params long[] shape)
        {
            long count = 1;
            foreach (long d in shape) count *= d;
            var values = new float[count];
            for (int i = 0; i < values.Length; i++) values[i] = offset + scale * (float)(random.NextDouble() * 2 - 1);
            weights.Set(name, shape, values);
        }

        Add("model.embed_tokens.weight", 1f, 0, Vocab, Hidden);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"model.layers.{l}.";
            Add(p + "input_layernorm.weight", 0.2f, 1, Hidden);
            Add(p + "self_attn.q_proj.weight", 0.4f, 0, Heads * HeadDim, Hidden);
            Add(p + "self_attn.k_proj.weight", 0.4f, 0, KvHeads * HeadDim, Hidden);
            Add(p + "self_attn.v_proj.weight", 0.4f, 0, KvHeads * HeadDim, Hidden);
            Add(p + "self_attn.o_proj.weight", 0.3f, 0, Hidden, Heads * HeadDim);
            Add(p + "post_attention_layernorm.weight", 0.2f, 1, Hidden);
            Add(p + "mlp.gate_proj.weight", 0.3f, 0, Intermediate, Hidden);
            Add(p + "mlp.up_proj.weight", 0.3f, 0, Intermediate, Hidden);
            Add(p + "mlp.down_proj.weight", 0.3f, 0, Hidden, Intermediate);
        }

        Add("model.norm.weight", 0.2f, 1, Hidden);
        if (!tied) Add("lm_head.weight", 0.5f, 0, Vocab, Hidden);
        return (config, weights);
    }

    /// <summary>Summed NLL of tokens 1..T−1 of one window, in float64.</summary>
    private static double ReferenceNll(TensorSet w, bool tied, int[] tokens, Func<int, double[], double[]>? mlp = null)
    {
        int t = tokens.Length;
        double[] Row(string name, int row, int width)
        {
            float[] values = w.Get(name);
            var r = new double[width];
            for (int i = 0; i < width; i++) r[i] = values[row * width + i];
            return r;
        }

        double[] Linear(string name, double[] x, int outputs)
        {
            var y = new double[outputs];
            string bias = name.Replace(".weight", ".bias", StringComparison.Ordinal);
            for (int o = 0; o < outputs; o++)
            {
                double[] row = Row(name, o, x.Length);
                for (int i = 0; i < x.Length; i++) y[o] += row[i] * x[i];
                if (w.Contains(bias)) y[o] += w.Get(bias)[o]; // attention_bias (Qwen2, Qwen2-MoE)
            }

            return y;
        }

        double[] RmsNorm(double[] x, string name)
        {
            double mean = x.Sum(v => v * v) / x.Length;
            double[] g = Row(name, 0, x.Length);
            return x.Select((v, i) => v / Math.Sqrt(mean + Eps) * g[i]).ToArray();
        }

        double[] HeadNorm(double[] x, string name, int heads)
        {
            var y = new double[x.Length];
            for (int head = 0; head < heads; head++)
            {
                double[] normed = RmsNorm(x[(head * HeadDim)..((head + 1) * HeadDim)], name);
                normed.CopyTo(y, head * HeadDim);
            }

            return y;
        }

        double[] Rope(double[] x, int offset, int position)
        {
            int half = HeadDim / 2;
            var y = (double[])x.Clone();
            for (int j = 0; j < half; j++)
            {
                double angle = position / Math.Pow(Theta, 2.0 * j / HeadDim);
                double a = x[offset + j], b = x[offset + j + half];
                y[offset + j] = a * Math.Cos(angle) - b * Math.Sin(angle);
                y[offset + j + half] = b * Math.Cos(angle) + a * Math.Sin(angle);
            }

            return y;
        }

        double[][] h = tokens.Select(token => Row("model.embed_tokens.weight", token, Hidden)).ToArray();
        for (int l = 0; l < Layers; l++)
        {
            string p = $"model.layers.{l}.";
            var q = new double[t][];
            var k = new double[t][];
            var v = new double[t][];
            for (int i = 0; i < t; i++)
            {
                double[] x = RmsNorm(h[i], p + "input_layernorm.weight");
                q[i] = Linear(p + "self_attn.q_proj.weight", x, Heads * HeadDim);
                k[i] = Linear(p + "self_attn.k_proj.weight", x, KvHeads * HeadDim);
                v[i] = Linear(p + "self_attn.v_proj.weight", x, KvHeads * HeadDim);
                if (w.Contains(p + "self_attn.q_norm.weight")) // Qwen3: RMSNorm per head over head_dim, before RoPE
                {
                    q[i] = HeadNorm(q[i], p + "self_attn.q_norm.weight", Heads);
                    k[i] = HeadNorm(k[i], p + "self_attn.k_norm.weight", KvHeads);
                }

                for (int head = 0; head < Heads; head++) q[i] = Rope(q[i], head * HeadDim, i);
                for (int head = 0; head < KvHeads; head++) k[i] = Rope(k[i], head * HeadDim, i);
            }

            for (int i = 0; i < t; i++)
            {
                var attended = new double[Heads * HeadDim];
                for (int head = 0; head < Heads; head++)
                {
                    int kvHead = head / (Heads / KvHeads);
                    var scores = new double[i + 1];
                    for (int j = 0; j <= i; j++)
                    {
                        for (int d = 0; d < HeadDim; d++) scores[j] += q[i][head * HeadDim + d] * k[j][kvHead * HeadDim + d];
                        scores[j] /= Math.Sqrt(HeadDim);
                    }

                    double max = scores.Max();
                    double sum = scores.Sum(s => Math.Exp(s - max));
                    for (int j = 0; j <= i; j++)
                        for (int d = 0; d < HeadDim; d++)
                            attended[head * HeadDim + d] += Math.Exp(scores[j] - max) / sum * v[j][kvHead * HeadDim + d];
                }

                double[] o = Linear(p + "self_attn.o_proj.weight", attended, Hidden);
                h[i] = h[i].Select((value, n) => value + o[n]).ToArray();
                double[] x = RmsNorm(h[i], p + "post_attention_layernorm.weight");
                double[] down;
                if (mlp is not null)
                {
                    down = mlp(l, x);
                }
                else
                {
                    double[] gate = Linear(p + "mlp.gate_proj.weight", x, Intermediate);
                    double[] up = Linear(p + "mlp.up_proj.weight", x, Intermediate);
                    double[] act = gate.Select((g, n) => g / (1 + Math.Exp(-g)) * up[n]).ToArray();
                    down = Linear(p + "mlp.down_proj.weight", act, Hidden);
                }

                h[i] = h[i].Select((value, n) => value + down[n]).ToArray();
            }
        }

        double nll = 0;
        for (int i = 0; i + 1 < t; i++)
        {
            double[] logits = Linear(tied ? "model.embed_tokens.weight" : "lm_head.weight", RmsNorm(h[i], "model.norm.weight"), Vocab);
            double max = logits.Max();
            nll += max + Math.Log(logits.Sum(z => Math.Exp(z - max))) - logits[tokens[i + 1]];
        }

        return nll;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Matches_a_float64_reference_forward_pass(bool tied)
    {
        (LlamaConfig config, TensorSet weights) = TinyModel(tied);
        Assert.Equal(HeadDim, config.HeadDim);
        var model = new LlamaModel(config, weights);
        const int windows = 3, length = 11;
        var random = new Random(9);
        int[] tokens = Enumerable.Range(0, windows * length).Select(_ => random.Next(Vocab)).ToArray();
        var nll = new double[windows];
        model.ScoreWindows(tokens, windows, length, nll);
        for (int w = 0; w < windows; w++)
        {
            double expected = ReferenceNll(weights, tied, tokens[(w * length)..((w + 1) * length)]);
            Assert.True(Math.Abs(nll[w] - expected) <= 1e-4 * Math.Abs(expected), $"window {w}: {nll[w]:R} vs reference {expected:R}");
        }
    }

    [Fact]
    public void Batching_and_thread_count_do_not_change_the_result()
    {
        using var folder = ModelFolder.Open(TestPaths.Model("lm-base"));
        TensorSet weights = TensorSet.Load(folder);
        LlamaConfig config = LlamaConfig.FromModelConfig(folder.Config!);
        int[] tokens = ByteTokenizer.Instance.Encode(File.ReadAllBytes(ReferenceMetrics.Text("c")).AsSpan(0, 2048));
        var options = new PerplexityOptions { Window = 128, Stride = 96 };
        PerplexityResult batched = PerplexityEvaluator.Evaluate(new LlamaModel(config, weights), tokens, options);
        PerplexityResult single = PerplexityEvaluator.Evaluate(new LlamaModel(config, weights, maxDegreeOfParallelism: 1), tokens,
            options with { WindowsPerBatch = 1 });
        Assert.Equal((2048 - 128) / 96 + 1, batched.Windows);
        Assert.Equal(batched.Windows * 127L, batched.Tokens);
        Assert.Equal(batched.TotalNll, single.TotalNll);
    }

    [Fact]
    public void A_token_outside_the_vocabulary_is_a_weld_error()
    {
        (LlamaConfig config, TensorSet weights) = TinyModel(tied: true);
        var e = Assert.Throws<WeldException>(() => new LlamaModel(config, weights).ScoreWindows([1, Vocab], 1, 2, new double[1]));
        Assert.Contains("vocab_size 32", e.Message);
    }
}
