using System.Text.RegularExpressions;
using Weld.Engine.Models;

namespace Weld.Engine.Evaluation;

/// <summary>Statistics of one group of tensors: a decoder layer, a top-level tensor, or (per tensor) one tensor.</summary>
/// <param name="Name">The layer key (<c>model.layers.3</c>) or the tensor name.</param>
/// <param name="Tensors">Tensors in the group.</param>
/// <param name="Stats">The statistics over the concatenation of the group's tensors.</param>
public sealed record DiffEntry(string Name, int Tensors, TaskVectorStats Stats);

/// <summary>The outcome of <see cref="ModelDiff.Compare"/>.</summary>
/// <param name="HasBase">True when τ are task vectors against a base; false when they are the weights themselves.</param>
/// <param name="Layers">One entry per layer (and per top-level tensor), in the order of A's tensors.</param>
/// <param name="Tensors">One entry per tensor when requested, else empty.</param>
/// <param name="Total">Statistics over all tensors at once.</param>
public sealed record DiffResult(bool HasBase, IReadOnlyList<DiffEntry> Layers, IReadOnlyList<DiffEntry> Tensors, DiffEntry Total);

/// <summary>
/// Compares two checkpoints tensor by tensor (task vectors against a base when given): norms, cosine, sign
/// conflicts and top-k overlaps, per decoder layer and optionally per tensor. One layer is held in memory at a time.
/// </summary>
public static partial class ModelDiff
{
    [GeneratedRegex(@"^(.*?layers\.\d+)\.")]
    private static partial Regex LayerPrefix();

    /// <summary>The group a tensor belongs to: its <c>…layers.N</c> prefix, or its own name outside the layers.</summary>
    public static string LayerOf(string tensorName)
    {
        ArgumentNullException.ThrowIfNull(tensorName);
        Match match = LayerPrefix().Match(tensorName);
        return match.Success ? match.Groups[1].Value : tensorName;
    }

    /// <summary>Compares <paramref name="a"/> and <paramref name="b"/> (minus <paramref name="baseModel"/> when given).</summary>
    /// <exception cref="InvalidModelFileException">A tensor of A is missing from B or the base, or has another shape there.</exception>
    public static DiffResult Compare(ModelFolder a, ModelFolder b, ModelFolder? baseModel, bool perTensor,
        IReadOnlyList<double>? densities = null)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        densities ??= TaskVectorStats.DefaultDensities;
        foreach (string name in b.TensorNames)
            if (!a.Contains(name))
                throw new InvalidModelFileException(a.Path, $"has no tensor '{name}' (present in {b.Path}); cannot compare.");

        var groups = new List<(string Key, List<string> Names)>();
        var byKey = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (string name in a.TensorNames)
        {
            string key = LayerOf(name);
            if (!byKey.TryGetValue(key, out List<string>? names))
            {
                names = [];
                byKey.Add(key, names);
                groups.Add((key, names));
            }

            names.Add(name);
        }

        var layers = new List<DiffEntry>(groups.Count);
        var tensors = new List<DiffEntry>();
        var totals = new Accumulator();
        foreach ((string key, List<string> names) in groups)
        {
            var groupA = new List<float>();
            var layer = new Accumulator();
            foreach (string name in names)
            {
                float[] weightsA = Read(a, name, null);
                float[] weightsB = Read(b, name, a.GetTensor(name).Shape);
                float[] tauA = weightsA, tauB = weightsB;
                if (baseModel is not null)
                {
                    float[] weightsBase = Read(baseModel, name, a.GetTensor(name).Shape);
                    tauA = Subtract(weightsA, weightsBase);
                    tauB = Subtract(weightsB, weightsBase);
                }

                if (perTensor)
                    tensors.Add(new DiffEntry(name, 1, TaskVectorStats.Compute(tauA, tauB, weightsB, densities)));
                layer.Add(tauA, tauB, weightsB);
                totals.AddSums(TaskVectorStats.Compute(tauA, tauB, weightsB, []), weightsB);
            }

            layers.Add(new DiffEntry(key, names.Count,
                TaskVectorStats.Compute(layer.TauA.ToArray(), layer.TauB.ToArray(), layer.WeightsB.ToArray(), densities)));
        }

        return new DiffResult(baseModel is not null, layers, tensors, new DiffEntry("total", a.TensorNames.Count, totals.ToStats()));
    }

    private static float[] Subtract(float[] x, float[] y)
    {
        var result = new float[x.Length];
        for (int i = 0; i < x.Length; i++) result[i] = x[i] - y[i];
        return result;
    }

    private static float[] Read(ModelFolder model, string name, long[]? expectedShape)
    {
        if (!model.Contains(name))
            throw new InvalidModelFileException(model.Path, $"has no tensor '{name}'; cannot compare.");
        ModelTensor tensor = model.GetTensor(name);
        if (expectedShape is not null && !tensor.Shape.AsSpan().SequenceEqual(expectedShape))
        {
            throw new InvalidModelFileException(model.Path,
                $"tensor '{name}' has shape [{string.Join(", ", tensor.Shape)}], expected [{string.Join(", ", expectedShape)}]; cannot compare.");
        }

        if (tensor.ElementCount > Array.MaxLength)
            throw new InvalidModelFileException(model.Path, $"tensor '{name}' has {tensor.ElementCount} elements, more than one array can hold.");
        var values = new float[tensor.ElementCount];
        tensor.ReadFloat32(0, values);
        return values;
    }

    /// <summary>A layer's concatenated vectors, and running sums that rebuild whole-model norms and cosine.</summary>
    private sealed class Accumulator
    {
        public readonly List<float> TauA = [], TauB = [], WeightsB = [];
        private double _aa, _bb, _ab, _dd, _ww, _conflicts;
        private long _elements;

        public void Add(float[] tauA, float[] tauB, float[] weightsB)
        {
            TauA.AddRange(tauA);
            TauB.AddRange(tauB);
            WeightsB.AddRange(weightsB);
        }

        public void AddSums(TaskVectorStats s, float[] weightsB)
        {
            _aa += s.NormA * s.NormA;
            _bb += s.NormB * s.NormB;
            _ab += s.Cosine * s.NormA * s.NormB;
            _dd += s.DifferenceNorm * s.DifferenceNorm;
            double ww = 0;
            foreach (float w in weightsB) ww += (double)w * w;
            _ww += ww;
            _conflicts += s.SignConflictRate * s.Elements;
            _elements += s.Elements;
        }

        public TaskVectorStats ToStats()
        {
            double normA = Math.Sqrt(_aa), normB = Math.Sqrt(_bb), normW = Math.Sqrt(_ww), diff = Math.Sqrt(_dd);
            return new TaskVectorStats(_elements, normA, normB, normA > 0 && normB > 0 ? _ab / (normA * normB) : 0,
                _elements == 0 ? 0 : Math.Round(_conflicts) / _elements, diff, normW > 0 ? diff / normW : 0, []);
        }
    }
}
