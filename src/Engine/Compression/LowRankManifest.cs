using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;

namespace Weld.Engine.Compression;

/// <summary>How one tensor of a fine-tune is stored by <see cref="LowRankCompressor"/>.</summary>
public enum LowRankTensorKind
{
    /// <summary>Bit-identical to the base tensor: nothing is stored.</summary>
    SameAsBase,

    /// <summary>The fine-tune's own bytes, unchanged (1-D, absent from the base, no budget, or factors not smaller).</summary>
    Exact,

    /// <summary>W_base + A·B with A (rows × rank) and B (rank × columns) stored as float32.</summary>
    LowRank,
}

/// <summary>One tensor's line of the manifest.</summary>
/// <param name="Name">The tensor's name in the fine-tune.</param>
/// <param name="DType">The fine-tune's dtype (the one decompress writes).</param>
/// <param name="Shape">The fine-tune's shape.</param>
/// <param name="Kind">How it is stored.</param>
/// <param name="Rank">Rank of the factors (0 unless <see cref="LowRankTensorKind.LowRank"/>).</param>
/// <param name="RelativeError">‖W_restored − W_ft‖_F / ‖W_ft‖_F of what decompress writes (0 when stored exactly).</param>
/// <param name="EnergyKept">Fraction of the residual's energy ‖ΔW‖²_F the factors keep (1 when exact or ΔW = 0).</param>
/// <param name="StoredBytes">Bytes this tensor occupies in the compressed file.</param>
public sealed record LowRankTensorEntry(string Name, DType DType, long[] Shape, LowRankTensorKind Kind, int Rank,
    double RelativeError, double EnergyKept, long StoredBytes)
{
    /// <summary>Bytes of the tensor in the fine-tune (and in the decompressed checkpoint).</summary>
    public long OriginalBytes => new TensorHeader(Name, DType, Shape).ByteLength;

    /// <summary>Name of factor A (rows × rank) in the compressed file.</summary>
    public string FactorAName => Name + ".lowrank_a";

    /// <summary>Name of factor B (rank × columns) in the compressed file.</summary>
    public string FactorBName => Name + ".lowrank_b";
}

/// <summary>
/// The JSON manifest of a low-rank compressed folder (<see cref="FileName"/>): format and version, the identity of
/// the base it is relative to, and every tensor of the fine-tune in order with how it is stored.
/// </summary>
/// <param name="BaseTensorCount">Number of tensors of the base.</param>
/// <param name="BaseFingerprint">SHA-256 (hex) of the base's tensors: see <see cref="Fingerprint"/>.</param>
/// <param name="ErrorBudget">The relative error budget E the tensors were compressed to.</param>
/// <param name="Seed">Seed of the randomized SVD sketches.</param>
/// <param name="Tensors">Every tensor of the fine-tune, in its order.</param>
public sealed record LowRankManifest(int BaseTensorCount, string BaseFingerprint, double ErrorBudget, ulong Seed,
    IReadOnlyList<LowRankTensorEntry> Tensors)
{
    /// <summary>The manifest's file name inside a compressed folder.</summary>
    public const string FileName = "weld-lowrank.json";

    /// <summary>The <c>format</c> value.</summary>
    public const string Format = "weld-lowrank";

    /// <summary>The only <c>version</c> this code reads and writes.</summary>
    public const int Version = 1;

    /// <summary>
    /// SHA-256 over the base's tensors in ordinal name order: each name, dtype, shape and all of its bytes. Headers
    /// alone cannot tell a base from another fine-tune of the same architecture, which would restore wrong weights.
    /// </summary>
    /// <param name="model">The base.</param>
    /// <returns>Lower-case hex digest.</returns>
    public static string Fingerprint(ModelFolder model)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var names = model.TensorNames.ToArray();
        Array.Sort(names, StringComparer.Ordinal);
        foreach (string name in names)
        {
            ModelTensor tensor = model.GetTensor(name);
            hash.AppendData(Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture,
                $"{name}\0{DTypes.ToName(tensor.DType)}\0{string.Join(",", tensor.Shape)}\0")));
            const int Chunk = 1 << 24;
            for (long offset = 0; offset < tensor.Info.ByteLength; offset += Chunk)
                hash.AppendData(tensor.File.GetBytes(tensor.Info, offset, (int)Math.Min(Chunk, tensor.Info.ByteLength - offset)));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Writes the manifest as indented JSON into <paramref name="folder"/>.</summary>
    /// <param name="folder">The compressed folder.</param>
    public void Write(string folder)
    {
        var tensors = new JsonArray();
        foreach (LowRankTensorEntry t in Tensors)
        {
            tensors.Add(new JsonObject
            {
                ["name"] = t.Name,
                ["dtype"] = DTypes.ToName(t.DType),
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode)d).ToArray()),
                ["kind"] = KindName(t.Kind),
                ["rank"] = t.Rank,
                ["relative_error"] = t.RelativeError,
                ["energy_kept"] = t.EnergyKept,
                ["stored_bytes"] = t.StoredBytes,
            });
        }
        var root = new JsonObject
        {
            ["format"] = Format,
            ["version"] = Version,
            ["base"] = new JsonObject { ["tensor_count"] = BaseTensorCount, ["sha256"] = BaseFingerprint },
            ["error_budget"] = ErrorBudget,
            ["seed"] = Seed,
            ["tensors"] = tensors,
        };
        File.WriteAllText(Path.Combine(folder, FileName), root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>Reads and validates the manifest of the compressed folder <paramref name="folder"/>.</summary>
    /// <param name="folder">The compressed folder.</param>
    /// <returns>The manifest.</returns>
    /// <exception cref="InvalidModelFileException">The manifest is missing, not JSON, of another format or version, or a field is missing or invalid.</exception>
    public static LowRankManifest Read(string folder)
    {
        string path = Path.Combine(folder, FileName);
        if (!File.Exists(path))
            throw new InvalidModelFileException(path, $"missing: {folder} is not a low-rank compressed folder (weld compress FT --base BASE --error E)");
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidModelFileException(path, $"not valid JSON ({e.Message})");
        }
        try
        {
            if (root is not JsonObject obj) throw new InvalidModelFileException(path, "the manifest is not a JSON object");
            string? format = obj["format"]?.GetValue<string>();
            if (format != Format) throw new InvalidModelFileException(path, $"format is '{format}', expected '{Format}'");
            int version = obj["version"]?.GetValue<int>() ?? -1;
            if (version != Version) throw new InvalidModelFileException(path, $"version {version} is not supported (this weld reads version {Version})");
            JsonObject baseInfo = Required(obj, "base", path).AsObject();
            var tensors = new List<LowRankTensorEntry>();
            foreach (JsonNode? node in Required(obj, "tensors", path).AsArray())
            {
                if (node is not JsonObject t) throw new InvalidModelFileException(path, "a tensor entry is not a JSON object");
                string name = Required(t, "name", path).GetValue<string>();
                string dtypeName = Required(t, "dtype", path).GetValue<string>();
                if (!DTypes.TryParse(dtypeName, out DType dtype)) throw new InvalidModelFileException(path, $"tensor {name}: unknown dtype '{dtypeName}'");
                long[] shape = Required(t, "shape", path).AsArray().Select(d => d!.GetValue<long>()).ToArray();
                if (shape.Any(d => d < 0)) throw new InvalidModelFileException(path, $"tensor {name}: negative dimension in its shape");
                string kindName = Required(t, "kind", path).GetValue<string>();
                LowRankTensorKind kind = kindName switch
                {
                    "same_as_base" => LowRankTensorKind.SameAsBase,
                    "exact" => LowRankTensorKind.Exact,
                    "low_rank" => LowRankTensorKind.LowRank,
                    _ => throw new InvalidModelFileException(path, $"tensor {name}: unknown kind '{kindName}'"),
                };
                int rank = Required(t, "rank", path).GetValue<int>();
                if (kind == LowRankTensorKind.LowRank && (shape.Length != 2 || rank <= 0 || rank > Math.Min(shape[0], shape[1])))
                    throw new InvalidModelFileException(path, $"tensor {name}: rank {rank} does not fit its shape [{string.Join(", ", shape)}]");
                tensors.Add(new LowRankTensorEntry(name, dtype, shape, kind, rank,
                    Required(t, "relative_error", path).GetValue<double>(), Required(t, "energy_kept", path).GetValue<double>(),
                    Required(t, "stored_bytes", path).GetValue<long>()));
            }
            return new LowRankManifest(Required(baseInfo, "tensor_count", path).GetValue<int>(), Required(baseInfo, "sha256", path).GetValue<string>(),
                Required(obj, "error_budget", path).GetValue<double>(), Required(obj, "seed", path).GetValue<ulong>(), tensors);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException)
        {
            // GetValue/AsArray throw these on a field of the wrong JSON type.
            throw new InvalidModelFileException(path, $"invalid manifest ({e.Message})");
        }
    }

    private static JsonNode Required(JsonObject obj, string field, string path) =>
        obj[field] ?? throw new InvalidModelFileException(path, $"field '{field}' is missing");

    private static string KindName(LowRankTensorKind kind) => kind switch
    {
        LowRankTensorKind.SameAsBase => "same_as_base",
        LowRankTensorKind.Exact => "exact",
        _ => "low_rank",
    };
}
