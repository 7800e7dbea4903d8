using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Weld.Kernels.Gpu;

/// <summary>
/// One ILGPU accelerator and its context: a CUDA device (<c>cuda:N</c>), or ILGPU's CPU accelerator, which runs the
/// very same kernels with emulated groups, shared memory, barriers and warps (<c>ilgpu-cpu</c>; slow, for checking
/// kernels and recipes without a GPU).
/// </summary>
/// <remarks>
/// The context is built with default math (no fast math) and without ILGPU's Algorithms extensions for the emulator;
/// the CUDA context enables them for cuBLAS.
/// </remarks>
public sealed class GpuDevice : IDisposable
{
    private readonly Context _context;

    private GpuDevice(Context context, Accelerator accelerator, string name, bool isCuda)
    {
        _context = context;
        Accelerator = accelerator;
        Name = name;
        IsCuda = isCuda;
    }

    /// <summary>The accelerator the kernels run on.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>Backend name for logs: "cuda:0" or "ilgpu-cpu".</summary>
    public string Name { get; }

    /// <summary>Whether the kernels run on a real CUDA device (inline PTX pins the rounding there).</summary>
    public bool IsCuda { get; }

    /// <summary>The device's own name (for example "NVIDIA H200").</summary>
    public string DeviceName => Accelerator.Name;

    /// <summary>Threads per warp of the accelerator (32 on NVIDIA GPUs; as configured on the emulator).</summary>
    public int WarpSize => Accelerator.WarpSize;

    /// <summary>
    /// Threads per group the kernels launch with: 256 on a GPU, the whole emulated group on the CPU accelerator.
    /// A power of two (the block reductions halve it).
    /// </summary>
    public int GroupSize { get; private init; }

    /// <summary>Groups a grid-stride kernel launches at most: enough to fill the device, a few on the emulator.</summary>
    public int MaxGroups { get; private init; }

    /// <summary>Opens CUDA device <paramref name="ordinal"/>.</summary>
    /// <exception cref="InvalidOperationException">No such CUDA device (the message says why).</exception>
    public static GpuDevice Cuda(int ordinal = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ordinal);
        Context context = Context.Create(builder => builder.Cuda().Math(MathMode.Default).EnableAlgorithms());
        try
        {
            var devices = context.GetCudaDevices();
            if (ordinal >= devices.Count)
                throw new InvalidOperationException(devices.Count == 0
                    ? "no CUDA device: ILGPU found no NVIDIA driver or GPU"
                    : $"no CUDA device {ordinal}: ILGPU found {devices.Count}");
            CudaAccelerator accelerator = devices[ordinal].CreateCudaAccelerator(context);
            int multiprocessors = accelerator.NumMultiprocessors;
            return new GpuDevice(context, accelerator, $"cuda:{ordinal}", isCuda: true)
            {
                GroupSize = 256,
                MaxGroups = multiprocessors * 8,
            };
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>
    /// ILGPU's CPU accelerator shaped as <paramref name="warpSize"/> threads a warp, <paramref name="warpsPerGroup"/>
    /// warps a group and <paramref name="multiprocessors"/> groups at a time. Small shapes keep launches cheap
    /// (each emulated thread is an OS thread that meets the others at every barrier).
    /// </summary>
    public static GpuDevice EmulatedCpu(int warpSize = 4, int warpsPerGroup = 4, int multiprocessors = 2)
    {
        if (!int.IsPow2(warpSize) || !int.IsPow2(warpsPerGroup))
            throw new ArgumentException("The emulated warp and group sizes must be powers of two.");
        Context context = Context.Create(builder => builder
            .CPU(new CPUDevice(warpSize, warpsPerGroup, multiprocessors))
            .Math(MathMode.Default));
        try
        {
            CPUAccelerator accelerator = context.GetCPUDevice(0).CreateCPUAccelerator(context, CPUAcceleratorMode.Parallel);
            return new GpuDevice(context, accelerator, "ilgpu-cpu", isCuda: false)
            {
                GroupSize = warpSize * warpsPerGroup,
                MaxGroups = multiprocessors * 2,
            };
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>Whether CUDA device <paramref name="ordinal"/> exists; <paramref name="reason"/> says why not.</summary>
    public static bool ProbeCuda(int ordinal, out string reason)
    {
        if (!CudaDriverLoads())
        {
            reason = "no CUDA device: ILGPU found no NVIDIA driver or GPU";
            return false;
        }
        try
        {
            using Context context = Context.Create(builder => builder.Cuda());
            int count = context.GetCudaDevices().Count;
            if (ordinal < count)
            {
                reason = "";
                return true;
            }
            reason = count == 0 ? "no CUDA device: ILGPU found no NVIDIA driver or GPU" : $"no CUDA device {ordinal}: ILGPU found {count}";
            return false;
        }
        catch (Exception error) when (error is DllNotFoundException or TypeInitializationException or InvalidOperationException
            or NotSupportedException or CudaException)
        {
            reason = $"CUDA unavailable: {error.Message.Split('\n', 2)[0]}";
            return false;
        }
    }

    /// <summary>
    /// Whether a CUDA driver library loads at all. ILGPU binds the driver API by the library name <c>cuda</c>
    /// (<c>nvcuda</c> on Windows); without one, creating an ILGPU context only to count zero devices cost ≈ 80 ms of
    /// single-threaded start-up on every CPU merge (bench VM profile), so the probe asks the loader first.
    /// </summary>
    private static bool CudaDriverLoads()
    {
        string[] names = OperatingSystem.IsWindows() ? ["nvcuda"] : ["libcuda.so.1", "libcuda.so", "cuda"];
        foreach (string name in names)
            if (NativeLibrary.TryLoad(name, out _)) return true; // left loaded: ILGPU uses it next
        return false;
    }

    /// <summary>Groups for a grid-stride pass over <paramref name="work"/> items, each thread taking <paramref name="perThread"/>.</summary>
    public int GroupsFor(long work, int perThread = 1)
    {
        long threads = (work + perThread - 1) / perThread;
        return (int)Math.Clamp((threads + GroupSize - 1) / GroupSize, 1, MaxGroups);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Accelerator.Dispose();
        _context.Dispose();
    }
}
