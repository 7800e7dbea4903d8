namespace Weld.Engine.Methods;

/// <summary>Task arithmetic (Ilharco et al. 2023): θ = θ_base + λ Σ_k w_k (θ_k − θ_base).</summary>
public sealed class TaskArithmetic() : TaskVectorMerge("task_arithmetic", Sparsification.None, signConsensus: false, normalizeByDefault: false);
