namespace Weld.Engine.Methods;

/// <summary>Element counts of the magnitude-based sparsifications, computed as mergekit computes them.</summary>
public static class MagnitudeCounts
{
    /// <summary>Elements a top-k trim keeps: k = ⌊density · n⌋ (Python's <c>int(density * numel)</c>, in float64).</summary>
    public static long KeepCount(double density, long n) => density >= 1 ? n : (long)(density * n);

    /// <summary>
    /// Model Breadcrumbs' two cuts over the magnitude order: n_top = ⌊γ·n⌋ largest and
    /// n_bot = n − ⌊density·n⌋ − n_top smallest are dropped, so ⌊density·n⌋ survive; when n_bot would be
    /// negative the top cut shrinks instead (mergekit). mergekit keeps nothing when n_top = 0 (an empty
    /// Python slice <c>[n_bot:-0]</c>); Weld then drops no top element, the cut's plain meaning.
    /// </summary>
    public static (long DropBottom, long DropTop) BreadcrumbsCuts(double density, double gamma, long n)
    {
        long keep = KeepCount(density, n);
        long top = (long)(gamma * n);
        long bottom = n - keep - top;
        if (bottom < 0)
        {
            top += bottom;
            bottom = 0;
        }
        return (bottom, top);
    }
}
