using ILGPU.Runtime;
using Weld.Kernels.Cpu;
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

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Large_transfers_through_the_backend_match_cpu(string shape)
    {
        // On CUDA: above 1 MiB every upload and download goes through the pinned slots; three slots and a ragged
        // tail here. The emulator copies plainly (its device memory is host memory): a smaller size suffices.
        GpuKernels gpu = GpuShapes.Get(shape);
        int n = gpu.Device.IsCuda ? 3 * PinnedStaging.DefaultSlotBytes / sizeof(float) + 5 : 300_007;
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        float[] x = TestData.Plain(random, n), y = TestData.Plain(random, n);
        var cpu = new CpuKernels(2);
        string context = $"{shape} seed {seed} n={n}";

        float[] expected = (float[])x.Clone(), actual = (float[])x.Clone();
        cpu.Scale(expected, 1.3f);
        gpu.Scale(actual, 1.3f);
        BitAssert.Identical(expected, actual, context + " scale");
        Assert.Equal(BitConverter.DoubleToInt64Bits(cpu.Dot(x, y)), BitConverter.DoubleToInt64Bits(gpu.Dot(x, y)));

        var expectedBf16 = new ushort[n];
        var actualBf16 = new ushort[n];
        FloatConversions.SingleToBf16(x, expectedBf16);
        gpu.SingleToBf16(x, actualBf16);
        Assert.True(expectedBf16.AsSpan().SequenceEqual(actualBf16), context + " bf16");
    }
}
