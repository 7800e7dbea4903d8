using Weld.Tests;
using Xunit;
using YamlDotNet.RepresentationModel;

namespace Weld.Cli.Tests.Docs;

/// <summary>
/// The scale-out examples of docs/large-models.md (examples/scale-out) run as written, with --dry-run appended: the
/// Slurm array script as array task 3 of 8, and the Kubernetes Indexed Job's container command as pod index 2 (part 3).
/// </summary>
public sealed class ScaleOutExampleTests
{
    private static string ScaleOut => Path.Combine(TestPaths.RepoRoot, "examples", "scale-out");

    [Fact]
    public void SlurmArrayScript_PlansItsPart()
    {
        string temp = TestPaths.NewTempDir("weld-docs");
        string bin = Directory.CreateDirectory(Path.Combine(temp, ".bin")).FullName;
        DocShell.WriteWeldShim(bin);
        var environment = new Dictionary<string, string>
        {
            ["RECIPE"] = Path.Combine(TestPaths.RepoRoot, "examples", "ties.yml"),
            ["OUT"] = Path.Combine(temp, "shared", "merged"),
            ["SLURM_ARRAY_TASK_ID"] = "3",
            ["SLURM_ARRAY_TASK_COUNT"] = "8",
        };

        (int exit, string output) = DocShell.Run(temp, bin, $"bash '{Path.Combine(ScaleOut, "slurm-merge.sh")}' --dry-run", environment);

        Assert.True(exit == 0, output);
        Assert.Contains("part:     3/8: 0 of the 1 shard(s)", output, StringComparison.Ordinal);
        Assert.Contains("memory:   --memory-limit 4B (given)", output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(temp, "shared")), "a dry run writes nothing");
    }

    [Fact]
    public void SlurmArrayScript_OutsideAnArrayTask_SaysWhatIsMissing()
    {
        string temp = TestPaths.NewTempDir("weld-docs");
        string bin = Directory.CreateDirectory(Path.Combine(temp, ".bin")).FullName;
        DocShell.WriteWeldShim(bin);

        (int exit, string output) = DocShell.Run(temp, bin, $"bash '{Path.Combine(ScaleOut, "slurm-merge.sh")}' --dry-run",
            new Dictionary<string, string> { ["RECIPE"] = "r.yml", ["OUT"] = "out" });

        Assert.NotEqual(0, exit);
        Assert.Contains("run as a Slurm array task", output, StringComparison.Ordinal);
    }

    [Fact]
    public void KubernetesIndexedJob_PodCommandPlansItsPart()
    {
        var yaml = new YamlStream();
        using (var reader = new StreamReader(Path.Combine(ScaleOut, "kubernetes-merge-job.yaml")))
            yaml.Load(reader);
        var job = (YamlMappingNode)yaml.Documents.Single().RootNode;
        var spec = (YamlMappingNode)job["spec"];
        Assert.Equal("Indexed", spec["completionMode"].ToString());
        Assert.Equal("8", spec["completions"].ToString());
        var container = (YamlMappingNode)((YamlSequenceNode)((YamlMappingNode)((YamlMappingNode)spec["template"])["spec"])["containers"]).Single();
        string[] command = ((YamlSequenceNode)container["command"]).Select(n => n.ToString()).ToArray();
        Assert.Equal(["sh", "-c"], command[..2]);

        // The pod's /data volume becomes a folder holding the recipe (and, beside it, the models it names).
        string temp = TestPaths.NewTempDir("weld-docs");
        string data = Directory.CreateDirectory(Path.Combine(temp, "data")).FullName;
        File.Copy(Path.Combine(TestPaths.RepoRoot, "examples", "ties.yml"), Path.Combine(data, "recipe.yml"));
        Directory.CreateSymbolicLink(Path.Combine(data, "models"), Path.Combine(TestPaths.RepoRoot, "examples", "models"));
        string bin = Directory.CreateDirectory(Path.Combine(temp, ".bin")).FullName;
        DocShell.WriteWeldShim(bin);
        string podCommand = command[2].Replace("/data/", data + "/", StringComparison.Ordinal);

        (int exit, string output) = DocShell.Run(temp, bin, $"sh -c '{podCommand} --dry-run'",
            new Dictionary<string, string> { ["JOB_COMPLETION_INDEX"] = "2" });

        Assert.True(exit == 0, output);
        Assert.Contains("part:     3/8:", output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(data, "out")), "a dry run writes nothing");
    }
}
