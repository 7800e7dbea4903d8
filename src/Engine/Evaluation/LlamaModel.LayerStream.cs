using System.Numerics.Tensors;
using Weld.Engine.Models;

namespace Weld.Engine.Evaluation;

/// <summary>The per-layer hidden states of many sequences with one layer's weights in memory at a time.</summary>
public sealed partial class LlamaModel
{
    /// <summary>A model without weights: its kernels run layers that <see cref="StreamLayerInputs"/> loads one at a time.</summary>
    private LlamaModel(LlamaConfig config, int maxDegreeOfParallelism)
    {
        Config = config;
        _maxDegreeOfParallelism = maxDegreeOfParallelism;
        _embedding = [];
        _layers = [];
        _finalNorm = [];
        _lmHead = [];
    }

    /// <summary>
    /// <see cref="LayerInputs"/> for every sequence, computed layer by layer: the sequences' residual streams are
    /// kept (tokens × hidden each) and each layer's weights are read from <paramref name="model"/>'s files, run over
    /// every sequence, and released before the next layer is read, so memory is one layer in float32 plus the
    /// streams, not the whole model. The arithmetic is the whole-model forward pass's, operation for operation, so
    /// the results are bit-identical to <see cref="LayerInputs"/> on <see cref="Load"/>'s model.
    /// </summary>
    /// <param name="model">A Llama-family model folder.</param>
    /// <param name="sequences">Token sequences (each at least one token), run independently from position 0.</param>
    /// <param name="averageOverSequence">Average each layer input over positions instead of taking the last position.</param>
    /// <param name="maxDegreeOfParallelism">Most threads; -1 for all cores.</param>
    /// <param name="layerDone">Called with the layer index after each layer has run over every sequence.</param>
    /// <param name="cancel">Cancels between layers and sequences.</param>
    /// <returns>[sequence][layer] vectors of hidden_size values.</returns>
    /// <exception cref="WeldException">No config.json, a token outside the vocabulary, an empty sequence, or a missing tensor.</exception>
    public static float[][][] StreamLayerInputs(ModelFolder model, IReadOnlyList<int[]> sequences, bool averageOverSequence,
        int maxDegreeOfParallelism = -1, Action<int>? layerDone = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sequences);
        ModelConfig modelConfig = model.Config
            ?? throw new WeldException($"{model.Path}: has no config.json; cannot build a forward pass.");
        LlamaConfig c = LlamaConfig.FromModelConfig(modelConfig);
        var shell = new LlamaModel(c, maxDegreeOfParallelism);
        int h = c.HiddenSize;

        // The residual streams start as the tokens' embedding rows, read row by row (the table is never held whole).
        ModelTensor table = model.GetTensor("model.embed_tokens.weight");
        if (!table.Shape.AsSpan().SequenceEqual([(long)c.VocabSize, h]))
            throw new InvalidModelFileException(model.Path, $"tensor 'model.embed_tokens.weight' has shape [{string.Join(", ", table.Shape)}]; the config implies [{c.VocabSize}, {h}].");
        var streams = new float[sequences.Count][];
        var result = new float[sequences.Count][][];
        for (int s = 0; s < sequences.Count; s++)
        {
            int[] tokens = sequences[s];
            if (tokens.Length == 0) throw new WeldException("cannot run the model over an empty sequence.");
            foreach (int token in tokens)
                if ((uint)token >= (uint)c.VocabSize)
                    throw new WeldException($"token id {token} is outside the model's vocabulary (vocab_size {c.VocabSize}).");
            streams[s] = new float[tokens.Length * h];
            for (int r = 0; r < tokens.Length; r++) table.ReadFloat32((long)tokens[r] * h, streams[s].AsSpan(r * h, h));
            result[s] = new float[c.LayerCount][];
        }

        for (int layer = 0; layer < c.LayerCount; layer++)
        {
            cancel.ThrowIfCancellationRequested();
            for (int s = 0; s < sequences.Count; s++) result[s][layer] = Summarise(streams[s], sequences[s].Length, h, averageOverSequence);
            // The last layer's output is no layer's input: its weights are never read.
            if (layer == c.LayerCount - 1) break;
            long elements = shell.RunStreamedLayer(model, layer, sequences, streams, cancel);
            // The layer's arrays are garbage now; return them before the next layer is read, so that the peak is
            // one layer, not however many the collector lets pile up on the large-object heap.
            if (elements >= 16 << 20) GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            layerDone?.Invoke(layer);
        }

        return result;
    }

    /// <summary>Reads layer <paramref name="layer"/> and runs it over every stream in place; returns the layer's element count.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private long RunStreamedLayer(ModelFolder model, int layer, IReadOnlyList<int[]> sequences, float[][] streams, CancellationToken cancel)
    {
        LlamaConfig c = Config;
        TensorSet tensors = ReadLayer(model, layer);
        LayerWeights weights = LayerWeights.Load(c, tensors, layer);
        for (int s = 0; s < sequences.Count; s++)
        {
            cancel.ThrowIfCancellationRequested();
            int t = sequences[s].Length;
            var rope = new RotaryEmbedding(c.HeadDim, t, c.RopeTheta, c.RopeScaling);
            RunLayer(weights, layer, streams[s], new LayerBuffers(c, t), rope, 1, t);
        }

        long elements = 0;
        foreach (string name in tensors.Names) elements += tensors.Get(name).LongLength;
        return elements;
    }

    /// <summary>The layer input at the last position, or averaged over positions (as <see cref="LayerInputs"/> takes it).</summary>
    private static float[] Summarise(float[] x, int t, int h, bool averageOverSequence)
    {
        var vector = new float[h];
        if (averageOverSequence)
        {
            for (int i = 0; i < t; i++) TensorPrimitives.Add(vector, x.AsSpan(i * h, h), vector);
            TensorPrimitives.Divide(vector, t, vector);
        }
        else
        {
            x.AsSpan((t - 1) * h, h).CopyTo(vector);
        }

        return vector;
    }

    /// <summary>The tensors of one layer (<c>model.layers.{layer}.*</c>) as float32.</summary>
    private static TensorSet ReadLayer(ModelFolder model, int layer)
    {
        string prefix = $"model.layers.{layer}.";
        var set = new TensorSet(model.Path);
        foreach (string name in model.TensorNames)
        {
            if (!name.StartsWith(prefix, StringComparison.Ordinal)) continue;
            ModelTensor tensor = model.GetTensor(name);
            var values = new float[tensor.ElementCount];
            tensor.ReadFloat32(0, values);
            set.Set(name, tensor.Shape, values);
        }

        return set;
    }
}
