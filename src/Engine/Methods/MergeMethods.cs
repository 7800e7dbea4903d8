namespace Weld.Engine.Methods;

/// <summary>The merge methods Weld knows, by recipe name.</summary>
public static class MergeMethods
{
    private static readonly IMergeMethod[] s_all =
    [
        new Linear(), new TaskArithmetic(), new Ties(), new DareLinear(), new DareTies(),
        new Breadcrumbs(), new BreadcrumbsTies(), new Slerp(), new ModelStock(), new Passthrough(),
        new Della(), new DellaLinear(), new Sce(), new NuSlerp(), new MultiSlerp(), new Karcher(), new NearSwap(),
        new ArceeFusion(), new Ram(), new RamPlusTl(),
        // Weld's own (MethodNames.Weld): papers' variants mergekit does not offer.
        new MagMax(), new BreadcrumbsPaper(), new Fisher(), new Consensus(), new DivergenceWeights(), new Tsv(),
    ];

    /// <summary>Every method, in documentation order.</summary>
    public static IReadOnlyList<IMergeMethod> All => s_all;

    /// <summary>The method called <paramref name="name"/>, or null.</summary>
    public static IMergeMethod? Find(string name)
    {
        foreach (var method in s_all)
            if (string.Equals(method.Name, name, StringComparison.Ordinal)) return method;
        return null;
    }
}
