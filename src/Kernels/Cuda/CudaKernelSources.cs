using System.Reflection;
using System.Text;

namespace Weld.Kernels.Cuda;

/// <summary>
/// The CUDA C sources embedded in Weld.Kernels (<c>src/Kernels/Cuda/*.cu</c>). <c>common.cu</c> is a prelude
/// (types and bit-exact conversions) placed before each kernel file; the backend compiles them all as one program.
/// </summary>
public static class CudaKernelSources
{
    /// <summary>File name of the prelude that every other source starts with.</summary>
    public const string PreludeName = "common.cu";

    private const string ResourcePrefix = "Weld.Kernels.Cuda.";

    /// <summary>File names of the kernel sources (the prelude excluded), in a fixed order.</summary>
    public static IReadOnlyList<string> KernelFileNames { get; } = FindKernelFileNames();

    /// <summary>The text of one embedded source by file name (for example <c>select.cu</c>).</summary>
    /// <param name="fileName">A name from <see cref="KernelFileNames"/> or <see cref="PreludeName"/>.</param>
    public static string Read(string fileName)
    {
        using Stream? stream = typeof(CudaKernelSources).Assembly.GetManifestResourceStream(ResourcePrefix + fileName);
        if (stream is null)
            throw new ArgumentException($"No embedded CUDA source named {fileName}.", nameof(fileName));
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    /// <summary>One kernel file as NVRTC compiles it on its own: the prelude, then the file.</summary>
    /// <param name="fileName">A name from <see cref="KernelFileNames"/>.</param>
    public static string WithPrelude(string fileName) => Read(PreludeName) + "\n" + Read(fileName);

    /// <summary>Every kernel in one translation unit: the prelude once, then each kernel file.</summary>
    public static string Combined()
    {
        var builder = new StringBuilder(Read(PreludeName));
        foreach (string name in KernelFileNames)
            builder.Append('\n').Append(Read(name));
        return builder.ToString();
    }

    private static string[] FindKernelFileNames()
    {
        Assembly assembly = typeof(CudaKernelSources).Assembly;
        var names = new List<string>();
        foreach (string resource in assembly.GetManifestResourceNames())
        {
            if (!resource.StartsWith(ResourcePrefix, StringComparison.Ordinal) || !resource.EndsWith(".cu", StringComparison.Ordinal))
                continue;
            string fileName = resource[ResourcePrefix.Length..];
            if (fileName != PreludeName)
                names.Add(fileName);
        }
        names.Sort(StringComparer.Ordinal);
        return [.. names];
    }
}
