using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Compression;

/// <summary>
/// Folds a PEFT LoRA adapter into its base: W' = W + s·B·A for a Linear module (W' = W + s·(B·A)ᵀ for an Embedding),
/// s = α/r (α/√r with <c>use_rslora</c>), α and r from <c>alpha_pattern</c>/<c>rank_pattern</c> when they name the
/// module. Math in float32 (W read as float32, B·A by <see cref="Gemm"/>, then one fused add per element); the result
/// is stored in the base tensor's dtype. Every other tensor is copied byte for byte.
/// </summary>
public static class LoraApplier
{
    /// <summary>One module's factors and scale, read from an adapter folder.</summary>
    /// <param name="Module">The module path in the base model.</param>
    /// <param name="Embedding">Whether ΔW = s·(B·A)ᵀ (a PEFT embedding) rather than s·B·A.</param>
    /// <param name="A">The A factor, row-major [r, columns].</param>
    /// <param name="B">The B factor, row-major [rows, r].</param>
    /// <param name="Rows">Rows of B·A.</param>
    /// <param name="Rank">r.</param>
    /// <param name="Columns">Columns of B·A.</param>
    /// <param name="Scale">s.</param>
    public sealed record LoraModule(string Module, bool Embedding, float[] A, float[] B, int Rows, int Rank, int Columns, float Scale);

    /// <summary>Reads every module of a PEFT LoRA adapter folder.</summary>
    /// <param name="adapterPath">The folder with <c>adapter_config.json</c> and <c>adapter_model.safetensors</c>.</param>
    /// <returns>The modules, keyed by module path.</returns>
    /// <exception cref="WeldException">Not a LoRA adapter, an unsupported option (DoRA, fan_in_fan_out), or inconsistent factors.</exception>
    public static IReadOnlyDictionary<string, LoraModule> ReadAdapter(string adapterPath)
    {
        using var adapter = ModelFolder.Open(adapterPath);
        JsonObject config = adapter.AdapterConfig ?? throw new WeldException($"{adapter.Path}: not a PEFT adapter (no {PeftLoraNames.ConfigFileName})");
        string configFile = Path.Combine(adapter.Path, PeftLoraNames.ConfigFileName);
        string peftType = config["peft_type"]?.ToString() ?? "";
        if (peftType != "LORA") throw new InvalidModelFileException(configFile, $"peft_type is '{peftType}', only LORA can be applied");
        if (IsTrue(config["use_dora"])) throw new InvalidModelFileException(configFile, "use_dora is true; DoRA adapters cannot be folded by weld");
        if (IsTrue(config["fan_in_fan_out"])) throw new InvalidModelFileException(configFile, "fan_in_fan_out is true (Conv1D layout); not supported");
        double r = Number(config, "r", configFile);
        double alpha = Number(config, "lora_alpha", configFile);
        bool rslora = IsTrue(config["use_rslora"]);
        var rankPattern = config["rank_pattern"] as JsonObject;
        var alphaPattern = config["alpha_pattern"] as JsonObject;

        var factors = new Dictionary<string, (ModelTensor? A, ModelTensor? B, bool Embedding)>(StringComparer.Ordinal);
        foreach (string name in adapter.TensorNames)
        {
            if (!PeftLoraNames.TryParse(name, out string module, out bool isA, out bool embedding)) continue;
            factors.TryGetValue(module, out var entry);
            ModelTensor tensor = adapter.GetTensor(name);
            if (tensor.Shape.Length != 2) throw new InvalidModelFileException(tensor.File.FilePath, $"tensor {name} has shape {tensor.Info.ShapeText}, LoRA factors are 2-D");
            factors[module] = isA ? (tensor, entry.B, embedding) : (entry.A, tensor, embedding);
        }
        if (factors.Count == 0) throw new WeldException($"{adapter.Path}: the adapter holds no lora_A/lora_B tensors");

        var result = new Dictionary<string, LoraModule>(StringComparer.Ordinal);
        foreach ((string module, var f) in factors)
        {
            if (f.A is not ModelTensor a || f.B is not ModelTensor b)
                throw new InvalidModelFileException(adapter.Files[0].FilePath, $"module {module} has only one of its two LoRA factors");
            int rank = checked((int)a.Shape[0]);
            if (b.Shape[1] != rank)
                throw new InvalidModelFileException(a.File.FilePath, $"module {module}: A is {a.Info.ShapeText} and B is {b.Info.ShapeText}; their ranks differ");
            double moduleRank = Lookup(rankPattern, module) ?? r;
            double moduleAlpha = Lookup(alphaPattern, module) ?? alpha;
            if (moduleRank != rank)
                throw new InvalidModelFileException(configFile, $"module {module}: the config gives rank {moduleRank}, its factors have rank {rank}");
            float scale = (float)(rslora ? moduleAlpha / Math.Sqrt(moduleRank) : moduleAlpha / moduleRank);
            int rows = checked((int)b.Shape[0]), columns = checked((int)a.Shape[1]);
            var av = new float[checked(rank * columns)];
            var bv = new float[checked(rows * rank)];
            a.ReadFloat32(0, av);
            b.ReadFloat32(0, bv);
            result[module] = new LoraModule(module, f.Embedding, av, bv, rows, rank, columns, scale);
        }
        return result;
    }

    /// <summary>W + s·B·A (or its transpose for an embedding) in float32, into <paramref name="weight"/> (the [out, in] base weight).</summary>
    /// <param name="lora">The module.</param>
    /// <param name="weight">The base weight as float32, updated in place.</param>
    /// <param name="weightName">The tensor's name, for error messages.</param>
    /// <param name="outFeatures">Rows of the weight.</param>
    /// <param name="inFeatures">Columns of the weight.</param>
    /// <exception cref="WeldException">The factors do not fit the weight's shape.</exception>
    public static void Fold(LoraModule lora, Span<float> weight, string weightName, int outFeatures, int inFeatures)
    {
        ArgumentNullException.ThrowIfNull(lora);
        (int expectRows, int expectColumns) = lora.Embedding ? (inFeatures, outFeatures) : (outFeatures, inFeatures);
        if (lora.Rows != expectRows || lora.Columns != expectColumns)
            throw new WeldException($"LoRA module {lora.Module}: B·A is [{lora.Rows}, {lora.Columns}], the base tensor {weightName} is [{outFeatures}, {inFeatures}]");
        var product = new float[lora.Rows * lora.Columns];
        Gemm.Multiply(lora.B, lora.A, product, lora.Rows, lora.Rank, lora.Columns);
        float s = lora.Scale;
        if (!lora.Embedding)
        {
            for (int i = 0; i < product.Length; i++) weight[i] = MathF.FusedMultiplyAdd(s, product[i], weight[i]);
            return;
        }
        for (int i = 0; i < outFeatures; i++)
            for (int j = 0; j < inFeatures; j++)
                weight[i * inFeatures + j] = MathF.FusedMultiplyAdd(s, product[j * outFeatures + i], weight[i * inFeatures + j]);
    }

    /// <summary>Writes <paramref name="basePath"/> with <paramref name="adapterPath"/> folded in as a single-file model folder.</summary>
    /// <param name="basePath">The base model.</param>
    /// <param name="adapterPath">The PEFT LoRA adapter folder.</param>
    /// <param name="outputFolder">The model folder to create (atomically); the base's config and tokenizer files are copied.</param>
    /// <param name="overwrite">Whether an existing folder may be replaced.</param>
    /// <returns>The number of modules folded.</returns>
    /// <exception cref="WeldException">The adapter names a module the base lacks, or shapes disagree.</exception>
    public static int Apply(string basePath, string adapterPath, string outputFolder, bool overwrite = false)
    {
        IReadOnlyDictionary<string, LoraModule> modules = ReadAdapter(adapterPath);
        using var baseline = ModelFolder.Open(basePath);
        foreach (string module in modules.Keys)
            if (!baseline.Contains(module + ".weight") || baseline.GetTensor(module + ".weight").Shape.Length != 2)
                throw new WeldException($"{adapterPath}: module {module} has no 2-D weight {module}.weight in the base {baseline.Path}");

        using var output = new OutputFolder(outputFolder, overwrite, [baseline.Path, adapterPath]);
        var headers = baseline.TensorNames.Select(n => new TensorHeader(n, baseline.GetTensor(n).DType, baseline.GetTensor(n).Shape)).ToArray();
        using (var writer = new SafeTensorsWriter(Path.Combine(output.WorkPath, ShardLayout.SingleFileName), headers, null))
        {
            foreach (TensorHeader header in headers)
            {
                ModelTensor tensor = baseline.GetTensor(header.Name);
                string module = header.Name.EndsWith(".weight", StringComparison.Ordinal) ? header.Name[..^".weight".Length] : "";
                if (modules.TryGetValue(module, out LoraModule? lora))
                {
                    int rows = checked((int)header.Shape[0]), columns = checked((int)header.Shape[1]);
                    var weight = new float[checked(rows * columns)];
                    tensor.ReadFloat32(0, weight);
                    Fold(lora, weight, header.Name, rows, columns);
                    writer.WriteFloat32(weight);
                    continue;
                }
                const int Chunk = 1 << 26;
                for (long offset = 0; offset < tensor.Info.ByteLength; offset += Chunk)
                    writer.WriteBytes(tensor.File.GetBytes(tensor.Info, offset, (int)Math.Min(Chunk, tensor.Info.ByteLength - offset)));
            }
            writer.Complete();
        }
        string config = Path.Combine(baseline.Path, "config.json");
        if (File.Exists(config)) File.Copy(config, Path.Combine(output.WorkPath, "config.json"));
        foreach (string side in baseline.SideFiles) File.Copy(side, Path.Combine(output.WorkPath, Path.GetFileName(side)));
        output.Commit();
        return modules.Count;
    }

    private static bool IsTrue(JsonNode? node) => node is JsonValue v && v.TryGetValue(out bool b) && b;

    private static double Number(JsonObject config, string key, string file) =>
        config[key] is JsonValue v && v.TryGetValue(out double d) && d > 0
            ? d
            : throw new InvalidModelFileException(file, $"{key} is missing or not a positive number");

    /// <summary>PEFT's pattern lookup: the first key k with <c>(.*\.)?k$</c> matching the module path.</summary>
    private static double? Lookup(JsonObject? pattern, string module)
    {
        if (pattern is null) return null;
        foreach ((string key, JsonNode? value) in pattern)
        {
            if (!Regex.IsMatch(module, $@"^(.*\.)?{key}$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1))) continue;
            if (value is JsonValue v && v.TryGetValue(out double d)) return d;
            throw new WeldException($"pattern entry '{key}' has a non-numeric value '{value?.ToString() ?? "null"}'");
        }
        return null;
    }
}
