using System.Globalization;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Evaluation.Torch;

namespace Weld.Bench;

/// <summary>
/// Tokens per second of the built-in and the TorchSharp engines on the same model and text in the same run:
/// <c>dotnet run -c Release --project bench/Weld.Bench -- eval-engines [MODEL] [TEXT] [ROUNDS]</c> (default: the zoo's
/// lm-base on eval/c.txt, the zoo protocol, 3 rounds). The engines take turns each round, so a burst of load on a
/// shared machine hits both; the best round of each is printed.
/// </summary>
internal static class EngineComparison
{
    public static int Run(string? modelPath, string? textPath, int rounds)
    {
        string zoo = EvalBenchmarks.ZooFolder();
        if (string.IsNullOrEmpty(modelPath)) modelPath = Path.Combine(zoo, "lm-base");
        if (string.IsNullOrEmpty(textPath)) textPath = Path.Combine(zoo, "eval", "c.txt");
        using var folder = ModelFolder.Open(modelPath);
        var engines = new (string Name, ICausalLanguageModel Model)[]
        {
            ("builtin (float32)", LlamaModel.Load(folder)),
            ("torch (float32)", TorchLlamaModel.Load(folder)),
            ("torch (bfloat16)", TorchLlamaModel.Load(folder, TorchComputeType.BFloat16)),
        };
        ITokenizer tokenizer = PerplexityEvaluator.TokenizerFor(folder, engines[0].Model.Config);
        var best = new double[engines.Length];
        var perplexity = new double[engines.Length];
        long tokens = 0;
        for (int round = 0; round < rounds; round++)
        {
            for (int e = 0; e < engines.Length; e++)
            {
                PerplexityResult r = PerplexityEvaluator.EvaluateFile(engines[e].Model, tokenizer, textPath);
                best[e] = Math.Max(best[e], r.TokensPerSecond);
                perplexity[e] = r.Perplexity;
                tokens = r.Tokens;
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{modelPath} on {textPath}: {tokens} scored tokens, best of {rounds} rounds, {Environment.ProcessorCount} cores"));
        for (int e = 0; e < engines.Length; e++)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{engines[e].Name,-18} {best[e],10:F0} tok/s  perplexity {perplexity[e]:F6}"));
            (engines[e].Model as IDisposable)?.Dispose();
        }

        return 0;
    }
}
