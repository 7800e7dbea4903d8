using Weld.Kernels.Cpu;

namespace Weld.Kernels;

/// <summary>
/// DARE's random drop of one task-vector row (<see cref="IMergeKernels.DropAndRescale"/>'s parameters), for a loader
/// that applies it while decoding the row (<see cref="DecodeDrop"/>).
/// </summary>
/// <param name="Density">Keep probability, below 1 (a density of 1 or more keeps everything).</param>
/// <param name="Rescale">Divide each kept element by <paramref name="Density"/> (the DARE paper's rescale).</param>
/// <param name="Key">The row's Philox key: element i of the tensor draws word i of its stream.</param>
/// <param name="WithNorms">Also sum ‖δ‖₁ and ‖drop(δ)‖₁ per <see cref="DecodeDrop.NormChunkLength"/> chunk (mergekit's L1 rescale).</param>
public readonly record struct RandomDrop(float Density, bool Rescale, PhiloxKey Key, bool WithNorms);

/// <summary>
/// DARE's drop done by the loader as it decodes a task vector δ = θ − θ_base, instead of as a pass of its own over the
/// decoded row: the same bits as decoding, then <see cref="IMergeKernels.DropAndRescale"/> (or, with norms,
/// <see cref="IMergeKernels.DropAndRescaleWithNorms"/> per chunk) with the element's tensor index. The row is written
/// once, already dropped.
/// </summary>
/// <remarks>
/// The L1 norms come as partials, (‖δ‖₁, ‖drop(δ)‖₁) of every <see cref="NormChunkLength"/> chunk counted from the
/// span's first element, each with the bits of <see cref="IMergeKernels.SumOfAbs"/> over that chunk: the CPU kernels
/// sum a span's norms as exactly these partials added in chunk order, so a caller whose spans start on that grid can
/// add them into the same bits on any thread count. One thread per call; callers run spans in parallel.
/// </remarks>
public static unsafe class DecodeDrop
{
    /// <summary>Elements per norm partial (the CPU kernels' reduction chunk, 64K).</summary>
    public const int NormChunkLength = DecodeDropKernel.NormChunk;

    /// <summary>Doubles of norm partials for a span of <paramref name="length"/> elements: two per chunk.</summary>
    public static int NormPartials(long length) => 2 * ChunkedParallel.ChunkCount(length);

    /// <summary>
    /// destination[i] = drop(bf16(source[i]) − subtrahend[i]) for tensor element <paramref name="firstIndex"/> + i; with
    /// <see cref="RandomDrop.WithNorms"/>, chunk c's (‖δ‖₁, ‖drop(δ)‖₁) go to norms[2c], norms[2c + 1]
    /// (<see cref="NormPartials"/> long at least).
    /// </summary>
    public static void Bf16Minus(ReadOnlySpan<ushort> source, ReadOnlySpan<float> subtrahend, Span<float> destination, long firstIndex,
        RandomDrop drop, Span<double> norms)
    {
        Check(source.Length, firstIndex, drop, norms);
        if (subtrahend.Length != source.Length || destination.Length != source.Length)
            throw new ArgumentException($"The source holds {source.Length} elements, the subtrahend {subtrahend.Length}, the destination {destination.Length}.");
        fixed (ushort* from = source)
        fixed (float* minus = subtrahend, to = destination)
        fixed (double* partials = norms)
            DecodeDropKernel.Bf16Minus(from, minus, to, source.Length, firstIndex, drop.Density, drop.Rescale, drop.Key,
                drop.WithNorms ? partials : null, PhiloxVectorBlocks.Widest);
    }

    /// <summary>
    /// The drop on values already decoded (a dtype other than bf16, or a row gathered from another layout), in place,
    /// with the norms as <see cref="Bf16Minus"/> gives them.
    /// </summary>
    public static void Apply(Span<float> values, long firstIndex, RandomDrop drop, Span<double> norms)
    {
        Check(values.Length, firstIndex, drop, norms);
        fixed (float* data = values)
        {
            for (int done = 0, chunk = 0; done < values.Length; done += NormChunkLength, chunk++)
            {
                int size = Math.Min(NormChunkLength, values.Length - done);
                if (drop.WithNorms)
                    (norms[2 * chunk], norms[2 * chunk + 1]) = DropAndRescaleKernel.ApplyWithNorms(data + done, firstIndex + done, size,
                        drop.Density, drop.Rescale, drop.Key);
                else if (drop.Density < 1f)
                    DropAndRescaleKernel.Apply(data + done, firstIndex + done, size, drop.Density, drop.Rescale, drop.Key);
            }
        }
    }

    private static void Check(int length, long firstIndex, RandomDrop drop, Span<double> norms)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstIndex);
        if (float.IsNaN(drop.Density) || drop.Density < 0f)
            throw new ArgumentOutOfRangeException(nameof(drop), drop.Density, "The keep probability must be in [0, 1].");
        if (drop.WithNorms && norms.Length < NormPartials(length))
            throw new ArgumentException($"{length} elements need {NormPartials(length)} norm partials, the span holds {norms.Length}.", nameof(norms));
    }
}
