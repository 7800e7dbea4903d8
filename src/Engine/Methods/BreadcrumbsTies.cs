namespace Weld.Engine.Methods;

/// <summary>Model Breadcrumbs' two-sided cut followed by TIES' sign election and disjoint merge.</summary>
public sealed class BreadcrumbsTies() : TaskVectorMerge("breadcrumbs_ties", Sparsification.MagnitudeOutliers, signConsensus: true, normalizeByDefault: false);
