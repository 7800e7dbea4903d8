namespace Weld.Evaluation.Torch;

/// <summary>The element type the torch engine's projections run in.</summary>
public enum TorchComputeType
{
    /// <summary>Everything in float32 (weights upcast once at load): the built-in engine's arithmetic, to float rounding.</summary>
    Float32,

    /// <summary>
    /// Projections (q/k/v/o, MLP, experts, lm_head) in bfloat16 on the stored weights; RMSNorm, rotary, softmax,
    /// the residual stream and the log-likelihoods in float32 (as Hugging Face runs a bf16 model).
    /// </summary>
    BFloat16,
}
