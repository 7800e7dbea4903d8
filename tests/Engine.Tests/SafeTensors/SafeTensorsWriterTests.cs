using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Weld.Engine.SafeTensors;
using Weld.Kernels;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.SafeTensors;

public sealed class SafeTensorsWriterTests
{
    [Fact]
    public void EveryDType_RoundTripsThroughWriterAndReader()
    {
        var random = new Random(11);
        DType[] all = Enum.GetValues<DType>();
        var headers = all.Select((d, i) => new TensorHeader($"t.{DTypes.ToName(d)}", d, [3, i + 1])).ToList();
        headers.Add(new TensorHeader("empty", DType.F16, [0]));
        var payloads = headers.Select(h => RandomBytes(random, h)).ToList();
        string path = Path.Combine(TestPaths.NewTempDir(), "all.safetensors");

        using (var writer = new SafeTensorsWriter(path, headers, null))
        {
            foreach (byte[] payload in payloads) writer.WriteBytes(payload);
            Assert.Equal(string.Empty, writer.CurrentTensor);
            writer.Complete();
        }

        RawSafeTensors raw = RawSafeTensors.Read(path);
        Assert.Equal(0, raw.HeaderLength % 8);                       // padded as the HF library pads
        Assert.Equal(new Dictionary<string, string> { ["format"] = "pt" }, raw.Metadata);
        long expectedOffset = 0;
        for (int i = 0; i < headers.Count; i++)
        {
            RawSafeTensors.Entry entry = raw.Entries[headers[i].Name];
            Assert.Equal(DTypes.ToName(headers[i].DType), entry.DType);
            Assert.Equal(headers[i].Shape, entry.Shape);
            Assert.Equal(expectedOffset, entry.Begin);              // laid out in the given order
            expectedOffset += payloads[i].Length;
            Assert.Equal(payloads[i], raw.TensorBytes(headers[i].Name).ToArray());
        }

        using SafeTensorsFile file = SafeTensorsFile.Open(path);
        for (int i = 0; i < headers.Count; i++)
        {
            TensorInfo tensor = file.GetTensor(headers[i].Name);
            Assert.Equal(headers[i].DType, tensor.DType);
            Assert.Equal(headers[i].ByteLength, tensor.ByteLength);
            Assert.Equal(payloads[i], file.GetBytes(tensor, 0, (int)tensor.ByteLength).ToArray());
            if (headers[i].DType is DType.F8_E4M3 or DType.F8_E5M2) continue; // decoded in the fp8 test below
            double[] expected = raw.Values(headers[i].Name);
            var actual = new float[expected.Length];
            file.ReadFloat32(tensor, 0, actual);
            for (int k = 0; k < expected.Length; k++)
            {
                // NaN payloads may be quieted by the test's own double round trip: compare NaN as NaN.
                if (double.IsNaN(expected[k])) Assert.True(float.IsNaN(actual[k]));
                else Assert.Equal(BitConverter.SingleToUInt32Bits((float)expected[k]), BitConverter.SingleToUInt32Bits(actual[k]));
            }
        }
    }

    [Fact]
    public void Fp8Tensors_ReadBackByDefinition()
    {
        var headers = new List<TensorHeader> { new("e4m3", DType.F8_E4M3, [256]), new("e5m2", DType.F8_E5M2, [16, 16]) };
        byte[] codes = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        string path = Path.Combine(TestPaths.NewTempDir(), "fp8.safetensors");
        using (var writer = new SafeTensorsWriter(path, headers, new Dictionary<string, string>()))
        {
            writer.WriteBytes(codes);
            writer.WriteBytes(codes);
            writer.Complete();
        }

        using SafeTensorsFile file = SafeTensorsFile.Open(path);
        Assert.Empty(file.Metadata);
        var e4m3 = new float[256];
        var e5m2 = new float[256];
        file.ReadFloat32(file.GetTensor("e4m3"), 0, e4m3);
        file.ReadFloat32(file.GetTensor("e5m2"), 0, e5m2);
        for (int i = 0; i < 256; i++)
        {
            int sign = i >> 7 == 1 ? -1 : 1;
            int e4 = (i >> 3) & 15, m4 = i & 7;
            if (e4 == 15 && m4 == 7) Assert.True(float.IsNaN(e4m3[i]));
            else Assert.Equal(sign * (e4 == 0 ? m4 / 8.0 * Math.Pow(2, -6) : (1 + m4 / 8.0) * Math.Pow(2, e4 - 7)), e4m3[i]);
            int e5 = (i >> 2) & 31, m5 = i & 3;
            if (e5 == 31) Assert.True(m5 == 0 ? float.IsInfinity(e5m2[i]) : float.IsNaN(e5m2[i]));
            else Assert.Equal(sign * (e5 == 0 ? m5 / 4.0 * Math.Pow(2, -14) : (1 + m5 / 4.0) * Math.Pow(2, e5 - 15)), e5m2[i]);
        }
    }

    [Fact]
    public void WriteFloat32_ConvertsInChunks_ToEachTensorsDType()
    {
        var random = new Random(12);
        const int n = 100_003; // several conversion buffers, odd tail
        float[] values = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 6 - 3) * MathF.Pow(2, random.Next(-20, 10))).ToArray();
        DType[] dtypes = [DType.F32, DType.BF16, DType.F16, DType.F64, DType.F8_E4M3, DType.F8_E5M2];
        var headers = dtypes.Select(d => new TensorHeader("x." + DTypes.ToName(d), d, [n])).ToList();
        string path = Path.Combine(TestPaths.NewTempDir(), "floats.safetensors");
        using (var writer = new SafeTensorsWriter(path, headers, new Dictionary<string, string> { ["source"] = "test" }))
        {
            foreach (TensorHeader header in headers)
            {
                Assert.Equal(header.Name, writer.CurrentTensor);
                // Uneven call sizes, including empty ones.
                for (int start = 0, step = 1; start < n; start += step, step = step * 3 + 1)
                    writer.WriteFloat32(values.AsSpan(start, Math.Min(step, n - start)));
                writer.WriteFloat32([]);
            }

            writer.Complete();
        }

        RawSafeTensors raw = RawSafeTensors.Read(path);
        Assert.Equal("test", raw.Metadata["source"]);
        Assert.Equal(MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), raw.TensorBytes("x.F32").ToArray());
        ReadOnlySpan<byte> bf16 = raw.TensorBytes("x.BF16"), f16 = raw.TensorBytes("x.F16"), f64 = raw.TensorBytes("x.F64");
        ReadOnlySpan<byte> e4m3 = raw.TensorBytes("x.F8_E4M3"), e5m2 = raw.TensorBytes("x.F8_E5M2");
        for (int i = 0; i < n; i++)
        {
            Assert.Equal(NearestEvenBf16(values[i]), BinaryPrimitives.ReadUInt16LittleEndian(bf16[(2 * i)..]));
            Assert.Equal(BitConverter.HalfToUInt16Bits((Half)values[i]), BinaryPrimitives.ReadUInt16LittleEndian(f16[(2 * i)..]));
            Assert.Equal((double)values[i], BinaryPrimitives.ReadDoubleLittleEndian(f64[(8 * i)..]));
            Assert.Equal(FloatConversions.SingleToFp8E4M3(values[i]), e4m3[i]);
            Assert.Equal(FloatConversions.SingleToFp8E5M2(values[i]), e5m2[i]);
        }
    }

    /// <summary>bf16 by explicit comparison of the two neighbours (finite inputs only).</summary>
    private static ushort NearestEvenBf16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        ushort down = (ushort)(bits >> 16);
        ushort up = (ushort)(down + 1);
        double low = BitConverter.UInt32BitsToSingle((uint)down << 16), high = BitConverter.UInt32BitsToSingle((uint)up << 16);
        double distanceDown = Math.Abs(value - low), distanceUp = Math.Abs(high - value);
        return distanceDown < distanceUp ? down : distanceUp < distanceDown ? up : (down & 1) == 0 ? down : up;
    }

    [Fact]
    public void WriteBytes_MaySpanTensors_ButNotPastTheEnd()
    {
        var headers = new List<TensorHeader> { new("a", DType.U8, [3]), new("z", DType.U8, [0]), new("b", DType.I16, [2]) };
        string path = Path.Combine(TestPaths.NewTempDir(), "span.safetensors");
        using (var writer = new SafeTensorsWriter(path, headers, null))
        {
            Assert.Equal("a", writer.CurrentTensor);
            writer.WriteBytes([1, 2]);
            Assert.Equal("a", writer.CurrentTensor);
            writer.WriteBytes([3, 4, 5]);           // crosses a -> (empty z) -> b
            Assert.Equal("b", writer.CurrentTensor);
            var e = Assert.Throws<WeldException>(() => writer.WriteBytes([6, 7, 8]));
            Assert.Contains("after the last tensor", e.Message);
        }

        headers = [new("a", DType.U8, [3]), new("b", DType.BF16, [2])];
        using (var writer = new SafeTensorsWriter(path, headers, null))
        {
            writer.WriteBytes([1]);
            var e = Assert.Throws<WeldException>(() => writer.WriteFloat32([1f, 2f, 3f]));
            Assert.Contains("'a' is U8", e.Message);
            writer.WriteBytes([2, 3]);
            e = Assert.Throws<WeldException>(() => writer.WriteFloat32([1f, 2f, 3f]));
            Assert.Contains("'b', which has only 2 elements left", e.Message);
            writer.WriteFloat32([1f]);
            e = Assert.Throws<WeldException>(() => writer.Complete());
            Assert.Contains("tensor 'b' has 2 of 4 bytes written", e.Message);
            Assert.Contains("span.safetensors", e.Message);
        }
    }

    [Fact]
    public void Complete_NamesTheFirstIncompleteTensor()
    {
        var headers = new List<TensorHeader> { new("first", DType.F32, [2]), new("second", DType.F32, [2]), new("third", DType.F32, [1]) };
        string path = Path.Combine(TestPaths.NewTempDir(), "short.safetensors");
        using var writer = new SafeTensorsWriter(path, headers, null);
        writer.WriteFloat32([1f, 2f]);
        var e = Assert.Throws<WeldException>(() => writer.Complete());
        Assert.Contains("'second' has 0 of 8 bytes written and 1 more tensors follow it", e.Message);
    }

    [Fact]
    public void BadHeaders_AreRefused()
    {
        string path = Path.Combine(TestPaths.NewTempDir(), "bad.safetensors");
        Assert.Contains("listed twice", Assert.Throws<WeldException>(() =>
            new SafeTensorsWriter(path, [new("a", DType.F32, [1]), new("a", DType.F32, [1])], null)).Message);
        Assert.Contains("invalid shape [-1]", Assert.Throws<WeldException>(() =>
            new SafeTensorsWriter(path, [new("a", DType.F32, [-1])], null)).Message);
        Assert.Contains("cannot be used", Assert.Throws<WeldException>(() =>
            new SafeTensorsWriter(path, [new("__metadata__", DType.F32, [1])], null)).Message);
    }

    private static byte[] RandomBytes(Random random, TensorHeader header)
    {
        var bytes = new byte[header.ByteLength];
        random.NextBytes(bytes);
        if (header.DType == DType.BOOL)
            for (int i = 0; i < bytes.Length; i++) bytes[i] &= 1;
        return bytes;
    }
}
