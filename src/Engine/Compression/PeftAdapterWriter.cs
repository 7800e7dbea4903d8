using Weld.Engine.SafeTensors;

namespace Weld.Engine.Compression;

/// <summary>One module's LoRA factors as PEFT stores them: ΔW = B·A (its transpose for an embedding), times the scale.</summary>
/// <param name="Module">The module path, e.g. <c>model.layers.0.self_attn.q_proj</c>.</param>
/// <param name="Embedding">Whether the factors are <c>lora_embedding_A/B</c>.</param>
/// <param name="Rows">Rows of B·A.</param>
/// <param name="Columns">Columns of B·A.</param>
/// <param name="Rank">r: rows of A, columns of B.</param>
/// <param name="A">A, row-major [r, columns].</param>
/// <param name="B">B, row-major [rows, r].</param>
internal readonly record struct PeftLoraFactors(string Module, bool Embedding, int Rows, int Columns, int Rank, float[] A, float[] B);

/// <summary>Writes a PEFT LoRA adapter folder: <c>adapter_model.safetensors</c> (float32 factors) and <c>adapter_config.json</c>.</summary>
internal static class PeftAdapterWriter
{
    /// <summary>
    /// Creates <paramref name="outputFolder"/> atomically with the factors, in the given order, and the config text;
    /// the folder may not be, hold or lie inside one of <paramref name="inputs"/>.
    /// </summary>
    public static void Write(string outputFolder, bool overwrite, IReadOnlyList<PeftLoraFactors> factors, string configJson, IEnumerable<string>? inputs = null)
    {
        using var output = new OutputFolder(outputFolder, overwrite, inputs);
        var headers = new List<TensorHeader>(factors.Count * 2);
        foreach (var f in factors)
        {
            headers.Add(new TensorHeader(PeftLoraNames.A(f.Module, f.Embedding), DType.F32, [f.Rank, f.Columns]));
            headers.Add(new TensorHeader(PeftLoraNames.B(f.Module, f.Embedding), DType.F32, [f.Rows, f.Rank]));
        }
        using (var writer = new SafeTensorsWriter(Path.Combine(output.WorkPath, PeftLoraNames.WeightsFileName), headers, null))
        {
            foreach (var f in factors)
            {
                writer.WriteFloat32(f.A);
                writer.WriteFloat32(f.B);
            }
            writer.Complete();
        }
        File.WriteAllText(Path.Combine(output.WorkPath, PeftLoraNames.ConfigFileName), configJson);
        output.Commit();
    }
}
