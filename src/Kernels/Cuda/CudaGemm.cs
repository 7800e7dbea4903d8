namespace Weld.Kernels.Cuda;

/// <summary>
/// Single-precision <c>C = A·Bᵀ</c> of host matrices on one CUDA device through cuBLAS sgemm: uploads A and B,
/// multiplies, downloads C. Device buffers are pooled across calls (the same tile sizes recur).
/// </summary>
/// <remarks>Not thread-safe: one caller at a time (weight matching issues one product after another).</remarks>
public sealed unsafe class CudaGemm : IDisposable
{
    private readonly CudaDevice _device;
    private readonly DeviceMemoryPool _pool = new();
    private readonly nint _cublas;
    private bool _disposed;

    /// <summary>Opens device <paramref name="ordinal"/> and a cuBLAS handle on its compute stream.</summary>
    /// <exception cref="CudaException">The device or cuBLAS cannot be used.</exception>
    public CudaGemm(int ordinal)
    {
        _device = new CudaDevice(ordinal);
        try
        {
            if (!CudaLibraries.TryLoadCublas(out string problem)) throw new CudaException($"no cuBLAS: {problem}");
            nint handle;
            CublasNative.Check(CublasNative.cublasCreate_v2(&handle), "cublasCreate_v2");
            _cublas = handle;
            CublasNative.Check(CublasNative.cublasSetStream_v2(_cublas, _device.ComputeStream), "cublasSetStream_v2");
        }
        catch
        {
            _device.Dispose();
            throw;
        }
    }

    /// <summary>The device ordinal (N of cuda:N).</summary>
    public int Ordinal => _device.Ordinal;

    /// <summary>The device's name.</summary>
    public string DeviceName => _device.Name;

    /// <summary>Whether device <paramref name="ordinal"/> and cuBLAS can be used; <paramref name="reason"/> says why not.</summary>
    public static bool IsAvailable(int ordinal, out string reason)
    {
        if (!CudaDevice.Probe(ordinal, out reason)) return false;
        if (!CudaLibraries.TryLoadCublas(out string problem))
        {
            reason = $"no cuBLAS: {problem}";
            return false;
        }

        return true;
    }

    /// <summary>
    /// Computes <c>C = A·Bᵀ</c>, all row-major: A is <paramref name="m"/> × <paramref name="k"/>, B is
    /// <paramref name="n"/> × <paramref name="k"/>, C is <paramref name="m"/> × <paramref name="n"/> (overwritten).
    /// Returns when C is on the host.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A dimension is negative or a span is shorter than its matrix.</exception>
    /// <exception cref="CudaException">A CUDA or cuBLAS call failed.</exception>
    public void MultiplyTransposed(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfLessThan(a.Length, (long)m * k, nameof(a));
        ArgumentOutOfRangeException.ThrowIfLessThan(b.Length, (long)n * k, nameof(b));
        ArgumentOutOfRangeException.ThrowIfLessThan(c.Length, (long)m * n, nameof(c));
        if (m == 0 || n == 0) return;
        _device.MakeCurrent();
        long aBytes = (long)m * k * sizeof(float), bBytes = (long)n * k * sizeof(float), cBytes = (long)m * n * sizeof(float);
        DeviceBuffer da = _pool.Rent(Math.Max(aBytes, 4)), db = _pool.Rent(Math.Max(bBytes, 4)), dc = _pool.Rent(cBytes);
        try
        {
            nint stream = _device.ComputeStream;
            fixed (float* pa = a, pb = b, pc = c)
            {
                // Uploads, product and download share one stream, so each waits for the one before; the host
                // buffers stay pinned by `fixed` until the final synchronisation.
                CudaDriverNative.Check(CudaDriverNative.cuMemcpyHtoDAsync_v2(da.Pointer, pa, (nuint)aBytes, stream), "cuMemcpyHtoDAsync_v2");
                CudaDriverNative.Check(CudaDriverNative.cuMemcpyHtoDAsync_v2(db.Pointer, pb, (nuint)bBytes, stream), "cuMemcpyHtoDAsync_v2");
                float alpha = 1, beta = 0;
                // Row-major C = A·Bᵀ is column-major Cᵀ = B·Aᵀ: B is stored as column-major Bᵀ (k × n, ld k), so it
                // is used transposed; A is stored as column-major Aᵀ (k × m, ld k), used as is.
                CublasNative.Check(CublasNative.cublasSgemm_v2(_cublas, CublasNative.OperationTranspose, CublasNative.OperationNone,
                    n, m, k, &alpha, db.Pointer, Math.Max(k, 1), da.Pointer, Math.Max(k, 1), &beta, dc.Pointer, n), "cublasSgemm_v2");
                CudaDriverNative.Check(CudaDriverNative.cuMemcpyDtoHAsync_v2(pc, dc.Pointer, (nuint)cBytes, stream), "cuMemcpyDtoHAsync_v2");
                _device.SynchronizeCompute();
            }
        }
        finally
        {
            _pool.Return(da);
            _pool.Return(db);
            _pool.Return(dc);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _device.MakeCurrent();
        CublasNative.cublasDestroy_v2(_cublas);
        _pool.Dispose();
        _device.Dispose();
    }
}
