using System.Diagnostics;

namespace Weld.Bench;

/// <summary>The one-core speed commands' timer: CPU time of the process, so other load on the machine does not count.</summary>
internal static class CpuTime
{
    /// <summary>Least CPU seconds of <paramref name="runs"/> runs of <paramref name="work"/>, each after an untimed <paramref name="setup"/>.</summary>
    public static double Best(Action setup, Action work, int runs = 5)
    {
        double best = double.MaxValue;
        for (int run = 0; run < runs; run++)
        {
            setup();
            TimeSpan start = Process.GetCurrentProcess().TotalProcessorTime;
            work();
            best = Math.Min(best, (Process.GetCurrentProcess().TotalProcessorTime - start).TotalSeconds);
        }
        return best;
    }

    /// <summary>Least CPU seconds of <paramref name="runs"/> runs of <paramref name="work"/>.</summary>
    public static double Best(Action work, int runs = 5) => Best(static () => { }, work, runs);
}
