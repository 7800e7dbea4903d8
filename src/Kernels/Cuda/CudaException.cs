namespace Weld.Kernels.Cuda;

/// <summary>
/// A CUDA driver, NVRTC or cuBLAS call failed, or the CUDA backend cannot start. The message names the call and
/// the library's error name (for example <c>cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2)</c>).
/// </summary>
public sealed class CudaException : Exception
{
    /// <summary>Creates the exception for a failed call.</summary>
    /// <param name="call">The native function that failed.</param>
    /// <param name="errorName">The library's name of the error code.</param>
    /// <param name="errorCode">The numeric error code.</param>
    /// <param name="detail">Extra text (a compile log, a size), or null.</param>
    public CudaException(string call, string errorName, int errorCode, string? detail = null)
        : base($"{call} failed: {errorName} ({errorCode})" + (string.IsNullOrEmpty(detail) ? "" : $"\n{detail}"))
    {
        Call = call;
        ErrorName = errorName;
        ErrorCode = errorCode;
    }

    /// <summary>Creates the exception for a backend that cannot start (no library, no device).</summary>
    /// <param name="message">What is missing.</param>
    public CudaException(string message) : base(message)
    {
        Call = "";
        ErrorName = "";
    }

    /// <summary>The native function that failed ("" when no call failed).</summary>
    public string Call { get; }

    /// <summary>The error's name, such as <c>CUDA_ERROR_NO_DEVICE</c> or <c>NVRTC_ERROR_COMPILATION</c>.</summary>
    public string ErrorName { get; }

    /// <summary>The numeric error code (0 when no call failed).</summary>
    public int ErrorCode { get; }
}
