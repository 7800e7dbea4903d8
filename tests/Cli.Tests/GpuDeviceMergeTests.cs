using System.Text.RegularExpressions;
using Weld.Engine.Methods;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary>
/// Every merge method, merged end to end on the GPU kernels, writes the very bytes <c>--device cpu</c> writes (same
/// recipe, same seed): on <c>--device ilgpu-cpu</c> (ILGPU's CPU accelerator running the GPU kernels) in every test
/// run, and on <c>--device cuda</c> when ILGPU finds a device.
/// </summary>
/// <remarks>
/// Each method's recipe is its example of <c>examples/</c> (the small zoo LMs; fisher, which has no example, gets
/// Fisher files written here). The engine runs elementwise methods on its fused CPU path only with the CPU backend
/// (<c>MergeExecutor.IsFused</c>: <c>kernels is CpuKernels</c>), so on a GPU device every tensor goes through the
/// GPU kernels.
/// </remarks>
public sealed partial class GpuDeviceMergeTests
{
    private const int Seed = 7;

    /// <summary>Every method with every GPU device here.</summary>
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string device in GpuTestDevices.Names)
        {
            foreach (IMergeMethod method in MergeMethods.All)
                data.Add(method.Name, device);
            // linear's other branch (no division by Σw): runs on WeightedSum alone.
            data.Add(LinearUnnormalized, device);
        }
        return data;
    }

    private const string LinearUnnormalized = "linear (normalize: false)";

    [Fact]
    public void Every_method_has_a_recipe()
    {
        // Guards the theory: a new method without an example fails here rather than going untested on the GPU.
        Assert.All(MergeMethods.All, method => Assert.NotNull(ExampleFor(method.Name)));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Method_on_a_gpu_device_writes_the_cpu_bytes(string method, string device)
    {
        string temp = TestPaths.NewTempDir("weld-cli-gpu");
        try
        {
            string recipe = WriteRecipe(method, temp);
            string onCpu = Path.Combine(temp, "cpu"), onGpu = Path.Combine(temp, "gpu");
            string seed = Seed.ToString(System.Globalization.CultureInfo.InvariantCulture);

            CliResult cpu = WeldCli.Run("merge", recipe, "-o", onCpu, "--device", "cpu", "--random-seed", seed);
            CliResult gpu = WeldCli.Run("merge", recipe, "-o", onGpu, "--device", device, "--random-seed", seed);

            CliAssert.Succeeded(cpu);
            CliAssert.Succeeded(gpu);
            Assert.Contains($"device: {(device == GpuTestDevices.Cuda ? "cuda:0" : device)} (", gpu.Stderr, StringComparison.Ordinal);
            string[] files = Directory.GetFiles(onCpu, "*.safetensors").Select(Path.GetFileName).Append("config.json").Order(StringComparer.Ordinal).ToArray()!;
            Assert.Equal(files.Order(StringComparer.Ordinal),
                Directory.GetFiles(onGpu).Select(Path.GetFileName).Where(f => f!.EndsWith(".safetensors", StringComparison.Ordinal) || f == "config.json").Order(StringComparer.Ordinal));
            foreach (string file in files)
            {
                byte[] expected = File.ReadAllBytes(Path.Combine(onCpu, file));
                byte[] actual = File.ReadAllBytes(Path.Combine(onGpu, file));
                Assert.True(expected.AsSpan().SequenceEqual(actual), $"{method}: {file} differs between --device cpu and --device {device}");
            }
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>The example recipe of <paramref name="method"/>: the file named after it, else the first that uses it; null when none.</summary>
    private static string? ExampleFor(string method)
    {
        if (method == "fisher")
            return "fisher";
        string[] examples = Recipes.ExampleNames()
            .Where(name => MergeMethodLine().Match(File.ReadAllText(Path.Combine(Recipes.ExamplesFolder, name))).Groups[1].Value == method)
            .ToArray();
        string named = method.Replace('_', '-') + ".yml";
        return examples.Contains(named, StringComparer.Ordinal) ? named : examples.FirstOrDefault();
    }

    private static string WriteRecipe(string method, string folder)
    {
        if (method == LinearUnnormalized)
            return Recipes.Write(folder, File.ReadAllText(Recipes.WriteExample("linear-soup.yml", folder)) + "parameters:\n  normalize: false\n");
        if (method == "fisher")
            return WriteFisherRecipe(folder);
        string example = ExampleFor(method) ?? throw new InvalidOperationException($"no example uses {method}");
        return Recipes.WriteExample(example, folder);
    }

    /// <summary>fisher over two zoo LMs, with Fisher files of squared weights (some exactly zero) written into <paramref name="folder"/>.</summary>
    private static string WriteFisherRecipe(string folder)
    {
        string FisherFile(string model)
        {
            using ModelFolder source = ModelFolder.Open(Recipes.ExampleModel(model));
            string[] names = source.TensorNames.Order(StringComparer.Ordinal).ToArray();
            string path = Path.Combine(folder, model + ".fisher.safetensors");
            var headers = names.Select(n => new TensorHeader(n, DType.F32, source.GetTensor(n).Info.Shape)).ToArray();
            using (var writer = new SafeTensorsWriter(path, headers, null))
            {
                foreach (string name in names)
                {
                    float[] values = ModelFiles.Read(source, name);
                    for (int i = 0; i < values.Length; i++)
                        values[i] = i % 11 == 0 ? 0f : values[i] * values[i];
                    writer.WriteFloat32(values);
                }
                writer.Complete();
            }
            return path;
        }
        string c = FisherFile("lm-ft-c"), python = FisherFile("lm-ft-python");
        return Recipes.Write(folder, $$"""
            models:
              - model: {{Recipes.ExampleModel("lm-ft-c")}}
                parameters: {fisher: {{c}}}
              - model: {{Recipes.ExampleModel("lm-ft-python")}}
                parameters: {fisher: {{python}}, weight: 0.5}
            merge_method: fisher
            parameters: {epsilon: 1e-6}
            dtype: float32
            out_dtype: bfloat16
            """, "fisher.yml");
    }

    [GeneratedRegex(@"(?m)^merge_method:\s*(\S+)")]
    private static partial Regex MergeMethodLine();
}
