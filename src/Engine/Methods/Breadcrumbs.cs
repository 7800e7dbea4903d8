namespace Weld.Engine.Methods;

/// <summary>Model Breadcrumbs (Davari &amp; Belilovsky 2024), mergekit's form: drop the largest γ and the smallest magnitudes of each task vector, then sum.</summary>
public sealed class Breadcrumbs() : TaskVectorMerge("breadcrumbs", Sparsification.MagnitudeOutliers, signConsensus: false, normalizeByDefault: false);
