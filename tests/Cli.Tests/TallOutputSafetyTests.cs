using Weld.Engine;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary>
/// `weld compress --tall` writes one file and `--restore` a folder: both with the rules of every other output
/// (created with its parents, atomic, never over a foreign file or folder, never an input, --overwrite only for Weld's own).
/// </summary>
public sealed class TallOutputSafetyTests
{
    private readonly string _temp = TestPaths.NewTempDir("weld-tall");

    private static string Model(string name) => Recipes.ExampleModel(name);

    private CliResult Compress(string output, params string[] extra) =>
        WeldCli.Run(["compress", "--tall", "--base", Model("lm-base"), Model("lm-ft-c"), Model("lm-ft-python"), "-o", output, .. extra]);

    [Fact]
    public void Compress_CreatesMissingParents_AndLeavesNoTemporaryFile()
    {
        string file = Path.Combine(_temp, "new", "deeper", "tall.safetensors");

        CliAssert.Succeeded(Compress(file));

        Assert.Equal(["tall.safetensors"], Directory.GetFileSystemEntries(Path.GetDirectoryName(file)!).Select(Path.GetFileName));
    }

    [Fact]
    public void Compress_RefusesAForeignFile_WithAndWithoutOverwrite()
    {
        string file = Path.Combine(_temp, "notes.safetensors");
        File.WriteAllText(file, "not a tall file");

        CliAssert.InputError(Compress(file), file, "already exists");
        CliAssert.InputError(Compress(file, "--overwrite"), file, "not a file Weld wrote");

        Assert.Equal("not a tall file", File.ReadAllText(file));
    }

    [Fact]
    public void Compress_ReplacesItsOwnFile_OnlyWithOverwrite()
    {
        string file = Path.Combine(_temp, "tall.safetensors");
        CliAssert.Succeeded(Compress(file));
        byte[] first = File.ReadAllBytes(file);

        CliAssert.InputError(Compress(file), file, "already exists");
        CliAssert.Succeeded(Compress(file, "--overwrite"));

        Assert.Equal(first, File.ReadAllBytes(file)); // same inputs, same bytes
    }

    [Fact]
    public void Compress_RefusesAPathInsideAnInput()
    {
        string model = ModelFiles.Copy(Model("lm-ft-c"), Path.Combine(_temp, "lm-ft-c"));
        string inside = Path.Combine(model, "model.safetensors");
        byte[] before = File.ReadAllBytes(inside);

        CliResult result = WeldCli.Run("compress", "--tall", "--base", Model("lm-base"), model, "-o", inside, "--overwrite");

        CliAssert.InputError(result, inside, "input");
        Assert.Equal(before, File.ReadAllBytes(inside));
    }

    [Fact]
    public void Restore_WritesAMarkedFolder_AndRefusesAForeignOne()
    {
        string file = Path.Combine(_temp, "tall.safetensors");
        CliAssert.Succeeded(Compress(file));
        string restored = Path.Combine(_temp, "restored");
        string foreign = Directory.CreateDirectory(Path.Combine(_temp, "mine")).FullName;
        File.WriteAllText(Path.Combine(foreign, "model.safetensors"), "mine");

        CliAssert.Succeeded(WeldCli.Run("compress", "--restore", "lm-ft-c", "--base", Model("lm-base"), "--from", file, "-o", restored));
        CliResult refused = WeldCli.Run("compress", "--restore", "lm-ft-c", "--base", Model("lm-base"), "--from", file, "-o", foreign, "--overwrite");

        Assert.True(File.Exists(Path.Combine(restored, Weld.Engine.SafeTensors.OutputFolder.MarkerFileName)));
        CliAssert.InputError(refused, foreign, "not a folder Weld wrote");
        Assert.Equal("mine", File.ReadAllText(Path.Combine(foreign, "model.safetensors")));
        CliAssert.Succeeded(WeldCli.Run("compress", "--restore", "lm-ft-c", "--base", Model("lm-base"), "--from", file, "-o", restored, "--overwrite"));
    }
}
