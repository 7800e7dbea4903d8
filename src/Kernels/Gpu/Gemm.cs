using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using static Weld.Kernels.Gpu.GpuArithmetic;

namespace Weld.Kernels.Gpu;

/// <summary>
/// <see cref="IGemm"/> on a <see cref="GpuKernels"/> device: cuBLAS sgemm (ILGPU.Algorithms' <see cref="CuBlas"/>) on
/// a CUDA device where cuBLAS loads, else Weld's tiled shared-memory ILGPU kernel (<see cref="GemmKernels.Tiled"/>),
/// which is what runs on ILGPU's CPU accelerator. <see cref="Reason"/> says which and why.
/// </summary>
/// <remarks>
/// <para>Results agree with the CPU <see cref="Cpu.Gemm"/> to float rounding, not bit for bit (cuBLAS picks its own
/// summation order; the CPU sums SIMD lanes). The tiled kernel is deterministic: C[i, j] = fma(A[i, k−1], B[k−1, j],
/// … fma(A[i, 0], B[0, j], +0)), p ascending, the same bits on the emulator and on a GPU.</para>
/// <para>cuBLAS is column-major. A row-major m × n matrix is the column-major n × m matrix of its transpose, so
/// C = A·B is computed as Cᵀ = Bᵀ·Aᵀ with no data movement: sgemm(N, N, n, m, k, B, ldb = n, A, lda = k, C, ldc = n);
/// for C = A·Bᵀ the stored B (row-major n × k) is used transposed: sgemm(T, N, n, m, k, B, ldb = k, …). cuBLAS's
/// default math mode is kept (no TF32).</para>
/// <para>Calls go through the backend's <see cref="GpuKernels.Call"/>: its lock, buffer pool, pinned staging and
/// compute stream (the cuBLAS handle is bound to that stream).</para>
/// </remarks>
public sealed class GpuGemm : IGemm, IDisposable
{
    private readonly GpuKernels _kernels;
    private readonly bool _ownsKernels;
    private readonly CuBlas? _blas;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int>? _tiled;
    private bool _disposed;

    /// <summary>Multiplies on the device of <paramref name="kernels"/>.</summary>
    /// <param name="kernels">The GPU backend whose device, lock, buffer pool and stream are used.</param>
    /// <param name="ownsKernels">Whether <see cref="Dispose"/> also disposes <paramref name="kernels"/>.</param>
    /// <param name="useCublas">Whether to try cuBLAS on a CUDA device (false forces the tiled kernel, for tests).</param>
    public GpuGemm(GpuKernels kernels, bool ownsKernels = false, bool useCublas = true)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        _kernels = kernels;
        _ownsKernels = ownsKernels;
        if (!kernels.Device.IsCuda)
        {
            Reason = $"tiled ILGPU kernel: {kernels.Name} is not a CUDA device";
            return;
        }
        if (!useCublas)
        {
            Reason = "tiled ILGPU kernel: cuBLAS not requested";
            return;
        }
        try
        {
            using var call = new GpuKernels.Call(kernels);
            var blas = new CuBlas((CudaAccelerator)kernels.Accelerator);
            try
            {
                blas.Stream = (CudaStream)kernels.Stream;
                blas.PointerMode = CuBlasPointerMode.Host; // alpha and beta are host scalars
            }
            catch
            {
                blas.Dispose();
                throw;
            }
            _blas = blas;
            Reason = "cuBLAS sgemm";
        }
        catch (Exception error) when (error is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException
            or TypeInitializationException or CuBlasException or CudaException or NotSupportedException or InvalidOperationException)
        {
            Reason = $"tiled ILGPU kernel: cuBLAS did not load ({error.Message.Split('\n', 2)[0]})";
        }
    }

    /// <inheritdoc />
    public string Name => _kernels.Name;

    /// <summary>Whether products run in cuBLAS (else in the tiled ILGPU kernel).</summary>
    public bool UsesCublas => _blas is not null;

    /// <summary>"cublas" or "ilgpu-tiled", for logs.</summary>
    public string Implementation => UsesCublas ? "cublas" : "ilgpu-tiled";

    /// <summary>One line: which implementation runs and, for the tiled kernel, why not cuBLAS.</summary>
    public string Reason { get; }

    /// <inheritdoc />
    public void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, bool transposeB = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfLessThan(a.Length, (long)m * k, nameof(a));
        ArgumentOutOfRangeException.ThrowIfLessThan(b.Length, (long)k * n, nameof(b));
        ArgumentOutOfRangeException.ThrowIfLessThan(c.Length, (long)m * n, nameof(c));
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (m == 0 || n == 0)
            return;
        if (k == 0)
        {
            c[..(m * n)].Clear();
            return;
        }

        using var call = new GpuKernels.Call(_kernels);
        ArrayView<float> deviceA = call.Upload(a[..(m * k)]);
        ArrayView<float> deviceB = call.Upload(b[..(k * n)]);
        ArrayView<float> deviceC = call.Rent<float>((long)m * n);
        if (_blas is not null)
        {
            _blas.Gemm(transposeB ? CuBlasOperation.Transpose : CuBlasOperation.NonTranspose, CuBlasOperation.NonTranspose,
                n, m, k, 1f, deviceB, transposeB ? k : n, deviceA, k, 0f, deviceC, n);
        }
        else
        {
            (int tileRows, int tileColumns) = GemmKernels.TileShape(_kernels.Device.GroupSize);
            long tiles = (long)((m + tileRows - 1) / tileRows) * ((n + tileColumns - 1) / tileColumns);
            var config = new KernelConfig(_kernels.Device.GroupsFor(tiles * _kernels.Device.GroupSize), _kernels.Device.GroupSize);
            _kernels.Load(ref _tiled, GemmKernels.Tiled)(_kernels.Stream, config, deviceA, deviceB, deviceC, m, k, n,
                transposeB ? 1 : 0, tileRows, tileColumns);
        }
        call.Download(deviceC, c[..(m * n)]);
    }

    /// <summary>
    /// Computes <c>C = A·Bᵀ</c>, all row-major: A is <paramref name="m"/> × <paramref name="k"/>, B is
    /// <paramref name="n"/> × <paramref name="k"/>, C is <paramref name="m"/> × <paramref name="n"/> (overwritten).
    /// </summary>
    public void MultiplyTransposed(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n) =>
        Multiply(a, b, c, m, k, n, transposeB: true);

    /// <summary>Releases the cuBLAS handle (and the backend when this instance owns it).</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        if (_blas is not null)
        {
            using (new GpuKernels.Call(_kernels))
                _blas.Dispose();
        }
        if (_ownsKernels)
            _kernels.Dispose();
    }
}

/// <summary>The tiled shared-memory GEMM that runs where cuBLAS does not (and on ILGPU's CPU accelerator).</summary>
internal static class GemmKernels
{
    /// <summary>Depth of a k-slice staged in shared memory per step.</summary>
    public const int Depth = 16;

    /// <summary>Largest tile side the shared arrays hold (groups up to 4096 threads).</summary>
    public const int MaxTileSide = 64;

    /// <summary>
    /// A tile of C with one element per thread of a <paramref name="groupSize"/>-thread group: as square as a power of
    /// two allows (4 × 4 for 16 threads, 8 × 4 for 32, 16 × 16 for 256).
    /// </summary>
    public static (int Rows, int Columns) TileShape(int groupSize)
    {
        if (!int.IsPow2(groupSize) || groupSize > MaxTileSide * MaxTileSide)
            throw new NotSupportedException($"The tiled GEMM needs a power-of-two group of at most {MaxTileSide * MaxTileSide} threads; this device has {groupSize}.");
        int columns = 1 << (System.Numerics.BitOperations.Log2((uint)groupSize) / 2);
        return (groupSize / columns, columns);
    }

    /// <summary>
    /// C = A·B (or A·Bᵀ when <paramref name="transposeB"/> ≠ 0), row-major: each group computes
    /// <paramref name="tileRows"/> × <paramref name="tileColumns"/> tiles of C (grid-stride over tiles), staging
    /// <see cref="Depth"/>-deep slices of A and B in shared memory; each thread accumulates one element with fused
    /// multiply-adds, p ascending.
    /// </summary>
    /// <remarks>Every loop that contains a barrier has a bound that is the same in all threads of the group.</remarks>
    public static void Tiled(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, int m, int k, int n, int transposeB,
        int tileRows, int tileColumns)
    {
        ArrayView<float> aTile = SharedMemory.Allocate<float>(MaxTileSide * Depth); // [row][q]
        ArrayView<float> bTile = SharedMemory.Allocate<float>(Depth * MaxTileSide); // [q][column]
        int threads = Group.DimX;
        int thread = Group.IdxX;
        int localRow = thread / tileColumns;
        int localColumn = thread % tileColumns;
        int columnTiles = (n + tileColumns - 1) / tileColumns;
        long tiles = (long)((m + tileRows - 1) / tileRows) * columnTiles;
        for (long tile = Grid.IdxX; tile < tiles; tile += Grid.DimX)
        {
            int firstRow = (int)(tile / columnTiles) * tileRows;
            int firstColumn = (int)(tile % columnTiles) * tileColumns;
            float sum = 0f;
            for (int p0 = 0; p0 < k; p0 += Depth)
            {
                int depth = Math.Min(Depth, k - p0);
                for (int e = thread; e < tileRows * Depth; e += threads)
                {
                    int row = firstRow + e / Depth, p = p0 + e % Depth;
                    aTile[e] = row < m && p < k ? a[(long)row * k + p] : 0f;
                }
                for (int e = thread; e < Depth * tileColumns; e += threads)
                {
                    // Neighbouring threads read neighbouring addresses: along a row of B, or along p of stored Bᵀ.
                    int q = transposeB != 0 ? e % Depth : e / tileColumns;
                    int j = transposeB != 0 ? e / Depth : e % tileColumns;
                    int p = p0 + q, column = firstColumn + j;
                    float value = 0f;
                    if (p < k && column < n)
                        value = transposeB != 0 ? b[(long)column * k + p] : b[(long)p * n + column];
                    bTile[q * tileColumns + j] = value;
                }
                Group.Barrier();
                for (int q = 0; q < depth; q++)
                    sum = Fma(aTile[localRow * Depth + q], bTile[q * tileColumns + localColumn], sum);
                // The next slice overwrites the tiles: everyone must be done reading them.
                Group.Barrier();
            }
            int outRow = firstRow + localRow, outColumn = firstColumn + localColumn;
            if (outRow < m && outColumn < n)
                c[(long)outRow * n + outColumn] = sum;
        }
    }
}
