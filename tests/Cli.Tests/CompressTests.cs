using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary><c>weld compress --tall</c> then <c>--restore</c> on zoo fine-tunes.</summary>
public sealed class CompressTests
{
    [Fact]
    public void Compress_then_restore_writes_a_model_with_every_base_tensor()
    {
        string dir = TestPaths.NewTempDir();
        string file = Path.Combine(dir, "tall.safetensors");
        CliResult compressed = WeldCli.Run("compress", "--tall", "--base", TestPaths.Model("lm-base"),
            TestPaths.Model("lm-ft-c"), TestPaths.Model("lm-ft-python"), "-o", file, "--lambda", "0.5");
        CliAssert.Succeeded(compressed);
        Assert.Contains("compressed 2 model(s), 39 tensors", compressed.Stdout, StringComparison.Ordinal);

        string restored = Path.Combine(dir, "c");
        CliResult result = WeldCli.Run("compress", "--restore", "lm-ft-c", "--base", TestPaths.Model("lm-base"), "--from", file, "-o", restored);
        CliAssert.Succeeded(result);
        CliResult inspect = WeldCli.Run("inspect", restored);
        CliAssert.Succeeded(inspect);
        Assert.Contains("parameters: 853,120", inspect.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Restore_of_an_unknown_task_fails_with_exit_1()
    {
        string dir = TestPaths.NewTempDir();
        string file = Path.Combine(dir, "tall.safetensors");
        CliAssert.Succeeded(WeldCli.Run("compress", "--tall", "--base", TestPaths.Model("lm-base"), TestPaths.Model("lm-ft-c"), "-o", file));
        CliResult result = WeldCli.Run("compress", "--restore", "nope", "--base", TestPaths.Model("lm-base"), "--from", file, "-o", Path.Combine(dir, "x"));
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("no task 'nope'", result.Stderr, StringComparison.Ordinal);
    }
}
