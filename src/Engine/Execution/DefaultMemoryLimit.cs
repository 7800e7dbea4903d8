using System.Globalization;

namespace Weld.Engine.Execution;

/// <summary>
/// The working-buffer budget <c>weld merge</c> uses without <c>--memory-limit</c>, derived from the memory this
/// machine (or container) gives the process: an eighth of it, at least 256 MB and at most 1 GB. The cap is where a
/// larger budget stops buying speed: with a 1 GB budget the pipeline already keeps two ordinary tensors in flight and
/// streams the largest (the embedding) in 64 MiB-aligned chunks, and the process peaks near 1.1 GB of anonymous memory
/// on any model size (bench/RESULTS.md). The floor keeps the smallest chunk plan working on small machines.
/// </summary>
public static class DefaultMemoryLimit
{
    /// <summary>The cap (1 GB = 10⁹ bytes).</summary>
    public const long Cap = 1_000_000_000;

    /// <summary>The floor (256 MB).</summary>
    public const long Floor = 256_000_000;

    /// <summary>Memory the process may use: the GC's view (physical memory, or the container's limit).</summary>
    public static long MachineBytes => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    /// <summary>The default budget for <paramref name="machineBytes"/> of memory.</summary>
    public static long For(long machineBytes) => Math.Clamp(machineBytes / 8, Floor, Cap);

    /// <summary>The default budget on this machine.</summary>
    public static long Bytes => For(MachineBytes);

    /// <summary>
    /// The budget a tensor that must be merged whole (<see cref="WholeTensors"/>) may raise the pool to when the user gave
    /// no limit: half of <paramref name="machineBytes"/> (never below <see cref="For"/>). The pool counts everything
    /// the pipeline holds, so the raised tensor waits until the tensors in flight around it leave room: the process's
    /// buffers stay under half the machine, and the other half is left to the runtime (about 0.1 GB), the page cache
    /// that serves the mapped inputs, and whatever else runs on the machine.
    /// </summary>
    public static long WholeTensorFor(long machineBytes) => Math.Max(machineBytes / 2, For(machineBytes));

    /// <summary><see cref="WholeTensorFor"/> on this machine.</summary>
    public static long WholeTensorBytes => WholeTensorFor(MachineBytes);

    /// <summary>One line saying what was picked and why.</summary>
    public static string Explain(long machineBytes)
    {
        long bytes = For(machineBytes);
        string why = bytes == Cap ? "capped at 1B: a larger budget merges no faster and would raise peak memory"
            : bytes == Floor ? "raised to the 256M floor"
            : "below the 1B cap";
        return string.Create(CultureInfo.InvariantCulture,
            $"{bytes:N0} bytes (default: 1/8 of the {machineBytes / (double)(1L << 30):F1} GiB of memory available, {why}; set --memory-limit to override)");
    }
}
