namespace Weld.Engine.Methods;

/// <summary>
/// TIES-Merging (Yadav et al. 2023): trim each task vector to its top-density magnitudes, elect a sign per
/// element from the weighted sum, average only the agreeing entries (disjoint mean).
/// </summary>
public sealed class Ties() : TaskVectorMerge("ties", Sparsification.Magnitude, signConsensus: true, normalizeByDefault: true);
