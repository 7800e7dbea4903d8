// A console app that embeds Weld.Engine:
//   dotnet run --project examples/embed -- RECIPE OUTPUT TEXT    merge a recipe, then score the result on a text
//   dotnet run --project examples/embed -- --norms BASE MODEL      how far each tensor of MODEL moved from BASE
using WeldEmbedExample;

if (args is ["--norms", string basePath, string modelPath])
{
    TensorExample.PrintTaskVectorNorms(basePath, modelPath, Console.Out);
    return 0;
}
if (args is [string recipe, string output, string text])
    return MergeExample.Run(recipe, output, text, Console.Out);
Console.Error.WriteLine("usage: embed RECIPE OUTPUT TEXT | embed --norms BASE MODEL");
return 2;
