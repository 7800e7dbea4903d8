using System.Text.Json.Nodes;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;

namespace Weld.Engine.Alignment;

/// <summary>One axis of one tensor that a permutation reorders.</summary>
/// <param name="Tensor">The tensor's name.</param>
/// <param name="Axis">The axis (0 = rows of a Linear <c>[out, in]</c> weight or a bias, 1 = its columns).</param>
/// <param name="BlockSize">Consecutive indices per unit along the axis (an attention head's <c>head_dim</c> rows; 1 for a neuron).</param>
/// <param name="PerUnitGroup">Whether the axis is indexed by the group's unit groups (<see cref="PermutationGroup.GroupSize"/>
/// units each; a key/value head shared by several query heads) rather than by single units.</param>
public readonly record struct PermutedAxis(string Tensor, int Axis, int BlockSize = 1, bool PerUnitGroup = false);

/// <summary>
/// A permutation of <paramref name="Size"/> units that leaves the network's function unchanged when it is applied
/// to every listed axis at once (e.g. a hidden layer's units: its weight rows and bias, the next weight's columns).
/// </summary>
/// <param name="Name">A name for messages and reports (e.g. <c>hidden.0</c>).</param>
/// <param name="Size">The number of units.</param>
/// <param name="Axes">Every tensor axis indexed by these units (or by their unit groups).</param>
/// <param name="GroupSize">Units per unit group: the permutation may move whole groups and units within a group,
/// never a unit into another group (query heads sharing a key/value head under GQA). 1 = unconstrained.</param>
public sealed record PermutationGroup(string Name, int Size, IReadOnlyList<PermutedAxis> Axes, int GroupSize = 1)
{
    /// <summary>Number of unit groups (<see cref="Size"/> / <see cref="GroupSize"/>).</summary>
    public int UnitGroups => Size / GroupSize;

    /// <summary>The length an axis must have: units (or unit groups) times the block size.</summary>
    public long AxisLength(PermutedAxis axis) => (long)(axis.PerUnitGroup ? UnitGroups : Size) * axis.BlockSize;

    /// <summary>Whether <paramref name="permutation"/> is a permutation of the units that keeps every unit group together.</summary>
    public bool Admits(ReadOnlySpan<int> permutation)
    {
        if (permutation.Length != Size || !TensorPermuter.IsPermutation(permutation)) return false;
        for (int g = 0; g < UnitGroups; g++)
        {
            int sourceGroup = permutation[g * GroupSize] / GroupSize;
            for (int t = 1; t < GroupSize; t++)
                if (permutation[g * GroupSize + t] / GroupSize != sourceGroup) return false;
        }

        return true;
    }

    /// <summary>
    /// The element-index map a unit permutation induces on <paramref name="axis"/>: entry <c>x</c> is the source index
    /// placed at <c>x</c>.
    /// </summary>
    public int[] IndexMap(PermutedAxis axis, ReadOnlySpan<int> permutation)
    {
        int units = axis.PerUnitGroup ? UnitGroups : Size, block = axis.BlockSize;
        var map = new int[checked(units * block)];
        for (int u = 0; u < units; u++)
        {
            int source = axis.PerUnitGroup ? permutation[u * GroupSize] / GroupSize : permutation[u];
            for (int e = 0; e < block; e++) map[u * block + e] = source * block + e;
        }

        return map;
    }
}

/// <summary>
/// Which tensor axes are indexed by which permutation: the symmetry of a network that weight matching searches.
/// Tensors of at most two dimensions; a tensor axis belongs to at most one group.
/// </summary>
public sealed class PermutationSpec
{
    private readonly Dictionary<string, int[]> _groupOfAxis = new(StringComparer.Ordinal);
    private readonly Dictionary<string, PermutedAxis[]> _axisOf = new(StringComparer.Ordinal);

    /// <summary>Creates a spec from its groups.</summary>
    /// <exception cref="ArgumentException">An axis is outside 0..1, a size is not positive, or an axis is listed twice.</exception>
    public PermutationSpec(IReadOnlyList<PermutationGroup> groups)
    {
        ArgumentNullException.ThrowIfNull(groups);
        Groups = groups;
        for (int g = 0; g < groups.Count; g++)
        {
            PermutationGroup group = groups[g];
            if (group.Size <= 0) throw new ArgumentException($"permutation '{group.Name}' has size {group.Size}; it must be positive.", nameof(groups));
            if (group.GroupSize <= 0 || group.Size % group.GroupSize != 0)
                throw new ArgumentException($"permutation '{group.Name}': group size {group.GroupSize} does not divide {group.Size} units.", nameof(groups));
            foreach (PermutedAxis axis in group.Axes)
            {
                if (axis.Axis is < 0 or > 1)
                    throw new ArgumentException($"permutation '{group.Name}': axis {axis.Axis} of '{axis.Tensor}' is not 0 or 1.", nameof(groups));
                if (axis.BlockSize <= 0)
                    throw new ArgumentException($"permutation '{group.Name}': block size {axis.BlockSize} of '{axis.Tensor}' is not positive.", nameof(groups));
                if (!_groupOfAxis.TryGetValue(axis.Tensor, out int[]? owners))
                {
                    _groupOfAxis[axis.Tensor] = owners = [-1, -1];
                    _axisOf[axis.Tensor] = new PermutedAxis[2];
                }
                if (owners[axis.Axis] >= 0)
                {
                    throw new ArgumentException(
                        $"axis {axis.Axis} of '{axis.Tensor}' is in both '{groups[owners[axis.Axis]].Name}' and '{group.Name}'.", nameof(groups));
                }

                owners[axis.Axis] = g;
                _axisOf[axis.Tensor][axis.Axis] = axis;
            }
        }
    }

    /// <summary>The permutation groups, in the order results index them.</summary>
    public IReadOnlyList<PermutationGroup> Groups { get; }

    /// <summary>The names of every tensor some group permutes.</summary>
    public IEnumerable<string> PermutedTensors => _groupOfAxis.Keys;

    /// <summary>
    /// The group index permuting each axis of <paramref name="tensor"/> (-1 for an axis no group touches), or
    /// null when no group touches the tensor.
    /// </summary>
    public int[]? GroupsOf(string tensor) => _groupOfAxis.TryGetValue(tensor, out int[]? owners) ? owners : null;

    /// <summary>
    /// The element-index map of each axis of <paramref name="tensor"/> (<c>map[x]</c> = source index placed at
    /// <c>x</c>) under <paramref name="permutations"/>; null for an axis left alone, or owned by <paramref name="skipGroup"/>.
    /// </summary>
    public int[]?[] IndexMaps(string tensor, int rank, IReadOnlyList<int[]> permutations, int skipGroup = -1)
    {
        ArgumentNullException.ThrowIfNull(permutations);
        var maps = new int[]?[rank];
        if (!_groupOfAxis.TryGetValue(tensor, out int[]? owners)) return maps;
        for (int axis = 0; axis < rank && axis < 2; axis++)
        {
            int g = owners[axis];
            if (g >= 0 && g != skipGroup) maps[axis] = Groups[g].IndexMap(_axisOf[tensor][axis], permutations[g]);
        }

        return maps;
    }

    /// <summary>
    /// Checks that every permuted tensor exists in <paramref name="model"/>, has at most two dimensions, and has
    /// its group's size along each permuted axis.
    /// </summary>
    /// <exception cref="InvalidModelFileException">A tensor is missing or misshapen.</exception>
    public void Validate(TensorSet model)
    {
        ArgumentNullException.ThrowIfNull(model);
        Validate(model.SourceName, name => model.Contains(name) ? model.GetShape(name) : null);
    }

    /// <summary>
    /// Checks shapes given by <paramref name="shapeOf"/> (null for a missing tensor); <paramref name="source"/> names the model in messages.
    /// </summary>
    /// <exception cref="InvalidModelFileException">A tensor is missing or misshapen.</exception>
    public void Validate(string source, Func<string, long[]?> shapeOf)
    {
        ArgumentNullException.ThrowIfNull(shapeOf);
        foreach ((string name, int[] owners) in _groupOfAxis)
        {
            long[] shape = shapeOf(name)
                ?? throw new InvalidModelFileException(source, $"the model has no tensor named '{name}' (needed for permutation alignment).");
            if (shape.Length is < 1 or > 2)
                throw new InvalidModelFileException(source, $"tensor '{name}' has {shape.Length} dimensions; alignment permutes only 1-D and 2-D tensors.");
            for (int axis = 0; axis < 2; axis++)
            {
                if (owners[axis] < 0) continue;
                PermutationGroup group = Groups[owners[axis]];
                long length = group.AxisLength(_axisOf[name][axis]);
                if (axis >= shape.Length || shape[axis] != length)
                {
                    throw new InvalidModelFileException(source,
                        $"tensor '{name}' has shape [{string.Join(", ", shape)}]; permutation '{group.Name}' needs {length} along axis {axis}.");
                }
            }
        }
    }

    /// <summary>
    /// The spec of an MLP described by config.json's <c>layers</c> list: one permutation per hidden layer, over the
    /// rows of its <c>weight</c> and <c>bias</c> and the columns of the next layer's <c>weight</c>.
    /// </summary>
    /// <exception cref="InvalidModelFileException">The config has no usable <c>layers</c> list.</exception>
    public static PermutationSpec ForMlp(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        string file = config.FilePath ?? "config.json";
        if (config.Raw["layers"] is not JsonArray { Count: > 0 } layers)
            throw new InvalidModelFileException(file, "an MLP config needs a non-empty 'layers' list.");
        var groups = new List<PermutationGroup>();
        for (int i = 0; i + 1 < layers.Count; i++)
        {
            if (layers[i] is not JsonObject layer || layers[i + 1] is not JsonObject next)
                throw new InvalidModelFileException(file, $"layers[{i}] and layers[{i + 1}] must be objects.");
            int size = LlamaConfig.OptionalInt(layer, file, "out_features")
                ?? throw new InvalidModelFileException(file, $"layers[{i}] needs 'out_features'.");
            string weight = (string?)layer["weight"] ?? throw new InvalidModelFileException(file, $"layers[{i}] needs 'weight' (a tensor name).");
            string nextWeight = (string?)next["weight"] ?? throw new InvalidModelFileException(file, $"layers[{i + 1}] needs 'weight' (a tensor name).");
            var axes = new List<PermutedAxis> { new(weight, 0) };
            if (layer["bias"] is JsonValue b && b.TryGetValue(out string? bias)) axes.Add(new PermutedAxis(bias, 0));
            axes.Add(new PermutedAxis(nextWeight, 1));
            groups.Add(new PermutationGroup($"hidden.{i}", size, axes));
        }

        return new PermutationSpec(groups);
    }

    /// <summary>
    /// The spec of a Llama decoder: the residual stream (<c>residual</c>: embedding columns, the input columns of
    /// q/k/v/gate/up and lm_head, the output rows of o/down and o's bias, every RMSNorm weight), per layer the
    /// attention heads (<c>attn.{i}</c>: q rows and o columns per query head, k/v rows per key/value head, the query
    /// heads of one key/value head moving together under GQA) and the MLP units (<c>mlp.{i}</c>: gate/up rows with
    /// down columns).
    /// </summary>
    /// <param name="config">The decoder's hyper-parameters.</param>
    /// <param name="hasTensor">Which optional tensors exist (q/k/v/o biases, lm_head); null assumes no biases and an
    /// lm_head exactly when the config does not tie the embeddings.</param>
    /// <remarks>
    /// RMSNorm is invariant under a permutation of its input (its statistic is a sum over units); rotary embeddings
    /// act within a head, so whole heads may move; a head's own dimensions are left in place.
    /// </remarks>
    public static PermutationSpec ForLlama(LlamaConfig config, Func<string, bool>? hasTensor = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        bool Has(string name) => hasTensor?.Invoke(name) ?? (name == "lm_head.weight" && config.TieWordEmbeddings != true);
        var residual = new List<PermutedAxis> { new("model.embed_tokens.weight", 1), new("model.norm.weight", 0) };
        if (Has("lm_head.weight")) residual.Add(new PermutedAxis("lm_head.weight", 1));
        var groups = new List<PermutationGroup>();
        int d = config.HeadDim;
        for (int i = 0; i < config.LayerCount; i++)
        {
            string p = $"model.layers.{i}.";
            string attention = p + "self_attn.", mlp = p + "mlp.";
            residual.Add(new(p + "input_layernorm.weight", 0));
            residual.Add(new(p + "post_attention_layernorm.weight", 0));
            foreach (string name in (ReadOnlySpan<string>)["q_proj", "k_proj", "v_proj"]) residual.Add(new(attention + name + ".weight", 1));
            residual.Add(new(attention + "o_proj.weight", 0));
            if (Has(attention + "o_proj.bias")) residual.Add(new(attention + "o_proj.bias", 0));
            residual.Add(new(mlp + "gate_proj.weight", 1));
            residual.Add(new(mlp + "up_proj.weight", 1));
            residual.Add(new(mlp + "down_proj.weight", 0));

            var heads = new List<PermutedAxis>
            {
                new(attention + "q_proj.weight", 0, d),
                new(attention + "k_proj.weight", 0, d, PerUnitGroup: true),
                new(attention + "v_proj.weight", 0, d, PerUnitGroup: true),
                new(attention + "o_proj.weight", 1, d),
            };
            if (Has(attention + "q_proj.bias")) heads.Add(new(attention + "q_proj.bias", 0, d));
            if (Has(attention + "k_proj.bias")) heads.Add(new(attention + "k_proj.bias", 0, d, PerUnitGroup: true));
            if (Has(attention + "v_proj.bias")) heads.Add(new(attention + "v_proj.bias", 0, d, PerUnitGroup: true));
            groups.Add(new PermutationGroup($"attn.{i}", config.HeadCount, heads, config.HeadCount / config.KeyValueHeadCount));
            groups.Add(new PermutationGroup($"mlp.{i}", config.IntermediateSize,
                [new(mlp + "gate_proj.weight", 0), new(mlp + "up_proj.weight", 0), new(mlp + "down_proj.weight", 1)]));
        }

        groups.Insert(0, new PermutationGroup("residual", config.HiddenSize, residual));
        return new PermutationSpec(groups);
    }
}
