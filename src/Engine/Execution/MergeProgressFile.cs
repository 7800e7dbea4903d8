using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;

namespace Weld.Engine.Execution;

/// <summary>
/// The record a run keeps inside the partial output folder (<c>weld-progress-I-of-N.json</c>): the plan's
/// fingerprint, the recipe, and every shard finished and synced. <c>--resume</c> reuses exactly those shards
/// (after checking size and header against the plan); <c>weld finalize</c> assembles parts from them.
/// </summary>
public sealed class MergeProgressFile
{
    private const string Prefix = "weld-progress-";

    /// <summary>Fingerprint of everything that decides the output bytes.</summary>
    public required string PlanHash { get; init; }

    /// <summary>The recipe text (finalize re-plans from it).</summary>
    public required string RecipeText { get; init; }

    /// <summary>The recipe's path as given (for messages and relative model paths).</summary>
    public required string RecipePath { get; init; }

    /// <summary>The part this file belongs to.</summary>
    public required PartSelection Part { get; init; }

    /// <summary>Seed and shard size of the run.</summary>
    public required ulong Seed { get; init; }

    /// <summary>Largest shard in bytes.</summary>
    public required long MaxShardBytes { get; init; }

    /// <summary>Shards of this part, all of them.</summary>
    public required IReadOnlyList<string> PartShards { get; init; }

    /// <summary>Shards finished and synced.</summary>
    public List<string> Completed { get; init; } = [];

    /// <summary>
    /// Checksum of every file in <see cref="Completed"/>, computed as it was written: <c>crc32c:</c> + 8 hex digits
    /// (<see cref="ShardChecksum"/>), or 64 hex digits of SHA-256 in files written before CRC32C.
    /// </summary>
    public Dictionary<string, string> Checksums { get; init; } = new(StringComparer.Ordinal);

    /// <summary>The file name for a part.</summary>
    public static string FileName(PartSelection part) => $"{Prefix}{part.Index}-of-{part.Count}.json";

    /// <summary>All progress files in a folder.</summary>
    public static IReadOnlyList<MergeProgressFile> ReadAll(string folder) =>
        Directory.Exists(folder)
            ? Directory.GetFiles(folder, Prefix + "*.json").Order(StringComparer.Ordinal).Select(Read).ToArray()
            : [];

    /// <summary>Reads one file.</summary>
    public static MergeProgressFile Read(string path)
    {
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            return new MergeProgressFile
            {
                PlanHash = (string)json["plan_hash"]!,
                RecipeText = (string)json["recipe"]!,
                RecipePath = (string)json["recipe_path"]!,
                Part = new PartSelection((int)json["part"]!, (int)json["parts"]!),
                Seed = (ulong)json["seed"]!,
                MaxShardBytes = (long)json["max_shard_bytes"]!,
                PartShards = json["part_shards"]!.AsArray().Select(n => (string)n!).ToArray(),
                Completed = json["completed"]!.AsArray().Select(n => (string)n!).ToList(),
                Checksums = json["checksums"] is JsonObject sums
                    ? sums.ToDictionary(p => p.Key, p => (string)p.Value!, StringComparer.Ordinal)
                    : new Dictionary<string, string>(StringComparer.Ordinal),
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException)
        {
            throw new WeldException($"{path}: unreadable progress file ({e.Message}); delete the partial folder and start again");
        }
    }

    /// <summary>Writes the file atomically (write, sync, rename).</summary>
    public void Write(string folder)
    {
        var json = new JsonObject
        {
            ["plan_hash"] = PlanHash,
            ["part"] = Part.Index,
            ["parts"] = Part.Count,
            ["seed"] = Seed,
            ["max_shard_bytes"] = MaxShardBytes,
            ["recipe_path"] = RecipePath,
            ["recipe"] = RecipeText,
            ["part_shards"] = new JsonArray(PartShards.Select(s => (JsonNode)s).ToArray()),
            ["completed"] = new JsonArray(Completed.Select(s => (JsonNode)s).ToArray()),
            ["checksums"] = new JsonObject(Completed.Where(Checksums.ContainsKey)
                .Select(s => KeyValuePair.Create(s, (JsonNode?)Checksums[s]))),
        };
        string path = Path.Combine(folder, FileName(Part));
        string temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write))
        {
            stream.Write(Encoding.UTF8.GetBytes(json.ToJsonString(new JsonSerializerOptions { WriteIndented = true })));
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>True when a completed shard on disk still has the planned size and header.</summary>
    public static bool ShardIsIntact(string folder, ShardPlan shard)
    {
        string path = Path.Combine(folder, shard.FileName);
        if (!File.Exists(path)) return false;
        try
        {
            using var file = SafeTensorsFile.Open(path);
            if (file.Tensors.Count != shard.Tensors.Count) return false;
            foreach (TensorHeader planned in shard.Tensors)
            {
                if (!file.TryGetTensor(planned.Name, out TensorInfo info)) return false;
                if (info.DType != planned.DType || !info.Shape.AsSpan().SequenceEqual(planned.Shape)) return false;
            }
            return true;
        }
        catch (WeldException)
        {
            return false;
        }
    }

    /// <summary>
    /// True when a completed shard on disk has the planned size and header and the checksum recorded when it was
    /// written (a shard with no recorded checksum does not match).
    /// </summary>
    public bool ShardMatches(string folder, ShardPlan shard)
    {
        if (!Checksums.TryGetValue(shard.FileName, out string? expected) || !ShardIsIntact(folder, shard)) return false;
        try
        {
            return ShardChecksum.ComputeFile(Path.Combine(folder, shard.FileName), expected) == expected;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>
    /// Fingerprint of a run: Weld's version, the recipe text, seed, shard size, the shard layout, and every input:
    /// model files by path, size and modification time, LoRA adapters of <c>model+lora</c> references by content
    /// (<see cref="Planning.ModelSet.Fingerprint"/>).
    /// </summary>
    public static string ComputePlanHash(string recipeText, ulong seed, long maxShardBytes, IReadOnlyList<ShardPlan> shards, Planning.ModelSet models)
    {
        var lines = new List<string>();
        for (int i = 0; i < models.Folders.Count; i++) lines.AddRange(models.Fingerprint(i));
        return ComputePlanHash(recipeText, seed, maxShardBytes, shards, lines);
    }

    /// <summary>
    /// Fingerprint of a run: Weld's version, the recipe text, seed, shard size, the shard layout, and every input
    /// file's path, size and modification time.
    /// </summary>
    public static string ComputePlanHash(string recipeText, ulong seed, long maxShardBytes, IReadOnlyList<ShardPlan> shards, IEnumerable<ModelFolder> models) =>
        ComputePlanHash(recipeText, seed, maxShardBytes, shards, models.SelectMany(m => m.Files).Select(file =>
        {
            var info = new FileInfo(file.FilePath);
            return $"{info.FullName},{info.Length},{info.LastWriteTimeUtc.Ticks}";
        }));

    private static string ComputePlanHash(string recipeText, ulong seed, long maxShardBytes, IReadOnlyList<ShardPlan> shards, IEnumerable<string> inputs)
    {
        var text = new StringBuilder();
        text.Append(typeof(MergeProgressFile).Assembly.GetName().Version).Append('\n');
        text.Append(recipeText).Append('\n').Append(seed).Append('\n').Append(maxShardBytes).Append('\n');
        foreach (var shard in shards)
        {
            text.Append(shard.FileName).Append(':');
            foreach (var t in shard.Tensors) text.Append(t.Name).Append(',').Append(t.DType).Append(',').Append(string.Join('x', t.Shape)).Append(';');
            text.Append('\n');
        }
        foreach (string input in inputs) text.Append(input).Append('\n');
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }
}
