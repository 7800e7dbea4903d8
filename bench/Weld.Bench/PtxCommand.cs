using System.Globalization;
using ILGPU.Runtime.Cuda;
using Weld.Kernels.Gpu;

namespace Weld.Bench;

/// <summary><c>Weld.Bench ptx DIR [sm_XY]</c>: the PTX of every GPU kernel, one file each, without a GPU.</summary>
public static class PtxCommand
{
    /// <summary>Writes the files and prints one line per kernel (name, size, FMA count).</summary>
    /// <param name="directory">The output folder.</param>
    /// <param name="architecture">sm_XY (for example sm_90), or null for the newest ILGPU supports.</param>
    /// <returns>0, or 1 when the architecture is not one ILGPU knows.</returns>
    public static int Run(string directory, string? architecture)
    {
        CudaArchitecture target = PtxExport.NewestArchitecture;
        if (architecture is not null)
        {
            string digits = architecture.StartsWith("sm_", StringComparison.OrdinalIgnoreCase) ? architecture[3..] : architecture;
            if (!int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int number) || number < 10)
            {
                Console.Error.WriteLine($"ptx: '{architecture}' is not an architecture (sm_90, sm_120, ...)");
                return 1;
            }
            target = new CudaArchitecture(number / 10, number % 10);
        }
        IReadOnlyList<PtxKernel> kernels = PtxExport.Compile(target);
        Directory.CreateDirectory(directory);
        foreach (PtxKernel kernel in kernels)
        {
            File.WriteAllText(Path.Combine(directory, kernel.Name + ".ptx"), kernel.Assembly);
            int fma = PtxExport.Count(kernel.Assembly, "fma.rn.f32");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{kernel.Name}.ptx  {kernel.Assembly.Length,8} chars  fma.rn.f32 x{fma}"));
        }
        Console.WriteLine($"{kernels.Count} kernels for {target} written to {directory}");
        return 0;
    }
}
