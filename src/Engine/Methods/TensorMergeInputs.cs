using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>
/// Everything a method sees for one output tensor: the kernels, the stacked float32 inputs,
/// the base (if any) and the parameters resolved for this tensor.
/// </summary>
/// <remarks>
/// <see cref="Models"/> is scratch owned by the executor: a method may overwrite it (task vectors are
/// formed in place), which keeps peak memory at K + 2 tensors.
/// </remarks>
public sealed class TensorMergeInputs
{
    /// <summary>The backend doing the arithmetic.</summary>
    public required IMergeKernels Kernels { get; init; }

    /// <summary>Output tensor name (for messages and random keys).</summary>
    public required string TensorName { get; init; }

    /// <summary>Tensor shape.</summary>
    public required long[] Shape { get; init; }

    /// <summary>The non-base inputs, <see cref="Count"/> rows of <see cref="Length"/> elements, in recipe order.</summary>
    public required Memory<float> Models { get; init; }

    /// <summary>The base model's tensor, or empty when the recipe has no base.</summary>
    public ReadOnlyMemory<float> Base { get; init; }

    /// <summary>
    /// True when the rows of <see cref="Models"/> already hold the task vectors θ_k − θ_base (float32, one rounding each):
    /// the executor formed them while decoding the inputs. Set only for methods whose
    /// <see cref="MethodTraits.TakesTaskVectors"/> is true; <see cref="Base"/> still holds θ_base.
    /// </summary>
    public bool ModelsAreTaskVectors { get; init; }

    /// <summary>
    /// The rows the executor also dropped while decoding them (<see cref="IDropsWhileDecoding"/>): those rows hold
    /// drop(δ_k), with their L1 norm partials where the drop asked for them; null when none was. Set only with
    /// <see cref="ModelsAreTaskVectors"/>.
    /// </summary>
    public DecodedDrops? DecodedDrops { get; init; }

    /// <summary>True when row <paramref name="k"/> already holds drop(δ_k) (<see cref="DecodedDrops"/>).</summary>
    public bool IsDroppedInDecode(int k) => DecodedDrops?.IsDropped(k) == true;

    /// <summary>
    /// Extra per-model tensors a method asked for with <see cref="ParameterSpec.TensorFile"/> (Fisher diagonals):
    /// <see cref="Count"/> rows of <see cref="Length"/> elements in the order of <see cref="Models"/>, or empty.
    /// </summary>
    public ReadOnlyMemory<float> Auxiliary { get; init; }

    /// <summary>Row <paramref name="k"/> of <see cref="Auxiliary"/>.</summary>
    public ReadOnlySpan<float> AuxiliaryRow(int k) => Auxiliary.Span.Slice(k * Length, Length);

    /// <summary>Parameters of each non-base model, same order as the rows of <see cref="Models"/>.</summary>
    public required IReadOnlyList<ResolvedParameters> ModelParameters { get; init; }

    /// <summary>Global parameters.</summary>
    public required ResolvedParameters Global { get; init; }

    /// <summary>Recipe index of each non-base model (keys the random streams).</summary>
    public required IReadOnlyList<int> ModelIndices { get; init; }

    /// <summary>The merge's random seed.</summary>
    public ulong Seed { get; init; }

    /// <summary>Stable hash of <see cref="TensorName"/> (keys the random streams).</summary>
    public uint TensorHash { get; init; }

    /// <summary>
    /// Chunks of a streamed tensor start at multiples of this many elements; L1 norms are summed block by block
    /// of this size in index order, so a streamed tensor and a whole one give the same bits.
    /// </summary>
    public const int ChunkAlignment = 1 << 20;

    /// <summary>Tensor index of the first element of <see cref="Models"/>' rows (0 unless streaming a chunk).</summary>
    public long Offset { get; init; }

    /// <summary>Elements of the whole tensor (equals <see cref="Length"/> unless streaming a chunk).</summary>
    public long TensorLength
    {
        get => _tensorLength ?? Length;
        init => _tensorLength = value;
    }

    private readonly long? _tensorLength;

    /// <summary>Receives notes worth a log line (e.g. a fallback taken).</summary>
    public Action<string>? Note { get; init; }

    /// <summary>Number of non-base inputs.</summary>
    public int Count => ModelParameters.Count;

    /// <summary>Elements per tensor.</summary>
    public int Length => Count == 0 ? Base.Length : Models.Length / Count;

    /// <summary>True when a base model tensor is present.</summary>
    public bool HasBase => !Base.IsEmpty;

    /// <summary>Row <paramref name="k"/> of <see cref="Models"/>.</summary>
    public Span<float> Row(int k) => Models.Span.Slice(k * Length, Length);

    /// <summary>
    /// Turns the rows of <see cref="Models"/> into task vectors δ_k = θ_k − θ_base in place, unless
    /// <see cref="ModelsAreTaskVectors"/> says they already are.
    /// </summary>
    public void FormTaskVectors()
    {
        if (!ModelsAreTaskVectors) Kernels.SubtractRows(Models.Span, Base.Span);
    }

    /// <summary>The per-model values of one numeric parameter, in row order.</summary>
    public float[] PerModel(string name)
    {
        var values = new float[Count];
        for (int k = 0; k < values.Length; k++) values[k] = (float)ModelParameters[k].Number(name);
        return values;
    }

    /// <summary>The random-stream key of row <paramref name="k"/>.</summary>
    public PhiloxKey RandomKey(int k) => new(Seed, TensorHash, (uint)ModelIndices[k]);
}

/// <summary>Parameter values resolved for one tensor (and one model, for per-model parameters).</summary>
public sealed class ResolvedParameters
{
    private readonly Dictionary<string, object> _values = new(StringComparer.Ordinal);

    /// <summary>An empty set.</summary>
    public static ResolvedParameters Empty => new();

    /// <summary>Sets a value (double, bool or string).</summary>
    public ResolvedParameters Set(string name, object value)
    {
        _values[name] = value;
        return this;
    }

    /// <summary>True when a value is present.</summary>
    public bool Contains(string name) => _values.ContainsKey(name);

    /// <summary>A numeric value (booleans read as 0/1).</summary>
    public double Number(string name) => _values.TryGetValue(name, out var v)
        ? v switch { double d => d, bool b => b ? 1 : 0, _ => throw new WeldException($"parameter {name} is not a number") }
        : throw new WeldException($"parameter {name} has no value");

    /// <summary>A text value (choices such as <c>consensus: count</c>).</summary>
    public string Text(string name) => _values.TryGetValue(name, out var v)
        ? v as string ?? throw new WeldException($"parameter {name} is not a text value")
        : throw new WeldException($"parameter {name} has no value");

    /// <summary>A boolean value (numbers read as nonzero = true, as mergekit does).</summary>
    public bool Flag(string name) => _values.TryGetValue(name, out var v)
        ? v switch { bool b => b, double d => d != 0, _ => throw new WeldException($"parameter {name} is not a boolean") }
        : throw new WeldException($"parameter {name} has no value");
}
