using Weld.Engine.Models;

namespace WeldEmbedExample;

/// <summary>Reads tensors of a checkpoint as float32 and measures how far a fine-tune moved from its base.</summary>
public static class TensorExample
{
    public static void PrintTaskVectorNorms(string basePath, string fineTunePath, TextWriter console)
    {
        using ModelFolder baseModel = ModelFolder.Open(basePath);
        using ModelFolder fineTune = ModelFolder.Open(fineTunePath);
        foreach (string name in baseModel.TensorNames)
        {
            ModelTensor a = baseModel.GetTensor(name), b = fineTune.GetTensor(name);
            // Any stored dtype (bf16, fp16, fp32, fp8) is decoded to float32; large tensors can be read in chunks.
            var theta0 = new float[a.ElementCount];
            var theta = new float[b.ElementCount];
            a.ReadFloat32(0, theta0);
            b.ReadFloat32(0, theta);
            double sum = 0;
            for (int i = 0; i < theta.Length; i++) sum += (double)(theta[i] - theta0[i]) * (theta[i] - theta0[i]);
            console.WriteLine($"{name}: |theta - theta0| = {Math.Sqrt(sum):G4}");
        }
    }
}
