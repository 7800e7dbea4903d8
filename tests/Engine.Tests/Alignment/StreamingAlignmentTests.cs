using Weld.Engine.Alignment;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Alignment;

/// <summary>
/// The streaming weight-matching path (tensors read in place, tile by tile; permutations as index maps) against
/// plain references built from whole float32 tensors, and against the in-memory <see cref="TensorSet"/> path.
/// </summary>
public class StreamingAlignmentTests
{
    /// <summary>Small enough that every lm-base product is split into several k chunks and row blocks.</summary>
    private const int TinyTile = 1000;

    [Fact]
    public void Similarity_equals_a_scalar_reference_from_whole_float32_tensors_whole_or_chunked()
    {
        using var reference = ModelFolder.Open(TestPaths.Model("lm-base"));
        using var model = ModelFolder.Open(TestPaths.Model("lm-ft-c"));
        PermutationSpec spec = RecipeAlignment.SpecFor(model);
        int[][] permutations = RandomPermutations(spec, new Random(7));
        TensorSet a = TensorSet.Load(reference), b = TensorSet.Load(model);
        var whole = new StreamingSimilarity(spec, AlignmentTensors.Of(reference), AlignmentTensors.Of(model), CpuSimilarityGemm.Instance);
        var chunked = new StreamingSimilarity(spec, AlignmentTensors.Of(reference), AlignmentTensors.Of(model), CpuSimilarityGemm.Instance, TinyTile);
        // The residual stream (every tensor, axes 0 and 1), one attention group (blocks of head_dim, GQA unit groups)
        // and one MLP group cover every kind of axis; the scalar reference is too slow to run on all nine.
        foreach (string name in (string[])["residual", "attn.1", "mlp.2"])
        {
            int g = spec.Groups.ToList().FindIndex(group => group.Name == name);
            (double[] expectedUnits, double[] unitsScale, double[] expectedGroups, double[] groupsScale) = ScalarSimilarity(spec, g, a, b, permutations);
            foreach (StreamingSimilarity similarity in (StreamingSimilarity[])[whole, chunked])
            {
                (double[] units, double[] unitGroups) = similarity.Build(g, permutations);
                AssertClose(expectedUnits, unitsScale, units, $"{name} (tile {similarity.TileElements})");
                if (unitGroups.Length == 0) Assert.All(expectedGroups, value => Assert.Equal(0, value));
                else AssertClose(expectedGroups, groupsScale, unitGroups, $"{name} unit groups (tile {similarity.TileElements})");
            }
        }

        // The buffers never outgrow three tiles and one row of each model (lm-base's longest row: 384 elements).
        Assert.InRange(chunked.BufferElements, 1, 3L * TinyTile + 2 * 384);
        // Untiled, the largest tiles are 128 × 384 (down_proj for the residual, gate/up for an MLP group) and the
        // largest product block the MLP group's 384 × 384.
        Assert.InRange(whole.BufferElements, 1, 2L * 128 * 384 + 384 * 384 + 2 * 384);
    }

    [Fact]
    public void Objective_equals_the_plain_float64_sum_over_whole_permuted_tensors()
    {
        using var reference = ModelFolder.Open(TestPaths.Model("lm-base"));
        using var model = ModelFolder.Open(TestPaths.Model("lm-ft-python"));
        PermutationSpec spec = RecipeAlignment.SpecFor(model);
        int[][] permutations = RandomPermutations(spec, new Random(11));
        TensorSet a = TensorSet.Load(reference), b = TensorSet.Load(model);
        var names = spec.PermutedTensors.ToList();
        names.Sort(StringComparer.Ordinal);
        double expected = 0;
        foreach (string name in names)
        {
            long[] shape = b.GetShape(name);
            float[] permuted = TensorPermuter.Permute(b.Get(name), shape, spec.IndexMaps(name, shape.Length, permutations));
            float[] values = a.Get(name);
            double sum = 0;
            for (int i = 0; i < values.Length; i++) sum += (double)values[i] * permuted[i];
            expected += sum;
        }

        var similarity = new StreamingSimilarity(spec, AlignmentTensors.Of(reference), AlignmentTensors.Of(model), CpuSimilarityGemm.Instance);
        Assert.Equal(expected, similarity.Objective(permutations));
    }

    [Theory]
    [InlineData("lm-base", "lm-ft-c", 3)]
    [InlineData("mlp-digits-a", "mlp-digits-b", 0)]
    public void Streaming_path_finds_the_same_permutations_and_objectives_as_the_in_memory_path(string referenceName, string modelName, int seed)
    {
        using var reference = ModelFolder.Open(TestPaths.Model(referenceName));
        using var original = ModelFolder.Open(TestPaths.Model(modelName));
        PermutationSpec spec = RecipeAlignment.SpecFor(original);
        // Scramble the model first so the descent has real work to do on the Llama (a fine-tune starts aligned).
        string scrambledPath = Path.Combine(TestPaths.NewTempDir(), "scrambled");
        PermutedModelWriter.Write(original, spec, RandomPermutations(spec, new Random(5)), scrambledPath, overwrite: false);
        using var model = ModelFolder.Open(scrambledPath);

        WeightMatchingResult inMemory = WeightMatching.Run(spec, TensorSet.Load(reference), TensorSet.Load(model), seed);
        WeightMatchingResult streaming = WeightMatching.Run(spec, reference, model, seed);
        Assert.True(inMemory.Iterations > 1);
        Assert.Equal(inMemory.Objectives, streaming.Objectives);
        Assert.Equal(inMemory.Converged, streaming.Converged);
        for (int g = 0; g < spec.Groups.Count; g++) Assert.Equal(inMemory.Permutations[g], streaming.Permutations[g]);

        // Chunked products round differently, but not enough to change a single assignment here.
        var tiny = new StreamingSimilarity(spec, AlignmentTensors.Of(reference), AlignmentTensors.Of(model), CpuSimilarityGemm.Instance, TinyTile);
        WeightMatchingResult chunked = WeightMatching.Run(spec, tiny, seed, 100, null);
        for (int g = 0; g < spec.Groups.Count; g++) Assert.Equal(inMemory.Permutations[g], chunked.Permutations[g]);
    }

    [Fact]
    public void Streamed_output_equals_whole_tensor_permutation_of_the_stored_bytes()
    {
        using var source = ModelFolder.Open(TestPaths.Model("lm-ft-c-sharded"));
        PermutationSpec spec = RecipeAlignment.SpecFor(source);
        int[][] permutations = RandomPermutations(spec, new Random(3));
        string output = Path.Combine(TestPaths.NewTempDir(), "permuted");
        PermutedModelWriter.Write(source, spec, permutations, output, overwrite: false);
        foreach (SafeTensorsFile file in source.Files)
        {
            string written = Path.Combine(output, Path.GetFileName(file.FilePath));
            byte[] sourceBytes = File.ReadAllBytes(file.FilePath), writtenBytes = File.ReadAllBytes(written);
            Assert.Equal(sourceBytes.Length, writtenBytes.Length);
            long dataStart = sourceBytes.Length - file.DataLength;
            Assert.Equal(sourceBytes.AsSpan(0, (int)dataStart).ToArray(), writtenBytes.AsSpan(0, (int)dataStart).ToArray());
            foreach (TensorInfo info in file.Tensors)
            {
                // What the writer did before streaming: the whole tensor permuted in one buffer.
                ReadOnlySpan<byte> stored = file.GetBytes(info, 0, (int)info.ByteLength);
                var expected = new byte[stored.Length];
                TensorPermuter.Permute(stored, expected, info.Shape, spec.IndexMaps(info.Name, info.Shape.Length, permutations), DTypes.SizeOf(info.DType));
                Assert.True(expected.AsSpan().SequenceEqual(writtenBytes.AsSpan((int)(dataStart + info.Offset), (int)info.ByteLength)), info.Name);
            }
        }
    }

    /// <summary>
    /// S and C of group <paramref name="g"/> by definition: whole float32 tensors, B permuted by the other groups,
    /// each unit's elements addressed directly (no transposes, tiles or GEMM), summed in float64; also Σ|a·b| per
    /// entry, which bounds the float32 rounding of the path under test.
    /// </summary>
    internal static (double[] Units, double[] UnitsScale, double[] Groups, double[] GroupsScale) ScalarSimilarity(
        PermutationSpec spec, int g, TensorSet a, TensorSet b, int[][] permutations)
    {
        PermutationGroup group = spec.Groups[g];
        double[] units = new double[group.Size * group.Size], unitsScale = new double[units.Length];
        double[] groups = new double[group.UnitGroups * group.UnitGroups], groupsScale = new double[groups.Length];
        foreach (PermutedAxis axis in group.Axes)
        {
            long[] shape = b.GetShape(axis.Tensor);
            float[] x = a.Get(axis.Tensor);
            float[] y = TensorPermuter.Permute(b.Get(axis.Tensor), shape, spec.IndexMaps(axis.Tensor, shape.Length, permutations, g));
            int columns = shape.Length == 2 ? (int)shape[1] : 1, rest = axis.Axis == 0 ? columns : (int)shape[0];
            int n = axis.PerUnitGroup ? group.UnitGroups : group.Size, block = axis.BlockSize;
            double[] target = axis.PerUnitGroup ? groups : units, scale = axis.PerUnitGroup ? groupsScale : unitsScale;
            int Index(int unit, int e, int r) => axis.Axis == 0 ? (unit * block + e) * columns + r : r * columns + unit * block + e;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    for (int e = 0; e < block; e++)
                        for (int r = 0; r < rest; r++)
                        {
                            double product = (double)x[Index(i, e, r)] * y[Index(j, e, r)];
                            target[i * n + j] += product;
                            scale[i * n + j] += Math.Abs(product);
                        }
        }

        return (units, unitsScale, groups, groupsScale);
    }

    internal static void AssertClose(double[] expected, double[] scale, double[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            // float32 products over k terms: the error is a small multiple of eps·Σ|a·b|; a wrong index is O(Σ|a·b|).
            double tolerance = 1e-5 * scale[i] + 1e-30;
            Assert.True(Math.Abs(actual[i] - expected[i]) <= tolerance, $"{what}[{i}]: {actual[i]:R}, expected {expected[i]:R} ± {tolerance:G3}");
        }
    }

    /// <summary>A random admissible permutation per group (unit groups kept together).</summary>
    internal static int[][] RandomPermutations(PermutationSpec spec, Random random)
    {
        var permutations = new int[spec.Groups.Count][];
        for (int g = 0; g < permutations.Length; g++)
        {
            PermutationGroup group = spec.Groups[g];
            int[] order = [.. Enumerable.Range(0, group.UnitGroups)];
            random.Shuffle(order);
            permutations[g] = new int[group.Size];
            for (int u = 0; u < group.UnitGroups; u++)
            {
                int[] within = [.. Enumerable.Range(0, group.GroupSize)];
                random.Shuffle(within);
                for (int t = 0; t < group.GroupSize; t++) permutations[g][u * group.GroupSize + t] = order[u] * group.GroupSize + within[t];
            }
        }

        return permutations;
    }
}
