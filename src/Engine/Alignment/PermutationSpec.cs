using System.Text.Json.Nodes;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;

namespace Weld.Engine.Alignment;

/// <summary>One axis of one tensor that a permutation reorders.</summary>
/// <param name="Tensor">The tensor's name.</param>
/// <param name="Axis">The axis (0 = rows of a Linear <c>[out, in]</c> weight or a bias, 1 = its columns).</param>
public readonly record struct PermutedAxis(string Tensor, int Axis);

/// <summary>
/// A permutation of <paramref name="Size"/> units that leaves the network's function unchanged when it is applied
/// to every listed axis at once (e.g. a hidden layer's units: its weight rows and bias, the next weight's columns).
/// </summary>
/// <param name="Name">A name for messages and reports (e.g. <c>hidden.0</c>).</param>
/// <param name="Size">The number of units.</param>
/// <param name="Axes">Every tensor axis indexed by these units.</param>
public sealed record PermutationGroup(string Name, int Size, IReadOnlyList<PermutedAxis> Axes);

/// <summary>
/// Which tensor axes are indexed by which permutation: the symmetry of a network that weight matching searches.
/// Tensors of at most two dimensions; a tensor axis belongs to at most one group.
/// </summary>
public sealed class PermutationSpec
{
    private readonly Dictionary<string, int[]> _groupOfAxis = new(StringComparer.Ordinal);

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
            foreach (PermutedAxis axis in group.Axes)
            {
                if (axis.Axis is < 0 or > 1)
                    throw new ArgumentException($"permutation '{group.Name}': axis {axis.Axis} of '{axis.Tensor}' is not 0 or 1.", nameof(groups));
                if (!_groupOfAxis.TryGetValue(axis.Tensor, out int[]? owners))
                    _groupOfAxis[axis.Tensor] = owners = [-1, -1];
                if (owners[axis.Axis] >= 0)
                {
                    throw new ArgumentException(
                        $"axis {axis.Axis} of '{axis.Tensor}' is in both '{groups[owners[axis.Axis]].Name}' and '{group.Name}'.", nameof(groups));
                }

                owners[axis.Axis] = g;
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
    /// Checks that every permuted tensor exists in <paramref name="model"/>, has at most two dimensions, and has
    /// its group's size along each permuted axis.
    /// </summary>
    /// <exception cref="InvalidModelFileException">A tensor is missing or misshapen.</exception>
    public void Validate(TensorSet model)
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach ((string name, int[] owners) in _groupOfAxis)
        {
            if (!model.Contains(name))
                throw new InvalidModelFileException(model.SourceName, $"the model has no tensor named '{name}' (needed for permutation alignment).");
            long[] shape = model.GetShape(name);
            if (shape.Length is < 1 or > 2)
                throw new InvalidModelFileException(model.SourceName, $"tensor '{name}' has {shape.Length} dimensions; alignment permutes only 1-D and 2-D tensors.");
            for (int axis = 0; axis < 2; axis++)
            {
                if (owners[axis] < 0) continue;
                PermutationGroup group = Groups[owners[axis]];
                if (axis >= shape.Length || shape[axis] != group.Size)
                {
                    throw new InvalidModelFileException(model.SourceName,
                        $"tensor '{name}' has shape [{string.Join(", ", shape)}]; permutation '{group.Name}' needs {group.Size} along axis {axis}.");
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
    /// q/k/v/gate/up and lm_head, the output rows of o/down, every RMSNorm weight) and, per layer, the MLP's
    /// intermediate units (<c>mlp.{i}</c>: gate/up rows with down columns). Attention heads are not permuted.
    /// </summary>
    /// <remarks>RMSNorm is invariant under a permutation of its input because its statistic is a sum over units.</remarks>
    public static PermutationSpec ForLlama(LlamaConfig config, bool tiedEmbeddings = false)
    {
        ArgumentNullException.ThrowIfNull(config);
        var residual = new List<PermutedAxis> { new("model.embed_tokens.weight", 1), new("model.norm.weight", 0) };
        if (!tiedEmbeddings) residual.Add(new PermutedAxis("lm_head.weight", 1));
        var groups = new List<PermutationGroup>();
        for (int i = 0; i < config.LayerCount; i++)
        {
            string p = $"model.layers.{i}.";
            residual.Add(new(p + "input_layernorm.weight", 0));
            residual.Add(new(p + "post_attention_layernorm.weight", 0));
            foreach (string name in (ReadOnlySpan<string>)["q_proj", "k_proj", "v_proj"]) residual.Add(new(p + "self_attn." + name + ".weight", 1));
            residual.Add(new(p + "self_attn.o_proj.weight", 0));
            residual.Add(new(p + "mlp.gate_proj.weight", 1));
            residual.Add(new(p + "mlp.up_proj.weight", 1));
            residual.Add(new(p + "mlp.down_proj.weight", 0));
            groups.Add(new PermutationGroup($"mlp.{i}", config.IntermediateSize,
                [new(p + "mlp.gate_proj.weight", 0), new(p + "mlp.up_proj.weight", 0), new(p + "mlp.down_proj.weight", 1)]));
        }

        groups.Insert(0, new PermutationGroup("residual", config.HiddenSize, residual));
        return new PermutationSpec(groups);
    }
}
