namespace Weld.Engine.Methods;

/// <summary>DARE's random drop-and-rescale followed by TIES' sign election and disjoint merge.</summary>
public sealed class DareTies() : TaskVectorMerge("dare_ties", Sparsification.Random, signConsensus: true, normalizeByDefault: false, rescaleByDefault: true);
