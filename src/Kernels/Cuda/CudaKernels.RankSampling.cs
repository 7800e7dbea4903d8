namespace Weld.Kernels.Cuda;

/// <remarks>DELLA's magnitude-rank sampling (<c>dare.cu</c>): upload, one launch (a block per fiber), download.</remarks>
public sealed unsafe partial class CudaKernels
{
    private const int RankSamplingThreads = 512;
    private const long MaxRankSamplingBlocks = 1 << 16; // the kernel strides over the rest of the fibers

    /// <inheritdoc />
    public void SampleByMagnitudeRank(Span<float> values, int fiberLength, int fiberStride, float lowProbability, float epsilon,
        float singleProbability, bool divideByProbability, PhiloxKey key)
    {
        long fibers = Cpu.CpuKernels.RankSamplingFibers(values.Length, fiberLength, fiberStride);
        if (fibers == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer input = call.Upload(values);
        DeviceBuffer output = call.Rent((long)values.Length * sizeof(float));
        LaunchRankMagnitudeSample(input.Pointer, output.Pointer, fibers, fiberLength, fiberStride, lowProbability, epsilon,
            singleProbability, divideByProbability, key);
        call.Download(output, values);
    }

    internal void LaunchRankMagnitudeSample(ulong input, ulong output, long fibers, int length, long stride, float low, float epsilon,
        float single, bool divide, PhiloxKey key)
    {
        int divideFlag = divide ? 1 : 0;
        ulong seed = key.Seed;
        uint tensorHash = key.TensorHash, modelIndex = key.ModelIndex;
        void** arguments = stackalloc void*[]
        {
            &input, &output, &fibers, &length, &stride, &low, &epsilon, &single, &divideFlag, &seed, &tensorHash, &modelIndex,
        };
        _module.Launch("rank_magnitude_sample", (uint)Math.Min(fibers, MaxRankSamplingBlocks), 1, RankSamplingThreads,
            _device.ComputeStream, arguments);
    }
}
