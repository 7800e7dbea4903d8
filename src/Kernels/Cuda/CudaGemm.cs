namespace Weld.Kernels.Cuda;

/// <summary>
/// <see cref="IGemm"/> through cuBLAS sgemm on a <see cref="CudaKernels"/> device: A and B are uploaded, multiplied on
/// the backend's compute stream, and C is downloaded. Results agree with the CPU to float rounding, not bit for bit
/// (cuBLAS picks its own summation order).
/// </summary>
/// <remarks>
/// cuBLAS is column-major. A row-major m × n matrix is the column-major n × m matrix of its transpose, so
/// C = A·B is computed as Cᵀ = Bᵀ·Aᵀ with no data movement: sgemm(N, N, n, m, k, B, ldb = n, A, lda = k, C, ldc = n);
/// for C = A·Bᵀ the stored B (row-major n × k) is used transposed: sgemm(T, N, n, m, k, B, ldb = k, ...).
/// </remarks>
public sealed unsafe class CudaGemm : IGemm, IDisposable
{
    private readonly CudaKernels _kernels;
    private readonly bool _ownsKernels;
    private readonly nint _handle;
    private bool _disposed;

    /// <summary>Creates a cuBLAS handle on the device of <paramref name="kernels"/>, bound to its compute stream.</summary>
    /// <param name="kernels">The CUDA backend whose device, memory pool and staging buffers are used.</param>
    /// <param name="ownsKernels">Whether <see cref="Dispose"/> also disposes <paramref name="kernels"/>.</param>
    /// <exception cref="CudaException">cuBLAS cannot be loaded or the handle cannot be created.</exception>
    public CudaGemm(CudaKernels kernels, bool ownsKernels = false)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        if (!CudaLibraries.TryLoadCublas(out string reason)) throw new CudaException(reason);
        _kernels = kernels;
        using var call = new CudaKernels.Call(kernels);
        nint handle;
        CublasNative.Check(CublasNative.cublasCreate_v2(&handle), "cublasCreate_v2");
        _handle = handle;
        CublasNative.Check(CublasNative.cublasSetStream_v2(handle, kernels.Device.ComputeStream), "cublasSetStream_v2");
        _ownsKernels = ownsKernels;
    }

    /// <summary>Opens device <paramref name="ordinal"/> (a backend of its own) with a cuBLAS handle on its compute stream.</summary>
    /// <exception cref="CudaException">The device, NVRTC or cuBLAS cannot be used.</exception>
    public CudaGemm(int ordinal)
        : this(new CudaKernels(ordinal), ownsKernels: true)
    {
    }

    /// <summary>The device ordinal (N of cuda:N).</summary>
    public int Ordinal => _kernels.Device.Ordinal;

    /// <summary>The device's name.</summary>
    public string DeviceName => _kernels.Device.Name;

    /// <summary>Whether a <see cref="CudaGemm"/> can start on device <paramref name="deviceOrdinal"/>: driver, device, NVRTC and cuBLAS present.</summary>
    /// <param name="deviceOrdinal">The N of cuda:N.</param>
    /// <param name="reason">Why not, in one line ("" when it can).</param>
    public static bool IsAvailable(int deviceOrdinal, out string reason) =>
        CudaKernels.IsAvailable(deviceOrdinal, out reason) && CudaLibraries.TryLoadCublas(out reason);

    /// <inheritdoc />
    public string Name => _kernels.Name;

    /// <inheritdoc />
    public void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, bool transposeB = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfLessThan(a.Length, (long)m * k, nameof(a));
        ArgumentOutOfRangeException.ThrowIfLessThan(b.Length, (long)k * n, nameof(b));
        ArgumentOutOfRangeException.ThrowIfLessThan(c.Length, (long)m * n, nameof(c));
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            c[..(m * n)].Clear();
            return;
        }
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var call = new CudaKernels.Call(_kernels);
        DeviceBuffer deviceA = call.Upload(a[..(m * k)]);
        DeviceBuffer deviceB = call.Upload(b[..(k * n)]);
        DeviceBuffer deviceC = call.Rent((long)m * n * sizeof(float));
        float one = 1f, zero = 0f;
        CublasNative.Check(CublasNative.cublasSgemm_v2(_handle,
            transposeB ? CublasNative.OperationTranspose : CublasNative.OperationNone, CublasNative.OperationNone,
            n, m, k, &one, deviceB.Pointer, transposeB ? k : n, deviceA.Pointer, k, &zero, deviceC.Pointer, n), "cublasSgemm_v2");
        call.Download(deviceC, c[..(m * n)]);
    }

    /// <summary>
    /// Computes <c>C = A·Bᵀ</c>, all row-major: A is <paramref name="m"/> × <paramref name="k"/>, B is
    /// <paramref name="n"/> × <paramref name="k"/>, C is <paramref name="m"/> × <paramref name="n"/> (overwritten).
    /// </summary>
    public void MultiplyTransposed(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n) =>
        Multiply(a, b, c, m, k, n, transposeB: true);

    /// <summary>Destroys the cuBLAS handle (and the backend when this instance owns it).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        using (new CudaKernels.Call(_kernels))
            CublasNative.cublasDestroy_v2(_handle);
        _disposed = true;
        if (_ownsKernels) _kernels.Dispose();
    }
}
