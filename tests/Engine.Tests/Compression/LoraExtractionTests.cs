using System.Text.Json.Nodes;
using Weld.Engine.Compression;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Compression;

/// <summary>LoRA extraction and fold-in on the zoo's lm-base and lm-lora-python, against scalar double references.</summary>
public class LoraExtractionTests
{
    private static float[] Read(ModelFolder model, string name)
    {
        ModelTensor t = model.GetTensor(name);
        var values = new float[t.ElementCount];
        t.ReadFloat32(0, values);
        return values;
    }

    /// <summary>The zoo adapter's ΔW = (α/r)·B·A per module, by a scalar loop in double.</summary>
    private static Dictionary<string, double[]> ReferenceDeltas()
    {
        using var adapter = ModelFolder.Open(TestPaths.Model("lm-lora-python"));
        double scale = adapter.AdapterConfig!["lora_alpha"]!.GetValue<double>() / adapter.AdapterConfig!["r"]!.GetValue<double>();
        var result = new Dictionary<string, double[]>();
        foreach (string name in adapter.TensorNames)
        {
            if (!name.EndsWith(".lora_A.weight", StringComparison.Ordinal)) continue;
            string module = name["base_model.model.".Length..^".lora_A.weight".Length];
            ModelTensor a = adapter.GetTensor(name), b = adapter.GetTensor(name.Replace("lora_A", "lora_B"));
            int r = (int)a.Shape[0], inF = (int)a.Shape[1], outF = (int)b.Shape[0];
            float[] av = Read(adapter, a.Name), bv = Read(adapter, b.Name);
            var delta = new double[outF * inF];
            for (int i = 0; i < outF; i++)
                for (int j = 0; j < inF; j++)
                {
                    double s = 0;
                    for (int k = 0; k < r; k++) s += (double)bv[i * r + k] * av[k * inF + j];
                    delta[i * inF + j] = scale * s;
                }
            result[module] = delta;
        }
        return result;
    }

    /// <summary>lm-base with the reference ΔW added in double and stored as F32 (no rounding to BF16).</summary>
    private static string WriteFoldedF32(string dir, Dictionary<string, double[]> deltas)
    {
        string folder = Path.Combine(dir, "ft");
        Directory.CreateDirectory(folder);
        using var baseline = ModelFolder.Open(TestPaths.Model("lm-base"));
        var headers = baseline.TensorNames.Select(n => new TensorHeader(n, DType.F32, baseline.GetTensor(n).Shape)).ToArray();
        using var writer = new SafeTensorsWriter(Path.Combine(folder, "model.safetensors"), headers, null);
        foreach (TensorHeader h in headers)
        {
            float[] w = Read(baseline, h.Name);
            if (deltas.TryGetValue(h.Name[..^".weight".Length], out double[]? d))
                for (int i = 0; i < w.Length; i++) w[i] = (float)(w[i] + d[i]);
            writer.WriteFloat32(w);
        }
        writer.Complete();
        File.Copy(Path.Combine(TestPaths.Model("lm-base"), "config.json"), Path.Combine(folder, "config.json"));
        return folder;
    }

    /// <summary>(α/r)·B·A of an extracted adapter per module, by a scalar loop in double.</summary>
    private static Dictionary<string, double[]> AdapterDeltas(string adapterPath)
    {
        var result = new Dictionary<string, double[]>();
        foreach ((string module, LoraApplier.LoraModule m) in LoraApplier.ReadAdapter(adapterPath))
        {
            var delta = new double[m.Rows * m.Columns];
            for (int i = 0; i < m.Rows; i++)
                for (int j = 0; j < m.Columns; j++)
                {
                    double s = 0;
                    for (int k = 0; k < m.Rank; k++) s += (double)m.B[i * m.Rank + k] * m.A[k * m.Columns + j];
                    delta[i * m.Columns + j] = m.Scale * s;
                }
            result[module] = delta;
        }
        return result;
    }

    private static double RelativeError(double[] actual, double[] expected)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += expected[i] * expected[i];
        }
        return Math.Sqrt(diff / norm);
    }

    [Fact]
    public void Extracting_rank_8_from_base_plus_folded_adapter_recovers_the_adapter_delta()
    {
        string dir = TestPaths.NewTempDir();
        Dictionary<string, double[]> reference = ReferenceDeltas();
        string ft = WriteFoldedF32(dir, reference);
        string output = Path.Combine(dir, "extracted");

        IReadOnlyList<LoraModuleReport> reports = LoraExtractor.Extract(ft, TestPaths.Model("lm-base"), new LoraExtractionOptions(8), output);

        Assert.Equal(28, reports.Count);
        Assert.All(reports, r => Assert.Equal(8, r.Rank));
        Assert.All(reports, r => Assert.True(r.RelativeError < 1e-4 && r.EnergyKept > 0.9999, r.ToString()));
        Dictionary<string, double[]> extracted = AdapterDeltas(output);
        Assert.Equal(reference.Keys.Order(), extracted.Keys.Order());
        foreach ((string module, double[] expected) in reference)
        {
            double error = RelativeError(extracted[module], expected);
            Assert.True(error < 1e-5, $"{module}: relative error {error}");
        }

        JsonObject config = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "adapter_config.json")))!.AsObject();
        Assert.Equal("LORA", config["peft_type"]!.GetValue<string>());
        Assert.Equal(8, config["r"]!.GetValue<int>());
        Assert.Equal(8, config["lora_alpha"]!.GetValue<int>());
        Assert.Equal(["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
            config["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()).Order());
        Assert.Empty(config["rank_pattern"]!.AsObject());
        using var file = SafeTensorsFile.Open(Path.Combine(output, "adapter_model.safetensors"));
        TensorInfo a = file.GetTensor("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight");
        TensorInfo b = file.GetTensor("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight");
        Assert.Equal([8L, 384L], a.Shape);
        Assert.Equal([128L, 8L], b.Shape);
    }

    [Fact]
    public void Epsilon_and_include_give_per_module_ranks_in_rank_and_alpha_patterns()
    {
        string dir = TestPaths.NewTempDir();
        Dictionary<string, double[]> reference = ReferenceDeltas();
        // Only layer 0's q_proj changes at rank 8; rank 12 is asked, so epsilon must cut the noise directions.
        string ft = WriteFoldedF32(dir, new Dictionary<string, double[]> { ["model.layers.0.self_attn.q_proj"] = reference["model.layers.0.self_attn.q_proj"] });
        string output = Path.Combine(dir, "extracted");

        IReadOnlyList<LoraModuleReport> reports = LoraExtractor.Extract(ft, TestPaths.Model("lm-base"),
            new LoraExtractionOptions(12, SingularValueEpsilon: 1e-3, Include: @"layers\.[01]\.self_attn", Exclude: "v_proj"), output);

        // The zoo stores tensors in sorted name order, and reports follow the base's order.
        Assert.Equal(["model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.o_proj", "model.layers.0.self_attn.q_proj",
            "model.layers.1.self_attn.k_proj", "model.layers.1.self_attn.o_proj", "model.layers.1.self_attn.q_proj"], reports.Select(r => r.Module));
        Assert.Equal([0, 0, 8, 0, 0, 0], reports.Select(r => r.Rank));
        JsonObject config = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "adapter_config.json")))!.AsObject();
        Assert.Equal(8, config["rank_pattern"]!["model.layers.0.self_attn.q_proj"]!.GetValue<int>());
        Assert.Equal(8, config["alpha_pattern"]!["model.layers.0.self_attn.q_proj"]!.GetValue<int>());
        Assert.Equal(["model.layers.0.self_attn.q_proj"], config["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()));
        double error = RelativeError(AdapterDeltas(output)["model.layers.0.self_attn.q_proj"], reference["model.layers.0.self_attn.q_proj"]);
        Assert.True(error < 1e-5, $"relative error {error}");
    }

    [Fact]
    public void Apply_equals_a_double_precision_fold_rounded_to_bf16_and_copies_other_tensors_bit_exact()
    {
        string dir = TestPaths.NewTempDir();
        string merged = Path.Combine(dir, "merged");
        Dictionary<string, double[]> reference = ReferenceDeltas();

        Assert.Equal(28, LoraApplier.Apply(TestPaths.Model("lm-base"), TestPaths.Model("lm-lora-python"), merged));

        using var baseline = ModelFolder.Open(TestPaths.Model("lm-base"));
        using var output = ModelFolder.Open(merged);
        Assert.Equal(baseline.TensorNames, output.TensorNames);
        Assert.True(File.Exists(Path.Combine(merged, "config.json")));
        foreach (string name in baseline.TensorNames)
        {
            ModelTensor b = baseline.GetTensor(name), o = output.GetTensor(name);
            Assert.Equal(b.DType, o.DType);
            Assert.Equal(b.Shape, o.Shape);
            if (!reference.TryGetValue(name[..^".weight".Length], out double[]? delta))
            {
                Assert.True(b.File.GetBytes(b.Info, 0, (int)b.Info.ByteLength).SequenceEqual(o.File.GetBytes(o.Info, 0, (int)o.Info.ByteLength)), name);
                continue;
            }
            float[] w = Read(baseline, name), actual = Read(output, name);
            for (int i = 0; i < w.Length; i++)
            {
                // Float32 and double folds may round to neighbouring BF16 values, never further apart than one BF16 step.
                double expected = w[i] + delta[i];
                double step = Math.Max(Math.Abs(expected), 1e-30) * Math.Pow(2, -7);
                Assert.True(Math.Abs(actual[i] - expected) <= step, $"{name}[{i}]: {actual[i]} vs {expected}");
            }
        }
    }

    [Fact]
    public void Fold_in_float32_matches_the_scalar_reference()
    {
        var lora = new LoraApplier.LoraModule("m", false, [1f, 2f, 3f, -1f, 0.5f, 4f], [0.25f, -1f, 2f, 0.5f], 2, 2, 3, 2f);
        float[] weight = [10f, 20f, 30f, 40f, 50f, 60f];
        LoraApplier.Fold(lora, weight, "m.weight", 2, 3);
        // B·A = [[0.25·1 − 1·(−1), 0.25·2 − 1·0.5, 0.25·3 − 1·4], [2·1 + 0.5·(−1), 2·2 + 0.5·0.5, 2·3 + 0.5·4]] = [[1.25, 0, −3.25], [1.5, 4.25, 8]]; s = 2
        Assert.Equal([12.5f, 20f, 23.5f, 43f, 58.5f, 76f], weight);

        var embedding = lora with { Embedding = true };
        float[] table = [10f, 20f, 30f, 40f, 50f, 60f];
        LoraApplier.Fold(embedding, table, "e.weight", 3, 2);
        // An embedding adds the transpose: [[2.5, 3], [0, 8.5], [−6.5, 16]].
        Assert.Equal([12.5f, 23f, 30f, 48.5f, 43.5f, 76f], table);
        Assert.Throws<WeldException>(() => LoraApplier.Fold(lora, table, "e.weight", 3, 2));
    }

    [Fact]
    public void Apply_then_extract_round_trips_within_the_bf16_rounding_of_the_merged_model()
    {
        string dir = TestPaths.NewTempDir();
        string merged = Path.Combine(dir, "merged"), extracted = Path.Combine(dir, "extracted");
        LoraApplier.Apply(TestPaths.Model("lm-base"), TestPaths.Model("lm-lora-python"), merged);
        LoraExtractor.Extract(merged, TestPaths.Model("lm-base"), new LoraExtractionOptions(8), extracted);

        Dictionary<string, double[]> reference = ReferenceDeltas(), roundTrip = AdapterDeltas(extracted);
        using var baseline = ModelFolder.Open(TestPaths.Model("lm-base"));
        using var output = ModelFolder.Open(merged);
        foreach ((string module, double[] expected) in reference)
        {
            float[] w = Read(baseline, module + ".weight"), m = Read(output, module + ".weight");
            // N = stored ΔW − reference ΔW (BF16 rounding). The best rank-8 fit of ΔW_ref + N lies within 2‖N‖ of ΔW_ref.
            double noise = 0, error = 0;
            for (int i = 0; i < w.Length; i++)
            {
                double n = (double)m[i] - w[i] - expected[i];
                noise += n * n;
                double e = roundTrip[module][i] - expected[i];
                error += e * e;
            }
            Assert.True(Math.Sqrt(error) <= 2 * Math.Sqrt(noise) * 1.01, $"{module}: error {Math.Sqrt(error)}, rounding noise {Math.Sqrt(noise)}");
        }
    }

    [Fact]
    public void Embed_lora_writes_peft_embedding_factors_of_the_transposed_delta_near_the_eckart_young_optimum()
    {
        string dir = TestPaths.NewTempDir();
        string output = Path.Combine(dir, "extracted");
        const int rank = 4;
        IReadOnlyList<LoraModuleReport> reports = LoraExtractor.Extract(TestPaths.Model("lm-ft-python"), TestPaths.Model("lm-base"),
            new LoraExtractionOptions(rank, Include: "embed_tokens|lm_head", EmbedLora: true), output);
        Assert.Equal(["lm_head", "model.embed_tokens"], reports.Select(r => r.Module).Order());

        using var baseline = ModelFolder.Open(TestPaths.Model("lm-base"));
        using var ft = ModelFolder.Open(TestPaths.Model("lm-ft-python"));
        using var adapter = ModelFolder.Open(output);
        float[] a = Read(adapter, "base_model.model.model.embed_tokens.lora_embedding_A");
        float[] b = Read(adapter, "base_model.model.model.embed_tokens.lora_embedding_B");
        Assert.Equal([(long)rank, 256L], adapter.GetTensor("base_model.model.model.embed_tokens.lora_embedding_A").Shape);
        Assert.Equal([128L, (long)rank], adapter.GetTensor("base_model.model.model.embed_tokens.lora_embedding_B").Shape);
        Assert.Equal([(long)rank, 128L], adapter.GetTensor("base_model.model.lm_head.lora_A.weight").Shape);

        float[] w0 = Read(baseline, "model.embed_tokens.weight"), w1 = Read(ft, "model.embed_tokens.weight");
        var delta = new float[w0.Length];
        for (int i = 0; i < delta.Length; i++) delta[i] = w1[i] - w0[i];
        // ΔW is [vocab 256, dim 128]; PEFT adds (B·A)ᵀ, so element (v, d) is Σ_k B[d, k]·A[k, v].
        double error = 0;
        for (int v = 0; v < 256; v++)
            for (int d = 0; d < 128; d++)
            {
                double x = 0;
                for (int k = 0; k < rank; k++) x += (double)b[d * rank + k] * a[k * 256 + v];
                error += (delta[v * 128 + d] - x) * (delta[v * 128 + d] - x);
            }
        double[] sigma = ExactSvd.SingularValues(delta, 256, 128);
        double optimum = 0;
        for (int i = rank; i < sigma.Length; i++) optimum += sigma[i] * sigma[i];
        Assert.True(Math.Sqrt(error) <= Math.Sqrt(optimum) * 1.01, $"error {Math.Sqrt(error)}, optimum {Math.Sqrt(optimum)}");
    }

    [Fact]
    public void Bad_options_and_mismatched_models_are_weld_errors()
    {
        string dir = TestPaths.NewTempDir();
        string b = TestPaths.Model("lm-base");
        Assert.Throws<WeldException>(() => LoraExtractor.Extract(b, b, new LoraExtractionOptions(0), Path.Combine(dir, "x")));
        Assert.Throws<WeldException>(() => LoraExtractor.Extract(b, b, new LoraExtractionOptions(4, Include: "("), Path.Combine(dir, "x")));
        Assert.Throws<WeldException>(() => LoraExtractor.Extract(b, b, new LoraExtractionOptions(4, Include: "no_such_module"), Path.Combine(dir, "x")));
        var zero = Assert.Throws<WeldException>(() => LoraExtractor.Extract(b, b, new LoraExtractionOptions(4), Path.Combine(dir, "x")));
        Assert.Contains("zero", zero.Message);
        Assert.Throws<WeldException>(() => LoraExtractor.Extract(TestPaths.Model("mlp-digits-a"), b, new LoraExtractionOptions(4), Path.Combine(dir, "x")));
        Assert.Throws<WeldException>(() => LoraApplier.Apply(TestPaths.Model("mlp-digits-a"), TestPaths.Model("lm-lora-python"), Path.Combine(dir, "y")));
        Assert.Throws<WeldException>(() => LoraApplier.Apply(b, b, Path.Combine(dir, "y")));
        Assert.False(Directory.Exists(Path.Combine(dir, "x")));
        Assert.False(Directory.Exists(Path.Combine(dir, "y")));
    }
}
