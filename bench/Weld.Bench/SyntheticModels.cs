using System.Text.Json.Nodes;
using Weld.Engine.SafeTensors;

namespace Weld.Bench;

/// <summary>
/// Writes a base model and fine-tunes with Llama-3.2-1B shapes (hidden 2048, 16 layers, intermediate 8192,
/// vocab 128256, 32 heads / 8 kv heads, tied embeddings) or, with WELD_BENCH_SHAPE=3b, Llama-3.2-3B shapes (hidden
/// 3072, 28 layers, 24 heads / 8 kv heads of 128), bf16, sharded at 1 GB, for the end-to-end bench.
/// Base weights ~ U(−0.035, 0.035) (σ ≈ 0.02); fine-tunes add task vectors ~ U(−1.7e-3, 1.7e-3) (σ ≈ 1e-3), the
/// scale of real full fine-tunes relative to their base.
/// </summary>
internal static class SyntheticModels
{
    /// <summary>The model's shape: Llama-3.2-1B, or Llama-3.2-3B with WELD_BENCH_SHAPE=3b (for the scaling check).</summary>
    private static readonly (int Hidden, int Intermediate, int Layers, int Heads, int KvHeads, int HeadDim) s_shape =
        Environment.GetEnvironmentVariable("WELD_BENCH_SHAPE") is "3b" ? (3072, 8192, 28, 24, 8, 128) : (2048, 8192, 16, 32, 8, 64);

    /// <summary>Decoder layers: the shape's (16 for 1B, 28 for 3B), or WELD_BENCH_LAYERS for reduced scaling checks.</summary>
    private static readonly int s_layers =
        int.TryParse(Environment.GetEnvironmentVariable("WELD_BENCH_LAYERS"), out int layers) && layers > 0 ? layers : s_shape.Layers;

    public static void Write(string folder, int fineTunes)
    {
        var tensors = Layout();
        Directory.CreateDirectory(folder);
        WriteModel(Path.Combine(folder, "base"), tensors, seed: 1, baseSeed: null);
        for (int i = 1; i <= fineTunes; i++)
            WriteModel(Path.Combine(folder, $"ft{i}"), tensors, seed: 100 + i, baseSeed: 1);
    }

    private static List<TensorHeader> Layout()
    {
        int layers = s_layers;
        const int vocab = 128256;
        int hidden = s_shape.Hidden, intermediate = s_shape.Intermediate, kv = s_shape.KvHeads * s_shape.HeadDim;
        var t = new List<TensorHeader> { new("model.embed_tokens.weight", DType.BF16, [vocab, hidden]) };
        for (int l = 0; l < layers; l++)
        {
            string p = $"model.layers.{l}.";
            t.Add(new(p + "input_layernorm.weight", DType.BF16, [hidden]));
            t.Add(new(p + "mlp.down_proj.weight", DType.BF16, [hidden, intermediate]));
            t.Add(new(p + "mlp.gate_proj.weight", DType.BF16, [intermediate, hidden]));
            t.Add(new(p + "mlp.up_proj.weight", DType.BF16, [intermediate, hidden]));
            t.Add(new(p + "post_attention_layernorm.weight", DType.BF16, [hidden]));
            t.Add(new(p + "self_attn.k_proj.weight", DType.BF16, [kv, hidden]));
            t.Add(new(p + "self_attn.o_proj.weight", DType.BF16, [hidden, hidden]));
            t.Add(new(p + "self_attn.q_proj.weight", DType.BF16, [hidden, hidden]));
            t.Add(new(p + "self_attn.v_proj.weight", DType.BF16, [kv, hidden]));
        }
        t.Add(new("model.norm.weight", DType.BF16, [hidden]));
        return t;
    }

    private static void WriteModel(string folder, List<TensorHeader> tensors, int seed, int? baseSeed)
    {
        Directory.CreateDirectory(folder);
        var shards = ShardLayout.Plan(tensors, 1_000_000_000);
        const int chunk = 1 << 20;
        var buffer = new float[chunk];
        for (int s = 0; s < shards.Count; s++)
        {
            using var writer = new SafeTensorsWriter(Path.Combine(folder, shards[s].FileName), shards[s].Tensors, null);
            foreach (var header in shards[s].Tensors)
            {
                uint nameHash = Weld.Engine.Planning.TensorNameHash.Compute(header.Name);
                bool norm = header.Shape.Length == 1;
                for (long offset = 0; offset < header.ElementCount; offset += chunk)
                {
                    int n = (int)Math.Min(chunk, header.ElementCount - offset);
                    Parallel.For(0, (n + 4095) / 4096, block =>
                    {
                        int start = block * 4096, end = Math.Min(n, start + 4096);
                        for (int i = start; i < end; i++)
                        {
                            ulong index = (ulong)(offset + i);
                            float b = norm ? 1f + 0.05f * Uniform((uint)(baseSeed ?? seed), nameHash, index)
                                           : 0.035f * Uniform((uint)(baseSeed ?? seed), nameHash, index);
                            if (baseSeed is not null) b += 1.7e-3f * Uniform((uint)seed, nameHash, index);
                            buffer[i] = b;
                        }
                    });
                    writer.WriteFloat32(buffer.AsSpan(0, n));
                }
            }
            writer.Complete();
        }
        if (shards.Count > 1) ShardIndex.Write(folder, shards);
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForCausalLM"), ["model_type"] = "llama", ["hidden_size"] = s_shape.Hidden,
            ["intermediate_size"] = s_shape.Intermediate, ["num_hidden_layers"] = s_layers, ["num_attention_heads"] = s_shape.Heads,
            ["num_key_value_heads"] = s_shape.KvHeads, ["head_dim"] = s_shape.HeadDim, ["vocab_size"] = 128256, ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 500000.0,
            ["tie_word_embeddings"] = true, ["torch_dtype"] = "bfloat16", ["hidden_act"] = "silu", ["max_position_embeddings"] = 131072,
        };
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
    }

    /// <summary>A uniform number in [−1, 1) from a hash of (seed, tensor, index): cheap and order-free.</summary>
    private static float Uniform(uint seed, uint tensor, ulong index)
    {
        ulong x = index * 0x9E3779B97F4A7C15UL ^ ((ulong)seed << 32 | tensor);
        x ^= x >> 30; x *= 0xBF58476D1CE4E5B9UL;
        x ^= x >> 27; x *= 0x94D049BB133111EBUL;
        x ^= x >> 31;
        return (int)(x >> 32) * (1f / 2147483648f);
    }
}
