using Weld.Engine.SafeTensors;
using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Tests;
using Xunit;
using EngineMergeOptions = Weld.Engine.Execution.MergeOptions;

namespace Weld.Cli.Tests;

/// <summary>
/// A merge stopped half-way leaves nothing behind. Every corrupt input is caught when the models are opened and
/// planned, before any tensor is written, so the failure is injected by cancelling from the progress callback.
/// </summary>
public sealed class InterruptionTests
{
    [Theory]
    [InlineData(5_000_000_000L)] // one file, cancelled while it is half written
    [InlineData(200_000L)]       // many shards: the first ones are complete when the merge stops
    public void CancelledAfterFiveTensors_LeavesNoOutputFolder(long maxShardBytes)
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        MergeRecipe recipe = RecipeParser.Load(Recipes.WriteExample("task-arithmetic.yml", temp));
        string output = Path.Combine(temp, "out");
        using var cancel = new CancellationTokenSource();
        var progress = new CancelAfter(5, cancel);

        Assert.ThrowsAny<OperationCanceledException>(() => MergeRunner.Run(recipe,
            new EngineMergeOptions { OutputPath = output, MaxShardBytes = maxShardBytes }, progress, log: null, cancel.Token));

        Assert.Equal(5, progress.Reports); // the merge stopped at the next tensor, it did not run to the end
        Assert.False(Directory.Exists(output));
        string partial = Path.Combine(temp, ".out.weld-partial");
        if (maxShardBytes >= 5_000_000_000)
        {
            // No shard was finished: nothing is left.
            Assert.Equal(["task-arithmetic.yml"], Directory.EnumerateFileSystemEntries(temp).Select(Path.GetFileName));
        }
        else
        {
            // Finished shards stay in the hidden partial folder for --resume; nothing looks like a model folder.
            Assert.Equal([".out.weld-partial", "task-arithmetic.yml"], Directory.EnumerateFileSystemEntries(temp).Select(Path.GetFileName).Order(StringComparer.Ordinal));
            Assert.False(File.Exists(Path.Combine(partial, "config.json")));
            Assert.False(File.Exists(Path.Combine(partial, "model.safetensors.index.json")));
            Assert.True(File.Exists(Path.Combine(partial, "weld-progress-1-of-1.json")));
        }
    }

    [Fact]
    public void CancelledMerge_LeavesAnExistingOutputUntouchedEvenWithOverwrite()
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        MergeRecipe recipe = RecipeParser.Load(Recipes.WriteExample("linear-soup.yml", temp));
        string output = Path.Combine(temp, "out");
        Directory.CreateDirectory(output);
        OutputFolder.WriteMarker(output); // an earlier Weld output: --overwrite may replace it, once the new one is complete
        string sentinel = Path.Combine(output, "earlier.txt");
        File.WriteAllText(sentinel, "earlier");
        using var cancel = new CancellationTokenSource();

        Assert.ThrowsAny<OperationCanceledException>(() => MergeRunner.Run(recipe,
            new EngineMergeOptions { OutputPath = output, Overwrite = true }, new CancelAfter(5, cancel), log: null, cancel.Token));

        Assert.Equal([Path.Combine(output, OutputFolder.MarkerFileName), sentinel], Directory.EnumerateFileSystemEntries(output).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(temp), e => Path.GetFileName(e).StartsWith(".out.weld-", StringComparison.Ordinal));
    }

    /// <summary>Cancels the token once <c>count</c> tensors are done (synchronously, on the merging thread).</summary>
    private sealed class CancelAfter(int count, CancellationTokenSource cancel) : IProgress<MergeProgress>
    {
        public int Reports { get; private set; }

        public void Report(MergeProgress value)
        {
            if (value.TensorsDone == 0) return; // the planning and start reports come before any tensor
            Reports++;
            Assert.Equal(Reports, value.TensorsDone);
            if (value.TensorsDone == count) cancel.Cancel();
        }
    }
}
