using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Compression;

/// <summary>What <see cref="LoraExtractor.Extract"/> should extract.</summary>
/// <param name="Rank">Largest rank per module (r).</param>
/// <param name="SingularValueEpsilon">Drop singular values σ_i ≤ ε·σ_1 of a module (0 keeps all up to <paramref name="Rank"/>).</param>
/// <param name="Include">When set, only modules whose path matches this regular expression (searched, not anchored).</param>
/// <param name="Exclude">When set, modules whose path matches this regular expression are skipped.</param>
/// <param name="EmbedLora">Also extract embeddings (<c>lora_embedding_A/B</c>) and <c>lm_head</c> (a Linear).</param>
/// <param name="Seed">Seed of the randomized SVD's sketch.</param>
public sealed record LoraExtractionOptions(int Rank, double SingularValueEpsilon = 0, string? Include = null, string? Exclude = null,
    bool EmbedLora = false, ulong Seed = 0)
{
    /// <summary>Where the randomized SVD's matrix products run; null for the CPU (<see cref="CpuGemm.Default"/>).</summary>
    public IGemm? Gemm { get; init; }
}

/// <summary>One extracted module.</summary>
/// <param name="Module">The module path, e.g. <c>model.layers.0.self_attn.q_proj</c>.</param>
/// <param name="Rows">Rows of ΔW as factorised (out features; the embedding dimension for an embedding).</param>
/// <param name="Columns">Columns of ΔW as factorised (in features; the vocabulary for an embedding).</param>
/// <param name="Rank">Rank written (0: ΔW is zero or every singular value fell under ε; the module is left out).</param>
/// <param name="RelativeError">‖ΔW − B·A‖_F / ‖ΔW‖_F (0 when ΔW is zero).</param>
/// <param name="EnergyKept">Σ_{i≤rank} σ_i² / ‖ΔW‖_F² (1 when ΔW is zero).</param>
public sealed record LoraModuleReport(string Module, int Rows, int Columns, int Rank, double RelativeError, double EnergyKept);

/// <summary>
/// Extracts a PEFT LoRA adapter from a fine-tune and its base: for every selected 2-D weight, ΔW = W_ft − W_base
/// (float32), a rank-r truncated SVD ΔW ≈ U·Σ·Vᵀ (<see cref="RandomizedSvd"/>), B = U·√Σ, A = √Σ·Vᵀ; the adapter's
/// <c>lora_alpha</c> equals its rank so that PEFT's scale α/r is 1.
/// </summary>
public static class LoraExtractor
{
    /// <summary>Extracts the adapter of <paramref name="finetunedPath"/> against <paramref name="basePath"/> into the folder <paramref name="outputFolder"/>.</summary>
    /// <param name="finetunedPath">The fine-tuned model.</param>
    /// <param name="basePath">The base model (written to the config as <c>base_model_name_or_path</c> as given).</param>
    /// <param name="options">Rank and module selection.</param>
    /// <param name="outputFolder">The adapter folder to create (written atomically).</param>
    /// <param name="overwrite">Whether an existing folder may be replaced.</param>
    /// <returns>One report per selected module, in the base's tensor order.</returns>
    /// <exception cref="WeldException">Bad options, no module selected, or the models disagree on a tensor's shape.</exception>
    public static IReadOnlyList<LoraModuleReport> Extract(string finetunedPath, string basePath, LoraExtractionOptions options,
        string outputFolder, bool overwrite = false)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Rank < 1) throw new WeldException($"LoRA extraction: rank {options.Rank} must be at least 1");
        if (!double.IsFinite(options.SingularValueEpsilon) || options.SingularValueEpsilon < 0 || options.SingularValueEpsilon >= 1)
            throw new WeldException($"LoRA extraction: singular-value epsilon {options.SingularValueEpsilon} must be in [0, 1)");
        Regex? include = CompilePattern(options.Include, "--include");
        Regex? exclude = CompilePattern(options.Exclude, "--exclude");

        using var baseline = ModelFolder.Open(basePath);
        using var finetuned = ModelFolder.Open(finetunedPath);
        var modules = new List<string>();
        foreach (string name in baseline.TensorNames)
        {
            ModelTensor b = baseline.GetTensor(name);
            if (b.Shape.Length != 2 || !name.EndsWith(".weight", StringComparison.Ordinal) || !DTypes.IsFloatingPoint(b.DType)) continue;
            string module = name[..^".weight".Length];
            if (!options.EmbedLora && (PeftLoraNames.IsEmbedding(module) || PeftLoraNames.IsOutputHead(module))) continue;
            if (include is not null && !include.IsMatch(module)) continue;
            if (exclude is not null && exclude.IsMatch(module)) continue;
            if (!finetuned.Contains(name)) throw new WeldException($"{finetuned.Path}: tensor {name} of the base is missing");
            ModelTensor f = finetuned.GetTensor(name);
            if (!f.Shape.AsSpan().SequenceEqual(b.Shape))
                throw new WeldException($"{finetuned.Path}: tensor {name} has shape [{string.Join(", ", f.Shape)}], the base has [{string.Join(", ", b.Shape)}]");
            modules.Add(module);
        }
        if (modules.Count == 0) throw new WeldException($"{baseline.Path}: no 2-D weight matches the module selection; nothing to extract");

        var reports = new List<LoraModuleReport>();
        var factors = new List<PeftLoraFactors>();
        foreach (string module in modules)
        {
            string name = module + ".weight";
            ModelTensor b = baseline.GetTensor(name);
            bool embedding = PeftLoraNames.IsEmbedding(module);
            int outFeatures = checked((int)b.Shape[0]), inFeatures = checked((int)b.Shape[1]);
            var delta = new float[checked(outFeatures * inFeatures)];
            var theta0 = new float[delta.Length];
            finetuned.GetTensor(name).ReadFloat32(0, delta);
            b.ReadFloat32(0, theta0);
            for (int i = 0; i < delta.Length; i++) delta[i] -= theta0[i];
            // PEFT's embedding delta is (B·A)ᵀ: factorise ΔWᵀ so that B is [dim, r] and A is [r, vocab].
            int rows = outFeatures, columns = inFeatures;
            if (embedding)
            {
                delta = Transposed(delta, outFeatures, inFeatures);
                (rows, columns) = (inFeatures, outFeatures);
            }
            (LoraModuleReport report, float[] a, float[] bFactor) = Factorize(module, delta, rows, columns, options);
            reports.Add(report);
            if (report.Rank > 0) factors.Add(new PeftLoraFactors(module, embedding, rows, columns, report.Rank, a, bFactor));
        }
        if (factors.Count == 0) throw new WeldException($"{finetuned.Path}: every selected module's ΔW is zero (or below --sv-epsilon); nothing to extract");

        PeftAdapterWriter.Write(outputFolder, overwrite, factors,
            BuildConfig(basePath, baseline, options.Rank, factors.Select(f => (f.Module, f.Rank)).ToList()), [finetuned.Path, baseline.Path]);
        return reports;
    }

    /// <summary>Truncated SVD of one ΔW (rows × columns) into B = U·√Σ, A = √Σ·Vᵀ, with its error figures.</summary>
    private static (LoraModuleReport Report, float[] A, float[] B) Factorize(string module, float[] delta, int rows, int columns,
        LoraExtractionOptions options)
    {
        double total = 0;
        foreach (float x in delta) total += (double)x * x;
        int maxRank = Math.Min(options.Rank, Math.Min(rows, columns));
        if (total == 0) return (new LoraModuleReport(module, rows, columns, 0, 0, 1), [], []);

        TruncatedSvd svd = RandomizedSvd.Compute(delta, rows, columns, maxRank, options.Seed, options.Gemm ?? CpuGemm.Default);
        int rank = 0;
        while (rank < maxRank && svd.S[rank] > options.SingularValueEpsilon * svd.S[0] && svd.S[rank] > 0) rank++;
        if (rank == 0) return (new LoraModuleReport(module, rows, columns, 0, 1, 0), [], []);

        var a = new float[rank * columns];
        var b = new float[rows * rank];
        double kept = 0;
        for (int k = 0; k < rank; k++)
        {
            kept += (double)svd.S[k] * svd.S[k];
            float root = MathF.Sqrt(svd.S[k]);
            for (int j = 0; j < columns; j++) a[k * columns + j] = root * svd.Vt[k * columns + j];
            for (int i = 0; i < rows; i++) b[i * rank + k] = svd.U[i * svd.Rank + k] * root;
        }

        var product = new float[delta.Length];
        Gemm.Multiply(b, a, product, rows, rank, columns);
        double residual = 0;
        for (int i = 0; i < delta.Length; i++)
        {
            double d = (double)delta[i] - product[i];
            residual += d * d;
        }
        return (new LoraModuleReport(module, rows, columns, rank, Math.Sqrt(residual / total), Math.Min(1.0, kept / total)), a, b);
    }

    private static float[] Transposed(float[] source, int rows, int columns)
    {
        var result = new float[source.Length];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < columns; j++)
                result[j * rows + i] = source[i * columns + j];
        return result;
    }

    private static Regex? CompilePattern(string? pattern, string option)
    {
        if (pattern is null) return null;
        try
        {
            return new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException e)
        {
            throw new WeldException($"{option} '{pattern}' is not a valid regular expression: {e.Message}");
        }
    }

    /// <summary>
    /// adapter_config.json: <c>r</c> and <c>lora_alpha</c> = the requested rank; a module extracted at another rank gets
    /// <c>rank_pattern</c> and <c>alpha_pattern</c> entries (its full path, value = its rank) so its scale stays 1.
    /// <c>target_modules</c> lists last path components when every base module with that name was extracted, else
    /// the full module paths.
    /// </summary>
    private static string BuildConfig(string basePath, ModelFolder baseline, int rank, List<(string Module, int Rank)> modules)
    {
        var extracted = modules.Select(m => m.Module).ToHashSet(StringComparer.Ordinal);
        var allLinear = baseline.TensorNames
            .Where(n => n.EndsWith(".weight", StringComparison.Ordinal) && baseline.GetTensor(n).Shape.Length == 2)
            .Select(n => n[..^".weight".Length]).ToList();
        var lastNames = modules.Select(m => PeftLoraNames.LastComponent(m.Module)).Distinct(StringComparer.Ordinal).ToList();
        bool covering = allLinear.Where(m => lastNames.Contains(PeftLoraNames.LastComponent(m))).All(extracted.Contains);
        var targets = new JsonArray();
        foreach (string t in covering ? lastNames : modules.Select(m => m.Module)) targets.Add(t);

        var rankPattern = new JsonObject();
        var alphaPattern = new JsonObject();
        foreach ((string module, int r) in modules)
        {
            if (r == rank) continue;
            rankPattern[module] = r;
            alphaPattern[module] = r;
        }
        string[]? architectures = baseline.Config?.Raw["architectures"] is JsonArray arch ? arch.Select(a => a?.ToString() ?? "").ToArray() : null;
        var config = new JsonObject
        {
            ["alpha_pattern"] = alphaPattern,
            ["base_model_name_or_path"] = basePath,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["layers_pattern"] = null,
            ["layers_to_transform"] = null,
            ["lora_alpha"] = rank,
            ["lora_dropout"] = 0.0,
            ["modules_to_save"] = null,
            ["peft_type"] = "LORA",
            ["r"] = rank,
            ["rank_pattern"] = rankPattern,
            ["revision"] = null,
            ["target_modules"] = targets,
            ["task_type"] = architectures is not null && architectures.Any(a => a.EndsWith("ForCausalLM", StringComparison.Ordinal)) ? "CAUSAL_LM" : null,
            ["use_dora"] = false,
            ["use_rslora"] = false,
        };
        return config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }
}
