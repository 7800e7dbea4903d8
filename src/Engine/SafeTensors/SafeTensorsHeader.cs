using System.Text.Json;

namespace Weld.Engine.SafeTensors;

/// <summary>
/// Parses and validates the JSON header of a safetensors file. Every fault gets its own message naming the file
/// (through <see cref="InvalidModelFileException"/>) and the tensor.
/// </summary>
internal static class SafeTensorsHeader
{
    /// <summary>The largest header accepted, as in the Hugging Face implementation (guards against absurd allocations).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>The reserved header key for string metadata.</summary>
    public const string MetadataKey = "__metadata__";

    /// <summary>Parses <paramref name="json"/>; <paramref name="dataLength"/> is the size of the data section after it.</summary>
    public static (List<TensorInfo> Tensors, Dictionary<string, string> Metadata) Parse(
        string path, ReadOnlyMemory<byte> json, long dataLength)
    {
        // JsonDocument accepts invalid UTF-8 inside strings and only fails when a name is read back: check first.
        if (!System.Text.Unicode.Utf8.IsValid(json.Span))
        {
            int valid = 0;
            try
            {
                _ = new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetCharCount(json.Span);
            }
            catch (System.Text.DecoderFallbackException e)
            {
                valid = e.Index;
            }
            throw new InvalidModelFileException(path,
                $"the safetensors header is not valid UTF-8 (bad byte near header offset {valid}): the file is corrupt or not a safetensors file.");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new InvalidModelFileException(path, $"the safetensors header is not valid JSON ({e.Message}).");
        }

        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidModelFileException(path,
                    $"the safetensors header must be a JSON object, but it is {Describe(root.ValueKind)}.");
            }

            var tensors = new List<TensorInfo>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty property in root.EnumerateObject())
            {
                // JsonDocument keeps duplicate keys, so a name listed twice is caught here rather than silently merged.
                if (!seen.Add(property.Name))
                {
                    throw new InvalidModelFileException(path,
                        $"the header lists '{property.Name}' more than once (duplicate tensor name).");
                }

                if (property.Name == MetadataKey)
                    ReadMetadata(path, property.Value, metadata);
                else
                    tensors.Add(ReadTensor(path, property.Name, property.Value, dataLength));
            }

            CheckLayout(path, tensors, dataLength);
            return (tensors, metadata);
        }
    }

    private static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidModelFileException(path,
                $"'{MetadataKey}' must be an object mapping strings to strings, but it is {Describe(value.ValueKind)}.");
        }

        foreach (JsonProperty entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
            {
                throw new InvalidModelFileException(path,
                    $"'{MetadataKey}' must map strings to strings, but '{entry.Name}' is {Describe(entry.Value.ValueKind)}.");
            }

            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
                throw new InvalidModelFileException(path, $"'{MetadataKey}' lists the key '{entry.Name}' more than once.");
        }
    }

    private static TensorInfo ReadTensor(string path, string name, JsonElement entry, long dataLength)
    {
        if (entry.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidModelFileException(path,
                $"tensor '{name}': the header entry must be an object with dtype, shape and data_offsets, but it is {Describe(entry.ValueKind)}.");
        }

        JsonElement dtypeElement = Required(path, name, entry, "dtype");
        JsonElement shapeElement = Required(path, name, entry, "shape");
        JsonElement offsetsElement = Required(path, name, entry, "data_offsets");

        string? dtypeName = dtypeElement.ValueKind == JsonValueKind.String ? dtypeElement.GetString() : null;
        if (dtypeName is null || !DTypes.TryParse(dtypeName, out DType dtype))
        {
            string shown = dtypeName ?? dtypeElement.GetRawText();
            throw new InvalidModelFileException(path,
                $"tensor '{name}' has unknown dtype '{shown}' (known: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2).");
        }

        long[] shape = ReadShape(path, name, shapeElement);
        (long begin, long end) = ReadOffsets(path, name, offsetsElement);
        string shapeText = "[" + string.Join(", ", shape) + "]";

        if (begin > end)
        {
            throw new InvalidModelFileException(path,
                $"tensor '{name}' has data_offsets [{begin}, {end}] whose begin is greater than its end.");
        }

        if (end > dataLength)
        {
            throw new InvalidModelFileException(path,
                $"tensor '{name}' has data_offsets [{begin}, {end}] that end beyond the data section ({dataLength} bytes): the file is truncated or the header is wrong.");
        }

        long expectedBytes;
        try
        {
            long count = 1;
            foreach (long dimension in shape) count = checked(count * dimension);
            expectedBytes = checked(count * DTypes.SizeOf(dtype));
        }
        catch (OverflowException)
        {
            throw new InvalidModelFileException(path, $"tensor '{name}' has shape {shapeText}, too large to address.");
        }

        if (expectedBytes != end - begin)
        {
            throw new InvalidModelFileException(path,
                $"tensor '{name}' has shape {shapeText} of {DTypes.ToName(dtype)}, which needs {expectedBytes} bytes, but data_offsets [{begin}, {end}] span {end - begin} bytes.");
        }

        return new TensorInfo(name, dtype, shape, begin, end - begin);
    }

    private static JsonElement Required(string path, string name, JsonElement entry, string key)
    {
        if (!entry.TryGetProperty(key, out JsonElement value))
            throw new InvalidModelFileException(path, $"tensor '{name}' has no '{key}' in its header entry.");
        return value;
    }

    private static long[] ReadShape(string path, string name, JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidModelFileException(path,
                $"tensor '{name}' has a shape that is {Describe(element.ValueKind)}, not an array of integers.");
        }

        var shape = new long[element.GetArrayLength()];
        int i = 0;
        foreach (JsonElement dimension in element.EnumerateArray())
        {
            if (dimension.ValueKind != JsonValueKind.Number || !dimension.TryGetInt64(out long value))
            {
                throw new InvalidModelFileException(path,
                    $"tensor '{name}' has a shape entry {dimension.GetRawText()} that is not an integer.");
            }

            if (value < 0)
            {
                throw new InvalidModelFileException(path,
                    $"tensor '{name}' has a negative dimension {value} in its shape {element.GetRawText()}.");
            }

            shape[i++] = value;
        }

        return shape;
    }

    private static (long Begin, long End) ReadOffsets(string path, string name, JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Array || element.GetArrayLength() != 2)
        {
            throw new InvalidModelFileException(path,
                $"tensor '{name}' has data_offsets {element.GetRawText()}; expected [begin, end].");
        }

        JsonElement first = element[0], second = element[1];
        if (first.ValueKind != JsonValueKind.Number || !first.TryGetInt64(out long begin) || begin < 0 ||
            second.ValueKind != JsonValueKind.Number || !second.TryGetInt64(out long end) || end < 0)
        {
            throw new InvalidModelFileException(path,
                $"tensor '{name}' has data_offsets {element.GetRawText()}; both must be non-negative integers.");
        }

        return (begin, end);
    }

    /// <summary>
    /// The tensors must tile the data section exactly: sorted by offset, each begins where the previous one
    /// ended, the first at 0 and the last at the end of the file (as the Hugging Face reader demands).
    /// </summary>
    private static void CheckLayout(string path, List<TensorInfo> tensors, long dataLength)
    {
        tensors.Sort(static (a, b) =>
        {
            int byOffset = a.Offset.CompareTo(b.Offset);
            return byOffset != 0 ? byOffset : a.ByteLength.CompareTo(b.ByteLength);
        });

        long expected = 0;
        TensorInfo? previous = null;
        foreach (TensorInfo tensor in tensors)
        {
            if (tensor.Offset < expected)
            {
                throw new InvalidModelFileException(path,
                    $"tensors '{previous!.Name}' [{previous.Offset}, {previous.Offset + previous.ByteLength}) and '{tensor.Name}' [{tensor.Offset}, {tensor.Offset + tensor.ByteLength}) overlap in the data section.");
            }

            if (tensor.Offset > expected)
            {
                string where = previous is null
                    ? "the start of the data section"
                    : $"the end of tensor '{previous.Name}' (offset {expected})";
                throw new InvalidModelFileException(path,
                    $"gap of {tensor.Offset - expected} unused bytes between {where} and tensor '{tensor.Name}' (offset {tensor.Offset}).");
            }

            expected = tensor.Offset + tensor.ByteLength;
            previous = tensor;
        }

        if (expected != dataLength)
        {
            string last = previous is null ? "the header (no tensors)" : $"the last tensor '{previous.Name}'";
            throw new InvalidModelFileException(path,
                $"{dataLength - expected} unexpected bytes follow {last}: the data section is {dataLength} bytes but the tensors cover {expected}.");
        }
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };
}
