using System.Runtime.InteropServices;
using Weld.Engine.SafeTensors;
using Xunit;

namespace Weld.Engine.Tests.SafeTensors;

/// <summary>The SIMD scan for NaN / ±Inf over stored bit patterns, against a scalar reference, at every lane position.</summary>
public class NonFiniteScanTests
{
    private static byte[] Bytes<T>(T[] values) where T : unmanaged => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    public static TheoryData<string> Kinds => new() { "bf16", "f16", "f32", "f64", "e5m2", "e4m3" };

    /// <summary>A tensor of <paramref name="n"/> finite values of the dtype with <paramref name="bad"/> put at <paramref name="at"/>.</summary>
    private static (DType, byte[]) Make(string kind, int n, int at, bool nan)
    {
        var random = new Random(n * 31 + at);
        switch (kind)
        {
            case "bf16":
            {
                var v = new ushort[n];
                for (int i = 0; i < n; i++) v[i] = (ushort)(random.Next(0, 0x7F80) | (random.Next(2) << 15)); // every finite pattern, ±
                if (at >= 0) v[at] = nan ? (ushort)0xFFC1 : (ushort)0x7F80;
                return (DType.BF16, Bytes(v));
            }
            case "f16":
            {
                var v = new ushort[n];
                for (int i = 0; i < n; i++) v[i] = (ushort)(random.Next(0, 0x7C00) | (random.Next(2) << 15));
                if (at >= 0) v[at] = nan ? (ushort)0x7E00 : (ushort)0xFC00;
                return (DType.F16, Bytes(v));
            }
            case "f32":
            {
                var v = new float[n];
                for (int i = 0; i < n; i++) v[i] = (random.NextDouble() < 0.01 ? float.MaxValue : (float)random.NextDouble()) * (random.Next(2) * 2 - 1);
                if (at >= 0) v[at] = nan ? float.NaN : float.NegativeInfinity;
                return (DType.F32, Bytes(v));
            }
            case "f64":
            {
                var v = new double[n];
                for (int i = 0; i < n; i++) v[i] = random.NextDouble() < 0.01 ? double.MaxValue : random.NextDouble();
                if (at >= 0) v[at] = nan ? double.NaN : double.PositiveInfinity;
                return (DType.F64, Bytes(v));
            }
            case "e5m2":
            {
                var v = new byte[n];
                for (int i = 0; i < n; i++) v[i] = (byte)(random.Next(0, 0x7C) | (random.Next(2) << 7));
                if (at >= 0) v[at] = nan ? (byte)0x7E : (byte)0xFC;
                return (DType.F8_E5M2, v);
            }
            default:
            {
                var v = new byte[n];
                for (int i = 0; i < n; i++) v[i] = (byte)(random.Next(0, 0x7F) | (random.Next(2) << 7)); // 0x7E = 448, the largest finite
                if (at >= 0) v[at] = 0xFF; // E4M3FN: NaN only
                return (DType.F8_E4M3, v);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Finds_the_first_non_finite_element_at_any_position_and_nothing_in_finite_data(string kind)
    {
        foreach (int n in new[] { 0, 1, 7, 64, 129, 1000, 4099 })
        {
            var (dtype, clean) = Make(kind, n, -1, nan: false);
            Assert.Equal(-1, NonFiniteScan.IndexOfNonFinite(dtype, clean));
            for (int at = 0; at < n; at += Math.Max(1, n / 37))
                foreach (bool nan in new[] { true, false })
                {
                    var (_, bytes) = Make(kind, n, at, nan);
                    Assert.Equal(at, NonFiniteScan.IndexOfNonFinite(dtype, bytes));
                    Assert.Equal(nan || dtype == DType.F8_E4M3, NonFiniteScan.IsNaN(dtype, bytes, at));
                }
        }
    }

    [Fact]
    public void Integer_dtypes_have_no_non_finite_values()
    {
        byte[] ones = Enumerable.Repeat((byte)0xFF, 64).ToArray();
        foreach (DType dtype in new[] { DType.I64, DType.I32, DType.I16, DType.I8, DType.U8, DType.BOOL })
            Assert.Equal(-1, NonFiniteScan.IndexOfNonFinite(dtype, ones));
    }
}
