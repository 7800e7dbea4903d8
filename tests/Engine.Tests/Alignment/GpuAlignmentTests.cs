using Weld.Engine.Alignment;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Kernels.Cuda;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Alignment;

/// <summary>A fact that needs a CUDA device with cuBLAS; skipped with the reason when there is none.</summary>
public sealed class CublasFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> s_unavailable = new(() => CudaGemm.IsAvailable(0, out string reason) ? null : reason);

    /// <summary>Sets <see cref="FactAttribute.Skip"/> when no device is usable.</summary>
    public CublasFactAttribute()
    {
        if (s_unavailable.Value is { } reason) Skip = reason;
    }
}

/// <summary>The cuBLAS similarity path (<c>weld align --device cuda</c>) against the CPU path.</summary>
public class CudaAlignmentTests
{
    [CublasFact]
    public void Gpu_similarity_equals_cpu_similarity_within_float_tolerance()
    {
        using var reference = ModelFolder.Open(TestPaths.Model("lm-base"));
        using var model = ModelFolder.Open(TestPaths.Model("lm-ft-markup"));
        PermutationSpec spec = RecipeAlignment.SpecFor(model);
        int[][] permutations = StreamingAlignmentTests.RandomPermutations(spec, new Random(9));
        TensorSet a = TensorSet.Load(reference), b = TensorSet.Load(model);
        using var cuda = new CudaSimilarityGemm(0);
        // A small tile also runs the chunked products and row blocks on the device.
        foreach (int tile in (int[])[StreamingSimilarity.DefaultTileElements, 1000])
        {
            var gpu = new StreamingSimilarity(spec, AlignmentTensors.Of(reference), AlignmentTensors.Of(model), cuda, tile);
            var cpu = new StreamingSimilarity(spec, AlignmentTensors.Of(reference), AlignmentTensors.Of(model), CpuSimilarityGemm.Instance, tile);
            for (int g = 0; g < spec.Groups.Count; g++)
            {
                (double[] gpuUnits, double[] gpuGroups) = gpu.Build(g, permutations);
                (double[] cpuUnits, double[] cpuGroups) = cpu.Build(g, permutations);
                (_, double[] unitsScale, _, double[] groupsScale) = StreamingAlignmentTests.ScalarSimilarity(spec, g, a, b, permutations);
                StreamingAlignmentTests.AssertClose(cpuUnits, unitsScale, gpuUnits, spec.Groups[g].Name);
                if (cpuGroups.Length > 0) StreamingAlignmentTests.AssertClose(cpuGroups, groupsScale, gpuGroups, spec.Groups[g].Name + " (unit groups)");
            }
        }
    }

    [CublasFact]
    public void Gpu_path_finds_the_same_permutations_on_the_zoo_lm()
    {
        using var reference = ModelFolder.Open(TestPaths.Model("lm-base"));
        using var original = ModelFolder.Open(TestPaths.Model("lm-ft-c"));
        PermutationSpec spec = RecipeAlignment.SpecFor(original);
        string scrambledPath = Path.Combine(TestPaths.NewTempDir(), "scrambled");
        PermutedModelWriter.Write(original, spec, StreamingAlignmentTests.RandomPermutations(spec, new Random(5)), scrambledPath, overwrite: false);
        using var model = ModelFolder.Open(scrambledPath);
        WeightMatchingResult cpu = WeightMatching.Run(spec, reference, model, seed: 3);
        WeightMatchingResult gpu;
        using (var cuda = new CudaSimilarityGemm(0)) gpu = WeightMatching.Run(spec, reference, model, seed: 3, gemm: cuda);
        Assert.Equal(cpu.Iterations, gpu.Iterations);
        for (int g = 0; g < spec.Groups.Count; g++) Assert.Equal(cpu.Permutations[g], gpu.Permutations[g]);
        // The objective is summed on the host in float64 from the same permutations, so it is identical too.
        Assert.Equal(cpu.Objectives, gpu.Objectives);
    }
}
