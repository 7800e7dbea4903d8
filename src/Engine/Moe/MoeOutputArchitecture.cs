namespace Weld.Engine.Moe;

/// <summary>The MoE layouts <c>weld moe</c> writes.</summary>
public enum MoeOutputArchitecture
{
    /// <summary><c>MixtralForCausalLM</c>: <c>block_sparse_moe.experts.N.w1/w2/w3</c> and <c>block_sparse_moe.gate</c>.</summary>
    Mixtral,

    /// <summary><c>Qwen2MoeForCausalLM</c> (mergekit's "Qwen MoE"): <c>mlp.experts.N.gate_proj/up_proj/down_proj</c>,
    /// <c>mlp.gate</c>, one <c>mlp.shared_expert</c> and its <c>mlp.shared_expert_gate</c>.</summary>
    Qwen2Moe,

    /// <summary><c>Qwen3MoeForCausalLM</c> (mergekit's "Qwen3 MoE", from Qwen3 models): <c>mlp.experts.N.*_proj</c> and
    /// <c>mlp.gate</c>, no shared expert.</summary>
    Qwen3Moe,
}

/// <summary>
/// mergekit-moe's <c>select_output_arch</c>: the output architectures are tried in mergekit's order (Mixtral, DeepSeek
/// MoE, Qwen MoE, Qwen3 MoE), kept when their name starts with the config's <c>architecture</c> (case-insensitive)
/// and when they support the config; Mixtral wins when it qualifies, else the first that does. A config for which
/// mergekit would choose DeepSeek MoE is refused: Weld writes Mixtral, Qwen MoE and Qwen3 MoE.
/// </summary>
public static class MoeArchitectureSelection
{
    private static readonly string[] s_names = ["Mixtral", "DeepSeek MoE", "Qwen MoE", "Qwen3 MoE"];

    /// <summary>Whether a config's <c>architecture</c> names one of mergekit's output architectures (by prefix).</summary>
    public static bool IsKnown(string architecture) =>
        s_names.Any(n => n.StartsWith(architecture, StringComparison.OrdinalIgnoreCase));

    /// <summary>The architecture mergekit would write for <paramref name="config"/>, given each input's <c>model_type</c>.</summary>
    /// <param name="config">The parsed config.</param>
    /// <param name="baseType">The base model's model_type.</param>
    /// <param name="expertTypes">Each expert's model_type, in config order.</param>
    /// <param name="sharedTypes">Each shared expert's model_type, in config order.</param>
    /// <exception cref="WeldException">No architecture fits (the message says why each was ruled out), or mergekit's choice
    /// is one Weld does not write.</exception>
    public static MoeOutputArchitecture Select(MoeConfig config, string? baseType, IReadOnlyList<string?> expertTypes, IReadOnlyList<string?> sharedTypes)
    {
        ArgumentNullException.ThrowIfNull(config);
        var reasons = new List<string>();
        var supported = new List<string>();
        foreach (string name in s_names)
        {
            if (config.Architecture is { } wanted && !name.StartsWith(wanted, StringComparison.OrdinalIgnoreCase)) continue;
            string? why = WhyNot(name, config, baseType, expertTypes, sharedTypes);
            if (why is null) supported.Add(name);
            else reasons.Add($"{name}: {why}");
        }

        string chosen = supported.Contains("Mixtral") ? "Mixtral"
            : supported.Count > 0 ? supported[0]
            : throw new WeldException($"{config.SourcePath}: no MoE output architecture fits this config ({string.Join("; ", reasons)}).");
        return chosen switch
        {
            "Mixtral" => MoeOutputArchitecture.Mixtral,
            "Qwen MoE" => MoeOutputArchitecture.Qwen2Moe,
            "Qwen3 MoE" => MoeOutputArchitecture.Qwen3Moe,
            _ => throw new WeldException(
                $"{config.SourcePath}: mergekit-moe would write a {chosen} model for this config, which weld moe does not write (it writes Mixtral, Qwen MoE = Qwen2-MoE and Qwen3 MoE); for Qwen2-MoE give the shared expert positive_prompts and set architecture: qwen.")
        };
    }

    private static string? WhyNot(string name, MoeConfig config, string? baseType, IReadOnlyList<string?> expertTypes, IReadOnlyList<string?> sharedTypes)
    {
        IReadOnlyList<MoeExpert> shared = config.SharedExperts;
        string? SameTypeIn(bool withShared, params string[] allowed)
        {
            var types = new List<string?> { baseType };
            types.AddRange(expertTypes);
            if (withShared) types.AddRange(sharedTypes);
            if (types.Distinct().Count() != 1) return "needs all input models to have the same model_type";
            return allowed.Contains(types[0]) ? null : $"needs {string.Join(" or ", allowed)} input models, not '{types[0]}'";
        }

        switch (name)
        {
            case "Mixtral":
                return shared.Count > 0 ? "has no shared experts" : SameTypeIn(false, "llama", "mistral");
            case "DeepSeek MoE":
                if (shared.Count > 1) return "takes at most one shared expert";
                if (shared.Count == 1 && (shared[0].PositivePrompts.Count > 0 || shared[0].NegativePrompts.Count > 0)) return "does not gate shared experts";
                return SameTypeIn(true, "llama", "mistral");
            case "Qwen MoE":
                if (shared.Count != 1) return "needs exactly one shared expert";
                if (config.GateMode != "random" && shared[0].PositivePrompts.Count == 0) return "needs the shared expert to have positive_prompts";
                return SameTypeIn(true, "llama", "mistral", "qwen2");
            default:
                return shared.Count > 0 ? "has no shared experts" : SameTypeIn(true, "qwen3");
        }
    }
}
