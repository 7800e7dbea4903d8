namespace Weld.Engine.Config;

/// <summary>
/// LiNeS (Wang et al. 2024, "LiNeS: Post-training layer scaling prevents forgetting and enhances model merging"):
/// the recipe's top-level <c>lines: {alpha: A, beta: B}</c>. After the method has merged a tensor, its task vector
/// against the base is scaled by depth: θ = θ_base + s_l · (θ_merged − θ_base) with
/// <c>s_l = α + β · (l − 1) / (L − 1)</c> for decoder layer l (1-based) of L output layers.
/// </summary>
/// <param name="Alpha">α: the scale of the first layer (and of every tensor outside the layer stack).</param>
/// <param name="Beta">β: how much more the last layer is scaled than the first.</param>
/// <param name="Line">The recipe line of <c>lines:</c>, for messages.</param>
public sealed record LinesScaling(double Alpha, double Beta, int Line)
{
    /// <summary>
    /// The scale of a tensor: α + β · (l − 1) / (L − 1) for 0-based output layer <paramref name="layer"/> = l − 1,
    /// α for a tensor outside the layers (<paramref name="layer"/> null: embeddings, final norm, lm_head). A single
    /// layer (L = 1) sits at position 1, as <see cref="LayerPosition.InSlice"/> places a one-layer slice.
    /// </summary>
    /// <param name="layer">The tensor's 0-based output layer, or null outside the layer stack.</param>
    /// <param name="layerCount">L, the output model's layer count.</param>
    /// <returns>The scale s.</returns>
    public double ScaleFor(int? layer, int layerCount) =>
        layer is int l ? Alpha + Beta * LayerPosition.InSlice(l, layerCount) : Alpha;
}
