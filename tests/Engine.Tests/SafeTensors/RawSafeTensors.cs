using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Weld.Engine.Tests.SafeTensors;

/// <summary>
/// A deliberately tiny, independent safetensors reader/builder for tests: reads the whole file into memory,
/// decodes the header with JsonDocument and slices bytes by hand. No code shared with the engine.
/// </summary>
internal sealed class RawSafeTensors
{
    public sealed record Entry(string DType, long[] Shape, long Begin, long End);

    public required Dictionary<string, Entry> Entries { get; init; }
    public required Dictionary<string, string> Metadata { get; init; }
    public required byte[] Bytes { get; init; }
    public required long DataStart { get; init; }
    public required long HeaderLength { get; init; }

    public static RawSafeTensors Read(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        using JsonDocument doc = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
        var entries = new Dictionary<string, Entry>();
        var metadata = new Dictionary<string, string>();
        foreach (JsonProperty p in doc.RootElement.EnumerateObject())
        {
            if (p.Name == "__metadata__")
            {
                foreach (JsonProperty m in p.Value.EnumerateObject()) metadata[m.Name] = m.Value.GetString()!;
                continue;
            }

            long[] shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            JsonElement offsets = p.Value.GetProperty("data_offsets");
            entries[p.Name] = new Entry(p.Value.GetProperty("dtype").GetString()!, shape, offsets[0].GetInt64(), offsets[1].GetInt64());
        }

        return new RawSafeTensors
        {
            Entries = entries, Metadata = metadata, Bytes = bytes, DataStart = 8 + headerLength, HeaderLength = headerLength,
        };
    }

    public ReadOnlySpan<byte> TensorBytes(string name)
    {
        Entry e = Entries[name];
        return Bytes.AsSpan((int)(DataStart + e.Begin), (int)(e.End - e.Begin));
    }

    /// <summary>Decodes every element to double from the format definitions (bf16 = top half of f32, etc.).</summary>
    public double[] Values(string name)
    {
        Entry e = Entries[name];
        ReadOnlySpan<byte> b = TensorBytes(name);
        int size = e.DType switch { "F64" or "I64" => 8, "F32" or "I32" => 4, "F16" or "BF16" or "I16" => 2, _ => 1 };
        var values = new double[b.Length / size];
        for (int i = 0; i < values.Length; i++)
        {
            ReadOnlySpan<byte> x = b.Slice(i * size, size);
            values[i] = e.DType switch
            {
                "F64" => BinaryPrimitives.ReadDoubleLittleEndian(x),
                "F32" => BinaryPrimitives.ReadSingleLittleEndian(x),
                "BF16" => BitConverter.UInt32BitsToSingle((uint)BinaryPrimitives.ReadUInt16LittleEndian(x) << 16),
                "F16" => (double)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(x)),
                "I64" => BinaryPrimitives.ReadInt64LittleEndian(x),
                "I32" => BinaryPrimitives.ReadInt32LittleEndian(x),
                "I16" => BinaryPrimitives.ReadInt16LittleEndian(x),
                "I8" => (sbyte)x[0],
                "U8" => x[0],
                "BOOL" => x[0] != 0 ? 1 : 0,
                _ => throw new NotSupportedException(e.DType),
            };
        }

        return values;
    }

    /// <summary>Writes a file from a header text and a data section as given (no validation: for corrupt files).</summary>
    public static string WriteFile(string path, string headerJson, byte[] data, ulong? headerLengthOverride = null)
    {
        byte[] header = Encoding.UTF8.GetBytes(headerJson);
        using var stream = File.Create(path);
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, headerLengthOverride ?? (ulong)header.Length);
        stream.Write(prefix);
        stream.Write(header);
        stream.Write(data);
        return path;
    }
}
