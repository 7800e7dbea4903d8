using ILGPU.Runtime;
using Weld.Kernels.Gpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// <see cref="PinnedStaging"/>'s chunking and double-buffering, with tiny slots so that transfers cross many slot
/// boundaries, on a device of its own (the emulator's page-locked memory is plain pinned host memory, but the slot
/// and stream logic is the same as on CUDA, where the backend uses it for every transfer of 1 MiB and more).
/// </summary>
public sealed class PinnedStagingTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(64)]      // one slot exactly (256 bytes)
    [InlineData(65)]
    [InlineData(128)]     // both slots exactly
    [InlineData(1000)]    // many slots, ragged last one
    public void Round_trips_through_small_slots(int length)
    {
        using GpuDevice device = GpuDevice.EmulatedCpu();
        device.Accelerator.Bind();
        using var staging = new PinnedStaging(device.Accelerator, slotBytes: 256);
        int seed = TestData.NewSeed();
        float[] source = TestData.Plain(new System.Random(seed), length);
        using MemoryBuffer1D<float, ILGPU.Stride1D.Dense> buffer = device.Accelerator.Allocate1D<float>(length + 3);
        staging.Upload<float>(source, buffer.View.SubView(0, length));
        var direct = new float[length];
        buffer.View.SubView(0, length).CopyToCPU(direct);
        BitAssert.Identical(source, direct, $"seed {seed} upload n={length}");

        var back = new float[length];
        staging.Download(buffer.View.SubView(0, length), back, device.Accelerator.DefaultStream);
        BitAssert.Identical(source, back, $"seed {seed} download n={length}");

        // A transfer whose byte count is not a multiple of the element size of the slot (odd ushort count).
        ushort[] halves = new ushort[2 * length + 1];
        for (int i = 0; i < halves.Length; i++)
            halves[i] = (ushort)(i * 7919);
        using MemoryBuffer1D<ushort, ILGPU.Stride1D.Dense> halfBuffer = device.Accelerator.Allocate1D<ushort>(halves.Length);
        staging.Upload<ushort>(halves, halfBuffer.View);
        var halvesBack = new ushort[halves.Length];
        staging.Download(halfBuffer.View, halvesBack, device.Accelerator.DefaultStream);
        Assert.Equal(halves, halvesBack);
    }
}
