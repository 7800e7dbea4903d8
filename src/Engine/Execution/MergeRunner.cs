using Weld.Engine.Config;
using Weld.Engine.Models;
using Weld.Engine.Planning;
using Weld.Engine.SafeTensors;
using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Execution;

/// <summary>Options of one merge (the CLI's flags; embedders set them directly).</summary>
public sealed class MergeOptions
{
    /// <summary>Output folder; created atomically (written beside it, renamed into place when complete).</summary>
    public required string OutputPath { get; init; }

    /// <summary>Largest output shard in bytes (mergekit's --out-shard-size; default 5B = 5·10⁹).</summary>
    public long MaxShardBytes { get; init; } = 5_000_000_000;

    /// <summary>Copy tokenizer and side files from the tokenizer source (default on).</summary>
    public bool CopyTokenizer { get; init; } = true;

    /// <summary>Write README.md (model card) and mergekit_config.yml (default on).</summary>
    public bool WriteModelCard { get; init; } = true;

    /// <summary>Random seed for the methods that draw masks (DARE).</summary>
    public ulong Seed { get; init; }

    /// <summary>Replace an existing output folder.</summary>
    public bool Overwrite { get; init; }

    /// <summary>Threads for kernels and reads (-1: all cores).</summary>
    public int Threads { get; init; } = -1;

    /// <summary>The arithmetic backend; null picks the CPU kernels with <see cref="Threads"/>.</summary>
    public IMergeKernels? Kernels { get; init; }
}

/// <summary>
/// Weld's main entry point for embedders: recipe in, merged Hugging Face folder out.
/// <code>
///   var recipe = RecipeParser.Load("recipe.yml");
///   MergeSummary s = MergeRunner.Run(recipe, new MergeOptions { OutputPath = "out" });
/// </code>
/// </summary>
public static class MergeRunner
{
    /// <summary>Plans the recipe (validating everything) without reading tensor data.</summary>
    public static MergePlan Plan(MergeRecipe recipe, ModelSet models, ulong seed = 0) => MergePlanner.Plan(recipe, models, seed);

    /// <summary>Runs a whole merge; on any failure no output folder is left behind.</summary>
    public static MergeSummary Run(MergeRecipe recipe, MergeOptions options, IProgress<MergeProgress>? progress = null,
        Action<string>? log = null, CancellationToken cancel = default)
    {
        using var models = new ModelSet(RecipeFolder(recipe));
        MergePlan plan = MergePlanner.Plan(recipe, models, options.Seed);
        foreach (string note in plan.Notes) log?.Invoke(note);

        IMergeKernels kernels = options.Kernels ?? new CpuKernels(options.Threads);
        using var output = new OutputFolder(options.OutputPath, options.Overwrite);
        var summary = new MergeExecutor(kernels, options.Threads)
            .Execute(plan, models.Folders, output.WorkPath, options.MaxShardBytes, progress, cancel);
        if (summary.Shards.Count > 1) ShardIndex.Write(output.WorkPath, summary.Shards);

        ModelFolder template = TemplateModel(recipe, models);
        DType outputDType = plan.Tensors.Count > 0 ? plan.Tensors[0].Header.DType : DType.F32;
        OutputSideFiles.WriteConfig(output.WorkPath, template.Config, outputDType, plan.OutputLayerCount);
        if (options.CopyTokenizer) OutputSideFiles.CopySideFiles(output.WorkPath, TokenizerModel(recipe, models, template));
        if (options.WriteModelCard)
        {
            OutputSideFiles.WriteRecipe(output.WorkPath, recipe.YamlText);
            OutputSideFiles.WriteModelCard(output.WorkPath, recipe.MergeMethod, recipe.BaseModel?.ToString(),
                ReferencedModels(recipe), recipe.YamlText);
        }
        cancel.ThrowIfCancellationRequested();
        output.Commit();
        return summary;
    }

    private static string? RecipeFolder(MergeRecipe recipe) =>
        File.Exists(recipe.SourceName) ? Path.GetDirectoryName(Path.GetFullPath(recipe.SourceName)) : null;

    /// <summary>The model whose config.json the output starts from: the base, else the first model (mergekit).</summary>
    private static ModelFolder TemplateModel(MergeRecipe recipe, ModelSet models) =>
        recipe.BaseModel is { } b ? models[b] : models[RecipeParameters.SourceModels(recipe, 0)[0]];

    private static ModelFolder TokenizerModel(MergeRecipe recipe, ModelSet models, ModelFolder template) =>
        recipe.TokenizerSource is { Kind: TokenizerSourceKind.Model, Model: { } m } ? models[m] : template;

    private static List<string> ReferencedModels(MergeRecipe recipe)
    {
        var names = new List<string>();
        for (int s = 0; s < recipe.SliceCount; s++)
            foreach (ModelReference r in RecipeParameters.SourceModels(recipe, s))
                if (!names.Contains(r.ToString())) names.Add(r.ToString());
        return names;
    }
}
