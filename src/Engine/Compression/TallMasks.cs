using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Compression;

/// <summary>
/// TALL masks (Wang et al. 2024, "Localizing Task Information for Improved Model Merging and Compression") packed
/// one bit per element: element i is bit (i mod 8) of byte ⌊i / 8⌋ (least significant bit first), trailing bits 0.
/// </summary>
public static class TallMasks
{
    private static readonly CpuKernels s_cpu = new();

    /// <summary>Bytes a packed mask of <paramref name="elements"/> elements takes.</summary>
    /// <param name="elements">The tensor's element count.</param>
    /// <returns>⌈elements / 8⌉.</returns>
    public static long PackedLength(long elements) => (elements + 7) / 8;

    /// <summary>
    /// Packs m = [ |τ| ≥ λ · |τ_MTL − τ| ] into <paramref name="packed"/> and returns how many bits are set.
    /// </summary>
    /// <param name="task">τ_t, the task's vector against the base.</param>
    /// <param name="multiTask">τ_MTL = Σ_t τ_t.</param>
    /// <param name="lambda">λ_t.</param>
    /// <param name="packed">Receives ⌈n / 8⌉ bytes.</param>
    /// <returns>The number of elements the mask keeps.</returns>
    public static long Pack(ReadOnlySpan<float> task, ReadOnlySpan<float> multiTask, float lambda, Span<byte> packed) =>
        Pack(s_cpu, task, multiTask, lambda, packed);

    /// <summary>
    /// Packs m = [ |τ| ≥ λ · |τ_MTL − τ| ] into <paramref name="packed"/> on <paramref name="kernels"/> and returns how many
    /// bits are set (<see cref="IMergeKernels.TallMask"/>).
    /// </summary>
    /// <param name="kernels">The backend to run on.</param>
    /// <param name="task">τ_t, the task's vector against the base.</param>
    /// <param name="multiTask">τ_MTL = Σ_t τ_t.</param>
    /// <param name="lambda">λ_t.</param>
    /// <param name="packed">Receives ⌈n / 8⌉ bytes.</param>
    /// <returns>The number of elements the mask keeps.</returns>
    public static long Pack(IMergeKernels kernels, ReadOnlySpan<float> task, ReadOnlySpan<float> multiTask, float lambda, Span<byte> packed)
    {
        if (multiTask.Length != task.Length || packed.Length != PackedLength(task.Length))
            throw new ArgumentException($"mask of {task.Length} elements: τ_MTL has {multiTask.Length}, the packed buffer {packed.Length} bytes");
        return kernels.TallMask(task, multiTask, lambda, packed);
    }

    /// <summary>Restores a task: θ_t = θ_base + m_t ⊙ τ_MTL, written into <paramref name="output"/>.</summary>
    /// <param name="baseline">θ_base.</param>
    /// <param name="multiTask">τ_MTL.</param>
    /// <param name="packed">The task's packed mask.</param>
    /// <param name="output">Receives θ_t.</param>
    public static void Restore(ReadOnlySpan<float> baseline, ReadOnlySpan<float> multiTask, ReadOnlySpan<byte> packed, Span<float> output) =>
        Restore(s_cpu, baseline, multiTask, packed, output);

    /// <summary>Restores a task on <paramref name="kernels"/>: θ_t = θ_base + m_t ⊙ τ_MTL (<see cref="IMergeKernels.TallRestore"/>).</summary>
    /// <param name="kernels">The backend to run on.</param>
    /// <param name="baseline">θ_base.</param>
    /// <param name="multiTask">τ_MTL.</param>
    /// <param name="packed">The task's packed mask.</param>
    /// <param name="output">Receives θ_t.</param>
    public static void Restore(IMergeKernels kernels, ReadOnlySpan<float> baseline, ReadOnlySpan<float> multiTask, ReadOnlySpan<byte> packed,
        Span<float> output)
    {
        if (multiTask.Length != baseline.Length || output.Length != baseline.Length || packed.Length != PackedLength(baseline.Length))
            throw new ArgumentException($"restore of {baseline.Length} elements: τ_MTL has {multiTask.Length}, the mask {packed.Length} bytes, the output {output.Length}");
        kernels.TallRestore(baseline, multiTask, packed, output);
    }
}
