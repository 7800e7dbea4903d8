using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Alignment;

/// <summary>The permutations weight matching found and how the objective went.</summary>
/// <param name="Permutations">One per group of the spec, in its order: <c>p[i]</c> is the unit of the model placed at position <c>i</c>.</param>
/// <param name="Objectives">The objective <c>Σ ⟨W_ref, π(W_model)⟩</c> over the permuted tensors: entry 0 before any
/// permutation (identity), then one entry after each sweep over the groups.</param>
/// <param name="Converged">Whether the last sweep improved no permutation (false when the sweep limit stopped it).</param>
public sealed record WeightMatchingResult(IReadOnlyList<int[]> Permutations, IReadOnlyList<double> Objectives, bool Converged)
{
    /// <summary>Sweeps over the groups that ran.</summary>
    public int Iterations => Objectives.Count - 1;
}

/// <summary>
/// Weight matching (Ainsworth, Hayase and Srinivasa, "Git Re-Basin", ICLR 2023, algorithm 1): permutes the units
/// of a model to maximise the inner product of its weights with a reference's, by coordinate descent over the
/// permutation groups: each group's permutation is the solution of a linear assignment problem with the others
/// held fixed.
/// </summary>
public static class WeightMatching
{
    /// <summary>
    /// Runs coordinate descent until a full sweep (groups in a seeded random order) improves no permutation, or
    /// <paramref name="maxIterations"/> sweeps have run.
    /// </summary>
    /// <param name="spec">The permutation symmetry.</param>
    /// <param name="reference">The model to align to (A).</param>
    /// <param name="model">The model to permute (B).</param>
    /// <param name="seed">Seeds the order in which the groups are visited.</param>
    /// <param name="maxIterations">Most sweeps; at least 1.</param>
    /// <param name="onIteration">Called after each sweep with its number (1-based) and the objective.</param>
    /// <exception cref="InvalidModelFileException">A permuted tensor is missing or misshapen in either model.</exception>
    /// <exception cref="WeldException">The two models' tensors differ in shape.</exception>
    public static WeightMatchingResult Run(PermutationSpec spec, TensorSet reference, TensorSet model, int seed = 0,
        int maxIterations = 100, Action<int, double>? onIteration = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxIterations, 1);
        spec.Validate(reference);
        spec.Validate(model);
        foreach (string name in spec.PermutedTensors)
        {
            if (!reference.GetShape(name).AsSpan().SequenceEqual(model.GetShape(name)))
            {
                throw new WeldException($"tensor '{name}' has shape [{string.Join(", ", reference.GetShape(name))}] in {reference.SourceName} " +
                    $"but [{string.Join(", ", model.GetShape(name))}] in {model.SourceName}; cannot align.");
            }
        }

        return Descend(spec, seed, maxIterations, onIteration,
            (g, permutations) => Similarity(spec, g, reference, model, permutations),
            permutations => Objective(spec, reference, model, permutations));
    }

    /// <summary>
    /// Runs weight matching on two model folders read in place: tensors stay in their stored dtype (mapped
    /// safetensors) and are converted to float32 tile by tile as each similarity matrix is built; the permutations
    /// are index arrays applied while tiles are gathered (no permuted copy of the model). Visits groups in the same
    /// seeded order and gives the same permutations as the <see cref="TensorSet"/> overload (whose tensors are held
    /// whole as float32); see the README for the memory bound.
    /// </summary>
    /// <param name="spec">The permutation symmetry.</param>
    /// <param name="reference">The model to align to (A).</param>
    /// <param name="model">The model to permute (B).</param>
    /// <param name="seed">Seeds the order in which the groups are visited.</param>
    /// <param name="maxIterations">Most sweeps; at least 1.</param>
    /// <param name="onIteration">Called after each sweep with its number (1-based) and the objective.</param>
    /// <param name="gemm">Where the similarity products run; null for the CPU (<see cref="CpuSimilarityGemm"/>).</param>
    /// <exception cref="InvalidModelFileException">A permuted tensor is missing or misshapen in either model.</exception>
    /// <exception cref="WeldException">The two models' tensors differ in shape.</exception>
    public static WeightMatchingResult Run(PermutationSpec spec, ModelFolder reference, ModelFolder model, int seed = 0,
        int maxIterations = 100, Action<int, double>? onIteration = null, ISimilarityGemm? gemm = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(model);
        var similarity = new StreamingSimilarity(spec, AlignmentTensors.Of(reference), AlignmentTensors.Of(model), gemm ?? CpuSimilarityGemm.Instance);
        return Run(spec, similarity, seed, maxIterations, onIteration);
    }

    /// <summary>The streaming path on an already built <see cref="StreamingSimilarity"/> (tests set its tile size and read its buffer accounting).</summary>
    internal static WeightMatchingResult Run(PermutationSpec spec, StreamingSimilarity similarity, int seed, int maxIterations, Action<int, double>? onIteration)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxIterations, 1);
        AlignmentTensors reference = similarity.Reference, model = similarity.Model;
        spec.Validate(reference.SourceName, reference.ShapeOf);
        spec.Validate(model.SourceName, model.ShapeOf);
        foreach (string name in spec.PermutedTensors)
        {
            long[] a = reference.ShapeOf(name)!, b = model.ShapeOf(name)!;
            if (!a.AsSpan().SequenceEqual(b))
            {
                throw new WeldException($"tensor '{name}' has shape [{string.Join(", ", a)}] in {reference.SourceName} " +
                    $"but [{string.Join(", ", b)}] in {model.SourceName}; cannot align.");
            }
        }

        return Descend(spec, seed, maxIterations, onIteration, similarity.Build, similarity.Objective);
    }

    /// <summary>The coordinate descent shared by both paths; <paramref name="similarity"/> gives a group's (S, C), <paramref name="objective"/> the total.</summary>
    private static WeightMatchingResult Descend(PermutationSpec spec, int seed, int maxIterations, Action<int, double>? onIteration,
        Func<int, int[][], (double[] Units, double[] UnitGroups)> similarity, Func<int[][], double> objective)
    {
        int groupCount = spec.Groups.Count;
        var permutations = new int[groupCount][];
        for (int g = 0; g < groupCount; g++) permutations[g] = Identity(spec.Groups[g].Size);
        var objectives = new List<double> { objective(permutations) };
        var random = new Random(seed);
        var order = new int[groupCount];
        for (int g = 0; g < groupCount; g++) order[g] = g;

        bool converged = false;
        for (int iteration = 1; iteration <= maxIterations && !converged; iteration++)
        {
            random.Shuffle(order);
            bool improved = false;
            foreach (int g in order)
            {
                PermutationGroup group = spec.Groups[g];
                (double[] units, double[] unitGroups) = similarity(g, permutations);
                int[] candidate = GroupAssignment.Solve(group, units, unitGroups);
                double before = GroupAssignment.Objective(group, units, unitGroups, permutations[g]);
                double after = GroupAssignment.Objective(group, units, unitGroups, candidate);
                // Keeping the old permutation on a tie (or a rounding-level gain) makes the descent stop instead of cycling.
                if (after > before + 1e-12 * Math.Max(1, Math.Abs(before)))
                {
                    permutations[g] = candidate;
                    improved = true;
                }
            }

            double total = objective(permutations);
            objectives.Add(total);
            onIteration?.Invoke(iteration, total);
            converged = !improved;
        }

        return new WeightMatchingResult(permutations, objectives, converged);
    }

    /// <summary>Applies the permutations of <paramref name="spec"/> to every tensor of <paramref name="model"/> they touch; other tensors are shared, not copied.</summary>
    public static TensorSet Apply(PermutationSpec spec, TensorSet model, IReadOnlyList<int[]> permutations)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(permutations);
        spec.Validate(model);
        CheckPermutations(spec, permutations);
        var result = new TensorSet(model.SourceName + " (permuted)");
        foreach (string name in model.Names)
        {
            int[]? groups = spec.GroupsOf(name);
            long[] shape = model.GetShape(name);
            result.Set(name, shape, groups is null ? model.Get(name) : TensorPermuter.Permute(model.Get(name), shape, spec.IndexMaps(name, shape.Length, permutations)));
        }

        return result;
    }

    /// <summary>
    /// The similarity matrices of group <paramref name="group"/>: <c>S[i, j] = Σ ⟨A along unit i, π₋(B) along unit j⟩</c>
    /// over the axes indexed by units, and the same over unit groups for the axes indexed by unit groups, with every
    /// other group's permutation applied to B. Dot products by GEMM in float32, summed over tensors in float64.
    /// </summary>
    private static (double[] Units, double[] UnitGroups) Similarity(PermutationSpec spec, int group, TensorSet reference, TensorSet model, int[][] permutations)
    {
        PermutationGroup g = spec.Groups[group];
        var units = new double[g.Size * g.Size];
        var unitGroups = new double[g.UnitGroups * g.UnitGroups];
        foreach (PermutedAxis axis in g.Axes)
        {
            long[] shape = model.GetShape(axis.Tensor);
            float[] b = TensorPermuter.Permute(model.Get(axis.Tensor), shape, spec.IndexMaps(axis.Tensor, shape.Length, permutations, group));
            float[] a = reference.Get(axis.Tensor);
            int length = checked((int)shape[axis.Axis]);
            int rest = shape.Length == 1 ? 1 : checked((int)shape[1 - axis.Axis]);
            if (axis.Axis == 1)
            {
                // Bring the permuted axis first so each unit (its block of indices) is one contiguous row.
                a = Transpose(a, rest, length);
                b = Transpose(b, rest, length);
            }

            int n = axis.PerUnitGroup ? g.UnitGroups : g.Size;
            int k = checked(axis.BlockSize * rest);
            var product = new float[n * n];
            Gemm.Multiply(a, b, product, n, k, n, transposeB: true);
            double[] target = axis.PerUnitGroup ? unitGroups : units;
            for (int i = 0; i < target.Length; i++) target[i] += product[i];
        }

        return (units, unitGroups);
    }

    /// <summary><c>Σ ⟨A, π(B)⟩</c> over every tensor the spec permutes, in float64 and tensor-name order.</summary>
    private static double Objective(PermutationSpec spec, TensorSet reference, TensorSet model, int[][] permutations)
    {
        var names = new List<string>(spec.PermutedTensors);
        names.Sort(StringComparer.Ordinal);
        double total = 0;
        foreach (string name in names)
        {
            long[] shape = model.GetShape(name);
            float[] b = TensorPermuter.Permute(model.Get(name), shape, spec.IndexMaps(name, shape.Length, permutations));
            float[] a = reference.Get(name);
            double sum = 0;
            for (int i = 0; i < a.Length; i++) sum += (double)a[i] * b[i];
            total += sum;
        }

        return total;
    }

    private static void CheckPermutations(PermutationSpec spec, IReadOnlyList<int[]> permutations)
    {
        if (permutations.Count != spec.Groups.Count)
            throw new WeldException($"{permutations.Count} permutations were given for {spec.Groups.Count} groups.");
        for (int g = 0; g < permutations.Count; g++)
        {
            if (permutations[g] is null || !spec.Groups[g].Admits(permutations[g]))
            {
                throw new WeldException($"permutation '{spec.Groups[g].Name}' is not a permutation of {spec.Groups[g].Size} units" +
                    (spec.Groups[g].GroupSize > 1 ? $" that keeps groups of {spec.Groups[g].GroupSize} together." : "."));
            }
        }
    }

    private static float[] Transpose(float[] source, int rows, int columns)
    {
        var result = new float[source.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++) result[c * rows + r] = source[r * columns + c];
        return result;
    }

    private static int[] Identity(int n)
    {
        var identity = new int[n];
        for (int i = 0; i < n; i++) identity[i] = i;
        return identity;
    }
}
