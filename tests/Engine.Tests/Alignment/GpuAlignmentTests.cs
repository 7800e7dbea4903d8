using Weld.Engine.Alignment;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Kernels;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Alignment;

/// <summary>
/// The GPU similarity path (<c>weld align --device cuda</c> / <c>ilgpu-cpu</c>) against the CPU path: on the emulator
/// in every run (the small MLP pair: every GPU thread is an OS thread there), on CUDA when present (the zoo LMs).
/// </summary>
public class GpuAlignmentTests
{
    private static (string Reference, string Model, string Other) ModelsFor(string device) =>
        device == GpuTestDevices.Emulated ? ("mlp-digits-a", "mlp-digits-b", "mlp-digits-a-permuted") : ("lm-base", "lm-ft-markup", "lm-ft-c");

    private static GemmSimilarity Open(string device) => new(GemmBackends.Select(device, 1, out string reason), reason);

    [Theory]
    [MemberData(nameof(GpuTestDevices.All), MemberType = typeof(GpuTestDevices))]
    public void Gpu_similarity_equals_cpu_similarity_within_float_tolerance(string device)
    {
        using var reference = ModelFolder.Open(TestPaths.Model(ModelsFor(device).Reference));
        using var model = ModelFolder.Open(TestPaths.Model(ModelsFor(device).Model));
        PermutationSpec spec = RecipeAlignment.SpecFor(model);
        int[][] permutations = StreamingAlignmentTests.RandomPermutations(spec, new Random(9));
        TensorSet a = TensorSet.Load(reference), b = TensorSet.Load(model);
        using GemmSimilarity gpuGemm = Open(device);
        // A small tile also runs the chunked products and row blocks on the device.
        foreach (int tile in (int[])[StreamingSimilarity.DefaultTileElements, 1000])
        {
            var gpu = new StreamingSimilarity(spec, AlignmentTensors.Of(reference), AlignmentTensors.Of(model), gpuGemm, tile);
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

    [Theory]
    [MemberData(nameof(GpuTestDevices.All), MemberType = typeof(GpuTestDevices))]
    public void Gpu_path_finds_the_same_permutations(string device)
    {
        using var reference = ModelFolder.Open(TestPaths.Model(ModelsFor(device).Reference));
        using var original = ModelFolder.Open(TestPaths.Model(ModelsFor(device).Other));
        PermutationSpec spec = RecipeAlignment.SpecFor(original);
        string temp = TestPaths.NewTempDir();
        try
        {
            string scrambledPath = Path.Combine(temp, "scrambled");
            PermutedModelWriter.Write(original, spec, StreamingAlignmentTests.RandomPermutations(spec, new Random(5)), scrambledPath, overwrite: false);
            using var model = ModelFolder.Open(scrambledPath);
            WeightMatchingResult cpu = WeightMatching.Run(spec, reference, model, seed: 3);
            WeightMatchingResult gpu;
            using (GemmSimilarity gpuGemm = Open(device)) gpu = WeightMatching.Run(spec, reference, model, seed: 3, gemm: gpuGemm);
            Assert.Equal(cpu.Iterations, gpu.Iterations);
            for (int g = 0; g < spec.Groups.Count; g++) Assert.Equal(cpu.Permutations[g], gpu.Permutations[g]);
            // The objective is summed on the host in float64 from the same permutations, so it is identical too.
            Assert.Equal(cpu.Objectives, gpu.Objectives);
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }
}
