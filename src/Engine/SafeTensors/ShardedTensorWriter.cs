namespace Weld.Engine.SafeTensors;

/// <summary>
/// Writes a checkpoint's tensors one after another into size-limited shards (<see cref="ShardLayout.Plan"/>: one
/// <c>model.safetensors</c>, or <c>model-0000i-of-0000N.safetensors</c> files and <c>model.safetensors.index.json</c>),
/// one shard file open at a time: for commands that produce tensors in order and have no use for the merge
/// executor's parallel shard writers.
/// </summary>
public sealed class ShardedTensorWriter : IDisposable
{
    private readonly string _folder;
    private readonly Dictionary<string, int> _shardOf = new(StringComparer.Ordinal);
    private SafeTensorsWriter? _writer;
    private int _open = -1;

    /// <summary>Plans the shards of <paramref name="tensors"/> (in write order) inside <paramref name="folder"/>.</summary>
    /// <exception cref="WeldException"><paramref name="maxShardBytes"/> is not positive.</exception>
    public ShardedTensorWriter(string folder, IReadOnlyList<TensorHeader> tensors, long maxShardBytes)
    {
        ArgumentNullException.ThrowIfNull(folder);
        _folder = folder;
        Shards = ShardLayout.Plan(tensors, maxShardBytes);
        for (int s = 0; s < Shards.Count; s++)
            foreach (TensorHeader tensor in Shards[s].Tensors) _shardOf[tensor.Name] = s;
    }

    /// <summary>The shards, in write order.</summary>
    public IReadOnlyList<ShardPlan> Shards { get; }

    /// <summary>
    /// The writer that tensor <paramref name="name"/>'s bytes go to: the open shard's, or (once the open shard is
    /// complete) the next shard's, which this opens after completing the previous one.
    /// </summary>
    /// <exception cref="WeldException">The tensor is not planned, or comes out of order.</exception>
    public SafeTensorsWriter For(string name)
    {
        if (!_shardOf.TryGetValue(name, out int shard))
            throw new WeldException($"{_folder}: tensor '{name}' is not in the planned output.");
        if (shard == _open) return _writer!;
        if (shard != _open + 1)
            throw new WeldException($"{_folder}: tensor '{name}' belongs to shard {shard + 1} but shard {_open + 1} is open; tensors must come in plan order.");
        _writer?.Complete();
        _writer?.Dispose();
        _writer = null;
        _open = shard;
        _writer = new SafeTensorsWriter(Path.Combine(_folder, Shards[shard].FileName), Shards[shard].Tensors, null);
        return _writer;
    }

    /// <summary>Completes the last shard (every shard must have been reached) and writes the index when there are several.</summary>
    /// <exception cref="WeldException">A tensor is missing bytes, or a shard was never written.</exception>
    public void Complete()
    {
        if (_open != Shards.Count - 1)
            throw new WeldException($"{_folder}: incomplete: {Shards.Count - 1 - _open} of {Shards.Count} shard(s) not written.");
        _writer!.Complete();
        ShardIndex.Write(_folder, Shards);
    }

    /// <summary>Closes the open shard; an incomplete one stays incomplete (the caller's output folder discards it).</summary>
    public void Dispose() => _writer?.Dispose();
}
