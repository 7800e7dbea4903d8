using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>
/// The rows of one tensor (or chunk) that the executor dropped while decoding them (<see cref="IDropsWhileDecoding"/>),
/// with their L1 norm partials.
/// </summary>
public sealed class DecodedDrops
{
    private readonly RandomDrop?[] _drops;
    private readonly double[] _partials;
    private readonly int _partialsPerRow;

    /// <summary>Rows dropped as <paramref name="drops"/> says (null: not dropped); <paramref name="partials"/> holds
    /// <paramref name="partialsPerRow"/> doubles per row (<see cref="DecodeDrop.NormPartials"/> of the row length), or none.</summary>
    public DecodedDrops(RandomDrop?[] drops, double[] partials, int partialsPerRow)
    {
        _drops = drops;
        _partials = partials;
        _partialsPerRow = partialsPerRow;
    }

    /// <summary>True when row <paramref name="row"/> holds drop(δ) rather than δ.</summary>
    public bool IsDropped(int row) => _drops[row] is not null;

    /// <summary>True when row <paramref name="row"/> was dropped and its norm partials were summed.</summary>
    public bool HasNorms(int row) => _drops[row] is { WithNorms: true } && _partialsPerRow > 0;

    /// <summary>
    /// Row <paramref name="row"/>'s norm partials: (‖δ‖₁, ‖drop(δ)‖₁) of chunk c of <see cref="DecodeDrop.NormChunkLength"/>
    /// elements from the chunk's start at [2c], [2c + 1], each with <see cref="IMergeKernels.SumOfAbs"/>'s bits.
    /// </summary>
    public ReadOnlySpan<double> NormPartials(int row) =>
        HasNorms(row) ? _partials.AsSpan(row * _partialsPerRow, _partialsPerRow)
            : throw new InvalidOperationException($"row {row} carries no norm partials");
}
