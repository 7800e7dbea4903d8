using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

/// <summary>
/// A fact for one vector path of the CPU Philox kernels (<c>"Avx2"</c> or <c>"Avx512"</c>, a <see cref="PhiloxWidth"/>
/// name); skipped, with the reason, on a CPU that lacks those instructions (CI machines may lack AVX-512).
/// </summary>
public sealed class CpuWidthFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when this CPU cannot run <paramref name="width"/>.</summary>
    public CpuWidthFactAttribute(string width)
    {
        if (!PhiloxVectorBlocks.IsSupported(Enum.Parse<PhiloxWidth>(width)))
            Skip = $"this CPU lacks the {width} instructions: that path cannot run here";
    }
}
