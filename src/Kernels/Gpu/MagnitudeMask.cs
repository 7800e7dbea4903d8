using ILGPU;
using ILGPU.Runtime;

namespace Weld.Kernels.Gpu;

/// <summary>
/// One side of a magnitude band, as a kernel argument. A lower cut drops keys below <see cref="Key"/>, an upper cut
/// keys above it. The elements whose key equals <see cref="Key"/> (the ties) are numbered 0, 1, 2, … in flat index
/// order; ties numbered below the boundary B are the "low" ties, the others the "high" ties, and
/// <see cref="DropLow"/> says which side leaves (the CPU's drop range [0, B) or [B, count)).
/// </summary>
/// <remarks>
/// Ties are numbered per tile of <see cref="MagnitudeMaskKernel.TileLength"/> elements: a tile before
/// <see cref="BoundaryTile"/> holds only low ties, a tile after it only high ties, and in the boundary tile the
/// ties with local number below <see cref="LocalBoundary"/> are low. Only that one tile needs ties numbered.
/// </remarks>
internal struct MagnitudeCutArgument
{
    /// <summary>No cut on this side.</summary>
    public const int None = 0;

    /// <summary>Every tie is kept: only the keys beyond <see cref="Key"/> leave.</summary>
    public const int KeepTies = 1;

    /// <summary>Every tie leaves.</summary>
    public const int DropTies = 2;

    /// <summary>Ties leave by tie number: low or high side of the boundary.</summary>
    public const int ByIndex = 3;

    /// <summary>The magnitude key at the cut.</summary>
    public int Key;

    /// <summary><see cref="None"/>, <see cref="KeepTies"/>, <see cref="DropTies"/> or <see cref="ByIndex"/>.</summary>
    public int Mode;

    /// <summary>The tile holding tie number B (ByIndex), else −1.</summary>
    public long BoundaryTile;

    /// <summary>Ties of the boundary tile before tie number B.</summary>
    public long LocalBoundary;

    /// <summary>1: the low ties leave (a bottom cut); 0: the high ties leave.</summary>
    public int DropLow;

    public static MagnitudeCutArgument Absent => Uniform(0, None);

    public static MagnitudeCutArgument Uniform(int key, int mode)
    {
        MagnitudeCutArgument cut;
        cut.Key = key;
        cut.Mode = mode;
        cut.BoundaryTile = -1;
        cut.LocalBoundary = 0;
        cut.DropLow = 0;
        return cut;
    }

    /// <summary>Whether a tie in <paramref name="tile"/> with local tie number <paramref name="localTie"/> stays.</summary>
    public readonly bool TieKept(long tile, long localTie)
    {
        if (Mode == KeepTies)
            return true;
        if (Mode == DropTies)
            return false;
        bool low = tile < BoundaryTile || (tile == BoundaryTile && localTie < LocalBoundary);
        return low != (DropLow != 0);
    }
}

public sealed partial class GpuKernels
{
    private Action<AcceleratorStream, KernelConfig, ArrayView<int>, long, MagnitudeCutArgument, MagnitudeCutArgument>? _magnitudeMask;
    private Action<AcceleratorStream, KernelConfig, ArrayView<int>, long, MagnitudeCutArgument, MagnitudeCutArgument, long>? _magnitudeMaskTile;
    private Action<AcceleratorStream, KernelConfig, ArrayView<int>, long, int, ArrayView<int>, long>? _countKeyPerTile;

    /// <summary>
    /// A cut at <paramref name="key"/> (<paramref name="countEqual"/> ties) whose tie boundary is tie number
    /// <paramref name="boundary"/>; <paramref name="dropLow"/>: ties numbered below it leave, else those from it on.
    /// Counts the key per tile (or takes <paramref name="perTile"/>) only when the boundary splits the ties.
    /// </summary>
    internal MagnitudeCutArgument PrepareCut(in Call call, ArrayView<int> bits, long length, int key, long countEqual,
        long boundary, bool dropLow, int[]? perTile = null)
    {
        if (boundary >= countEqual)
            return MagnitudeCutArgument.Uniform(key, dropLow ? MagnitudeCutArgument.DropTies : MagnitudeCutArgument.KeepTies);
        if (boundary <= 0)
            return MagnitudeCutArgument.Uniform(key, dropLow ? MagnitudeCutArgument.KeepTies : MagnitudeCutArgument.DropTies);

        perTile ??= CountKeyPerTile(call, bits, length, key);
        long before = 0;
        long tile = 0;
        // The tile holding tie number `boundary`: the first whose ties reach past it (it exists: boundary < countEqual).
        while (before + perTile[tile] <= boundary)
            before += perTile[tile++];
        MagnitudeCutArgument cut = MagnitudeCutArgument.Uniform(key, MagnitudeCutArgument.ByIndex);
        cut.BoundaryTile = tile;
        cut.LocalBoundary = boundary - before;
        cut.DropLow = dropLow ? 1 : 0;
        return cut;
    }

    /// <summary>Elements whose magnitude key equals <paramref name="key"/>, per tile of <see cref="MagnitudeMaskKernel.TileLength"/>.</summary>
    internal int[] CountKeyPerTile(in Call call, ArrayView<int> bits, long length, int key)
    {
        long tiles = MagnitudeMaskKernel.TilesFor(length);
        ArrayView<int> counts = call.RentZeroed<int>(tiles);
        var config = new KernelConfig((int)Math.Clamp(tiles, 1, _device.MaxGroups), _device.GroupSize);
        Load(ref _countKeyPerTile, MagnitudeMaskKernel.CountKeyPerTile)(Stream, config, bits, length, key, counts, tiles);
        var host = new int[tiles];
        call.Download(counts, host);
        return host;
    }

    /// <summary>Zeroes (to +0) what <paramref name="lower"/> and <paramref name="upper"/> drop, in place.</summary>
    internal void ApplyCuts(ArrayView<int> bits, long length, MagnitudeCutArgument lower, MagnitudeCutArgument upper)
    {
        if (length == 0 || (lower.Mode == MagnitudeCutArgument.None && upper.Mode == MagnitudeCutArgument.None))
            return;
        Load(ref _magnitudeMask, MagnitudeMaskKernel.Apply)(Stream, GridFor(length), bits, length, lower, upper);
        // The boundary tiles number their ties in one group each; the pass above left them alone.
        var one = new KernelConfig(1, _device.GroupSize);
        if (lower.Mode == MagnitudeCutArgument.ByIndex)
            Load(ref _magnitudeMaskTile, MagnitudeMaskKernel.ApplyToTile)(Stream, one, bits, length, lower, upper, lower.BoundaryTile);
        if (upper.Mode == MagnitudeCutArgument.ByIndex && upper.BoundaryTile != lower.BoundaryTile)
            Load(ref _magnitudeMaskTile, MagnitudeMaskKernel.ApplyToTile)(Stream, one, bits, length, lower, upper, upper.BoundaryTile);
    }
}

/// <summary>
/// Zeroes the elements outside a band of magnitude keys (bits(x) &amp; 0x7FFFFFFF), with ties at a cut decided by
/// their flat index order: a grid-stride pass decides every element outside the (at most two) boundary tiles from
/// its tile alone, and one group per boundary tile numbers that tile's ties in index order.
/// </summary>
internal static class MagnitudeMaskKernel
{
    /// <summary>log2 of <see cref="TileLength"/>.</summary>
    public const int TileShift = 12;

    /// <summary>Elements per tile of the per-tile tie counts.</summary>
    public const int TileLength = 1 << TileShift;

    /// <summary>Largest group a kernel here is launched with (sizes the shared tie counts).</summary>
    public const int MaxGroupSize = 1024;

    private const int KeyMask = 0x7FFFFFFF;

    public static long TilesFor(long length) => (length + TileLength - 1) >> TileShift;

    /// <summary>Per tile, the elements whose key equals <paramref name="key"/> (added to zeroed counts). A group per tile.</summary>
    public static void CountKeyPerTile(ArrayView<int> bits, long length, int key, ArrayView<int> tileCounts, long tiles)
    {
        for (long tile = Grid.IdxX; tile < tiles; tile += Grid.DimX)
        {
            long start = tile << TileShift;
            long end = Math.Min(start + TileLength, length);
            int equal = 0;
            for (long i = start + Group.IdxX; i < end; i += Group.DimX)
                equal += (bits[i] & KeyMask) == key ? 1 : 0;
            // Integer counts: the order of the atomic adds cannot change the sum.
            if (equal != 0)
                Atomic.Add(ref tileCounts[tile], equal);
        }
    }

    /// <summary>Every element outside the boundary tiles: kept or zeroed from its key and its tile.</summary>
    public static void Apply(ArrayView<int> bits, long length, MagnitudeCutArgument lower, MagnitudeCutArgument upper)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            long tile = i >> TileShift;
            if (tile == lower.BoundaryTile || tile == upper.BoundaryTile)
                continue;
            int word = bits[i];
            if (!Keeps(word & KeyMask, tile, 0, lower, upper))
                bits[i] = 0;
        }
    }

    /// <summary>
    /// One tile, one group: each thread takes a contiguous segment, counts its ties at each cut, learns from the
    /// counts of the threads before it the tie number of its first tie, then walks its segment in index order.
    /// </summary>
    public static void ApplyToTile(ArrayView<int> bits, long length, MagnitudeCutArgument lower, MagnitudeCutArgument upper, long tile)
    {
        ArrayView<int> lowerCounts = SharedMemory.Allocate<int>(MaxGroupSize);
        ArrayView<int> upperCounts = SharedMemory.Allocate<int>(MaxGroupSize);
        long start = tile << TileShift;
        long end = Math.Min(start + TileLength, length);
        int threads = Group.DimX;
        int thread = Group.IdxX;
        long segment = (end - start + threads - 1) / threads;
        long from = Math.Min(start + thread * segment, end);
        long to = Math.Min(from + segment, end);

        int lowerTies = 0, upperTies = 0;
        for (long i = from; i < to; i++)
        {
            int key = bits[i] & KeyMask;
            lowerTies += key == lower.Key ? 1 : 0;
            upperTies += key == upper.Key ? 1 : 0;
        }

        lowerCounts[thread] = lowerTies;
        upperCounts[thread] = upperTies;
        Group.Barrier();

        long lowerTie = 0, upperTie = 0;
        for (int t = 0; t < thread; t++)
        {
            lowerTie += lowerCounts[t];
            upperTie += upperCounts[t];
        }

        // Each thread rewrites only its own segment, which no other thread reads.
        for (long i = from; i < to; i++)
        {
            int key = bits[i] & KeyMask;
            if (!Keeps(key, tile, lowerTie, upperTie, lower, upper))
                bits[i] = 0;
            lowerTie += key == lower.Key ? 1 : 0;
            upperTie += key == upper.Key ? 1 : 0;
        }
    }

    private static bool Keeps(int key, long tile, long tie, MagnitudeCutArgument lower, MagnitudeCutArgument upper) =>
        Keeps(key, tile, tie, tie, lower, upper);

    /// <summary>Whether both cuts keep an element of <paramref name="tile"/> with this key and these local tie numbers.</summary>
    private static bool Keeps(int key, long tile, long lowerTie, long upperTie, MagnitudeCutArgument lower, MagnitudeCutArgument upper)
    {
        if (lower.Mode != MagnitudeCutArgument.None)
        {
            if (key < lower.Key)
                return false;
            if (key == lower.Key && !lower.TieKept(tile, lowerTie))
                return false;
        }

        if (upper.Mode != MagnitudeCutArgument.None)
        {
            if (key > upper.Key)
                return false;
            if (key == upper.Key && !upper.TieKept(tile, upperTie))
                return false;
        }

        return true;
    }
}
