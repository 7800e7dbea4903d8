using Weld.Engine;
using Weld.Engine.Config;
using Weld.Engine.Evaluation;
using Weld.Engine.Execution;
using Weld.Engine.Models;

namespace WeldEmbedExample;

/// <summary>Merges a mergekit recipe with Weld.Engine, then scores the merged model's perplexity on a text.</summary>
public static class MergeExample
{
    public static int Run(string recipePath, string outputPath, string textPath, TextWriter console)
    {
        try
        {
            // 1. Read the recipe: the same YAML `weld merge` and mergekit take.
            MergeRecipe recipe = RecipeParser.Load(recipePath);

            // 2. Merge. The output folder appears only when complete; progress arrives as bytes written.
            var options = new MergeOptions { OutputPath = outputPath, Overwrite = true };
            var progress = new Progress<MergeProgress>(p =>
            {
                if (p.Stage == MergeStage.Merging && p.BytesToWrite > 0 && p.BytesWritten == p.BytesToWrite)
                    console.WriteLine($"merged {p.TensorCount} tensors");
            });
            MergeSummary summary = MergeRunner.Run(recipe, options, progress, log: console.WriteLine);
            console.WriteLine($"wrote {summary.BytesWritten:N0} bytes in {summary.Shards.Count} shard(s) to {outputPath}");

            // 3. Evaluate the result with Weld's own forward pass.
            using ModelFolder merged = ModelFolder.Open(outputPath);
            LlamaModel model = LlamaModel.Load(merged);
            ITokenizer tokenizer = PerplexityEvaluator.TokenizerFor(merged, model.Config);
            PerplexityResult result = PerplexityEvaluator.EvaluateFile(model, tokenizer, textPath);
            console.WriteLine($"perplexity {result.Perplexity:F4} over {result.Tokens} tokens");
            return 0;
        }
        catch (WeldException e)
        {
            // Every input error is a WeldException with a one-line message naming the file, tensor or recipe line.
            console.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}
