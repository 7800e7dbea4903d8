namespace Weld.Kernels.Cpu;

/// <summary>
/// Splits an index range into fixed chunks of <see cref="ChunkLength"/> elements and runs a body per chunk,
/// in parallel when there is more than one chunk.
/// </summary>
/// <remarks>
/// Chunk boundaries depend only on the length, never on the thread count: a reduction that combines
/// per-chunk partials in chunk order gives the same bits on 1 or N threads.
/// </remarks>
internal static class ChunkedParallel
{
    /// <summary>Elements per chunk: 256 KiB of float32, small enough to balance, large enough to amortise.</summary>
    public const int ChunkLength = 1 << 16;

    /// <summary>Number of chunks covering <paramref name="length"/> elements.</summary>
    public static int ChunkCount(long length) => checked((int)((length + ChunkLength - 1) / ChunkLength));

    /// <summary>First element of chunk <paramref name="chunk"/>.</summary>
    public static long ChunkStart(int chunk) => (long)chunk * ChunkLength;

    /// <summary>Length of chunk <paramref name="chunk"/> of a range of <paramref name="length"/> elements.</summary>
    public static int ChunkSize(int chunk, long length) => (int)Math.Min(ChunkLength, length - ChunkStart(chunk));

    /// <summary>Runs <paramref name="body"/>(chunk) for every chunk of <paramref name="length"/> elements.</summary>
    public static void For(long length, ParallelOptions options, Action<int> body) =>
        ForEachIndex(ChunkCount(length), options, body);

    /// <summary>Runs <paramref name="body"/>(chunk, start, size) for every chunk of <paramref name="length"/> elements.</summary>
    public static void ForEachChunk(long length, ParallelOptions options, Action<int, long, int> body) =>
        ForEachIndex(ChunkCount(length), options, chunk => body(chunk, ChunkStart(chunk), ChunkSize(chunk, length)));

    /// <summary>Runs <paramref name="body"/>(i) for i in [0, count): inline when one worker suffices.</summary>
    public static void ForEachIndex(int count, ParallelOptions options, Action<int> body)
    {
        if (count <= 1 || options.MaxDegreeOfParallelism == 1)
        {
            for (int i = 0; i < count; i++)
                body(i);
            return;
        }

        Parallel.For(0, count, options, body);
    }

    /// <summary>
    /// Runs <paramref name="body"/>(row, start, size) for every chunk of every one of <paramref name="rows"/> rows of
    /// <paramref name="length"/> elements: the chunks are the same as for one row, whatever the thread count.
    /// </summary>
    public static void ForEachRowChunk(int rows, long length, ParallelOptions options, Action<int, long, int> body)
    {
        int chunksPerRow = ChunkCount(length);
        ForEachIndex(rows * chunksPerRow, options, item =>
        {
            int chunk = item % chunksPerRow;
            body(item / chunksPerRow, ChunkStart(chunk), ChunkSize(chunk, length));
        });
    }
}
