namespace Weld.Engine.Methods;

/// <summary>
/// DELLA (Deep et al. 2024), mergekit's form: MagPrune each task vector — keep entry i with probability
/// p_i = (density − ε) + 2ε · rank_i / (n − 1), ranks of |δ| along dim 1 — rescale to the L1 norm, then TIES' sign
/// election and disjoint mean; θ = θ_base + λ · m.
/// </summary>
public sealed class Della() : TaskVectorMerge("della", Sparsification.RankMagnitude, signConsensus: true, normalizeByDefault: true, rescaleByDefault: true);
