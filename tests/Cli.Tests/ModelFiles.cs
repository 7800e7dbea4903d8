using System.Runtime.InteropServices;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;

namespace Weld.Cli.Tests;

/// <summary>Reads merged outputs and builds broken copies of real models for the error tests.</summary>
internal static class ModelFiles
{
    /// <summary>Every tensor of the model at <paramref name="folder"/> as float32 values, by name.</summary>
    public static Dictionary<string, float[]> ReadAll(string folder)
    {
        using ModelFolder model = ModelFolder.Open(folder);
        var values = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (string name in model.TensorNames) values.Add(name, Read(model, name));
        return values;
    }

    /// <summary>One tensor as float32 values.</summary>
    public static float[] Read(ModelFolder model, string name)
    {
        ModelTensor tensor = model.GetTensor(name);
        var values = new float[tensor.ElementCount];
        tensor.ReadFloat32(0, values);
        return values;
    }

    /// <summary>Bit patterns of float values, so that equality means bit-for-bit (and -0 != +0).</summary>
    public static int[] Bits(float[] values) => MemoryMarshal.Cast<float, int>(values).ToArray();

    /// <summary>Copies every file of <paramref name="source"/> into a new folder <paramref name="destination"/>.</summary>
    public static string Copy(string source, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (string file in Directory.EnumerateFiles(source))
            File.Copy(file, Path.Combine(destination, Path.GetFileName(file)));
        return destination;
    }

    /// <summary>
    /// Writes a copy of the single-file model <paramref name="source"/> to <paramref name="destination"/> with
    /// <see cref="SafeTensorsWriter"/>: <paramref name="reshape"/> returns null to drop a tensor, or the shape to
    /// store it with (its first bytes are kept). config.json is copied.
    /// </summary>
    public static string Rewrite(string source, string destination, Func<string, long[], long[]?> reshape)
    {
        Directory.CreateDirectory(destination);
        File.Copy(Path.Combine(source, "config.json"), Path.Combine(destination, "config.json"));
        using SafeTensorsFile input = SafeTensorsFile.Open(Path.Combine(source, ShardLayout.SingleFileName));
        var kept = new List<(TensorInfo Info, TensorHeader Header)>();
        foreach (TensorInfo info in input.Tensors)
            if (reshape(info.Name, info.Shape) is { } shape)
                kept.Add((info, new TensorHeader(info.Name, info.DType, shape)));

        using var writer = new SafeTensorsWriter(Path.Combine(destination, ShardLayout.SingleFileName),
            kept.Select(k => k.Header).ToArray(), metadata: null);
        foreach ((TensorInfo info, TensorHeader header) in kept)
            writer.WriteBytes(input.GetBytes(info, 0, checked((int)header.ByteLength)));
        writer.Complete();
        return destination;
    }
}
