namespace Weld.Engine.SafeTensors;

/// <summary>One output file of a sharded checkpoint: its file name and the tensors it holds, in order.</summary>
/// <param name="FileName">File name inside the output folder ("model-00001-of-00003.safetensors").</param>
/// <param name="Tensors">The tensors of this shard, in write order.</param>
public sealed record ShardPlan(string FileName, IReadOnlyList<TensorHeader> Tensors)
{
    /// <summary>Sum of the shard's tensor bytes (its data section).</summary>
    public long DataBytes
    {
        get
        {
            long total = 0;
            foreach (TensorHeader tensor in Tensors) total += tensor.ByteLength;
            return total;
        }
    }
}

/// <summary>Splits a checkpoint's tensors into shards of bounded size, named as Hugging Face names them.</summary>
public static class ShardLayout
{
    /// <summary>The file name of an unsharded checkpoint.</summary>
    public const string SingleFileName = "model.safetensors";

    /// <summary>
    /// Greedy in the given order: a tensor starts a new shard when adding it would take the current shard's data
    /// past <paramref name="maxShardBytes"/> and the current shard is not empty (so a tensor larger than the budget
    /// gets a shard of its own). One shard is named <c>model.safetensors</c>; N &gt; 1 shards
    /// <c>model-0000i-of-0000N.safetensors</c> (5 digits, 1-based).
    /// </summary>
    /// <exception cref="WeldException"><paramref name="maxShardBytes"/> is not positive.</exception>
    public static IReadOnlyList<ShardPlan> Plan(IReadOnlyList<TensorHeader> tensors, long maxShardBytes)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (maxShardBytes <= 0)
            throw new WeldException($"The shard size must be positive, got {maxShardBytes} bytes.");

        var groups = new List<List<TensorHeader>>();
        var current = new List<TensorHeader>();
        long currentBytes = 0;
        foreach (TensorHeader tensor in tensors)
        {
            long bytes = tensor.ByteLength;
            if (current.Count > 0 && bytes > maxShardBytes - currentBytes)
            {
                groups.Add(current);
                current = [];
                currentBytes = 0;
            }

            current.Add(tensor);
            currentBytes += bytes;
        }

        if (current.Count > 0 || groups.Count == 0) groups.Add(current);

        var plans = new ShardPlan[groups.Count];
        for (int i = 0; i < groups.Count; i++)
        {
            string name = groups.Count == 1 ? SingleFileName : ShardName(i + 1, groups.Count);
            plans[i] = new ShardPlan(name, groups[i]);
        }

        return plans;
    }

    /// <summary>The Hugging Face shard file name: <c>model-{index:00000}-of-{count:00000}.safetensors</c>.</summary>
    public static string ShardName(int index, int count) => $"model-{index:D5}-of-{count:D5}.safetensors";
}
