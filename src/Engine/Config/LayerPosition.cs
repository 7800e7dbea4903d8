namespace Weld.Engine.Config;

/// <summary>
/// The layer position t at which gradients and stepped parameters are evaluated, as mergekit's planner
/// (mergekit/plan.py, <c>MergePlanner</c>) assigns it.
/// </summary>
public static class LayerPosition
{
    /// <summary>
    /// t for weights before the first layer (embeddings): 0, read with the first output slice's parameters.
    /// </summary>
    public const double PreLayer = 0;

    /// <summary>
    /// t for weights after the last layer (final norm, <c>lm_head</c>): 0, read with the last output slice's
    /// parameters. Current mergekit (the module-based planner) keeps t = 0 here; mergekit releases before
    /// modules used t = 1. Weld follows current mergekit and the design notes.
    /// </summary>
    public const double PostLayer = 0;

    /// <summary>
    /// t for layer <paramref name="indexInSlice"/> of an output slice of <paramref name="layerCount"/> layers:
    /// i / (n − 1), and 1 for a slice of a single layer. t restarts at 0 in every slice.
    /// </summary>
    /// <param name="indexInSlice">The layer's 0-based index within its slice.</param>
    /// <param name="layerCount">The number of layers in the slice.</param>
    /// <returns>The position in [0, 1].</returns>
    public static double InSlice(int indexInSlice, int layerCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(layerCount, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(indexInSlice);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(indexInSlice, layerCount);
        return layerCount > 1 ? (double)indexInSlice / (layerCount - 1) : 1;
    }
}
