using BenchmarkDotNet.Running;
using Weld.Bench;

// `dotnet run -c Release --project bench/Weld.Bench -- --filter '*'` runs every benchmark; each benchmark class
// carries its own baseline (a same-run memory copy) so results are ratios.
// `... -- make-models DIR [FINE_TUNES]` writes the synthetic 1B-shaped models of the end-to-end bench.
if (args.Length >= 2 && args[0] == "make-models")
{
    SyntheticModels.Write(args[1], args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 2);
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(SyntheticModels).Assembly).Run(args);
