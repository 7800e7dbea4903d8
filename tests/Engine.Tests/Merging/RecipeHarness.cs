using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.Models;
using Weld.Tests;

namespace Weld.Engine.Tests.Merging;

/// <summary>Runs recipes over the shared zoo models and reads results back.</summary>
internal static class RecipeHarness
{
    /// <summary>Recipe text with <c>{zoo}</c> replaced by the shared model folder.</summary>
    public static MergeRecipe Recipe(string yaml) =>
        RecipeParser.Parse(yaml.Replace("{zoo}", TestPaths.SharedModels, StringComparison.Ordinal), "test.yml");

    /// <summary>Merges into a fresh temp folder and returns its path.</summary>
    public static string Merge(string yaml, int threads = -1, ulong seed = 0, long shardBytes = 5_000_000_000)
    {
        string output = Path.Combine(TestPaths.NewTempDir(), "out");
        MergeRunner.Run(Recipe(yaml), new MergeOptions { OutputPath = output, Threads = threads, Seed = seed, MaxShardBytes = shardBytes });
        return output;
    }

    /// <summary>All values of one tensor as float32.</summary>
    public static float[] Read(string model, string tensor)
    {
        using var folder = ModelFolder.Open(model);
        ModelTensor t = folder.GetTensor(tensor);
        var values = new float[t.Info.ElementCount];
        t.ReadFloat32(0, values);
        return values;
    }

    /// <summary>Every tensor of a model, by name.</summary>
    public static Dictionary<string, float[]> ReadAll(string model)
    {
        using var folder = ModelFolder.Open(model);
        var all = new Dictionary<string, float[]>();
        foreach (string name in folder.TensorNames)
        {
            ModelTensor t = folder.GetTensor(name);
            var values = new float[t.Info.ElementCount];
            t.ReadFloat32(0, values);
            all[name] = values;
        }
        return all;
    }

    /// <summary>The raw bytes of every .safetensors file of a model folder, concatenated in name order.</summary>
    public static byte[] TensorFileBytes(string folder) =>
        Directory.GetFiles(folder, "*.safetensors").Order(StringComparer.Ordinal).SelectMany(File.ReadAllBytes).ToArray();
}
