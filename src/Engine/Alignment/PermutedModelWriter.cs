using Weld.Engine.Models;
using Weld.Engine.SafeTensors;

namespace Weld.Engine.Alignment;

/// <summary>
/// Writes a model folder with permutations applied to its stored tensors: the same files (shards and index
/// included), tensors, dtypes, order and metadata; permuted tensors hold the original bits in a new order.
/// The folder appears atomically (<see cref="OutputFolder"/>). Streams: tensors are read in place from the
/// mapped files and written row by row, so the working set is one row, whatever the model's size.
/// </summary>
public static class PermutedModelWriter
{
    /// <summary>Bytes per write of an unpermuted tensor.</summary>
    private const int CopyPiece = 64 << 20;

    /// <summary>Writes <paramref name="source"/> permuted to <paramref name="outputPath"/>.</summary>
    /// <param name="source">The model to permute (not an adapter).</param>
    /// <param name="spec">Which axes each permutation reorders (validated against the source's shapes).</param>
    /// <param name="permutations">One per group of <paramref name="spec"/>.</param>
    /// <param name="outputPath">The folder to create.</param>
    /// <param name="overwrite">Whether an existing folder may be replaced.</param>
    /// <param name="otherInputs">Other inputs of the command (the reference model): the output may not be, hold or lie inside one, nor the source.</param>
    /// <exception cref="WeldException">The source is an adapter, a permutation does not fit, or the target exists.</exception>
    public static void Write(ModelFolder source, PermutationSpec spec, IReadOnlyList<int[]> permutations, string outputPath, bool overwrite,
        IEnumerable<string>? otherInputs = null)
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
        using var output = new OutputFolder(outputPath, overwrite, (otherInputs ?? []).Append(source.Path));
        byte[] rowBuffer = [];
        foreach (SafeTensorsFile file in source.Files)
        {
            var headers = new List<TensorHeader>(file.Tensors.Count);
            foreach (TensorInfo info in file.Tensors) headers.Add(new TensorHeader(info.Name, info.DType, info.Shape));
            using var writer = new SafeTensorsWriter(Path.Combine(output.WorkPath, Path.GetFileName(file.FilePath)), headers, file.Metadata);
            foreach (TensorInfo info in file.Tensors)
            {
                int[]? groups = spec.GroupsOf(info.Name);
                if (groups is null) CopyBytes(file, info, writer);
                else WriteRows(file, info, spec.IndexMaps(info.Name, info.Shape.Length, permutations), writer, ref rowBuffer);
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

    /// <summary>Copies a tensor's stored bytes in bounded pieces (any size; the mapping is read in place).</summary>
    private static void CopyBytes(SafeTensorsFile file, TensorInfo info, SafeTensorsWriter writer)
    {
        for (long done = 0; done < info.ByteLength;)
        {
            int count = (int)Math.Min(CopyPiece, info.ByteLength - done);
            writer.WriteBytes(file.GetBytes(info, done, count));
            done += count;
        }
    }

    /// <summary>
    /// Writes a permuted tensor row by row: output row i is stored row <c>rowMap[i]</c> with its elements gathered
    /// through <c>columnMap</c>, so one row buffer is the whole working set (never a permuted copy of the tensor).
    /// </summary>
    private static void WriteRows(SafeTensorsFile file, TensorInfo info, int[]?[] maps, SafeTensorsWriter writer, ref byte[] rowBuffer)
    {
        int elementSize = DTypes.SizeOf(info.DType);
        // A 1-D tensor is one row whose only axis is the column axis.
        int rows = info.Shape.Length == 1 ? 1 : checked((int)info.Shape[0]);
        long columns = info.Shape[^1];
        int[]? rowMap = info.Shape.Length == 1 ? null : maps[0];
        int[]? columnMap = maps[^1];
        int rowBytes = checked((int)(columns * elementSize));
        if (rowBuffer.Length < rowBytes) rowBuffer = new byte[rowBytes];
        Span<byte> gathered = rowBuffer.AsSpan(0, rowBytes);
        for (int i = 0; i < rows; i++)
        {
            ReadOnlySpan<byte> row = file.GetBytes(info, (long)(rowMap is null ? i : rowMap[i]) * rowBytes, rowBytes);
            if (columnMap is null)
            {
                writer.WriteBytes(row);
                continue;
            }

            TensorPermuter.Permute(row, gathered, [columns], [columnMap], elementSize);
            writer.WriteBytes(gathered);
        }
    }
}
