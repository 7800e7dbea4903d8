using System.Runtime.InteropServices;
using System.Text;

namespace Weld.Kernels.Cuda;

/// <summary>
/// Compiles CUDA C to PTX with NVRTC (no GPU needed). Loads the newest libnvrtc found
/// (<c>libnvrtc.so.13</c>, <c>.12</c>, then Debian's <c>libnvrtc.so.11.2</c>; <c>WELD_NVRTC_LIBRARY</c> overrides).
/// </summary>
public static unsafe class NvrtcCompiler
{
    /// <summary>Options every Weld kernel is compiled with besides the architecture: no fast math, no FMA contraction
    /// of plain expressions (the kernels round explicitly anyway), C++17.</summary>
    public static IReadOnlyList<string> CommonOptions { get; } = ["--std=c++17", "--fmad=false"];

    /// <summary>Loads NVRTC if it is not loaded yet.</summary>
    /// <param name="reason">Why it could not be loaded ("" on success).</param>
    /// <returns>Whether NVRTC can be used.</returns>
    public static bool TryLoad(out string reason)
    {
        if (!CudaLibraries.TryLoadNvrtc(out _, out string problem))
        {
            reason = $"NVRTC not available: {problem}";
            return false;
        }
        reason = "";
        return true;
    }

    /// <summary>The NVRTC version as "major.minor" and the library file it came from.</summary>
    public static string Describe()
    {
        RequireLoaded();
        CudaLibraries.TryLoadNvrtc(out string? fileName, out _);
        int major, minor;
        NvrtcNative.Check(NvrtcNative.nvrtcVersion(&major, &minor), "nvrtcVersion");
        return $"NVRTC {major}.{minor} ({fileName})";
    }

    /// <summary>The virtual architectures this NVRTC can target, as compute capabilities ×10 (e.g. 80, 90), ascending.</summary>
    public static IReadOnlyList<int> SupportedArchitectures()
    {
        RequireLoaded();
        int count;
        NvrtcNative.Check(NvrtcNative.nvrtcGetNumSupportedArchs(&count), "nvrtcGetNumSupportedArchs");
        var architectures = new int[count];
        fixed (int* list = architectures)
            NvrtcNative.Check(NvrtcNative.nvrtcGetSupportedArchs(list), "nvrtcGetSupportedArchs");
        Array.Sort(architectures);
        return architectures;
    }

    /// <summary>The highest architecture NVRTC supports that a device of <paramref name="computeCapability"/> (×10) runs.</summary>
    /// <param name="computeCapability">The device's major·10 + minor.</param>
    public static int ArchitectureFor(int computeCapability)
    {
        int best = 0;
        foreach (int architecture in SupportedArchitectures())
            if (architecture <= computeCapability && architecture > best)
                best = architecture;
        if (best == 0)
            throw new CudaException($"NVRTC knows no architecture at or below compute_{computeCapability}.");
        return best;
    }

    /// <summary>The full option list for a target architecture (×10, e.g. 90 for <c>compute_90</c>).</summary>
    /// <param name="architecture">Virtual architecture ×10.</param>
    public static string[] OptionsFor(int architecture) => [$"--gpu-architecture=compute_{architecture}", .. CommonOptions];

    /// <summary>Compiles <paramref name="source"/> to PTX.</summary>
    /// <param name="source">CUDA C source text.</param>
    /// <param name="programName">Name shown in diagnostics (a file name).</param>
    /// <param name="options">NVRTC options (see <see cref="OptionsFor"/>).</param>
    /// <returns>The PTX text.</returns>
    /// <exception cref="CudaException">NVRTC is missing or the source did not compile (the log is in the message).</exception>
    public static string CompileToPtx(string source, string programName, IReadOnlyList<string> options)
    {
        RequireLoaded();
        nint program = 0;
        byte[] sourceBytes = NullTerminated(source);
        byte[] nameBytes = NullTerminated(programName);
        fixed (byte* sourcePointer = sourceBytes)
        fixed (byte* namePointer = nameBytes)
            NvrtcNative.Check(NvrtcNative.nvrtcCreateProgram(&program, sourcePointer, namePointer, 0, null, null), "nvrtcCreateProgram");
        try
        {
            var optionHandles = new GCHandle[options.Count];
            nint* optionPointers = stackalloc nint[Math.Max(1, options.Count)];
            try
            {
                for (int i = 0; i < options.Count; i++)
                {
                    optionHandles[i] = GCHandle.Alloc(NullTerminated(options[i]), GCHandleType.Pinned);
                    optionPointers[i] = optionHandles[i].AddrOfPinnedObject();
                }

                int result = NvrtcNative.nvrtcCompileProgram(program, options.Count, (byte**)optionPointers);
                if (result != 0)
                    NvrtcNative.Check(result, $"nvrtcCompileProgram({programName}, {string.Join(' ', options)})", ReadLog(program));
            }
            finally
            {
                foreach (GCHandle handle in optionHandles)
                    if (handle.IsAllocated)
                        handle.Free();
            }

            nuint size;
            NvrtcNative.Check(NvrtcNative.nvrtcGetPTXSize(program, &size), "nvrtcGetPTXSize");
            var ptx = new byte[(int)size];
            fixed (byte* ptxPointer = ptx)
                NvrtcNative.Check(NvrtcNative.nvrtcGetPTX(program, ptxPointer), "nvrtcGetPTX");
            int length = Array.IndexOf(ptx, (byte)0);
            return Encoding.UTF8.GetString(ptx, 0, length < 0 ? ptx.Length : length);
        }
        finally
        {
            NvrtcNative.nvrtcDestroyProgram(&program);
        }
    }

    private static string ReadLog(nint program)
    {
        nuint size;
        if (NvrtcNative.nvrtcGetProgramLogSize(program, &size) != 0 || size <= 1)
            return "(no compile log)";
        var log = new byte[(int)size];
        fixed (byte* logPointer = log)
            if (NvrtcNative.nvrtcGetProgramLog(program, logPointer) != 0)
                return "(compile log unavailable)";
        return Encoding.UTF8.GetString(log, 0, (int)size - 1);
    }

    private static void RequireLoaded()
    {
        if (!TryLoad(out string reason))
            throw new CudaException(reason);
    }

    private static byte[] NullTerminated(string text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }
}
