using System.Numerics.Tensors;
using System.Text.Json.Nodes;
using Weld.Engine.Models;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Evaluation;

/// <summary>Accuracy and mean cross-entropy of a classifier on a labelled split.</summary>
/// <param name="Accuracy">Fraction of samples whose arg-max class is the label.</param>
/// <param name="MeanLoss">Mean cross-entropy (nats).</param>
/// <param name="Samples">Samples evaluated.</param>
public sealed record ClassificationResult(double Accuracy, double MeanLoss, int Samples);

/// <summary>
/// A multi-layer perceptron of Linear (+ bias) layers with optional ReLU, described by config.json's <c>layers</c>
/// list (<c>weight</c>, <c>bias</c>, <c>in_features</c>, <c>out_features</c>, <c>activation</c>: "relu" or null).
/// </summary>
public sealed class MlpClassifier
{
    private readonly Layer[] _layers;

    /// <summary>Builds the classifier from a config's <c>layers</c> list and in-memory tensors.</summary>
    /// <exception cref="InvalidModelFileException">The layer list is malformed or a tensor is missing or misshapen.</exception>
    public MlpClassifier(ModelConfig config, TensorSet weights)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        string file = config.FilePath ?? "config.json";
        if (config.Raw["layers"] is not JsonArray { Count: > 0 } list)
            throw new InvalidModelFileException(file, "an MLP config needs a non-empty 'layers' list.");
        _layers = new Layer[list.Count];
        int? previousOut = null;
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] is not JsonObject layer)
                throw new InvalidModelFileException(file, $"layers[{i}] must be an object.");
            int inFeatures = LlamaConfig.OptionalInt(layer, file, "in_features")
                ?? throw new InvalidModelFileException(file, $"layers[{i}] needs 'in_features'.");
            int outFeatures = LlamaConfig.OptionalInt(layer, file, "out_features")
                ?? throw new InvalidModelFileException(file, $"layers[{i}] needs 'out_features'.");
            if (previousOut is int expected && expected != inFeatures)
                throw new InvalidModelFileException(file, $"layers[{i}] takes {inFeatures} features but layers[{i - 1}] gives {expected}.");
            string weightName = (string?)layer["weight"] ?? throw new InvalidModelFileException(file, $"layers[{i}] needs 'weight' (a tensor name).");
            string? biasName = layer["bias"] is JsonValue b && b.TryGetValue(out string? name) ? name : null;
            string? activation = layer["activation"] is JsonValue a && a.TryGetValue(out string? act) ? act : null;
            if (activation is not (null or "relu"))
                throw new InvalidModelFileException(file, $"layers[{i}] activation '{activation}' is not supported (relu or null).");
            _layers[i] = new Layer(weights.Get(weightName, outFeatures, inFeatures),
                biasName is null ? null : weights.Get(biasName, outFeatures), inFeatures, outFeatures, activation == "relu");
            previousOut = outFeatures;
        }
    }

    /// <summary>Input features of the first layer.</summary>
    public int InputFeatures => _layers[0].In;

    /// <summary>Classes (outputs of the last layer).</summary>
    public int Classes => _layers[^1].Out;

    /// <summary>Loads an MLP model folder.</summary>
    /// <exception cref="WeldException">The folder has no config.json.</exception>
    public static MlpClassifier Load(ModelFolder model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new MlpClassifier(model.Config ?? throw new WeldException($"{model.Path}: has no config.json; cannot build the MLP."),
            TensorSet.Load(model));
    }

    /// <summary>Whether a config describes an MLP classifier (a <c>layers</c> list).</summary>
    public static bool IsMlp(ModelConfig? config) => config?.Raw["layers"] is JsonArray;

    /// <summary>Logits for <paramref name="samples"/> rows of <see cref="InputFeatures"/> features.</summary>
    public float[] Forward(ReadOnlySpan<float> inputs, int samples)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(inputs.Length, samples * InputFeatures, nameof(inputs));
        float[] current = inputs.ToArray();
        foreach (Layer layer in _layers)
        {
            var next = new float[samples * layer.Out];
            Gemm.Multiply(current, layer.Weight, next, samples, layer.In, layer.Out, transposeB: true);
            for (int s = 0; s < samples; s++)
            {
                Span<float> row = next.AsSpan(s * layer.Out, layer.Out);
                if (layer.Bias is not null) TensorPrimitives.Add(row, layer.Bias, row);
                if (layer.Relu) TensorPrimitives.Max(row, 0f, row);
            }

            current = next;
        }

        return current;
    }

    /// <summary>Accuracy and mean cross-entropy on <paramref name="data"/>.</summary>
    /// <exception cref="WeldException">The data's feature count or labels do not fit the model.</exception>
    public ClassificationResult Evaluate(ClassificationData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Features != InputFeatures)
            throw new WeldException($"{data.SourceName}: samples have {data.Features} features; the model takes {InputFeatures}.");
        float[] logits = Forward(data.Inputs, data.Samples);
        int correct = 0;
        double loss = 0;
        for (int s = 0; s < data.Samples; s++)
        {
            ReadOnlySpan<float> z = logits.AsSpan(s * Classes, Classes);
            int label = data.Labels[s];
            if ((uint)label >= (uint)Classes)
                throw new WeldException($"{data.SourceName}: sample {s} has label {label}; the model has {Classes} classes.");
            int best = TensorPrimitives.IndexOfMax(z);
            if (best == label) correct++;
            double max = z[best], sum = 0;
            foreach (float value in z) sum += Math.Exp(value - max);
            loss += max + Math.Log(sum) - z[label];
        }

        return new ClassificationResult((double)correct / data.Samples, loss / data.Samples, data.Samples);
    }

    private sealed record Layer(float[] Weight, float[]? Bias, int In, int Out, bool Relu);
}

/// <summary>Labelled samples: row-major features and integer labels.</summary>
/// <param name="SourceName">The file it came from, for messages.</param>
/// <param name="Inputs">Samples × features, row-major.</param>
/// <param name="Labels">One label per sample.</param>
/// <param name="Features">Features per sample.</param>
public sealed record ClassificationData(string SourceName, float[] Inputs, int[] Labels, int Features)
{
    /// <summary>Number of samples.</summary>
    public int Samples => Labels.Length;

    /// <summary>
    /// Reads features <paramref name="featuresName"/> [N, F] and labels <paramref name="labelsName"/> [N] from a safetensors
    /// file, keeping the rows listed in the index tensor <paramref name="split"/> (all rows when null).
    /// </summary>
    /// <exception cref="WeldException">A tensor is missing, misshapen, or an index or label is invalid.</exception>
    public static ClassificationData Load(string path, string? split = "test_idx", string featuresName = "X", string labelsName = "y")
    {
        using ModelFolder file = ModelFolder.Open(path);
        string source = file.Path;
        ModelTensor x = Find(file, featuresName);
        ModelTensor y = Find(file, labelsName);
        if (x.Shape.Length != 2)
            throw new InvalidModelFileException(source, $"tensor '{featuresName}' must be 2-D [samples, features], not [{string.Join(", ", x.Shape)}].");
        if (y.Shape.Length != 1 || y.Shape[0] != x.Shape[0])
            throw new InvalidModelFileException(source, $"tensor '{labelsName}' must be [{x.Shape[0]}] (one label per row of '{featuresName}'), not [{string.Join(", ", y.Shape)}].");
        int rows = checked((int)x.Shape[0]), features = checked((int)x.Shape[1]);
        var allInputs = new float[(long)rows * features];
        x.ReadFloat32(0, allInputs);
        var allLabels = new float[rows];
        y.ReadFloat32(0, allLabels);

        int[] selected;
        if (split is null)
        {
            selected = Enumerable.Range(0, rows).ToArray();
        }
        else
        {
            ModelTensor indexTensor = Find(file, split);
            var indices = new float[indexTensor.ElementCount];
            indexTensor.ReadFloat32(0, indices);
            selected = new int[indices.Length];
            for (int i = 0; i < indices.Length; i++)
            {
                float index = indices[i];
                if (index < 0 || index >= rows || index != MathF.Floor(index))
                    throw new InvalidModelFileException(source, $"tensor '{split}' entry {i} is {index}, not a row index below {rows}.");
                selected[i] = (int)index;
            }
        }

        var inputs = new float[(long)selected.Length * features];
        var labels = new int[selected.Length];
        for (int i = 0; i < selected.Length; i++)
        {
            allInputs.AsSpan(selected[i] * features, features).CopyTo(inputs.AsSpan(i * features, features));
            float label = allLabels[selected[i]];
            if (label < 0 || label != MathF.Floor(label))
                throw new InvalidModelFileException(source, $"tensor '{labelsName}' row {selected[i]} is {label}, not a class index.");
            labels[i] = (int)label;
        }

        return new ClassificationData(source, inputs, labels, features);
    }

    private static ModelTensor Find(ModelFolder file, string name) =>
        file.Contains(name) ? file.GetTensor(name) : throw new InvalidModelFileException(file.Path, $"the dataset has no tensor named '{name}'.");
}
