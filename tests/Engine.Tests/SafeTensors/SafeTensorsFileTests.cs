using System.Buffers.Binary;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.SafeTensors;

public sealed class SafeTensorsFileTests
{
    /// <summary>Every safetensors file of the shared zoo, read by the engine and by the test's own raw reader.</summary>
    public static TheoryData<string> ZooFiles()
    {
        var data = new TheoryData<string>();
        foreach (string file in Directory.EnumerateFiles(TestPaths.SharedModels, "*.safetensors", SearchOption.AllDirectories).Order())
            data.Add(Path.GetRelativePath(TestPaths.SharedModels, file));
        return data;
    }

    [Theory]
    [MemberData(nameof(ZooFiles))]
    public void ZooFile_HeaderAndEveryValue_MatchIndependentParse(string relativePath)
    {
        string path = Path.Combine(TestPaths.SharedModels, relativePath);
        RawSafeTensors raw = RawSafeTensors.Read(path);
        using SafeTensorsFile file = SafeTensorsFile.Open(path);

        Assert.Equal(Path.GetFullPath(path), file.FilePath);
        Assert.Equal(raw.Entries.Keys.Order(), file.Tensors.Select(t => t.Name).Order());
        Assert.Equal(raw.Metadata, file.Metadata);
        Assert.True(file.Tensors.Zip(file.Tensors.Skip(1)).All(p => p.First.Offset < p.Second.Offset), "sorted by offset");

        foreach (TensorInfo tensor in file.Tensors)
        {
            RawSafeTensors.Entry entry = raw.Entries[tensor.Name];
            Assert.Equal(entry.DType, DTypes.ToName(tensor.DType));
            Assert.Equal(entry.Shape, tensor.Shape);
            Assert.Equal(entry.Begin, tensor.Offset);
            Assert.Equal(entry.End - entry.Begin, tensor.ByteLength);
            Assert.Equal(entry.Shape.Aggregate(1L, (a, b) => a * b), tensor.ElementCount);
            Assert.True(raw.TensorBytes(tensor.Name).SequenceEqual(file.GetBytes(tensor, 0, (int)tensor.ByteLength)));

            double[] expected = raw.Values(tensor.Name);
            var actual = new float[expected.Length];
            file.ReadFloat32(tensor, 0, actual);
            for (int i = 0; i < expected.Length; i++)
                Assert.Equal((float)expected[i], actual[i]);
        }
    }

    [Fact]
    public void LmBase_HasTheDocumentedTensors()
    {
        using SafeTensorsFile file = SafeTensorsFile.Open(Path.Combine(TestPaths.Model("lm-base"), "model.safetensors"));
        Assert.Equal(2 + 4 * 9 + 1, file.Tensors.Count);
        Assert.Equal(new Dictionary<string, string> { ["format"] = "pt" }, file.Metadata);
        TensorInfo down = file.GetTensor("model.layers.2.mlp.down_proj.weight");
        Assert.Equal(DType.BF16, down.DType);
        Assert.Equal([128L, 384L], down.Shape);
        Assert.Equal(128 * 384 * 2, down.ByteLength);
        Assert.True(file.TryGetTensor("lm_head.weight", out TensorInfo head));
        Assert.Equal([256L, 128L], head.Shape);
        Assert.False(file.TryGetTensor("nope", out _));
        var e = Assert.Throws<WeldException>(() => file.GetTensor("model.nope"));
        Assert.Contains("model.nope", e.Message);
        Assert.Contains("lm-base", e.Message);
        Assert.Equal(853_120, file.Tensors.Sum(t => t.ElementCount));
    }

    [Fact]
    public void ReadFloat32_ChunksFromManyThreads_MatchWholeRead()
    {
        using SafeTensorsFile file = SafeTensorsFile.Open(Path.Combine(TestPaths.Model("lm-ft-python"), "model.safetensors"));
        TensorInfo tensor = file.GetTensor("model.layers.1.mlp.up_proj.weight");
        var whole = new float[tensor.ElementCount];
        file.ReadFloat32(tensor, 0, whole);
        var pieces = new float[whole.Length];
        const int chunk = 1000; // not a multiple of any vector width
        Parallel.For(0, (whole.Length + chunk - 1) / chunk, new ParallelOptions { MaxDegreeOfParallelism = 8 }, c =>
        {
            int start = c * chunk;
            file.ReadFloat32(tensor, start, pieces.AsSpan(start, Math.Min(chunk, whole.Length - start)));
        });
        Assert.Equal(whole, pieces);
    }

    [Fact]
    public void Reads_OutsideTheTensor_Throw()
    {
        using SafeTensorsFile file = SafeTensorsFile.Open(Path.Combine(TestPaths.Model("lm-base"), "model.safetensors"));
        TensorInfo norm = file.GetTensor("model.norm.weight"); // 128 elements, 256 bytes
        Assert.Throws<ArgumentOutOfRangeException>(() => file.ReadFloat32(norm, 1, new float[128]));
        Assert.Throws<ArgumentOutOfRangeException>(() => file.ReadFloat32(norm, -1, new float[1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => file.GetBytes(norm, 200, 57));
        Assert.Equal(56, file.GetBytes(norm, 200, 56).Length);
        var foreign = norm with { Offset = file.DataLength };
        Assert.Throws<ArgumentException>(() => file.GetBytes(foreign, 0, 1));
        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => file.GetBytes(norm, 0, 1));
    }

    [Fact]
    public void TensorBeyond2GiB_IsAddressedWithLongOffsets()
    {
        // A sparse file: 3 GiB of U8 zeros after a small tensor; costs no disk blocks on ext4/tmpfs/xfs.
        string dir = TestPaths.NewTempDir();
        string path = Path.Combine(dir, "big.safetensors");
        const long big = 3L << 30;
        string header = $$$"""{"small":{"dtype":"I16","shape":[2],"data_offsets":[0,4]},"big":{"dtype":"U8","shape":[{{{big}}}],"data_offsets":[4,{{{4 + big}}}]}}""";
        RawSafeTensors.WriteFile(path, header, [0x01, 0x00, 0xFF, 0xFF]);
        using (var stream = new FileStream(path, FileMode.Open)) stream.SetLength(stream.Length + big);
        using (var stream = new FileStream(path, FileMode.Open))
        {
            stream.Seek(-1, SeekOrigin.End);
            stream.WriteByte(7); // the last element of "big"
        }

        try
        {
            using SafeTensorsFile file = SafeTensorsFile.Open(path);
            TensorInfo tensor = file.GetTensor("big");
            Assert.Equal(big, tensor.ByteLength);
            Assert.Equal(big, tensor.ElementCount);
            Assert.Equal(7, file.GetBytes(tensor, big - 1, 1)[0]);
            var values = new float[4];
            file.ReadFloat32(tensor, big - 4, values);
            Assert.Equal([0f, 0f, 0f, 7f], values);
            var small = new float[2];
            file.ReadFloat32(file.GetTensor("small"), 0, small);
            Assert.Equal([1f, -1f], small);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // ------------------------------------------------------------------ corrupt files

    private const string Good = """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""";

    /// <summary>(case, header JSON, data bytes, header-length override, expected message part, tensor named).</summary>
    public static TheoryData<string, string, int, long, string, string> CorruptCases() => new()
    {
        { "bad-json", """{"a": {"dtype": "F32",""", 0, -1, "is not valid JSON", "" },
        { "not-object", """[1, 2, 3]""", 0, -1, "must be a JSON object, but it is an array", "" },
        { "entry-not-object", """{"a": 5}""", 0, -1, "the header entry must be an object", "'a'" },
        { "no-dtype", """{"a":{"shape":[2],"data_offsets":[0,8]}}""", 8, -1, "has no 'dtype'", "'a'" },
        { "no-shape", """{"a":{"dtype":"F32","data_offsets":[0,8]}}""", 8, -1, "has no 'shape'", "'a'" },
        { "no-offsets", """{"a":{"dtype":"F32","shape":[2]}}""", 8, -1, "has no 'data_offsets'", "'a'" },
        { "unknown-dtype", """{"a":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}}""", 8, -1, "unknown dtype 'F12'", "'a'" },
        { "lowercase-dtype", """{"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}""", 8, -1, "unknown dtype 'f32'", "'a'" },
        { "negative-dim", """{"a":{"dtype":"F32","shape":[-2, 3],"data_offsets":[0,8]}}""", 8, -1, "negative dimension -2", "'a'" },
        { "fractional-dim", """{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}""", 8, -1, "is not an integer", "'a'" },
        { "size-mismatch", """{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 8, -1, "needs 12 bytes, but data_offsets [0, 8] span 8 bytes", "'a'" },
        { "end-beyond-file", """{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8, -1, "end beyond the data section (8 bytes)", "'a'" },
        { "begin-after-end", """{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}""", 8, -1, "begin is greater than its end", "'a'" },
        { "bad-offsets", """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}""", 8, -1, "expected [begin, end]", "'a'" },
        { "negative-offset", """{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}""", 8, -1, "must be non-negative integers", "'a'" },
        { "overlap", """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, -1, "'a' [0, 8) and 'b' [4, 12) overlap", "'b'" },
        { "gap", """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}""", 20, -1, "gap of 4 unused bytes between the end of tensor 'a'", "'b'" },
        { "not-from-zero", """{"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, -1, "gap of 4 unused bytes between the start of the data section", "'b'" },
        { "trailing-bytes", Good, 12, -1, "4 unexpected bytes follow the last tensor", "'a'" },
        { "duplicate-name", """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, -1, "more than once (duplicate tensor name)", "'a'" },
        { "metadata-not-strings", """{"__metadata__":{"format":"pt","step":5},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8, -1, "must map strings to strings, but 'step' is a number", "" },
        { "metadata-not-object", """{"__metadata__":"pt","a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8, -1, "'__metadata__' must be an object", "" },
        { "header-past-end", Good, 8, 1000, "header length 1000 runs past the end of the file", "" },
        { "header-too-large", Good, 8, 200_000_000, "exceeds the 100 MB limit", "" },
    };

    [Theory]
    [MemberData(nameof(CorruptCases))]
    public void CorruptFile_GivesItsOwnMessage(string name, string header, int dataBytes, long headerLength, string expected, string tensor)
    {
        string path = Path.Combine(TestPaths.NewTempDir(), name + ".safetensors");
        RawSafeTensors.WriteFile(path, header, new byte[dataBytes], headerLength < 0 ? null : (ulong)headerLength);
        var e = Assert.Throws<InvalidModelFileException>(() => SafeTensorsFile.Open(path));
        Assert.Contains(expected, e.Message);
        Assert.Contains(name + ".safetensors", e.Message);
        Assert.Equal(Path.GetFullPath(path), e.FilePath);
        if (tensor.Length > 0) Assert.Contains(tensor, e.Message);
    }

    [Fact]
    public void CorruptMessages_AreAllDistinct()
    {
        // Each fault is told apart by its own words, not by a shared generic message.
        var parts = CorruptCases().Select(row => (string)row[4]).ToList();
        Assert.Equal(parts.Count, parts.Distinct().Count());
    }

    [Fact]
    public void ShortFile_IsRefused()
    {
        string path = Path.Combine(TestPaths.NewTempDir(), "short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3, 4, 5]);
        var e = Assert.Throws<InvalidModelFileException>(() => SafeTensorsFile.Open(path));
        Assert.Contains("5 bytes long, shorter than the 8-byte header length", e.Message);
        Assert.Contains("short.safetensors", e.Message);

        File.WriteAllBytes(path, []);
        Assert.Contains("0 bytes long", Assert.Throws<InvalidModelFileException>(() => SafeTensorsFile.Open(path)).Message);
    }

    [Fact]
    public void MissingFile_IsAWeldException()
    {
        string path = Path.Combine(TestPaths.NewTempDir(), "absent.safetensors");
        var e = Assert.Throws<WeldException>(() => SafeTensorsFile.Open(path));
        Assert.Contains("absent.safetensors", e.Message);
    }

    [Fact]
    public void EmptyAndScalarTensors_AreValid()
    {
        string path = Path.Combine(TestPaths.NewTempDir(), "edge.safetensors");
        byte[] data = new byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(data, 2.5f);
        RawSafeTensors.WriteFile(path,
            """{"empty":{"dtype":"BF16","shape":[0,7],"data_offsets":[0,0]},"scalar":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}""",
            data);
        using SafeTensorsFile file = SafeTensorsFile.Open(path);
        Assert.Equal(0, file.GetTensor("empty").ElementCount);
        Assert.Equal(1, file.GetTensor("scalar").ElementCount);
        Assert.Empty(file.Metadata);
        var value = new float[1];
        file.ReadFloat32(file.GetTensor("scalar"), 0, value);
        Assert.Equal(2.5f, value[0]);
        file.ReadFloat32(file.GetTensor("empty"), 0, Span<float>.Empty);
    }

    [Fact]
    public void DTypes_NamesRoundTrip_AndTorchNamesParse()
    {
        foreach (DType dtype in Enum.GetValues<DType>())
        {
            Assert.True(DTypes.TryParse(DTypes.ToName(dtype), out DType parsed));
            Assert.Equal(dtype, parsed);
            Assert.Equal(dtype, DTypes.FromTorchDType(DTypes.ToTorchDType(dtype)));
            Assert.Equal(DTypes.ToName(dtype) is "F64" or "F32" or "F16" or "BF16" or "F8_E4M3" or "F8_E5M2", DTypes.IsFloatingPoint(dtype));
        }

        Assert.Equal(8, DTypes.SizeOf(DType.F64));
        Assert.Equal(4, DTypes.SizeOf(DType.F32));
        Assert.Equal(2, DTypes.SizeOf(DType.BF16));
        Assert.Equal(1, DTypes.SizeOf(DType.F8_E5M2));
        Assert.Equal(1, DTypes.SizeOf(DType.BOOL));
        Assert.False(DTypes.TryParse("bf16", out _));
        Assert.Equal(DType.BF16, DTypes.FromTorchDType("bfloat16"));
        Assert.Equal(DType.BF16, DTypes.FromTorchDType("bf16"));
        Assert.Equal(DType.F16, DTypes.FromTorchDType("fp16"));
        Assert.Equal(DType.F16, DTypes.FromTorchDType("half"));
        Assert.Equal(DType.F16, DTypes.FromTorchDType("float16"));
        Assert.Equal(DType.F32, DTypes.FromTorchDType("float"));
        Assert.Equal(DType.F32, DTypes.FromTorchDType("fp32"));
        Assert.Equal(DType.F32, DTypes.FromTorchDType("torch.float32"));
        Assert.Equal("bfloat16", DTypes.ToTorchDType(DType.BF16));
        Assert.Contains("'bfloat17'", Assert.Throws<WeldException>(() => DTypes.FromTorchDType("bfloat17")).Message);
    }
}
