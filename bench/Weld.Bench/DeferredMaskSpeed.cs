using System.Globalization;
using Weld.Engine.Methods;
using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Bench;

/// <summary>
/// `mask-speed`: TIES' and Breadcrumbs' selection + combine on one thread, K = 2 task vectors of 16M elements (the bench
/// models' bf16 deltas, out of cache), with the mask as a pass over each row (KeepTopK / KeepMagnitudeBand, then the
/// combine) and deferred into the combine (SelectTopK / SelectMagnitudeBand, then the selecting combine). CPU time of
/// the process, best of 5, ns per output element.
/// </summary>
internal static class DeferredMaskSpeed
{
    private const int Length = 1 << 24;

    public static int Run()
    {
        float[] first = TopKSpeed.Bf16TaskVector(Length);
        var pristine = new float[2 * Length];
        first.CopyTo(pristine, 0);
        for (int i = 0; i < Length; i++) pristine[Length + i] = first[Length - 1 - i]; // a second, different row
        var random = new System.Random(3);
        var baseline = new float[Length];
        for (int i = 0; i < Length; i++) baseline[i] = 0.035f * (2 * random.NextSingle() - 1);
        var rows = new float[2 * Length];
        var output = new float[Length];
        float[] weights = [0.5f, 0.5f];
        var kernels = new CpuKernels(1);
        long keep = MagnitudeCounts.KeepCount(0.3, Length);
        var (bottom, top) = MagnitudeCounts.BreadcrumbsCuts(0.3, 0.01, Length);
        void Reset() => pristine.CopyTo(rows, 0);
        Span<float> Row(int k) => rows.AsSpan(k * Length, Length);
        var selections = new MagnitudeSelection?[2];

        Console.WriteLine($"K = 2 bf16 task vectors of {Length:N0} elements, one thread, CPU time, best of 5, ns per output element");
        double tiesMasked = CpuTime.Best(Reset, () =>
        {
            for (int k = 0; k < 2; k++) kernels.KeepTopK(Row(k), keep);
            kernels.SignConsensusMergeOntoBase(rows, weights, SignElection.Sum, true, 1f, baseline, output);
        });
        double tiesDeferred = CpuTime.Best(Reset, () =>
        {
            for (int k = 0; k < 2; k++) selections[k] = kernels.SelectTopK(Row(k), keep);
            kernels.SignConsensusMergeOntoBase(rows, weights, SignElection.Sum, true, 1f, baseline, output, [], selections);
        });
        // The combines alone: the plain one over masked rows, the selecting one over untouched rows.
        Reset();
        for (int k = 0; k < 2; k++) selections[k] = kernels.SelectTopK(Row(k), keep);
        double tiesCombine = CpuTime.Best(() => kernels.SignConsensusMergeOntoBase(rows, weights, SignElection.Sum, true, 1f, baseline, output, [], selections));
        for (int k = 0; k < 2; k++) kernels.ApplySelection(Row(k), selections[k]!);
        double plainCombine = CpuTime.Best(() => kernels.SignConsensusMergeOntoBase(rows, weights, SignElection.Sum, true, 1f, baseline, output));
        Print("TIES (top-k 0.3)", tiesMasked, tiesDeferred);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"   combine alone: plain over masked rows {Ns(plainCombine)} · selecting over untouched rows {Ns(tiesCombine)}"));

        double bandTiesMasked = CpuTime.Best(Reset, () =>
        {
            for (int k = 0; k < 2; k++) kernels.KeepMagnitudeBand(Row(k), bottom, top);
            kernels.SignConsensusMergeOntoBase(rows, weights, SignElection.Sum, false, 1f, baseline, output);
        });
        double bandTiesDeferred = CpuTime.Best(Reset, () =>
        {
            for (int k = 0; k < 2; k++) selections[k] = kernels.SelectMagnitudeBand(Row(k), bottom, top);
            kernels.SignConsensusMergeOntoBase(rows, weights, SignElection.Sum, false, 1f, baseline, output, [], selections);
        });
        Print("breadcrumbs_ties (band 0.3, gamma 0.01)", bandTiesMasked, bandTiesDeferred);

        double bandMasked = CpuTime.Best(Reset, () =>
        {
            for (int k = 0; k < 2; k++) kernels.KeepMagnitudeBand(Row(k), bottom, top);
            kernels.WeightedSumOntoBase(rows, weights, 1f, 1f, baseline, output);
        });
        double bandDeferred = CpuTime.Best(Reset, () =>
        {
            for (int k = 0; k < 2; k++) selections[k] = kernels.SelectMagnitudeBand(Row(k), bottom, top);
            kernels.WeightedSumOntoBase(rows, weights, 1f, 1f, baseline, output, [], selections);
        });
        Print("breadcrumbs (band 0.3, gamma 0.01)", bandMasked, bandDeferred);
        InCache(pristine, baseline);
        return 0;
    }

    /// <summary>
    /// The combines alone over 32K-element rows that stay in cache, 200 times a run: their arithmetic without the memory
    /// traffic (the figure that load on a shared machine disturbs least).
    /// </summary>
    private static void InCache(float[] pristine, float[] baseline)
    {
        const int n = 1 << 15, repeats = 200;
        var kernels = new CpuKernels(1);
        var rows = new float[2 * n];
        pristine.AsSpan(0, n).CopyTo(rows);
        pristine.AsSpan(Length, n).CopyTo(rows.AsSpan(n));
        float[] smallBase = baseline.AsSpan(0, n).ToArray();
        var output = new float[n];
        float[] weights = [0.5f, 0.5f];
        long keep = MagnitudeCounts.KeepCount(0.3, n);
        var (bottom, top) = MagnitudeCounts.BreadcrumbsCuts(0.3, 0.01, n);
        foreach (bool band in new[] { false, true })
        {
            var selections = new MagnitudeSelection?[2];
            for (int k = 0; k < 2; k++)
                selections[k] = band ? kernels.SelectMagnitudeBand(rows.AsSpan(k * n, n), bottom, top) : kernels.SelectTopK(rows.AsSpan(k * n, n), keep);
            float[] masked = (float[])rows.Clone();
            for (int k = 0; k < 2; k++) kernels.ApplySelection(masked.AsSpan(k * n, n), selections[k]!);
            double mask = CpuTime.Best(() => { for (int r = 0; r < repeats; r++) for (int k = 0; k < 2; k++) kernels.ApplySelection(masked.AsSpan(k * n, n), selections[k]!); });
            double plain = CpuTime.Best(() => { for (int r = 0; r < repeats; r++) kernels.SignConsensusMergeOntoBase(masked, weights, SignElection.Sum, true, 1f, smallBase, output); });
            double selecting = CpuTime.Best(() => { for (int r = 0; r < repeats; r++) kernels.SignConsensusMergeOntoBase(rows, weights, SignElection.Sum, true, 1f, smallBase, output, [], selections); });
            double sum = CpuTime.Best(() => { for (int r = 0; r < repeats; r++) kernels.WeightedSumOntoBase(masked, weights, 1f, 1f, smallBase, output); });
            double sumSelecting = CpuTime.Best(() => { for (int r = 0; r < repeats; r++) kernels.WeightedSumOntoBase(rows, weights, 1f, 1f, smallBase, output, [], selections); });
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"in cache, {(band ? "band" : "top-k")}: mask pass ×2 {Ns(mask / repeats * Length / n)} · sign-consensus plain {Ns(plain / repeats * Length / n)} / selecting {Ns(selecting / repeats * Length / n)} · weighted sum plain {Ns(sum / repeats * Length / n)} / selecting {Ns(sumSelecting / repeats * Length / n)}"));
        }
    }

    private static void Print(string what, double masked, double deferred) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{what,-40} mask pass + combine {Ns(masked)} · deferred into the combine {Ns(deferred)} ({masked / deferred:F2}x)"));

    private static string Ns(double seconds) => (seconds * 1e9 / Length).ToString("F3", CultureInfo.InvariantCulture);
}
