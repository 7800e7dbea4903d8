using Weld.Engine.Methods;
using Weld.Engine.SafeTensors;
using Weld.Engine.Tokenizers;

namespace Weld.Engine.Planning;

/// <summary>
/// The whole merge, decided before any tensor is read: the method, the models, and one
/// <see cref="TensorTask"/> per output tensor in output order.
/// </summary>
public sealed class MergePlan
{
    /// <summary>The merge method.</summary>
    public required IMergeMethod Method { get; init; }

    /// <summary>Input model paths; <see cref="TensorSource.Model"/> indexes this list.</summary>
    public required IReadOnlyList<string> ModelPaths { get; init; }

    /// <summary>Output tensors in write order.</summary>
    public required IReadOnlyList<TensorTask> Tensors { get; init; }

    /// <summary>The random seed (DARE).</summary>
    public ulong Seed { get; init; }

    /// <summary>Notes for the log gathered while planning (e.g. embeddings cropped).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>Output layer count (slices can change it), or null to keep the base config's.</summary>
    public int? OutputLayerCount { get; init; }

    /// <summary>
    /// The output vocabulary when the recipe builds one (<c>tokenizer_source: union</c>, the <c>tokenizer:</c>
    /// section, or <c>tokenizer_source: base | model</c> over models with tokenizer.json); null otherwise.
    /// </summary>
    public VocabularyPlan? Vocabulary { get; init; }

    /// <summary>Bytes all output tensors take.</summary>
    public long OutputBytes
    {
        get
        {
            long total = 0;
            foreach (var t in Tensors) total += t.Header.ByteLength;
            return total;
        }
    }
}

/// <summary>One output tensor: where its inputs come from and the parameters resolved for it.</summary>
public sealed class TensorTask
{
    /// <summary>Name, dtype and shape of the output tensor.</summary>
    public required TensorHeader Header { get; init; }

    /// <summary>The non-base inputs, in recipe order.</summary>
    public required IReadOnlyList<TensorSource> Inputs { get; init; }

    /// <summary>The base model's tensor, or null.</summary>
    public TensorSource? Base { get; init; }

    /// <summary>
    /// For a tensor of an integer or boolean dtype: the input whose stored bytes are copied unchanged (every input
    /// holds the same bytes, checked when planning); null for a merged tensor. Such a task has no inputs or parameters.
    /// </summary>
    public TensorSource? CopyFrom { get; init; }

    /// <summary>
    /// Extra per-model tensors (<see cref="ParameterSpec.TensorFile"/>, e.g. Fisher diagonals), one per entry of
    /// <see cref="Inputs"/>, or empty when the method reads none.
    /// </summary>
    public IReadOnlyList<TensorSource> Auxiliary { get; init; } = [];

    /// <summary>Input rows the executor holds for this tensor: inputs, the base if any, auxiliary tensors.</summary>
    public int Rows => Inputs.Count + (Base is null ? 0 : 1) + Auxiliary.Count;

    /// <summary>Per-model parameters, one per entry of <see cref="Inputs"/>.</summary>
    public required IReadOnlyList<ResolvedParameters> ModelParameters { get; init; }

    /// <summary>Global parameters for this tensor.</summary>
    public required ResolvedParameters Global { get; init; }

    /// <summary>
    /// The LiNeS scale s of this tensor's merged task vector (θ = θ_base + s · (θ_merged − θ_base)), applied by the
    /// executor after the method; null when the recipe has no <c>lines:</c>.
    /// </summary>
    public double? LinesScale { get; init; }

    /// <summary>Output element count.</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long d in Header.Shape) n *= d;
            return n;
        }
    }
}

/// <summary>An input tensor: model index, tensor name, and how many leading elements to read (embedding crops).</summary>
/// <param name="Model">Index into <see cref="MergePlan.ModelPaths"/>.</param>
/// <param name="TensorName">Name inside that model.</param>
/// <param name="RecipeIndex">The model's position in the recipe (keys random streams).</param>
public sealed record TensorSource(int Model, string TensorName, int RecipeIndex)
{
    /// <summary>
    /// For an embedding / lm_head permuted into the output vocabulary: which rows to read (null: the tensor as stored).
    /// </summary>
    public RowMap? Rows { get; init; }
}
