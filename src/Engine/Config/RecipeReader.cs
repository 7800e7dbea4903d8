using Weld.Engine.SafeTensors;
using YamlDotNet.RepresentationModel;

namespace Weld.Engine.Config;

/// <summary>Turns the YAML representation of one recipe into the object model, with line-numbered errors.</summary>
internal sealed class RecipeReader(string sourceName)
{
    private static readonly string[] s_modelEntryKeys = ["model", "parameters"];
    private static readonly string[] s_sliceKeys = ["sources", "base_model", "residual_weight", "parameters"];
    private static readonly string[] s_sourceKeys = ["model", "layer_range", "parameters"];
    private static readonly string[] s_conditionKeys = ["filter", "value"];
    private static readonly string[] s_referenceKeys = ["model", "lora", "override_architecture"];
    private static readonly string[] s_pathKeys = ["path", "revision"];
    private static readonly string[] s_tokenizerKeys = ["source", "tokens", "pad_to_multiple_of"];
    private static readonly string[] s_tokenKeys = ["source", "force"];
    private static readonly string[] s_modelTokenKeys = ["kind", "model", "token_id", "token"];
    private static readonly string[] s_zeroKeys = ["kind"];
    private static readonly string[] s_linesKeys = ["alpha", "beta"];
    private static readonly string[] s_dtypeNames = ["bfloat16", "float16", "float32", "int64"];

    public RecipeException Fail(YamlNode node, string problem) => Fail(Line(node), problem);

    public RecipeException Fail(int line, string problem) => new($"{sourceName}:{line}: {problem}");

    public MergeRecipe ReadRecipe(YamlNode root, string yamlText)
    {
        YamlMappingNode map = root as YamlMappingNode
            ?? throw Fail(root, "a recipe must be a mapping of keys such as merge_method, models or slices");
        Dictionary<string, (YamlScalarNode Key, YamlNode Value)> entries = Entries(map, RecipeParser.TopLevelKeys, "top-level");

        if (entries.TryGetValue("modules", out var modules))
        {
            throw Fail(modules.Key, "'modules' (per-module recipes) is not supported; use 'models' or 'slices'");
        }

        if (!entries.TryGetValue("merge_method", out var methodEntry))
        {
            throw Fail(map, "missing required key 'merge_method'");
        }

        string method = ReadString(methodEntry.Value, "merge_method");
        if (!MethodNames.Known.Contains(method))
        {
            string? suggestion = MethodNames.Suggest(method, MethodNames.Known);
            throw Fail(methodEntry.Value, $"unknown merge method '{method}'"
                + (suggestion is null ? $" (known: {string.Join(", ", MethodNames.Known)})" : $" (did you mean '{suggestion}'?)"));
        }

        entries.TryGetValue("models", out var modelsEntry);
        entries.TryGetValue("slices", out var slicesEntry);
        if (modelsEntry.Key is not null && slicesEntry.Key is not null)
        {
            throw Fail(slicesEntry.Key, "give either 'models' or 'slices', not both");
        }

        if (modelsEntry.Key is null && slicesEntry.Key is null)
        {
            throw Fail(map, "missing 'models' or 'slices': the recipe must say which models to merge");
        }

        IReadOnlyList<InputModel>? models = modelsEntry.Key is null ? null : ReadModels(modelsEntry.Value);
        IReadOnlyList<OutputSlice>? slices = slicesEntry.Key is null ? null : ReadSlices(slicesEntry.Value);

        TokenizerSource? tokenizerSource = Optional(entries, "tokenizer_source", ReadTokenizerSource);
        TokenizerSettings? tokenizer = Optional(entries, "tokenizer", ReadTokenizer);
        if (tokenizerSource is not null && tokenizer is not null)
        {
            throw Fail(entries["tokenizer"].Key, "give either 'tokenizer_source' or 'tokenizer', not both");
        }

        return new MergeRecipe(
            method,
            Line(methodEntry.Value),
            Optional(entries, "base_model", ReadModelReference),
            models,
            slices,
            Optional(entries, "parameters", ReadParameters) ?? ParameterSet.Empty,
            OptionalDType(entries, "dtype"),
            OptionalDType(entries, "out_dtype"),
            tokenizerSource,
            tokenizer,
            Optional(entries, "chat_template", ReadChatTemplate),
            Optional(entries, "name", node => ReadString(node, "name")),
            yamlText,
            sourceName)
        {
            Lines = Optional(entries, "lines", ReadLines),
            AlignTo = Optional(entries, "align_to", ReadModelReference),
        };
    }

    /// <summary>Reads <c>chat_template:</c>: a built-in name, <c>auto</c>, or Jinja text (mergekit refuses anything else).</summary>
    private string ReadChatTemplate(YamlNode node)
    {
        string value = ReadString(node, "chat_template");
        return Weld.Engine.Execution.ChatTemplates.Problem(value) is { } problem ? throw Fail(node, problem) : value;
    }

    /// <summary>Reads <c>lines: {alpha: A, beta: B}</c>; β defaults to 0 (a uniform scale α).</summary>
    private LinesScaling ReadLines(YamlNode node)
    {
        YamlMappingNode map = node as YamlMappingNode
            ?? throw Fail(node, "'lines' must be a mapping {alpha: A, beta: B} (LiNeS layer scaling)");
        var fields = Entries(map, s_linesKeys, "lines");
        double alpha = ReadNumber(Required(fields, map, "alpha", "lines"), "alpha");
        double beta = fields.TryGetValue("beta", out var b) ? ReadNumber(b.Value, "beta") : 0;
        if (!double.IsFinite(alpha) || !double.IsFinite(beta))
            throw Fail(map, "'lines' alpha and beta must be finite numbers");
        return new LinesScaling(alpha, beta, Line(map));
    }

    private List<InputModel> ReadModels(YamlNode node)
    {
        YamlSequenceNode list = ExpectNonEmptySequence(node, "models", "a list of '- model: ...' entries");
        var models = new List<InputModel>(list.Children.Count);
        foreach (YamlNode item in list.Children)
        {
            YamlMappingNode entry = item as YamlMappingNode
                ?? throw Fail(item, "each entry of 'models' must be a mapping with 'model' (and optional 'parameters')");
            var fields = Entries(entry, s_modelEntryKeys, "models entry");
            models.Add(new InputModel(
                ReadModelReference(Required(fields, entry, "model", "models entry")),
                Optional(fields, "parameters", ReadParameters) ?? ParameterSet.Empty,
                Line(entry)));
        }

        return models;
    }

    private List<OutputSlice> ReadSlices(YamlNode node)
    {
        YamlSequenceNode list = ExpectNonEmptySequence(node, "slices", "a list of '- sources: ...' entries");
        var slices = new List<OutputSlice>(list.Children.Count);
        foreach (YamlNode item in list.Children)
        {
            YamlMappingNode entry = item as YamlMappingNode
                ?? throw Fail(item, "each entry of 'slices' must be a mapping with 'sources'");
            var fields = Entries(entry, s_sliceKeys, "slice");
            YamlSequenceNode sourceList = ExpectNonEmptySequence(
                Required(fields, entry, "sources", "slice"), "sources", "a list of '- model: ...' entries with 'layer_range'");
            var sources = new List<InputSlice>(sourceList.Children.Count);
            foreach (YamlNode sourceNode in sourceList.Children)
            {
                YamlMappingNode source = sourceNode as YamlMappingNode
                    ?? throw Fail(sourceNode, "each entry of 'sources' must be a mapping with 'model' and 'layer_range'");
                var sourceFields = Entries(source, s_sourceKeys, "slice source");
                sources.Add(new InputSlice(
                    ReadModelReference(Required(sourceFields, source, "model", "slice source")),
                    ReadLayerRange(Required(sourceFields, source, "layer_range", "slice source")),
                    Optional(sourceFields, "parameters", ReadParameters) ?? ParameterSet.Empty,
                    Line(source)));
            }

            slices.Add(new OutputSlice(
                sources,
                Optional(fields, "base_model", ReadModelReference),
                fields.TryGetValue("residual_weight", out var residual) ? ReadNumber(residual.Value, "residual_weight") : null,
                Optional(fields, "parameters", ReadParameters) ?? ParameterSet.Empty,
                Line(entry)));
        }

        return slices;
    }

    private LayerRange ReadLayerRange(YamlNode node)
    {
        if (node is not YamlSequenceNode { Children.Count: 2 } pair)
        {
            throw Fail(node, "'layer_range' must be a list of two layer indices [start, end], end excluded");
        }

        int start = ReadInt(pair.Children[0], "layer_range start");
        int end = ReadInt(pair.Children[1], "layer_range end");
        if (start < 0 || end <= start)
        {
            throw Fail(node, $"'layer_range' [{start}, {end}] is empty or negative: need 0 <= start < end (end is excluded)");
        }

        return new LayerRange(start, end);
    }

    private ParameterSet ReadParameters(YamlNode node)
    {
        YamlMappingNode map = node as YamlMappingNode
            ?? throw Fail(node, "'parameters' must be a mapping of parameter names to values");
        var values = new Dictionary<string, ParameterValue>(StringComparer.Ordinal);
        var lines = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (keyNode, valueNode) in map.Children)
        {
            string name = KeyName(keyNode);
            if (!values.TryAdd(name, ReadParameterValue(valueNode, name)))
            {
                throw Fail(keyNode, $"parameter '{name}' is given twice");
            }

            lines[name] = Line(keyNode);
        }

        return new ParameterSet(values, Line(map), lines);
    }

    private ParameterValue ReadParameterValue(YamlNode node, string name)
    {
        switch (node)
        {
            case YamlScalarNode scalar:
                return new ScalarParameter(ReadParameterScalar(scalar, name), Line(scalar));
            case YamlSequenceNode list when list.Children.Count == 0:
                throw Fail(list, $"parameter '{name}' is an empty list");
            case YamlSequenceNode list when list.Children.All(c => c is YamlMappingNode):
                var conditions = new List<ParameterCondition>(list.Children.Count);
                foreach (YamlNode child in list.Children)
                {
                    conditions.Add(ReadCondition((YamlMappingNode)child, name));
                }

                return new ConditionalParameter(conditions, Line(list));
            case YamlSequenceNode list:
                return ReadList(list, name);
            default:
                throw Fail(node, $"parameter '{name}' is a single {{filter, value}} mapping; conditional values must be a list: "
                    + "'- filter: ...' / '  value: ...', with a last '- value: ...' as the default");
        }
    }

    private ParameterCondition ReadCondition(YamlMappingNode entry, string name)
    {
        var fields = Entries(entry, s_conditionKeys, $"condition of parameter '{name}'");
        string? filter = null;
        if (fields.TryGetValue("filter", out var filterEntry))
        {
            filter = ReadOptionalString(filterEntry.Value, "filter");
        }

        YamlNode valueNode = Required(fields, entry, "value", $"condition of parameter '{name}'");
        ParameterValue value = valueNode switch
        {
            YamlScalarNode scalar => new ScalarParameter(ReadParameterScalar(scalar, name), Line(scalar)),
            YamlSequenceNode { Children.Count: > 0 } list => ReadList(list, name),
            _ => throw Fail(valueNode, $"the value of a condition of parameter '{name}' must be a number, string or non-empty list of them"),
        };
        return new ParameterCondition(filter, value, Line(entry));
    }

    /// <summary>A list of scalars: numbers (and booleans, as 1/0) make a gradient; strings make a stepped list.</summary>
    private ParameterValue ReadList(YamlSequenceNode list, string name)
    {
        var scalars = new List<(YamlScalar Value, int Line)>(list.Children.Count);
        bool anyString = false, anyNumber = false;
        foreach (YamlNode child in list.Children)
        {
            if (child is not YamlScalarNode scalarNode)
            {
                throw Fail(child, $"parameter '{name}': a list must hold only numbers (a gradient) or only strings, not nested lists or mappings");
            }

            YamlScalar scalar = YamlScalar.Resolve(scalarNode);
            if (scalar.Kind == YamlScalarKind.Null)
            {
                throw Fail(child, $"parameter '{name}': a list entry has no value");
            }

            anyString |= scalar.Kind == YamlScalarKind.String;
            anyNumber |= scalar.Kind != YamlScalarKind.String;
            scalars.Add((scalar, Line(child)));
        }

        if (anyString && anyNumber)
        {
            throw Fail(list, $"parameter '{name}' mixes numbers and strings in one list");
        }

        if (anyNumber)
        {
            var points = new double[scalars.Count];
            for (int i = 0; i < points.Length; i++)
            {
                points[i] = scalars[i].Value.Number;
            }

            return new GradientParameter(points, Line(list));
        }

        var steps = new List<ParameterScalar>(scalars.Count);
        foreach (var (value, line) in scalars)
        {
            steps.Add(ParameterScalar.FromString(value.Text, line));
        }

        return new SteppedParameter(steps, Line(list));
    }

    private ParameterScalar ReadParameterScalar(YamlScalarNode node, string name)
    {
        YamlScalar scalar = YamlScalar.Resolve(node);
        int line = Line(node);
        return scalar.Kind switch
        {
            YamlScalarKind.Number => ParameterScalar.FromNumber(scalar.Number, line),
            YamlScalarKind.Boolean => ParameterScalar.FromBoolean(scalar.Number != 0, line),
            YamlScalarKind.String => ParameterScalar.FromString(scalar.Text, line),
            _ => throw Fail(node, $"parameter '{name}' has no value"),
        };
    }

    private ModelReference ReadModelReference(YamlNode node)
    {
        if (node is YamlScalarNode scalar)
        {
            string text = ReadString(scalar, "model reference");
            try
            {
                return ModelReference.Parse(text, Line(scalar));
            }
            catch (FormatException e)
            {
                throw Fail(scalar, e.Message);
            }
        }

        if (node is not YamlMappingNode map)
        {
            throw Fail(node, "a model reference must be a string 'model[@revision][+lora]' or a mapping with 'model'");
        }

        var fields = Entries(map, s_referenceKeys, "model reference");
        ModelPath model = ReadModelPath(Required(fields, map, "model", "model reference"));
        ModelPath? lora = fields.TryGetValue("lora", out var loraEntry) ? ReadModelPath(loraEntry.Value) : null;
        string? architecture = fields.TryGetValue("override_architecture", out var archEntry)
            ? ReadString(archEntry.Value, "override_architecture")
            : null;
        string raw = lora is { } l ? $"{model}+{l}" : model.ToString();
        return new ModelReference(model, lora, architecture, raw, Line(map));
    }

    /// <summary>A <c>path[@revision]</c> string (no '+' splitting, as mergekit's ModelPath) or a {path, revision} mapping.</summary>
    private ModelPath ReadModelPath(YamlNode node)
    {
        if (node is YamlMappingNode map)
        {
            var fields = Entries(map, s_pathKeys, "model path");
            string path = ReadString(Required(fields, map, "path", "model path"), "path");
            string? revision = fields.TryGetValue("revision", out var rev) ? ReadOptionalString(rev.Value, "revision") : null;
            if (path.Length == 0)
            {
                throw Fail(map, "model path is empty");
            }

            return new ModelPath(path, revision);
        }

        string text = ReadString(node, "model path");
        try
        {
            return ModelReference.ParsePath(text, text);
        }
        catch (FormatException e)
        {
            throw Fail(node, e.Message);
        }
    }

    private TokenizerSource ReadTokenizerSource(YamlNode node)
    {
        if (node is YamlScalarNode scalar && YamlScalar.Resolve(scalar) is { Kind: YamlScalarKind.String, Text: "union" or "base" } kind)
        {
            return new TokenizerSource(kind.Text == "union" ? TokenizerSourceKind.Union : TokenizerSourceKind.Base, null, Line(node));
        }

        return new TokenizerSource(TokenizerSourceKind.Model, ReadModelReference(node), Line(node));
    }

    private TokenizerSettings ReadTokenizer(YamlNode node)
    {
        YamlMappingNode map = node as YamlMappingNode
            ?? throw Fail(node, "'tokenizer' must be a mapping with 'source', 'tokens' and/or 'pad_to_multiple_of'");
        var fields = Entries(map, s_tokenizerKeys, "tokenizer");
        TokenizerSource source = Optional(fields, "source", ReadTokenizerSource)
            ?? new TokenizerSource(TokenizerSourceKind.Union, null, Line(map));
        var tokens = new List<TokenEmbeddingSpec>();
        if (fields.TryGetValue("tokens", out var tokensEntry) && !IsNull(tokensEntry.Value))
        {
            YamlMappingNode tokenMap = tokensEntry.Value as YamlMappingNode
                ?? throw Fail(tokensEntry.Value, "'tokens' must be a mapping from token text to {source, force}");
            foreach (var (keyNode, valueNode) in tokenMap.Children)
            {
                tokens.Add(ReadTokenSpec(KeyName(keyNode), valueNode));
            }
        }

        int? pad = null;
        if (fields.TryGetValue("pad_to_multiple_of", out var padEntry) && !IsNull(padEntry.Value))
        {
            pad = ReadInt(padEntry.Value, "pad_to_multiple_of");
            if (pad <= 0)
            {
                throw Fail(padEntry.Value, $"'pad_to_multiple_of' must be a positive integer, got {pad}");
            }
        }

        return new TokenizerSettings(source, tokens, pad, Line(map));
    }

    private TokenEmbeddingSpec ReadTokenSpec(string token, YamlNode node)
    {
        YamlMappingNode map = node as YamlMappingNode
            ?? throw Fail(node, $"token '{token}' must be a mapping with 'source' and/or 'force'");
        var fields = Entries(map, s_tokenKeys, $"token '{token}'");
        bool force = fields.TryGetValue("force", out var forceEntry) && ReadBool(forceEntry.Value, "force");
        int line = Line(map);
        if (!fields.TryGetValue("source", out var sourceEntry) || IsNull(sourceEntry.Value))
        {
            return new TokenEmbeddingSpec(token, TokenEmbeddingSourceKind.Default, null, null, null, force, line);
        }

        YamlNode sourceNode = sourceEntry.Value;
        if (sourceNode is YamlMappingNode sourceMap && sourceMap.Children.ContainsKey(new YamlScalarNode("kind")))
        {
            string kind = ReadString(sourceMap.Children[new YamlScalarNode("kind")], "kind");
            if (kind == "zero")
            {
                Entries(sourceMap, s_zeroKeys, "zero embedding source");
                return new TokenEmbeddingSpec(token, TokenEmbeddingSourceKind.Zero, null, null, null, force, line);
            }

            if (kind != "model_token")
            {
                throw Fail(sourceMap, $"unknown embedding source kind '{kind}' (expected 'model_token' or 'zero')");
            }

            var sourceFields = Entries(sourceMap, s_modelTokenKeys, "model_token source");
            ModelReference model = ReadModelReference(Required(sourceFields, sourceMap, "model", "model_token source"));
            int? tokenId = sourceFields.TryGetValue("token_id", out var idEntry) && !IsNull(idEntry.Value)
                ? ReadInt(idEntry.Value, "token_id")
                : null;
            string? sourceToken = sourceFields.TryGetValue("token", out var tokenEntry) ? ReadOptionalString(tokenEntry.Value, "token") : null;
            if ((tokenId is null) == (sourceToken is null))
            {
                throw Fail(sourceMap, "a model_token source needs exactly one of 'token_id' and 'token'");
            }

            return new TokenEmbeddingSpec(token, TokenEmbeddingSourceKind.ModelToken, model, tokenId, sourceToken, force, line);
        }

        return new TokenEmbeddingSpec(token, TokenEmbeddingSourceKind.Model, ReadModelReference(sourceNode), null, null, force, line);
    }

    private DType? OptionalDType(Dictionary<string, (YamlScalarNode Key, YamlNode Value)> entries, string key)
    {
        if (!entries.TryGetValue(key, out var entry) || IsNull(entry.Value))
        {
            return null;
        }

        string text = ReadString(entry.Value, key);
        // mergekit's dtype_from_name: an optional "torch." prefix, then one of four names.
        string name = text.StartsWith("torch.", StringComparison.Ordinal) ? text["torch.".Length..] : text;
        return name switch
        {
            "bfloat16" => DType.BF16,
            "float16" => DType.F16,
            "float32" => DType.F32,
            "int64" => DType.I64,
            _ => throw Fail(entry.Value, $"unknown {key} '{text}'"
                + (MethodNames.Suggest(name, s_dtypeNames) is { } s ? $" (did you mean '{s}'?)" : $" (expected one of {string.Join(", ", s_dtypeNames)})")),
        };
    }

    private T? Optional<T>(Dictionary<string, (YamlScalarNode Key, YamlNode Value)> entries, string key, Func<YamlNode, T> read)
        where T : class =>
        entries.TryGetValue(key, out var entry) && !IsNull(entry.Value) ? read(entry.Value) : null;

    private YamlNode Required(Dictionary<string, (YamlScalarNode Key, YamlNode Value)> entries, YamlMappingNode owner, string key, string context) =>
        entries.TryGetValue(key, out var entry) && !IsNull(entry.Value)
            ? entry.Value
            : throw Fail(owner, $"{context} is missing required key '{key}'");

    /// <summary>The mapping's entries by key, rejecting keys outside <paramref name="allowed"/> with a suggestion.</summary>
    private Dictionary<string, (YamlScalarNode Key, YamlNode Value)> Entries(YamlMappingNode map, IReadOnlyList<string> allowed, string context)
    {
        var entries = new Dictionary<string, (YamlScalarNode, YamlNode)>(StringComparer.Ordinal);
        foreach (var (keyNode, valueNode) in map.Children)
        {
            string key = KeyName(keyNode);
            if (!allowed.Contains(key))
            {
                string? suggestion = MethodNames.Suggest(key, allowed);
                throw Fail(keyNode, $"unknown {context} key '{key}'"
                    + (suggestion is null ? $" (expected one of: {string.Join(", ", allowed)})" : $" (did you mean '{suggestion}'?)"));
            }

            entries.Add(key, ((YamlScalarNode)keyNode, valueNode));
        }

        return entries;
    }

    private string KeyName(YamlNode keyNode) =>
        keyNode is YamlScalarNode { Value: { } key } ? key : throw Fail(keyNode, "mapping keys must be plain names");

    private string ReadString(YamlNode node, string what)
    {
        if (node is YamlScalarNode scalar)
        {
            YamlScalar value = YamlScalar.Resolve(scalar);
            if (value.Kind == YamlScalarKind.String)
            {
                return value.Text;
            }

            throw Fail(node, value.Kind == YamlScalarKind.Null
                ? $"'{what}' has no value"
                : $"'{what}' must be a string, got {Describe(value)} '{value.Text}' (quote it if it is a name)");
        }

        throw Fail(node, $"'{what}' must be a string, got a {(node is YamlSequenceNode ? "list" : "mapping")}");
    }

    private string? ReadOptionalString(YamlNode node, string what) => IsNull(node) ? null : ReadString(node, what);

    private double ReadNumber(YamlNode node, string what)
    {
        if (node is YamlScalarNode scalar && YamlScalar.Resolve(scalar) is { Kind: YamlScalarKind.Number } value)
        {
            return value.Number;
        }

        throw Fail(node, $"'{what}' must be a number");
    }

    private int ReadInt(YamlNode node, string what)
    {
        double value = node is YamlScalarNode scalar && YamlScalar.Resolve(scalar) is { Kind: YamlScalarKind.Number } number
            ? number.Number
            : double.NaN;
        if (double.IsNaN(value) || value != Math.Floor(value) || value < int.MinValue || value > int.MaxValue)
        {
            throw Fail(node, $"'{what}' must be an integer");
        }

        return (int)value;
    }

    private bool ReadBool(YamlNode node, string what) =>
        node is YamlScalarNode scalar && YamlScalar.Resolve(scalar) is { Kind: YamlScalarKind.Boolean } value
            ? value.Number != 0
            : throw Fail(node, $"'{what}' must be true or false");

    private YamlSequenceNode ExpectNonEmptySequence(YamlNode node, string what, string shape) =>
        node is YamlSequenceNode { Children.Count: > 0 } list
            ? list
            : throw Fail(node, node is YamlSequenceNode ? $"'{what}' is empty" : $"'{what}' must be {shape}");

    private static bool IsNull(YamlNode node) =>
        node is YamlScalarNode scalar && YamlScalar.Resolve(scalar).Kind == YamlScalarKind.Null;

    private static string Describe(YamlScalar value) => value.Kind == YamlScalarKind.Number ? "the number" : "the boolean";

    private static int Line(YamlNode node) => (int)node.Start.Line;
}
