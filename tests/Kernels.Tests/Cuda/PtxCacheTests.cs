using Weld.Kernels.Cuda;
using Weld.Tests;
using Xunit;

namespace Weld.Kernels.Tests.Cuda;

/// <summary>The on-disk PTX cache: one compile per (source, options, device), a fresh compile when any changes.</summary>
public sealed class PtxCacheTests
{
    // The cache creates the folder itself: name one inside a tracked temporary folder.
    private readonly string _folder = Path.Combine(TestPaths.NewTempDir("weld-ptx"), "cache");

    [Fact]
    public void A_second_request_reads_the_file_instead_of_compiling()
    {
        int compiles = 0;
        string first = PtxCache.GetOrCompile(_folder, "src", ["--a"], "dev", () => { compiles++; return "ptx-1"; });
        string second = PtxCache.GetOrCompile(_folder, "src", ["--a"], "dev", () => { compiles++; return "ptx-2"; });

        Assert.Equal("ptx-1", first);
        Assert.Equal("ptx-1", second);
        Assert.Equal(1, compiles);
        string file = Assert.Single(Directory.GetFiles(_folder));
        Assert.Equal(PtxCache.Key("src", ["--a"], "dev") + ".ptx", Path.GetFileName(file));
        Assert.Equal("ptx-1", File.ReadAllText(file));
    }

    [Theory]
    [InlineData("src2", "--a", "dev")]
    [InlineData("src", "--b", "dev")]
    [InlineData("src", "--a", "dev2")]
    public void Source_options_and_device_each_change_the_key(string source, string option, string device)
    {
        string key = PtxCache.Key("src", ["--a"], "dev");

        Assert.NotEqual(key, PtxCache.Key(source, [option], device));
        Assert.Matches("^[0-9a-f]{64}$", key);
    }

    [Fact]
    public void The_key_is_the_sha256_of_source_options_and_device()
    {
        byte[] text = System.Text.Encoding.UTF8.GetBytes("src\0--a\0--b\0dev");
        string expected = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(text));

        Assert.Equal(expected, PtxCache.Key("src", ["--a", "--b"], "dev"));
    }
}
