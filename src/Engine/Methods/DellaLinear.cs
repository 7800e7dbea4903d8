namespace Weld.Engine.Methods;

/// <summary>DELLA's MagPrune (rank-dependent keep probabilities, L1 rescale) followed by a weighted sum of the task vectors, no sign election.</summary>
public sealed class DellaLinear() : TaskVectorMerge("della_linear", Sparsification.RankMagnitude, signConsensus: false, normalizeByDefault: false, rescaleByDefault: true);
