using Weld.Engine;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Evaluation.Torch;

namespace Weld.Cli;

/// <summary>The evaluation engines <c>--engine</c> selects: Weld's own forward pass, or the TorchSharp one.</summary>
internal static class EvaluationEngines
{
    public const string Builtin = "builtin";
    public const string Torch = "torch";

    /// <summary>Loads <paramref name="folder"/> on the named engine; the result is disposable when the engine holds native memory.</summary>
    /// <exception cref="WeldException">An unknown engine or compute type, or the model cannot be loaded.</exception>
    public static ICausalLanguageModel Load(ModelFolder folder, string engine, string compute, int threads)
    {
        switch (engine)
        {
            case Builtin:
                if (compute != "float32")
                    throw new WeldException($"--compute {compute}: the builtin engine computes in float32 only; use --engine torch for bfloat16.");
                return LlamaModel.Load(folder, threads);
            case Torch:
                TorchComputeType type = compute switch
                {
                    "float32" => TorchComputeType.Float32,
                    "bfloat16" or "bf16" => TorchComputeType.BFloat16,
                    _ => throw new WeldException($"--compute {compute}: not a compute type (float32, bfloat16)."),
                };
                return TorchLlamaModel.Load(folder, type, threads);
            default:
                throw new WeldException($"--engine {engine}: not an evaluation engine (builtin, torch).");
        }
    }
}
