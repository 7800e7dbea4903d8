namespace Weld.Engine.Methods;

/// <summary>DARE (Yu et al. 2024) + task arithmetic: drop each delta entry with probability 1 − density, rescale (mergekit: back to the L1 norm; paper: by 1/density), sum.</summary>
public sealed class DareLinear() : TaskVectorMerge("dare_linear", Sparsification.Random, signConsensus: false, normalizeByDefault: false, rescaleByDefault: true);
