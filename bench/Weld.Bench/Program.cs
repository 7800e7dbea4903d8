using BenchmarkDotNet.Running;

// `dotnet run -c Release --project bench/Weld.Bench -- --filter '*'` runs every benchmark;
// each benchmark class carries its own baseline (a same-run memory copy) so results are ratios.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
