using System.Diagnostics;
using System.Text.Json.Nodes;
using Weld.Engine;
using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;
using EngineMergeOptions = Weld.Engine.Execution.MergeOptions;

namespace Weld.Cli.Tests;

/// <summary>
/// The output side of the error contract: --overwrite replaces only Weld's own outputs and never an input, one writer
/// per output, shard checksums for --resume and finalize, model+lora recipes across runs, a full disk, bad output
/// paths, progress before the first tensor. Every test removes its temporary folder.
/// </summary>
public sealed class OutputSafetyTests : IDisposable
{
    private const string ShardSize = "200K";
    private const long ShardBytes = 200_000;
    private readonly string _temp = TestPaths.NewTempDir("weld-out");
    private readonly List<string> _mounts = [];

    private string Output => Path.Combine(_temp, "out");

    public void Dispose()
    {
        ShardFileSink.StreamFactory.Value = null;
        foreach (string mount in _mounts) RunTool("umount", mount);
        Directory.Delete(_temp, recursive: true);
    }

    private string LinearRecipe(string first = "lm-ft-python", string second = "lm-ft-c", string fileName = "recipe.yml") =>
        Recipes.Write(_temp, $"""
            models:
              - model: {first}
                parameters: {"{weight: 0.5}"}
              - model: {second}
                parameters: {"{weight: 0.5}"}
            merge_method: linear
            dtype: float32
            out_dtype: bfloat16

            """, fileName);

    private static string Model(string name) => Recipes.ExampleModel(name);

    // ---- 1. --overwrite replaces only a folder Weld wrote, or an empty one; never an input ----

    [Fact]
    public void Overwrite_RefusesAForeignFolder_AndLeavesItAsItWas()
    {
        string recipe = LinearRecipe(Model("lm-ft-python"), Model("lm-ft-c"));
        Directory.CreateDirectory(Output);
        File.WriteAllText(Path.Combine(Output, "thesis.tex"), "years of work");

        CliResult result = WeldCli.Run("merge", recipe, "-o", Output, "--overwrite");

        CliAssert.InputError(result, Output, "not a folder Weld wrote");
        Assert.Single(result.Stderr.TrimEnd().Split('\n'));
        Assert.Equal(["thesis.tex"], Directory.EnumerateFileSystemEntries(Output).Select(Path.GetFileName));
        Assert.Equal("years of work", File.ReadAllText(Path.Combine(Output, "thesis.tex")));
        AssertNoHiddenSiblings(Output);

        // A file in the output's place is foreign too.
        string file = Path.Combine(_temp, "notes.txt");
        File.WriteAllText(file, "notes");
        CliAssert.InputError(WeldCli.Run("merge", recipe, "-o", file, "--overwrite"), file, "is a file");
        Assert.Equal("notes", File.ReadAllText(file));
    }

    [Fact]
    public void Overwrite_ReplacesAnEarlierWeldOutput_AndAnEmptyFolder()
    {
        string recipe = LinearRecipe(Model("lm-ft-python"), Model("lm-ft-c"));
        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", Output, "-q"));
        Assert.True(OutputFolder.IsWeldOutput(Output));
        File.WriteAllText(Path.Combine(Output, "stale.txt"), "from the earlier run");

        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", Output, "--overwrite", "-q"));
        Assert.False(File.Exists(Path.Combine(Output, "stale.txt")));
        Assert.True(File.Exists(Path.Combine(Output, "model.safetensors")));

        string empty = Path.Combine(_temp, "empty");
        Directory.CreateDirectory(empty);
        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", empty, "--overwrite", "-q"));
        Assert.True(OutputFolder.IsWeldOutput(empty));
        AssertNoHiddenSiblings(Output);
        AssertNoHiddenSiblings(empty);
    }

    [Fact]
    public void Overwrite_RefusesAnOutputThatIsHoldsOrLiesInsideAnInput_EvenAWeldOutput()
    {
        // An earlier merge, now an input of the next one: it carries the marker, yet it may not be replaced.
        string earlier = Path.Combine(_temp, "earlier");
        CliAssert.Succeeded(WeldCli.Run("merge", LinearRecipe(Model("lm-ft-python"), Model("lm-ft-c"), "first.yml"), "-o", earlier, "-q"));
        string models = Path.Combine(_temp, "models");
        string prose = ModelFiles.Copy(Model("lm-ft-prose"), Path.Combine(models, "prose"));
        string link = Path.Combine(_temp, "link-to-earlier");
        Directory.CreateSymbolicLink(link, earlier);
        string recipe = LinearRecipe(earlier, prose);
        byte[] before = File.ReadAllBytes(Path.Combine(earlier, "model.safetensors"));

        CliAssert.InputError(WeldCli.Run("merge", recipe, "-o", earlier, "--overwrite"), earlier, "is an input");
        CliAssert.InputError(WeldCli.Run("merge", recipe, "-o", link, "--overwrite"), link, "is an input");   // through a symlink
        CliAssert.InputError(WeldCli.Run("merge", recipe, "-o", models, "--overwrite"), models, "holds an input");
        CliAssert.InputError(WeldCli.Run("merge", recipe, "-o", _temp, "--overwrite"), "holds an input");     // the recipe's own folder
        CliAssert.InputError(WeldCli.Run("merge", recipe, "-o", Path.Combine(prose, "sub")), "lies inside an input");

        Assert.Equal(before, File.ReadAllBytes(Path.Combine(earlier, "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(prose, "model.safetensors")));
        Assert.True(File.Exists(recipe));
        Assert.False(Directory.Exists(Path.Combine(prose, "sub")));
    }

    [Fact]
    public void Overwrite_SameRulesForTheOtherWriters()
    {
        string baseModel = ModelFiles.Copy(TestPaths.Model("lm-base"), Path.Combine(_temp, "base"));
        string adapter = TestPaths.Model("lm-lora-python");
        byte[] before = File.ReadAllBytes(Path.Combine(baseModel, "model.safetensors"));

        CliAssert.InputError(WeldCli.Run("apply-lora", baseModel, adapter, "-o", baseModel, "--overwrite"), "is an input");
        CliAssert.InputError(WeldCli.Run("extract-lora", "--model", Model("lm-ft-c"), "--base", baseModel, "--rank", "4", "-o", baseModel, "--overwrite"), "is an input");
        Directory.CreateDirectory(Output);
        File.WriteAllText(Path.Combine(Output, "mine.txt"), "mine");
        CliAssert.InputError(WeldCli.Run("apply-lora", baseModel, adapter, "-o", Output, "--overwrite"), "not a folder Weld wrote");

        // weld align: the reference is an input too, not only the model it permutes.
        string reference = ModelFiles.Copy(TestPaths.Model("mlp-digits-a"), Path.Combine(_temp, "reference"));
        byte[] referenceBytes = File.ReadAllBytes(Path.Combine(reference, "model.safetensors"));
        CliAssert.InputError(WeldCli.Run("align", "--reference", reference, "--model", TestPaths.Model("mlp-digits-a-permuted"),
            "-o", reference, "--overwrite"), reference, "is an input");

        Assert.Equal(before, File.ReadAllBytes(Path.Combine(baseModel, "model.safetensors")));
        Assert.Equal(referenceBytes, File.ReadAllBytes(Path.Combine(reference, "model.safetensors")));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(Output, "mine.txt")));
        AssertNoHiddenSiblings(Output);
    }

    // ---- 2. One writer per output ----

    [Fact]
    public void SecondWriter_FailsAtOnce_NamingTheHoldersPid_ThenRunsOnceReleased()
    {
        string recipe = LinearRecipe(Model("lm-ft-python"), Model("lm-ft-c"));
        string lockFile = OutputLock.PathFor(Output);
        CliResult refused;
        using (OutputLock.Acquire(Output)) // another merge into the same output, mid-run
        {
            Assert.Contains($"{Environment.ProcessId} ", File.Exists(lockFile) ? ReadShared(lockFile) : "", StringComparison.Ordinal);
            refused = WeldCli.Run("merge", recipe, "-o", Output);
            // --overwrite or --resume do not get past it either, nor finalize.
            CliAssert.InputError(WeldCli.Run("merge", recipe, "-o", Output, "--overwrite", "--resume"), "another weld process");
            CliAssert.InputError(WeldCli.Run("merge", recipe, "-o", Output, "--part", "1/2"), "another weld process");
            // At once: before the models are opened (planning a large model, or folding an adapter, takes minutes).
            string unplannable = LinearRecipe(Model("lm-ft-python"), Path.Combine(_temp, "no-such-model"), "unplannable.yml");
            CliAssert.InputError(WeldCli.Run("merge", unplannable, "-o", Output), "another weld process");
        }

        CliAssert.InputError(refused, Output, "another weld process", $"PID {Environment.ProcessId}", lockFile);
        Assert.Single(refused.Stderr.TrimEnd().Split('\n'));
        Assert.False(Directory.Exists(Output));

        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", Output, "-q"));
        Assert.False(File.Exists(lockFile)); // released on exit
    }

    [Fact]
    public void Lock_HeldByAnotherProcess_IsRefused_AndTheLockOfADeadProcessIsTakenOver()
    {
        string recipe = LinearRecipe(Model("lm-ft-python"), Model("lm-ft-c"));
        string lockFile = OutputLock.PathFor(Output);

        // A real second process holds flock(2) on the lock file (util-linux flock), as a running weld would.
        File.WriteAllText(lockFile, "424242 otherhost 0123\n");
        var start = new ProcessStartInfo("flock", ["-n", lockFile, "cat"])
            { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        using (var holder = Process.Start(start)!)
        {
            try
            {
                // The holder is running once the lock is taken: wait for that, not for a time.
                while (!holder.HasExited && !LockIsHeld(lockFile)) Thread.Yield();
                Assert.False(holder.HasExited, "flock could not take the lock");
                CliAssert.InputError(WeldCli.Run("merge", recipe, "-o", Output), "another weld process", "PID 424242 on otherhost");
            }
            finally
            {
                holder.StandardInput.Close(); // cat ends, flock with it: the lock goes, its file stays
                holder.WaitForExit();
            }
        }

        // The holder is gone without cleaning up (as a killed weld): its file stays, its lock went with it.
        Assert.True(File.Exists(lockFile));
        CliResult taken = WeldCli.Run("merge", recipe, "-o", Output);
        CliAssert.Succeeded(taken);
        Assert.Contains("taking over the lock", taken.Stderr, StringComparison.Ordinal);
        Assert.Contains("PID 424242", taken.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(lockFile));
    }

    [Fact]
    public void Parts_ShareTheOutputLock_ButNotWithAWholeMergeOrTheSamePart()
    {
        string recipe = LinearRecipe(Model("lm-ft-python"), Model("lm-ft-c"));
        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", Output, "--out-shard-size", ShardSize, "--part", "1/2", "-q"));
        using (OutputLock.Acquire(Output, "1-of-2")) // part 1 runs again (a retried job) while part 2 runs
        {
            CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", Output, "--out-shard-size", ShardSize, "--part", "2/2", "-q"));
            CliAssert.InputError(WeldCli.Run("merge", recipe, "-o", Output, "--out-shard-size", ShardSize, "--part", "1/2"), "another weld process");
            CliAssert.InputError(WeldCli.Run("merge", recipe, "-o", Output, "--out-shard-size", ShardSize), "another weld process");
            CliAssert.InputError(WeldCli.Run("finalize", Output), "another weld process");
        }
        CliAssert.Succeeded(WeldCli.Run("finalize", Output));
        Assert.Empty(Directory.GetFiles(_temp, ".out.weld-lock*"));
    }

    // ---- 3. Shard checksums: --resume recomputes a damaged shard, finalize refuses it ----

    [Fact]
    public void Resume_RecomputesAKeptShardWhoseBytesChanged_AndGivesTheCleanRunsBytes()
    {
        string recipe = LinearRecipe(Model("lm-ft-python"), Model("lm-ft-c"));
        string reference = Path.Combine(_temp, "reference");
        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", reference, "--out-shard-size", ShardSize, "-q"));

        Interrupt(recipe, Output);
        string partial = OutputFolder.PartialPathFor(Output);
        var record = MergeProgressFile.Read(Path.Combine(partial, "weld-progress-1-of-1.json"));
        Assert.True(record.Completed.Count >= 2, "the interrupted run finished too few shards");
        Assert.All(record.Completed, s => Assert.Matches("^crc32c:[0-9a-f]{8}$", record.Checksums[s]));
        string damaged = record.Completed[1];
        FlipByte(Path.Combine(partial, damaged)); // a tensor byte: header and size still as planned

        CliResult resumed = WeldCli.Run("merge", recipe, "-o", Output, "--out-shard-size", ShardSize, "--resume");

        CliAssert.Succeeded(resumed);
        Assert.Contains($"{damaged} does not match its recorded checksum", resumed.Stderr, StringComparison.Ordinal);
        Assert.Contains($"reusing {record.Completed.Count - 1} finished shard(s)", resumed.Stderr, StringComparison.Ordinal);
        AssertSameFiles(reference, Output);
    }

    [Fact]
    public void Finalize_RefusesAShardWhoseBytesChanged_NamingIt_ThenTheResumedPartFixesIt()
    {
        string recipe = LinearRecipe(Model("lm-ft-python"), Model("lm-ft-c"));
        string reference = Path.Combine(_temp, "reference");
        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", reference, "--out-shard-size", ShardSize, "-q"));
        foreach (string part in new[] { "1/2", "2/2" })
            CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", Output, "--out-shard-size", ShardSize, "--part", part, "-q"));
        string partial = OutputFolder.PartialPathFor(Output);
        string damaged = MergeProgressFile.Read(Path.Combine(partial, "weld-progress-2-of-2.json")).Completed[0];
        FlipByte(Path.Combine(partial, damaged));

        CliResult refused = WeldCli.Run("finalize", Output);

        CliAssert.InputError(refused, damaged, "checksum", "part 2/2");
        Assert.False(Directory.Exists(Output));
        Assert.True(File.Exists(Path.Combine(partial, damaged))); // the parts stay for a re-run

        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", Output, "--out-shard-size", ShardSize, "--part", "2/2", "--resume", "-q"));
        CliAssert.Succeeded(WeldCli.Run("finalize", Output));
        AssertSameFiles(reference, Output);
    }

    // ---- 4. model+lora references: the fingerprint is the adapter's content, not the temporary folder ----

    [Fact]
    public void ModelPlusLora_PartsFinalizeAndResume_Work_AndAChangedAdapterIsNoticed()
    {
        string adapter = ModelFiles.Copy(TestPaths.Model("lm-lora-python"), Path.Combine(_temp, "adapter"));
        string recipe = LinearRecipe(TestPaths.Model("lm-base") + "+" + adapter, Model("lm-ft-c"));
        string reference = Path.Combine(_temp, "reference");
        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", reference, "--out-shard-size", ShardSize, "-q"));

        // Parts, then finalize (each run folds the adapter into its own temporary folder).
        foreach (string part in new[] { "1/2", "2/2" })
            CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", Output, "--out-shard-size", ShardSize, "--part", part, "-q"));
        CliAssert.Succeeded(WeldCli.Run("finalize", Output));
        AssertSameFiles(reference, Output);

        // An interrupted run resumes with its finished shards.
        string resumedOutput = Path.Combine(_temp, "resumed");
        Interrupt(recipe, resumedOutput);
        CliResult resumed = WeldCli.Run("merge", recipe, "-o", resumedOutput, "--out-shard-size", ShardSize, "--resume");
        CliAssert.Succeeded(resumed);
        Assert.DoesNotContain("the plan changed", resumed.Stderr, StringComparison.Ordinal);
        Assert.Matches(@"reusing [1-9]\d* finished shard", resumed.Stderr);
        AssertSameFiles(reference, resumedOutput);

        // The adapter's bytes change between the parts and finalize: refused.
        string parted = Path.Combine(_temp, "parted");
        foreach (string part in new[] { "1/2", "2/2" })
            CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", parted, "--out-shard-size", ShardSize, "--part", part, "-q"));
        string weights = Path.Combine(adapter, "adapter_model.safetensors");
        DateTime stamp = File.GetLastWriteTimeUtc(weights);
        FlipByte(weights, fromEnd: 4); // the low byte of the last float32
        File.SetLastWriteTimeUtc(weights, stamp); // same size, same time: only the content tells
        CliAssert.InputError(WeldCli.Run("finalize", parted), "changed since the parts ran");
    }

    // ---- 5. A full disk ----

    [Fact]
    public void DiskFull_MidWrite_ExitsOneWithThePathAndTheBytes_KeepingFinishedShardsForResume()
    {
        string recipe = LinearRecipe(Model("lm-ft-python"), Model("lm-ft-c"));
        string reference = Path.Combine(_temp, "reference");
        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", reference, "--out-shard-size", ShardSize, "-q"));

        // Room for two and a half shards on the simulated volume.
        var volume = new SimulatedVolume(ShardBytes * 5 / 2);
        ShardFileSink.StreamFactory.Value = volume.Open;
        CliResult full = WeldCli.Run("merge", recipe, "-o", Output, "--out-shard-size", ShardSize, "-q");
        ShardFileSink.StreamFactory.Value = null;

        string partial = OutputFolder.PartialPathFor(Output);
        CliAssert.InputError(full, Output, "the disk is full", "bytes of shards were still to write", "kept in " + partial, "--resume");
        Assert.Contains("model-00003-of-", full.Stderr, StringComparison.Ordinal); // the file being written
        Assert.False(Directory.Exists(Output));
        var record = MergeProgressFile.Read(Path.Combine(partial, "weld-progress-1-of-1.json"));
        Assert.Equal(2, record.Completed.Count);
        // Only finished shards stay: the one cut off is removed.
        Assert.Equal(record.Completed.Order(StringComparer.Ordinal),
            Directory.GetFiles(partial, "*.safetensors").Select(Path.GetFileName).Order(StringComparer.Ordinal)!);

        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", Output, "--out-shard-size", ShardSize, "--resume", "-q"));
        AssertSameFiles(reference, Output);
    }

    [Fact]
    public void DiskFull_InTheFirstShard_RemovesThePartialOutput()
    {
        string recipe = LinearRecipe(Model("lm-ft-python"), Model("lm-ft-c"));
        ShardFileSink.StreamFactory.Value = new SimulatedVolume(ShardBytes / 2).Open;
        CliResult full = WeldCli.Run("merge", recipe, "-o", Output, "--out-shard-size", ShardSize, "-q");
        ShardFileSink.StreamFactory.Value = null;

        CliAssert.InputError(full, Output, "the disk is full", "bytes", "the partial output was removed");
        CliAssert.NoOutputLeft(Output);
    }

    [Fact]
    public void DiskFull_OnASmallTmpfs_IsRefusedBeforeWriting_WithTheBytesNeeded()
    {
        string recipe = LinearRecipe(Model("lm-ft-python"), Model("lm-ft-c"));
        string small = Path.Combine(_temp, "small");
        Directory.CreateDirectory(small);
        string output = Path.Combine(small, "out");
        if (RunTool("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", small) == 0)
        {
            _mounts.Add(small);
            CliResult full = WeldCli.Run("merge", recipe, "-o", output);
            CliAssert.InputError(full, output, "not enough disk space", "bytes of shards to write", "more needed");
            Assert.Empty(Directory.EnumerateFileSystemEntries(small));
        }
        else
        {
            // No mount here (an unprivileged CI): the same volume, simulated.
            ShardFileSink.StreamFactory.Value = new SimulatedVolume(256 * 1024).Open;
            CliResult full = WeldCli.Run("merge", recipe, "-o", output, "-q");
            ShardFileSink.StreamFactory.Value = null;
            CliAssert.InputError(full, output, "the disk is full", "bytes");
            Assert.Empty(Directory.EnumerateFileSystemEntries(small));
        }
    }

    [Fact]
    public void DiskFull_OnATmpfsThatFillsUpMidWrite_TheKernelsErrorIsReportedWithThePathAndTheBytes()
    {
        string recipe = LinearRecipe(Model("lm-ft-python"), Model("lm-ft-c"));
        string reference = Path.Combine(_temp, "reference");
        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", reference, "--out-shard-size", ShardSize, "-q"));
        long data = Directory.GetFiles(reference, "*.safetensors").Sum(DataBytes);
        string small = Path.Combine(_temp, "small");
        Directory.CreateDirectory(small);
        string output = Path.Combine(small, "out");
        CliResult full;
        if (RunTool("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", small) == 0)
        {
            _mounts.Add(small);
            // Leave room for the shards' tensor bytes (the check before writing passes) but not for their headers,
            // the lock and progress files and the page each file rounds up to: the kernel's ENOSPC comes mid-write.
            long free = new DriveInfo(small).AvailableFreeSpace;
            using (var filler = new FileStream(Path.Combine(small, "filler"), FileMode.CreateNew))
                filler.Write(new byte[free - data - 3 * 4096]);
            full = WeldCli.Run("merge", recipe, "-o", output, "--out-shard-size", ShardSize, "-q");
            File.Delete(Path.Combine(small, "filler"));
        }
        else
        {
            ShardFileSink.StreamFactory.Value = new SimulatedVolume(data - 1).Open;
            full = WeldCli.Run("merge", recipe, "-o", output, "--out-shard-size", ShardSize, "-q");
            ShardFileSink.StreamFactory.Value = null;
        }

        CliAssert.InputError(full, output, "the disk is full", "bytes", Path.Combine(small, ".out.weld-partial"), "--resume");
        Assert.Single(full.Stderr.TrimEnd().Split('\n'));
        Assert.False(Directory.Exists(output));
        // The space is back: the kept shards are reused and the result is the clean run's.
        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", output, "--out-shard-size", ShardSize, "--resume", "-q"));
        AssertSameFiles(reference, output);
    }

    private static long DataBytes(string shard)
    {
        using var stream = File.OpenRead(shard);
        Span<byte> prefix = stackalloc byte[8];
        stream.ReadExactly(prefix);
        return stream.Length - 8 - (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(prefix);
    }

    // ---- 6. Bad output paths ----

    [Theory]
    [InlineData("merge", "RECIPE", "-o", "")]
    [InlineData("merge", "RECIPE", "")]
    [InlineData("merge", "RECIPE", "-o", "   ")]
    [InlineData("finalize", "")]
    [InlineData("apply-lora", "BASE", "ADAPTER", "-o", "")]
    [InlineData("report", "BASE", "--text", "TEXT", "-o", "")]
    [InlineData("compress", "BASE", "--tall", "--base", "BASE", "-o", "")]
    public void EmptyOutputPath_IsACommandLineError_NotACrash(params string[] args)
    {
        string recipe = LinearRecipe(Model("lm-ft-python"), Model("lm-ft-c"));
        string[] resolved = args.Select(a => a switch
        {
            "RECIPE" => recipe,
            "BASE" => TestPaths.Model("lm-base"),
            "ADAPTER" => TestPaths.Model("lm-lora-python"),
            "TEXT" => recipe,
            _ => a,
        }).ToArray();

        CliResult result = WeldCli.Run(resolved);

        Assert.True(result.ExitCode == 2, $"expected exit 2, got {result}");
        Assert.StartsWith("weld: error: ", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("empty output path", result.Stderr, StringComparison.Ordinal);
        Assert.Single(result.Stderr.TrimEnd().Split('\n'));
    }

    [Fact]
    public void OtherBadOutputPaths_AreInputErrors_WithOneLine()
    {
        string recipe = LinearRecipe(Model("lm-ft-python"), Model("lm-ft-c"));
        string file = Path.Combine(_temp, "a-file");
        File.WriteAllText(file, "x");

        CliResult root = WeldCli.Run("merge", recipe, "-o", "/");
        CliAssert.InputError(root, "filesystem root");
        CliResult underFile = WeldCli.Run("merge", recipe, "-o", Path.Combine(file, "out"));
        CliAssert.InputError(underFile, file);
        CliResult control = WeldCli.Run("merge", recipe, "-o", "out\u0001x");
        Assert.True(control.ExitCode == 2, control.ToString());
        foreach (CliResult r in new[] { root, underFile, control })
            Assert.Single(r.Stderr.TrimEnd().Split('\n'));

        // Embedders get a WeldException, not an ArgumentException.
        MergeRecipe parsed = RecipeParser.Load(recipe);
        Assert.Contains("empty", Assert.Throws<WeldException>(() => MergeRunner.Run(parsed, new EngineMergeOptions { OutputPath = "" })).Message);
    }

    // ---- 7. Progress from the first second, on bytes ----

    [Fact]
    public void Progress_StartsBeforeAnyFileIsOpened_AndCountsBytesUpToTheTotal()
    {
        string recipe = LinearRecipe(Model("lm-ft-python"), Model("lm-ft-c"));
        MergeRecipe parsed = RecipeParser.Load(recipe);
        var events = new List<MergeProgress>();
        string partial = OutputFolder.PartialPathFor(Output);
        bool partialExistedAtFirstEvent = true;
        var progress = new SyncProgress(p =>
        {
            if (events.Count == 0) partialExistedAtFirstEvent = Directory.Exists(partial);
            events.Add(p);
        });

        MergeSummary summary = MergeRunner.Run(parsed, new EngineMergeOptions { OutputPath = Output, MaxShardBytes = ShardBytes }, progress);

        Assert.Equal(MergeStage.Planning, events[0].Stage);
        Assert.Equal(0, events[0].TensorsDone);
        Assert.False(partialExistedAtFirstEvent, "the first report came after the output was opened");
        MergeProgress start = events.First(e => e.Stage == MergeStage.Merging);
        Assert.Equal(0, start.TensorsDone);
        Assert.Equal(0, start.BytesWritten);
        long total = summary.Shards.Sum(s => s.DataBytes);
        Assert.Equal(total, start.BytesToWrite);
        var merging = events.Where(e => e.Stage == MergeStage.Merging).ToList();
        for (int i = 1; i < merging.Count; i++) Assert.True(merging[i].BytesWritten >= merging[i - 1].BytesWritten, $"bytes went back at report {i}");
        Assert.Equal(total, merging[^1].BytesWritten);
        Assert.Equal(MergeStage.Finishing, events[^1].Stage);
        Assert.Equal(events.Count - 1, events.FindIndex(e => e.Stage == MergeStage.Finishing));
    }

    [Fact]
    public void PlainProgress_ShowsPlanningAndEstimatesTheTimeLeftFromBytes_NotTensors()
    {
        var clock = TimeSpan.Zero;
        using var text = new StringWriter();
        using (var plain = new PlainProgress(text, TimeSpan.Zero, () => clock))
        {
            plain.Report(new MergeProgress(0, 0, 0, 0, "") { Stage = MergeStage.Planning });
            Assert.Equal("planning: opening the models and checking the recipe", text.ToString().TrimEnd());
            plain.Report(new MergeProgress(0, 10, 0, 0, "") { BytesToWrite = 1000 });
            clock = TimeSpan.FromSeconds(10);
            // One tensor of ten, but half the bytes (an embedding): ten seconds are left, not ninety.
            plain.Report(new MergeProgress(1, 10, 1500, 500, "model.embed_tokens.weight") { BytesToWrite = 1000 });
        }
        string[] lines = text.ToString().TrimEnd().Split('\n');
        Assert.Equal(2, lines.Length);
        Assert.StartsWith("[ 50%] 1/10 tensors", lines[1], StringComparison.Ordinal);
        Assert.Contains("about 10 s left", lines[1], StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromSeconds(30), PlainProgress.Remaining(250, 1000, TimeSpan.FromSeconds(10)));
        Assert.Null(PlainProgress.Remaining(0, 1000, TimeSpan.FromSeconds(10)));
    }

    // ---- helpers ----

    /// <summary>Runs the merge in-process and cancels it once 20 tensors are done (several shards are finished then).</summary>
    private static void Interrupt(string recipe, string output)
    {
        MergeRecipe parsed = RecipeParser.Load(recipe);
        using var cancel = new CancellationTokenSource();
        var progress = new SyncProgress(p => { if (p.TensorsDone == 20) cancel.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() =>
            MergeRunner.Run(parsed, new EngineMergeOptions { OutputPath = output, MaxShardBytes = ShardBytes }, progress, null, cancel.Token));
        Assert.False(Directory.Exists(output));
    }

    private static void FlipByte(string file, int fromEnd = 2)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = stream.Length - fromEnd;
        int b = stream.ReadByte();
        stream.Position = stream.Length - fromEnd;
        stream.WriteByte((byte)(b ^ 0x01));
    }

    private static void AssertSameFiles(string expected, string actual)
    {
        string[] names = Directory.GetFiles(expected).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
        Assert.Equal(names, Directory.GetFiles(actual).Select(Path.GetFileName).Order(StringComparer.Ordinal)!);
        Assert.Contains("model.safetensors.index.json", names);
        foreach (string name in names)
            Assert.True(File.ReadAllBytes(Path.Combine(expected, name)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(actual, name))), name);
    }

    private static void AssertNoHiddenSiblings(string output)
    {
        string parent = Path.GetDirectoryName(output)!;
        string prefix = "." + Path.GetFileName(output) + ".weld-";
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(parent), e => Path.GetFileName(e).StartsWith(prefix, StringComparison.Ordinal));
    }

    private static string ReadShared(string path)
    {
        // The holder's exclusive flock refuses .NET's own open; `cat` takes no lock.
        var start = new ProcessStartInfo("cat", [path]) { RedirectStandardOutput = true, UseShellExecute = false };
        using var cat = Process.Start(start)!;
        string text = cat.StandardOutput.ReadToEnd();
        cat.WaitForExit();
        return text;
    }

    private static bool LockIsHeld(string path)
    {
        try
        {
            using var probe = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }

    private static int RunTool(string tool, params string[] args)
    {
        try
        {
            var start = new ProcessStartInfo(tool, args) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            using var process = Process.Start(start)!;
            process.StandardOutput.ReadToEnd();
            process.StandardError.ReadToEnd();
            process.WaitForExit();
            return process.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return -1;
        }
    }

    /// <summary>A volume with a fixed number of bytes free, shared by every file written to it.</summary>
    private sealed class SimulatedVolume(long capacity)
    {
        private long _left = capacity;

        public Stream Open(string path) => new FullDiskStream(this, path, new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None));

        private sealed class FullDiskStream(SimulatedVolume volume, string path, FileStream inner) : Stream
        {
            public override bool CanRead => false;
            public override bool CanSeek => false;
            public override bool CanWrite => true;
            public override long Length => inner.Length;
            public override long Position { get => inner.Position; set => throw new NotSupportedException(); }
            public override void Flush() => inner.Flush();
            public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
            public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
            public override void SetLength(long value) => throw new NotSupportedException();

            public override void Write(byte[] buffer, int offset, int count)
            {
                if (Interlocked.Add(ref volume._left, -count) < 0)
                    throw new IOException($"No space left on device : '{path}'", 28);
                inner.Write(buffer, offset, count);
            }

            protected override void Dispose(bool disposing)
            {
                if (disposing) inner.Dispose();
                base.Dispose(disposing);
            }
        }
    }

    private sealed class SyncProgress(Action<MergeProgress> report) : IProgress<MergeProgress>
    {
        public void Report(MergeProgress value) => report(value);
    }
}
