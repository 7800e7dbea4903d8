using Weld.Engine.Models;
using Weld.Engine.SafeTensors;

namespace Weld.Engine.Alignment;

/// <summary>
/// Writes a model folder with permutations applied to its stored tensors: the same files (shards and index
/// included), tensors, dtypes, order and metadata; permuted tensors hold the original bits in a new order.
/// The folder appears atomically (<see cref="OutputFolder"/>).
/// </summary>
public static class PermutedModelWriter
{
    /// <summary>Writes <paramref name="source"/> permuted to <paramref name="outputPath"/>.</summary>
    /// <param name="source">The model to permute (not an adapter).</param>
    /// <param name="spec">Which axes each permutation reorders (validated against the source's shapes).</param>
    /// <param name="permutations">One per group of <paramref name="spec"/>.</param>
    /// <param name="outputPath">The folder to create.</param>
    /// <param name="overwrite">Whether an existing folder may be replaced.</param>
    /// <exception cref="WeldException">The source is an adapter, a permutation does not fit, or the target exists.</exception>
    public static void Write(ModelFolder source, PermutationSpec spec, IReadOnlyList<int[]> permutations, string outputPath, bool overwrite)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(permutations);
        if (source.IsAdapter) throw new WeldException($"{source.Path}: is a PEFT adapter; align full checkpoints.");
        if (permutations.Count != spec.Groups.Count)
            throw new WeldException($"{permutations.Count} permutations were given for {spec.Groups.Count} groups.");
        for (int g = 0; g < permutations.Count; g++)
        {
            if (permutations[g] is null || !spec.Groups[g].Admits(permutations[g]))
                throw new WeldException($"permutation '{spec.Groups[g].Name}' is not a permutation of {spec.Groups[g].Size} units that keeps its unit groups together.");
        }

        spec.Validate(source.Path, name => source.Contains(name) ? source.GetTensor(name).Shape : null);
        using var output = new OutputFolder(outputPath, overwrite);
        foreach (SafeTensorsFile file in source.Files)
        {
            var headers = new List<TensorHeader>(file.Tensors.Count);
            foreach (TensorInfo info in file.Tensors) headers.Add(new TensorHeader(info.Name, info.DType, info.Shape));
            using var writer = new SafeTensorsWriter(Path.Combine(output.WorkPath, Path.GetFileName(file.FilePath)), headers, file.Metadata);
            foreach (TensorInfo info in file.Tensors)
            {
                if (info.ByteLength > Array.MaxLength)
                    throw new InvalidModelFileException(file.FilePath, $"tensor '{info.Name}' has {info.ByteLength} bytes, more than one buffer can hold.");
                ReadOnlySpan<byte> bytes = file.GetBytes(info, 0, (int)info.ByteLength);
                int[]? groups = spec.GroupsOf(info.Name);
                if (groups is null)
                {
                    writer.WriteBytes(bytes);
                    continue;
                }

                var permuted = new byte[bytes.Length];
                TensorPermuter.Permute(bytes, permuted, info.Shape, spec.IndexMaps(info.Name, info.Shape.Length, permutations), DTypes.SizeOf(info.DType));
                writer.WriteBytes(permuted);
            }

            writer.Complete();
        }

        // Everything else (config, shard index, tokenizer) is unchanged by a permutation of hidden units.
        foreach (string name in (ReadOnlySpan<string>)["config.json", ShardIndex.FileName])
        {
            string from = Path.Combine(source.Path, name);
            if (File.Exists(from)) File.Copy(from, Path.Combine(output.WorkPath, name), overwrite: true);
        }

        foreach (string file in source.SideFiles) File.Copy(file, Path.Combine(output.WorkPath, Path.GetFileName(file)), overwrite: true);
        output.Commit();
    }
}
