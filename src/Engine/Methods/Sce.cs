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
        inputs.FormTaskVectors();
        double topK = inputs.Global.Number("select_topk");
        if (topK >= 1)
        {
            float[] uniform = MatrixWeights(Energies(inputs), inputs.TensorLength);
            inputs.Kernels.SignErasedMixOntoBase(inputs.Models.Span, [], uniform, DivisorFloor, inputs.Base.Span, output);
            return;
        }

        // The variances live in the output row until the mix overwrites it. The top-k is a cut on them, not a mask:
        // the energy sweep tests each variance against it and leaves the selection as bits, which the mix reads.
        MagnitudeKeep keep = SelectByVariance(inputs, topK, output);
        ulong[] kept = System.Buffers.ArrayPool<ulong>.Shared.Rent((int)SelectionBits.WordCount(output.Length));
        try
        {
            Span<ulong> keptBits = kept.AsSpan(0, (int)SelectionBits.WordCount(output.Length));
            var energy = new double[inputs.Count];
            BlockSums.SumsOfSquaresWhereKept(inputs.Kernels, inputs.Models.Span, output, keep, inputs.Offset, energy, keptBits);
            EraseAndMixOntoBase(inputs, keptBits, MatrixWeights(energy, inputs.TensorLength), output);
        }
        finally
        {
            System.Buffers.ArrayPool<ulong>.Shared.Return(kept);
        }
    }

    /// <summary>
    /// The population variances across models in <paramref name="variance"/> and the cut of their top
    /// ⌊select_topk · #{var ≠ 0}⌋ (a task-vector element counts as 0 wherever the cut drops its variance).
    /// </summary>
    private static MagnitudeKeep SelectByVariance(TensorMergeInputs inputs, double topK, Span<float> variance)
    {
        IMergeKernels kernels = inputs.Kernels;
        long nonzero = kernels.VarianceAcrossRows(inputs.Models.Span, variance);
        // mergekit: k = int(topk · count_nonzero(var)); torch.topk of |var| (Weld breaks ties by lowest index).
        return kernels.SelectTopKCut(variance, (long)(topK * nonzero));
    }

    /// <summary>Σ δ_k² of every task vector of <paramref name="inputs"/> (a whole tensor, or a chunk of one), nothing dropped.</summary>
    private static double[] Energies(TensorMergeInputs inputs)
    {
        var energy = new double[inputs.Count];
        AddEnergies(inputs, energy);
        return energy;
    }

    /// <summary>energy[k] += Σ δ_k² of <paramref name="inputs"/> (a whole tensor or a chunk), block by block.</summary>
    private static void AddEnergies(TensorMergeInputs inputs, double[] energy)
    {
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
    /// δ_k read as 0 where its bit in <paramref name="keptBits"/> is clear; torch.sign's NaN gives 0, which never matches
    /// the elected ±1.
    /// </summary>
    private static void EraseAndMixOntoBase(TensorMergeInputs inputs, ReadOnlySpan<ulong> keptBits, float[] weights, Span<float> output) =>
        inputs.Kernels.SignErasedMixOntoBaseWhereKept(inputs.Models.Span, keptBits, weights, DivisorFloor, inputs.Base.Span, output);
}
