using System.Runtime.InteropServices;

namespace Weld.Kernels.Cuda;

/// <summary>The cuBLAS calls Weld uses (cublas_v2.h): a handle, its stream, and single-precision GEMM.</summary>
internal static unsafe partial class CublasNative
{
    /// <summary>CUBLAS_OP_N: use the matrix as stored (column-major).</summary>
    public const int OperationNone = 0;

    /// <summary>CUBLAS_OP_T: use the transpose.</summary>
    public const int OperationTranspose = 1;

    static CublasNative() => CudaLibraries.EnsureResolver();

    [LibraryImport(CudaLibraries.Cublas)] public static partial int cublasCreate_v2(nint* handle);
    [LibraryImport(CudaLibraries.Cublas)] public static partial int cublasDestroy_v2(nint handle);
    [LibraryImport(CudaLibraries.Cublas)] public static partial int cublasSetStream_v2(nint handle, nint stream);

    [LibraryImport(CudaLibraries.Cublas)]
    public static partial int cublasSgemm_v2(nint handle, int transposeA, int transposeB, int m, int n, int k,
        float* alpha, ulong a, int lda, ulong b, int ldb, float* beta, ulong c, int ldc);

    /// <summary>Throws <see cref="CudaException"/> naming <paramref name="call"/> and the cuBLAS status when the call failed.</summary>
    public static void Check(int status, string call)
    {
        if (status != 0)
            throw new CudaException(call, StatusName(status), status);
    }

    // cublasGetStatusName only exists from cuBLAS 11.4.2 on; the status values are stable, so name them here.
    private static string StatusName(int status) => status switch
    {
        1 => "CUBLAS_STATUS_NOT_INITIALIZED",
        3 => "CUBLAS_STATUS_ALLOC_FAILED",
        7 => "CUBLAS_STATUS_INVALID_VALUE",
        8 => "CUBLAS_STATUS_ARCH_MISMATCH",
        11 => "CUBLAS_STATUS_MAPPING_ERROR",
        13 => "CUBLAS_STATUS_EXECUTION_FAILED",
        14 => "CUBLAS_STATUS_INTERNAL_ERROR",
        15 => "CUBLAS_STATUS_NOT_SUPPORTED",
        16 => "CUBLAS_STATUS_LICENSE_ERROR",
        _ => "CUBLAS_STATUS_UNKNOWN",
    };
}
