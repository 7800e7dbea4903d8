using System.Text.Json;
using System.Text.Json.Nodes;
using CommandLine;
using Spectre.Console;
using Weld.Engine;
using Weld.Engine.Models;
using Weld.Engine.Tokenizers;
using Weld.Engine.SafeTensors;

namespace Weld.Cli;

[Verb("inspect", HelpText = "List a model's tensors (name, dtype, shape, bytes, shard), totals and config.")]
internal sealed class InspectOptions
{
    [Value(0, MetaName = "MODEL", Required = true, HelpText = "A Hugging Face model folder, a PEFT adapter folder or a .safetensors file.")]
    public string Model { get; set; } = "";

    [Option("json", HelpText = "Machine-readable JSON on stdout.")]
    public bool Json { get; set; }
}

/// <summary><c>weld inspect MODEL</c>.</summary>
internal static class InspectCommand
{
    public static int Run(InspectOptions options, CliConsole console)
    {
        using var model = ModelFolder.Open(options.Model);
        if (options.Json)
            console.Out.WriteLine(ToJson(model).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        else
            WriteTable(model, console.Out);
        return ExitCodes.Ok;
    }

    private static JsonObject ToJson(ModelFolder model)
    {
        var tensors = new JsonArray();
        foreach (string name in model.TensorNames)
        {
            var t = model.GetTensor(name);
            tensors.Add(new JsonObject
            {
                ["name"] = name,
                ["dtype"] = DTypes.ToName(t.Info.DType),
                ["shape"] = new JsonArray(t.Info.Shape.Select(d => (JsonNode)d).ToArray()),
                ["bytes"] = t.Info.ByteLength,
                ["shard"] = Path.GetFileName(t.File.FilePath),
            });
        }
        var config = model.Config;
        return new JsonObject
        {
            ["path"] = Path.GetFullPath(model.Path),
            ["kind"] = model.IsAdapter ? "peft-adapter" : "model",
            ["tensor_count"] = model.TensorNames.Count,
            ["parameter_count"] = model.ParameterCount,
            ["total_bytes"] = model.TotalBytes,
            // By file name (model-00001-of-N first), not in the order the index first mentions each shard.
            ["shards"] = new JsonArray(model.Files.Select(s => Path.GetFileName(s.FilePath)).Order(StringComparer.Ordinal).Select(n => (JsonNode)n!).ToArray()),
            ["config"] = config is null ? null : new JsonObject
            {
                ["architecture"] = config.Architecture,
                ["model_type"] = config.ModelType,
                ["num_hidden_layers"] = config.NumHiddenLayers,
                ["hidden_size"] = config.HiddenSize,
                ["vocab_size"] = config.VocabSize,
                ["torch_dtype"] = config.TorchDType,
            },
            ["side_files"] = new JsonArray(model.SideFiles.Select(f => (JsonNode)Path.GetFileName(f)).ToArray()),
            ["tokenizer"] = TokenizerJson(model),
            ["tensors"] = tensors,
        };
    }

    /// <summary>The vocabulary of tokenizer.json as the tokenizer has it (every id, before any vocab_size cut), or an explanation.</summary>
    private static (ModelVocabulary? Vocabulary, string? Problem) Vocabulary(ModelFolder model)
    {
        if (model.IsAdapter || !ModelVocabulary.HasTokenizer(model)) return (null, null);
        try
        {
            return (ModelVocabulary.Load(model, cutAtVocabSize: false), null);
        }
        catch (WeldException e)
        {
            return (null, e.Message);
        }
    }

    private static readonly System.Text.Json.JsonSerializerOptions s_quote = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static JsonObject? TokenizerJson(ModelFolder model)
    {
        var (v, problem) = Vocabulary(model);
        if (problem is not null) return new JsonObject { ["error"] = problem };
        if (v is null) return null;
        return new JsonObject
        {
            ["vocab_size"] = v.TokenizerSize,
            ["format"] = v.Format == VocabularyFormat.SentencePiece ? "tokenizer.model" : "tokenizer.json",
            ["pieces"] = v.Pieces is { } pieces
                ? new JsonObject(PieceTypes(pieces).Select(t => KeyValuePair.Create(t.Type, (JsonNode?)t.Count)))
                : null,
            ["added_tokens"] = new JsonArray(v.Added.Select(a => (JsonNode)new JsonObject { ["id"] = a.Id, ["content"] = a.Content, ["special"] = a.Special }).ToArray()),
        };
    }

    /// <summary>How many sentencepiece pieces of each type (in the proto's type order; types with none left out).</summary>
    private static IEnumerable<(string Type, int Count)> PieceTypes(IReadOnlyList<SentencePiece> pieces)
    {
        foreach (SentencePieceType type in Enum.GetValues<SentencePieceType>())
        {
            int count = 0;
            foreach (SentencePiece piece in pieces)
                if (piece.Type == type) count++;
            if (count > 0) yield return (type == SentencePieceType.UserDefined ? "user-defined" : type.ToString().ToLowerInvariant(), count);
        }
    }

    private static void WriteTable(ModelFolder model, TextWriter writer)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = ReferenceEquals(writer, Console.Out) && !Console.IsOutputRedirected ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = ColorSystemSupport.Detect,
        });
        if (!ReferenceEquals(writer, Console.Out) || Console.IsOutputRedirected)
            console.Profile.Width = 240; // a pipe or file: do not wrap long tensor names
        var table = new Table().Border(TableBorder.Simple)
            .AddColumn("tensor").AddColumn("dtype").AddColumn("shape").AddColumn(new TableColumn("bytes").RightAligned()).AddColumn("shard");
        var bytesByDType = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (string name in model.TensorNames)
        {
            var t = model.GetTensor(name);
            string dtype = DTypes.ToName(t.Info.DType);
            bytesByDType[dtype] = bytesByDType.GetValueOrDefault(dtype) + t.Info.ByteLength;
            table.AddRow(Markup.Escape(name), dtype, Markup.Escape("[" + string.Join(", ", t.Info.Shape) + "]"),
                t.Info.ByteLength.ToString("N0", System.Globalization.CultureInfo.InvariantCulture),
                Markup.Escape(Path.GetFileName(t.File.FilePath)));
        }
        console.Write(table);
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        writer.WriteLine($"model:      {Path.GetFullPath(model.Path)}{(model.IsAdapter ? " (PEFT adapter)" : "")}");
        writer.WriteLine($"tensors:    {model.TensorNames.Count.ToString("N0", inv)} in {model.Files.Count} shard(s)");
        writer.WriteLine($"parameters: {model.ParameterCount.ToString("N0", inv)}");
        writer.WriteLine($"bytes:      {model.TotalBytes.ToString("N0", inv)} ({string.Join(", ", bytesByDType.Select(kv => $"{kv.Key} {kv.Value.ToString("N0", inv)}"))})");
        if (model.Config is { } c)
            writer.WriteLine($"config:     {c.Architecture ?? "?"} ({c.ModelType ?? "?"}), layers {c.NumHiddenLayers?.ToString(inv) ?? "?"}, hidden {c.HiddenSize?.ToString(inv) ?? "?"}, vocab {c.VocabSize?.ToString(inv) ?? "?"}, torch_dtype {c.TorchDType ?? "?"}");
        if (model.SideFiles.Count > 0)
            writer.WriteLine($"side files: {string.Join(", ", model.SideFiles.Select(Path.GetFileName))}");
        var (vocabulary, problem) = Vocabulary(model);
        if (problem is not null)
            writer.WriteLine($"tokenizer:  {problem}");
        else if (vocabulary is { } v)
        {
            string rows = model.Config?.VocabSize is int n && n != v.TokenizerSize ? $" (the config's vocab_size is {n.ToString(inv)})" : "";
            string pieces = v.Pieces is { } p
                ? $" from tokenizer.model ({p.Count.ToString(inv)} pieces: {string.Join(", ", PieceTypes(p).Select(t => $"{t.Count.ToString(inv)} {t.Type}"))})"
                : "";
            writer.WriteLine($"tokenizer:  {v.TokenizerSize.ToString(inv)} tokens{pieces}{rows}, {v.Added.Count.ToString(inv)} added" +
                (v.Added.Count == 0 ? "" : ": " + string.Join(", ", v.Added.Select(a => $"{a.Id.ToString(inv)} {Markup.Escape(System.Text.Json.JsonSerializer.Serialize(a.Content, s_quote))}{(a.Special ? " (special)" : "")}"))));
        }
    }
}
