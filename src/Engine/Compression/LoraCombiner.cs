using System.Text.Json;
using System.Text.Json.Nodes;
using MathNet.Numerics.LinearAlgebra;
using Weld.Engine.Models;

namespace Weld.Engine.Compression;

/// <summary>How <see cref="LoraCombiner.CombineSvd"/> combines adapters.</summary>
/// <param name="Weights">One weight per adapter, in the order of the adapters.</param>
/// <param name="Rank">The new rank R; null for the largest <c>r</c> of the adapters' configs (PEFT's <c>svd_rank=None</c>).</param>
/// <param name="Clamp">PEFT's <c>svd_clamp</c>: a quantile q in [0, 1]; both factors are clamped to ±quantile(q) of their
/// joined entries. Null: no clamping.</param>
/// <param name="ScaleOnce">False (default) reproduces PEFT, whose per-adapter weight is w·s and whose delta is s·B·A, so
/// each adapter enters as w·s²·B·A. True uses the delta each adapter adds to the model, w·s·B·A (a Weld option).</param>
public sealed record LoraCombineOptions(IReadOnlyList<double> Weights, int? Rank = null, double? Clamp = null, bool ScaleOnce = false);

/// <summary>One combined module.</summary>
/// <param name="Module">The module path.</param>
/// <param name="Rows">Rows of ΔW as B·A.</param>
/// <param name="Columns">Columns of ΔW as B·A.</param>
/// <param name="Rank">Rank written (the new rank R).</param>
/// <param name="Adapters">How many of the adapters have this module.</param>
/// <param name="EnergyKept">Σ_{i≤R} σ_i² / Σ_i σ_i² of the weighted sum before clamping (1 when it is zero).</param>
public sealed record LoraCombinedModule(string Module, int Rows, int Columns, int Rank, int Adapters, double EnergyKept);

/// <summary>
/// PEFT's <c>LoraModel.add_weighted_adapter(..., combination_type="svd", svd_rank, svd_clamp)</c> on adapter folders:
/// per module, over the adapters that have it,
/// <code>
///   ΔW = Σ_i (w_i s_i) · (s_i B_i A_i)          (s_i = lora_alpha/r of adapter i; ScaleOnce: w_i s_i B_i A_i)
///   ΔW = U Σ Vᵀ,  B' = U[:, :R] Σ[:R],  A' = Vᵀ[:R, :]
///   clamp: h = quantile([B', A'], q); B', A' clamped to [−h, h]
/// </code>
/// and the new config is the first adapter's with <c>r = lora_alpha = R</c> (scale 1) and <c>target_modules</c> the
/// union (a list when the configs give lists, <c>(t1)|(t2)</c> when they give regular expressions).
/// </summary>
/// <remarks>
/// ΔW has rank at most ρ = Σ r_i, so its SVD is taken through the factors: B_cat = [c_1 B_1 … c_T B_T] = Q_B R_B and
/// A_catᵀ = Q_A R_A (thin QR), ΔW = Q_B (R_B R_Aᵀ) Q_Aᵀ, and the ρ × ρ core gives the singular triplets exactly, in
/// double precision, at O((rows + columns)·ρ²) instead of a dense SVD. When R exceeds the rank available the extra
/// factor rows/columns are zero (PEFT fills them with null-space vectors of σ = 0, which only moves the clamp's quantile).
/// </remarks>
public static class LoraCombiner
{
    /// <summary>Combines the adapters in <paramref name="adapterPaths"/> into the new adapter folder <paramref name="outputFolder"/>.</summary>
    /// <param name="adapterPaths">PEFT LoRA adapter folders.</param>
    /// <param name="options">Weights, rank and clamp.</param>
    /// <param name="outputFolder">The adapter folder to create (written atomically).</param>
    /// <param name="overwrite">Whether an existing folder may be replaced.</param>
    /// <returns>One report per module, ordered by module path.</returns>
    /// <exception cref="WeldException">Bad options, unreadable adapters, or adapters that disagree on a module's shape.</exception>
    public static IReadOnlyList<LoraCombinedModule> CombineSvd(IReadOnlyList<string> adapterPaths, LoraCombineOptions options,
        string outputFolder, bool overwrite = false)
    {
        ArgumentNullException.ThrowIfNull(adapterPaths);
        ArgumentNullException.ThrowIfNull(options);
        if (adapterPaths.Count == 0) throw new WeldException("combine-lora: no adapter given");
        if (options.Weights.Count != adapterPaths.Count)
            throw new WeldException($"combine-lora: {options.Weights.Count} weight(s) for {adapterPaths.Count} adapter(s); give one weight per adapter");
        foreach (double w in options.Weights)
            if (!double.IsFinite(w)) throw new WeldException($"combine-lora: weight {w} is not a finite number");
        if (options.Rank is < 1) throw new WeldException($"combine-lora: rank {options.Rank} must be at least 1");
        if (options.Clamp is double q && !(q >= 0 && q <= 1)) throw new WeldException($"combine-lora: clamp quantile {q} must be in [0, 1]");

        var adapters = new List<IReadOnlyDictionary<string, LoraApplier.LoraModule>>();
        var configs = new List<JsonObject>();
        foreach (string path in adapterPaths)
        {
            adapters.Add(LoraApplier.ReadAdapter(path));
            using var folder = ModelFolder.Open(path);
            configs.Add(folder.AdapterConfig!); // ReadAdapter has checked that it exists
        }
        int rank = options.Rank ?? configs.Max(c => (int)c["r"]!.GetValue<double>());

        var moduleNames = adapters.SelectMany(a => a.Keys).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var factors = new List<PeftLoraFactors>(moduleNames.Count);
        var reports = new List<LoraCombinedModule>(moduleNames.Count);
        foreach (string module in moduleNames)
        {
            var parts = new List<LoraApplier.LoraModule>();
            var coefficients = new List<double>();
            for (int i = 0; i < adapters.Count; i++)
            {
                if (!adapters[i].TryGetValue(module, out var part)) continue;
                if (parts.Count > 0 && (part.Rows != parts[0].Rows || part.Columns != parts[0].Columns || part.Embedding != parts[0].Embedding))
                    throw new WeldException($"{adapterPaths[i]}: module {module} has B·A of [{part.Rows}, {part.Columns}], an earlier adapter has [{parts[0].Rows}, {parts[0].Columns}]");
                parts.Add(part);
                coefficients.Add(options.ScaleOnce ? options.Weights[i] * part.Scale : options.Weights[i] * part.Scale * part.Scale);
            }
            (float[] a, float[] b, double energy) = CombineModule(parts, coefficients, rank, options.Clamp);
            factors.Add(new PeftLoraFactors(module, parts[0].Embedding, parts[0].Rows, parts[0].Columns, rank, a, b));
            reports.Add(new LoraCombinedModule(module, parts[0].Rows, parts[0].Columns, rank, parts.Count, energy));
        }
        PeftAdapterWriter.Write(outputFolder, overwrite, factors, BuildConfig(configs, adapterPaths, rank), adapterPaths);
        return reports;
    }

    /// <summary>
    /// The rank-<paramref name="rank"/> factors (A: rank × columns, B: rows × rank) of Σ_i c_i B_i A_i, B = U·Σ and A = Vᵀ,
    /// optionally clamped; and the share of the squared singular values kept.
    /// </summary>
    internal static (float[] A, float[] B, double EnergyKept) CombineModule(IReadOnlyList<LoraApplier.LoraModule> parts,
        IReadOnlyList<double> coefficients, int rank, double? clamp)
    {
        int rows = parts[0].Rows, columns = parts[0].Columns;
        int stacked = parts.Sum(p => p.Rank);
        var bCat = Matrix<double>.Build.Dense(rows, stacked);
        var aCatT = Matrix<double>.Build.Dense(columns, stacked);
        int offset = 0;
        for (int p = 0; p < parts.Count; p++)
        {
            LoraApplier.LoraModule part = parts[p];
            for (int i = 0; i < rows; i++)
                for (int r = 0; r < part.Rank; r++)
                    bCat[i, offset + r] = coefficients[p] * part.B[i * part.Rank + r];
            for (int r = 0; r < part.Rank; r++)
                for (int j = 0; j < columns; j++)
                    aCatT[j, offset + r] = part.A[r * columns + j];
            offset += part.Rank;
        }

        (Matrix<double> u, double[] s, Matrix<double> vt) = stacked <= Math.Min(rows, columns)
            ? FactoredSvd(bCat, aCatT)
            : ThinSvd.Compute(bCat.TransposeAndMultiply(aCatT));

        int kept = Math.Min(rank, s.Length);
        double total = 0, top = 0;
        for (int i = 0; i < s.Length; i++)
        {
            total += s[i] * s[i];
            if (i < kept) top += s[i] * s[i];
        }
        var b = new float[rows * rank];
        var a = new float[rank * columns];
        for (int r = 0; r < kept; r++)
        {
            for (int i = 0; i < rows; i++) b[i * rank + r] = (float)(u[i, r] * s[r]);
            for (int j = 0; j < columns; j++) a[r * columns + j] = (float)vt[r, j];
        }
        if (clamp is double q) Clamp(a, b, q);
        return (a, b, total == 0 ? 1 : top / total);
    }

    /// <summary>SVD of B_cat·A_catᵀᵀ through thin QRs of both factors and the SVD of the small core.</summary>
    private static (Matrix<double> U, double[] S, Matrix<double> Vt) FactoredSvd(Matrix<double> bCat, Matrix<double> aCatT)
    {
        var qrB = bCat.QR(MathNet.Numerics.LinearAlgebra.Factorization.QRMethod.Thin);
        var qrA = aCatT.QR(MathNet.Numerics.LinearAlgebra.Factorization.QRMethod.Thin);
        var core = qrB.R.TransposeAndMultiply(qrA.R).Svd(computeVectors: true);
        return (qrB.Q.Multiply(core.U), core.S.ToArray(), core.VT.TransposeAndMultiply(qrA.Q));
    }

    /// <summary>
    /// PEFT's clamp: h = torch.quantile of B's and A's entries joined (linear interpolation between order statistics),
    /// then every entry to min(max(x, −h), h) — torch.clamp's order, so a negative h maps everything to h.
    /// </summary>
    internal static void Clamp(Span<float> a, Span<float> b, double q)
    {
        var all = new float[a.Length + b.Length];
        b.CopyTo(all);
        a.CopyTo(all.AsSpan(b.Length));
        Array.Sort(all);
        double position = q * (all.Length - 1);
        int below = (int)Math.Floor(position), above = (int)Math.Ceiling(position);
        float high = (float)(all[below] + (position - below) * ((double)all[above] - all[below]));
        float low = -high;
        for (int i = 0; i < a.Length; i++) a[i] = MathF.Min(MathF.Max(a[i], low), high);
        for (int i = 0; i < b.Length; i++) b[i] = MathF.Min(MathF.Max(b[i], low), high);
    }

    /// <summary>The first adapter's config with r = lora_alpha = <paramref name="rank"/> and the union of target_modules.</summary>
    private static string BuildConfig(List<JsonObject> configs, IReadOnlyList<string> paths, int rank)
    {
        var config = (JsonObject)configs[0].DeepClone();
        config["r"] = rank;
        config["lora_alpha"] = rank;
        // Every module is written at rank R with alpha R: per-module patterns of the first adapter no longer apply,
        // and rsLoRA's α/√r would not be 1.
        config["rank_pattern"] = new JsonObject();
        config["alpha_pattern"] = new JsonObject();
        config["use_rslora"] = false;

        if (configs.All(c => c["target_modules"] is JsonArray))
        {
            var union = new SortedSet<string>(StringComparer.Ordinal);
            foreach (JsonObject c in configs)
                foreach (JsonNode? t in (JsonArray)c["target_modules"]!) union.Add(t?.ToString() ?? "");
            var targets = new JsonArray();
            foreach (string t in union) targets.Add(t);
            config["target_modules"] = targets;
        }
        else if (configs.All(c => c["target_modules"] is JsonValue v && v.TryGetValue(out string? _)))
        {
            config["target_modules"] = string.Join("|", configs.Select(c => $"({c["target_modules"]})"));
        }
        else
        {
            throw new WeldException($"combine-lora: the adapters' target_modules mix lists and regular expressions ({string.Join(", ", paths)}); PEFT cannot combine them either");
        }
        return config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }
}
