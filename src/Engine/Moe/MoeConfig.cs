using System.Globalization;
using Weld.Engine.Config;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Weld.Engine.Moe;

/// <summary>One expert of a mergekit-moe config: a model whose MLPs become one expert in every layer.</summary>
/// <param name="SourceModel">The model folder as written.</param>
/// <param name="PositivePrompts">Prompts that should route to this expert (may be empty for random gates).</param>
/// <param name="NegativePrompts">Prompts that should not (their hidden states are subtracted).</param>
/// <param name="NoiseScale">Gaussian noise of this standard deviation added to every expert weight, or null.</param>
/// <param name="ResidualScale">Factor on the expert's down projection (<c>w2</c>), or null.</param>
/// <param name="Line">The 1-based line of the expert's entry in the config.</param>
public sealed record MoeExpert(string SourceModel, IReadOnlyList<string> PositivePrompts, IReadOnlyList<string> NegativePrompts,
    double? NoiseScale, double? ResidualScale, int Line);

/// <summary>
/// mergekit-moe's <c>MoEMergeConfig</c>, read unchanged from its YAML: <c>base_model</c>, <c>experts</c>,
/// <c>gate_mode</c> (hidden | hidden_avg | hidden_last | cheap_embed | random | uniform_random; default hidden),
/// <c>dtype</c>, <c>experts_per_token</c> (default 2), <c>shared_experts</c>, <c>architecture</c>.
/// </summary>
public sealed record MoeConfig(string BaseModel, int BaseModelLine, IReadOnlyList<MoeExpert> Experts, string GateMode, string? DType,
    int ExpertsPerToken, IReadOnlyList<MoeExpert> SharedExperts, string? Architecture, string SourcePath)
{
    /// <summary>The gate modes mergekit accepts.</summary>
    public static readonly IReadOnlyList<string> GateModes = ["hidden", "hidden_avg", "hidden_last", "cheap_embed", "random", "uniform_random"];

    /// <summary>Whether routers are random (no prompts needed).</summary>
    public bool RandomGates => GateMode is "random" or "uniform_random";

    /// <summary>
    /// The experts that get a gate vector, in mergekit's order: the routed experts, then the shared experts when
    /// they have prompts or the gates are random (a Qwen2-MoE shared expert's <c>shared_expert_gate</c>).
    /// </summary>
    public IReadOnlyList<MoeExpert> GatedExperts =>
        SharedExperts.Count > 0 && (RandomGates || SharedExperts.Any(e => e.PositivePrompts.Count > 0)) ? [.. Experts, .. SharedExperts] : Experts;

    /// <summary>Reads and checks a mergekit-moe YAML file.</summary>
    /// <exception cref="WeldException">The file cannot be read, is not valid YAML, or fails mergekit's checks (the message names the line).</exception>
    public static MoeConfig Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new WeldException($"{path}: cannot read the MoE config ({e.Message}).", e);
        }

        return Parse(text, path);
    }

    /// <summary>Parses mergekit-moe YAML text; <paramref name="sourceName"/> names it in errors.</summary>
    public static MoeConfig Parse(string text, string sourceName)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            throw new WeldException($"{sourceName}:{e.Start.Line}: invalid YAML ({e.Message}).", e);
        }

        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new WeldException($"{sourceName}: the MoE config must be a YAML mapping with base_model and experts.");

        string Where(YamlNode node) => $"{sourceName}:{node.Start.Line}";
        var known = new HashSet<string>(["base_model", "experts", "gate_mode", "dtype", "experts_per_token", "shared_experts", "architecture"]);
        string? baseModel = null;
        int baseLine = 0;
        List<MoeExpert>? experts = null;
        List<MoeExpert> shared = [];
        string gateMode = "hidden";
        string? dtype = null, architecture = null;
        int perToken = 2;
        foreach ((YamlNode keyNode, YamlNode value) in root.Children)
        {
            string key = ((YamlScalarNode)keyNode).Value ?? "";
            if (!known.Contains(key))
                throw new WeldException($"{Where(keyNode)}: unknown key '{key}' (a mergekit-moe config has {string.Join(", ", known)}).");
            switch (key)
            {
                case "base_model":
                    baseModel = ModelPathText(value, Where(value));
                    baseLine = (int)value.Start.Line;
                    break;
                case "experts":
                    experts = ReadExperts(value, Where, "experts");
                    break;
                case "shared_experts":
                    if (value is YamlScalarNode { Value: null or "" or "null" or "~" }) break;
                    shared = ReadExperts(value, Where, "shared_experts");
                    break;
                case "gate_mode":
                    gateMode = Scalar(value, Where(value), key) ?? "hidden";
                    if (!GateModes.Contains(gateMode))
                        throw new WeldException($"{Where(value)}: gate_mode '{gateMode}' is not one of {string.Join(", ", GateModes)}.");
                    break;
                case "dtype":
                    dtype = Scalar(value, Where(value), key);
                    break;
                case "architecture":
                    architecture = Scalar(value, Where(value), key);
                    break;
                case "experts_per_token":
                    string? number = Scalar(value, Where(value), key);
                    if (!int.TryParse(number, NumberStyles.Integer, CultureInfo.InvariantCulture, out perToken))
                        throw new WeldException($"{Where(value)}: experts_per_token must be an integer, not '{number}'.");
                    break;
            }
        }

        if (baseModel is null) throw new WeldException($"{sourceName}: base_model is missing.");
        if (experts is null || experts.Count == 0) throw new WeldException($"{sourceName}: experts is missing or empty.");
        var config = new MoeConfig(baseModel, baseLine, experts, gateMode, dtype, perToken, shared, architecture, sourceName);
        config.Check();
        return config;
    }

    /// <summary>mergekit's <c>is_bad_config</c> checks, with the offending line named.</summary>
    private void Check()
    {
        if (ExpertsPerToken < 1)
            throw new WeldException($"{SourcePath}: experts_per_token must be >= 1, not {ExpertsPerToken}.");
        if (Experts.Count < ExpertsPerToken)
            throw new WeldException($"{SourcePath}: {Experts.Count} expert(s) but experts_per_token {ExpertsPerToken}; include at least as many experts as experts_per_token.");
        if (Architecture is not null && !MoeArchitectureSelection.IsKnown(Architecture))
            throw new WeldException($"{SourcePath}: architecture '{Architecture}' matches none of mergekit-moe's output architectures (Mixtral, DeepSeek MoE, Qwen MoE, Qwen3 MoE).");
        if (SharedExperts.Count > 0 && SharedExperts.Any(e => e.PositivePrompts.Count > 0) != SharedExperts.All(e => e.PositivePrompts.Count > 0))
            throw new WeldException($"{SourcePath}:{SharedExperts[0].Line}: give positive_prompts to all shared experts or to none, not a mix.");
        if (RandomGates) return;
        for (int i = 0; i < Experts.Count; i++)
            if (Experts[i].PositivePrompts.Count == 0)
                throw new WeldException($"{SourcePath}:{Experts[i].Line}: expert {i} ({Experts[i].SourceModel}) has no positive_prompts; gate_mode {GateMode} needs them.");
        MoeExpert first = Experts[0];
        if (Experts.Skip(1).All(e => e.PositivePrompts.SequenceEqual(first.PositivePrompts) && e.NegativePrompts.SequenceEqual(first.NegativePrompts)))
            throw new WeldException($"{SourcePath}: the positive and negative prompts are identical for all experts; this will not produce a functioning MoE.");
        if (Experts.Skip(1).All(e => e.SourceModel == first.SourceModel))
            throw new WeldException($"{SourcePath}: all experts are the same model ({first.SourceModel}); the MoE would compute the same function with more memory.");
    }

    private static List<MoeExpert> ReadExperts(YamlNode node, Func<YamlNode, string> where, string key)
    {
        if (node is not YamlSequenceNode list)
            throw new WeldException($"{where(node)}: {key} must be a list of experts (each with source_model).");
        var experts = new List<MoeExpert>();
        for (int i = 0; i < list.Children.Count; i++)
        {
            YamlNode item = list.Children[i];
            if (item is not YamlMappingNode map)
                throw new WeldException($"{where(item)}: {key}[{i}] must be a mapping with source_model.");
            string? source = null;
            IReadOnlyList<string> positive = [], negative = [];
            double? noise = null, residual = null;
            foreach ((YamlNode k, YamlNode v) in map.Children)
            {
                string name = ((YamlScalarNode)k).Value ?? "";
                switch (name)
                {
                    case "source_model": source = ModelPathText(v, where(v)); break;
                    case "positive_prompts": positive = Prompts(v, where, name); break;
                    case "negative_prompts": negative = Prompts(v, where, name); break;
                    case "noise_scale": noise = Number(v, where(v), name); break;
                    case "residual_scale": residual = Number(v, where(v), name); break;
                    default:
                        throw new WeldException($"{where(k)}: {key}[{i}] has an unknown key '{name}' (source_model, positive_prompts, negative_prompts, noise_scale, residual_scale).");
                }
            }

            if (source is null) throw new WeldException($"{where(item)}: {key}[{i}] has no source_model.");
            experts.Add(new MoeExpert(source, positive, negative, noise, residual, (int)item.Start.Line));
        }

        return experts;
    }

    private static string ModelPathText(YamlNode node, string where)
    {
        string? text = node is YamlMappingNode map && map.Children.TryGetValue(new YamlScalarNode("model"), out YamlNode? inner)
            ? (inner is YamlMappingNode m && m.Children.TryGetValue(new YamlScalarNode("path"), out YamlNode? p) ? Scalar(p, where, "path") : Scalar(inner, where, "model"))
            : Scalar(node, where, "model");
        if (string.IsNullOrEmpty(text)) throw new WeldException($"{where}: empty model path.");
        ModelReference reference = ModelReference.Parse(text);
        if (reference.Lora is not null || reference.Model.Revision is not null)
            throw new WeldException($"{where}: '{text}': weld moe takes local model folders (no +lora or @revision).");
        return reference.Model.Path;
    }

    private static IReadOnlyList<string> Prompts(YamlNode node, Func<YamlNode, string> where, string key)
    {
        if (node is YamlScalarNode { Value: null or "" or "null" or "~" }) return [];
        if (node is not YamlSequenceNode list) throw new WeldException($"{where(node)}: {key} must be a list of strings.");
        return list.Children.Select(c => c is YamlScalarNode { Value: { } s } ? s : throw new WeldException($"{where(c)}: {key} entries must be strings.")).ToArray();
    }

    private static string? Scalar(YamlNode node, string where, string key) =>
        node is YamlScalarNode s
            ? (s.Style == ScalarStyle.Plain && s.Value is "null" or "~" or "" ? null : s.Value)
            : throw new WeldException($"{where}: {key} must be a single value.");

    private static double? Number(YamlNode node, string where, string key)
    {
        string? text = Scalar(node, where, key);
        if (text is null) return null;
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && double.IsFinite(value)) return value;
        throw new WeldException($"{where}: {key} must be a number, not '{text}'.");
    }
}
