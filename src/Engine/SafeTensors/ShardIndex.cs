using System.Text.Encodings.Web;
using System.Text.Json;

namespace Weld.Engine.SafeTensors;

/// <summary>The contents of a <c>model.safetensors.index.json</c>.</summary>
/// <param name="TotalSize">The <c>metadata.total_size</c> value, when present.</param>
/// <param name="Entries">The <c>weight_map</c> entries (tensor name, shard file name) in file order.</param>
public sealed record ShardIndexContents(long? TotalSize, IReadOnlyList<KeyValuePair<string, string>> Entries)
{
    /// <summary>The weight map as a dictionary: tensor name to shard file name.</summary>
    public IReadOnlyDictionary<string, string> WeightMap { get; } =
        Entries.ToDictionary(e => e.Key, e => e.Value, StringComparer.Ordinal);
}

/// <summary>Reads and writes <c>model.safetensors.index.json</c>, the map from tensor names to shard files.</summary>
public static class ShardIndex
{
    /// <summary>The index file name.</summary>
    public const string FileName = "model.safetensors.index.json";

    /// <summary>
    /// Writes <c>{"metadata": {"total_size": N}, "weight_map": {name: file}}</c> (keys sorted, indented) into
    /// <paramref name="folder"/> when there is more than one shard; a single shard needs no index and gets none.
    /// </summary>
    public static void Write(string folder, IReadOnlyList<ShardPlan> shards)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(shards);
        if (shards.Count <= 1) return;

        long totalSize = 0;
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (ShardPlan shard in shards)
        {
            foreach (TensorHeader tensor in shard.Tensors)
            {
                map.Add(tensor.Name, shard.FileName);
                totalSize += tensor.ByteLength;
            }
        }

        string path = Path.Combine(folder, FileName);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions
        {
            Indented = true,
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }))
        {
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteNumber("total_size", totalSize);
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            foreach (KeyValuePair<string, string> entry in map) json.WriteString(entry.Key, entry.Value);
            json.WriteEndObject();
            json.WriteEndObject();
        }

        stream.WriteByte((byte)'\n');
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Reads an index file, checking its structure (not the shard files it names).</summary>
    /// <exception cref="InvalidModelFileException">The file is not a well-formed index.</exception>
    public static ShardIndexContents Read(string indexPath)
    {
        ArgumentNullException.ThrowIfNull(indexPath);
        string path = Path.GetFullPath(indexPath);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new WeldException($"{path}: cannot read the shard index ({e.Message}).", e);
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new InvalidModelFileException(path, $"the shard index is not valid JSON ({e.Message}).");
        }

        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidModelFileException(path, "the shard index must be a JSON object.");

            long? totalSize = null;
            if (root.TryGetProperty("metadata", out JsonElement metadata) && metadata.ValueKind == JsonValueKind.Object &&
                metadata.TryGetProperty("total_size", out JsonElement total))
            {
                // Some writers store total_size as a float (e.g. 1706240.0); accept any integral number.
                if (total.ValueKind != JsonValueKind.Number)
                    throw new InvalidModelFileException(path, "metadata.total_size in the shard index is not a number.");
                if (total.TryGetInt64(out long exact)) totalSize = exact;
                else if (total.TryGetDouble(out double approx) && approx >= 0 && approx == Math.Floor(approx) && approx < 9e18)
                    totalSize = (long)approx;
                else
                    throw new InvalidModelFileException(path, $"metadata.total_size {total.GetRawText()} in the shard index is not a byte count.");
            }

            if (!root.TryGetProperty("weight_map", out JsonElement weightMap) || weightMap.ValueKind != JsonValueKind.Object)
                throw new InvalidModelFileException(path, "the shard index has no 'weight_map' object.");

            var entries = new List<KeyValuePair<string, string>>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty entry in weightMap.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(entry.Value.GetString()))
                    throw new InvalidModelFileException(path, $"weight_map entry for tensor '{entry.Name}' is not a file name.");
                if (!seen.Add(entry.Name))
                    throw new InvalidModelFileException(path, $"weight_map lists tensor '{entry.Name}' more than once.");
                entries.Add(new KeyValuePair<string, string>(entry.Name, entry.Value.GetString()!));
            }

            return new ShardIndexContents(totalSize, entries);
        }
    }
}
