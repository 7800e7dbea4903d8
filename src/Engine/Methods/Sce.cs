using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>
/// SCE (Wan et al. 2024, FuseChat): Select, Calculate, Erase over the task vectors δ_k = θ_k − θ_base:
/// <code>
///   select:    keep the ⌊select_topk · #{var ≠ 0}⌋ positions of largest variance across models (when select_topk &lt; 1)
///   calculate: w_k = mean(δ_k²) / Σ_j mean(δ_j²)          (uniform when |Σ_j mean(δ_j²)| &lt; 1e-6)
///   erase:     e_k = [sign δ_k = sign Σ_j δ_j]              (an unweighted sum; 0 counts as +)
///   θ = θ_base + Σ_k w_k e_k δ_k / max(Σ_k w_k e_k, 1e-6)
/// </code>
/// These are mergekit's 2025 definitions (<c>sce_weight</c>, <c>sce_merge</c>); releases before them took uniform
/// weights only at a sum of exactly 0 and replaced a zero divisor by 1.
/// A tensor too large for memory is streamed: the selection's count and cut and the energies are gathered in passes
/// over chunks, then every chunk is erased and mixed exactly as in one piece.
/// </summary>
public sealed partial class Sce : IStreamingMergeMethod
{
    /// <summary>mergekit's floor of the erased-weight divisor (<c>clamp(min=1e-6)</c>).</summary>
    private const float DivisorFloor = 1e-6f;

    /// <summary>Below this total energy mergekit gives every task vector the same weight.</summary>
    private const double UniformBelow = 1e-6;

    /// <inheritdoc />
    public string Name => "sce";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, int.MaxValue, TakesTaskVectors: true);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("select_topk", ParameterScope.Global, 1.0, 0, 1),
        ParameterSpec.Flag("int8_mask", false), // mergekit's memory saving for masks: accepted, no effect on values
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        IMergeKernels kernels = inputs.Kernels;
        inputs.FormTaskVectors();

        // The selection lives in the output row (the variances, +0 where dropped) until the mix overwrites it: the task
        // vectors are never cleared, the energies and the mix read them through it.
        double topK = inputs.Global.Number("select_topk");
        Span<float> selector = topK < 1 ? SelectByVariance(inputs, topK, output) : [];

        float[] weights = MatrixWeights(inputs, selector);
        EraseAndMixOntoBase(inputs, selector, weights, output);
    }

    /// <summary>
    /// The top-k population variances across models (when select_topk &lt; 1) in <paramref name="variance"/>, +0 where
    /// dropped: a task-vector element counts as 0 wherever its selector is 0.
    /// </summary>
    private static Span<float> SelectByVariance(TensorMergeInputs inputs, double topK, Span<float> variance)
    {
        IMergeKernels kernels = inputs.Kernels;
        long nonzero = kernels.VarianceAcrossRows(inputs.Models.Span, variance);
        // mergekit: k = int(topk · count_nonzero(var)); torch.topk of |var| (Weld breaks ties by lowest index).
        kernels.KeepTopK(variance, (long)(topK * nonzero));
        return variance;
    }

    /// <summary>
    /// w_k = mean(δ_k²) normalised to sum 1, computed in float64 and stored as float32 (mergekit's tensor); uniform
    /// when the sum is below 1e-6, as for task vectors of tiny changes. δ_k is read through the selector (if any).
    /// </summary>
    private static float[] MatrixWeights(TensorMergeInputs inputs, ReadOnlySpan<float> selector)
    {
        var energy = new double[inputs.Count];
        AddEnergies(inputs, selector, energy);
        return MatrixWeights(energy, inputs.TensorLength);
    }

    /// <summary>energy[k] += Σ δ_k² of <paramref name="inputs"/> (a whole tensor or a chunk), δ_k read through the selector.</summary>
    private static void AddEnergies(TensorMergeInputs inputs, ReadOnlySpan<float> selector, double[] energy)
    {
        // With a selector every row is summed in one sweep that reads it once (each row's sum keeps its own order).
        if (!selector.IsEmpty)
        {
            BlockSums.SumsOfSquares(inputs.Kernels, inputs.Models.Span, selector, inputs.Offset, energy);
            return;
        }
        for (int k = 0; k < energy.Length; k++)
            energy[k] = BlockSums.SumOfSquares(inputs.Kernels, inputs.Row(k), inputs.Offset, energy[k]);
    }

    /// <summary>The weights from Σ δ_k² of each task vector over the whole tensor of <paramref name="length"/> elements.</summary>
    private static float[] MatrixWeights(double[] energy, long length)
    {
        int count = energy.Length;
        var raw = new double[count];
        double total = 0;
        for (int k = 0; k < count; k++)
        {
            raw[k] = energy[k] / length;
            total += raw[k];
        }
        var weights = new float[count];
        for (int k = 0; k < count; k++) weights[k] = (float)(Math.Abs(total) < UniformBelow ? 1.0 / count : raw[k] / total);
        return weights;
    }

    /// <summary>
    /// output = θ_base + Σ_k δ_k·(w_k e_k) / max(Σ_k w_k e_k, 1e-6), float32 sums in model order as mergekit's tensors do,
    /// δ_k read as 0 where the selector (if any) is 0; torch.sign's NaN gives 0, which never matches the elected ±1.
    /// </summary>
    private static void EraseAndMixOntoBase(TensorMergeInputs inputs, ReadOnlySpan<float> selector, float[] weights, Span<float> output) =>
        inputs.Kernels.SignErasedMixOntoBase(inputs.Models.Span, selector, weights, DivisorFloor, inputs.Base.Span, output);
}
