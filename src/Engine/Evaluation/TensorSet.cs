using Weld.Engine.Models;

namespace Weld.Engine.Evaluation;

/// <summary>
/// A model's tensors held in memory as float32, by name: what the forward passes run on, and what interpolation
/// and folding (LoRA, merges in tests) produce without writing a checkpoint.
/// </summary>
public sealed class TensorSet
{
    private readonly Dictionary<string, (long[] Shape, float[] Values)> _tensors = new(StringComparer.Ordinal);
    private readonly List<string> _names = [];

    /// <summary>Creates an empty set; <paramref name="sourceName"/> names it in error messages.</summary>
    public TensorSet(string sourceName)
    {
        ArgumentNullException.ThrowIfNull(sourceName);
        SourceName = sourceName;
    }

    /// <summary>Where the tensors came from (a model path, or a description), for error messages.</summary>
    public string SourceName { get; }

    /// <summary>Tensor names in insertion order.</summary>
    public IReadOnlyList<string> Names => _names;

    /// <summary>Whether a tensor called <paramref name="name"/> is present.</summary>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>Adds (or replaces) a tensor; the set keeps <paramref name="values"/> without copying.</summary>
    /// <exception cref="ArgumentException">The element count of <paramref name="shape"/> differs from the values' length.</exception>
    public void Set(string name, long[] shape, float[] values)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(values);
        long count = 1;
        foreach (long dimension in shape) count = checked(count * dimension);
        if (count != values.Length)
            throw new ArgumentException($"tensor '{name}': shape has {count} elements but {values.Length} values were given.", nameof(values));
        if (!_tensors.ContainsKey(name)) _names.Add(name);
        _tensors[name] = (shape, values);
    }

    /// <summary>The values of tensor <paramref name="name"/> (the stored array, not a copy).</summary>
    /// <exception cref="InvalidModelFileException">No such tensor.</exception>
    public float[] Get(string name) => Find(name).Values;

    /// <summary>The shape of tensor <paramref name="name"/>.</summary>
    /// <exception cref="InvalidModelFileException">No such tensor.</exception>
    public long[] GetShape(string name) => Find(name).Shape;

    /// <summary>
    /// The values of a tensor that must have exactly the shape <paramref name="expected"/>.
    /// </summary>
    /// <exception cref="InvalidModelFileException">The tensor is missing or has another shape.</exception>
    public float[] Get(string name, params long[] expected)
    {
        (long[] shape, float[] values) = Find(name);
        if (!shape.AsSpan().SequenceEqual(expected))
        {
            throw new InvalidModelFileException(SourceName,
                $"tensor '{name}' has shape [{string.Join(", ", shape)}]; the config implies [{string.Join(", ", expected)}].");
        }

        return values;
    }

    private (long[] Shape, float[] Values) Find(string name) =>
        _tensors.TryGetValue(name, out var entry)
            ? entry
            : throw new InvalidModelFileException(SourceName, $"the model has no tensor named '{name}'.");

    /// <summary>Reads every tensor of <paramref name="model"/>, converted to float32.</summary>
    /// <exception cref="WeldException">A tensor has more elements than an array can hold.</exception>
    public static TensorSet Load(ModelFolder model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var set = new TensorSet(model.Path);
        foreach (string name in model.TensorNames)
        {
            ModelTensor tensor = model.GetTensor(name);
            if (tensor.ElementCount > Array.MaxLength)
                throw new InvalidModelFileException(model.Path, $"tensor '{name}' has {tensor.ElementCount} elements, more than one array can hold.");
            var values = new float[tensor.ElementCount];
            tensor.ReadFloat32(0, values);
            set.Set(name, tensor.Shape, values);
        }

        return set;
    }

    /// <summary>
    /// The element-wise interpolation <c>(1 − α)·a + α·b</c> of two sets with the same tensor names and shapes.
    /// </summary>
    /// <exception cref="WeldException">The sets differ in names or shapes.</exception>
    public static TensorSet Interpolate(TensorSet a, TensorSet b, double alpha)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var result = new TensorSet($"(1-{alpha:R})·{a.SourceName} + {alpha:R}·{b.SourceName}");
        foreach (string name in a.Names)
        {
            if (!b._tensors.TryGetValue(name, out var other))
                throw new WeldException($"{b.SourceName}: has no tensor '{name}' (present in {a.SourceName}); cannot interpolate.");
            (long[] shape, float[] x) = a._tensors[name];
            if (!shape.AsSpan().SequenceEqual(other.Shape))
            {
                throw new WeldException(
                    $"tensor '{name}': shape [{string.Join(", ", shape)}] in {a.SourceName} but [{string.Join(", ", other.Shape)}] in {b.SourceName}; cannot interpolate.");
            }

            var mixed = new float[x.Length];
            float[] y = other.Values;
            // In float64 so α = 0 and α = 1 reproduce the end points exactly.
            for (int i = 0; i < mixed.Length; i++) mixed[i] = (float)((1 - alpha) * x[i] + alpha * y[i]);
            result.Set(name, shape, mixed);
        }

        foreach (string name in b.Names)
            if (!a.Contains(name))
                throw new WeldException($"{a.SourceName}: has no tensor '{name}' (present in {b.SourceName}); cannot interpolate.");
        return result;
    }
}
