namespace Weld.Engine.Tests.Config;

/// <summary>Recipes written the way mergekit's README and examples/ write them.</summary>
internal static class ExampleRecipes
{
    public const string LinearSoup = """
        models:
          - model: psmathur/orca_mini_v3_13b
            parameters:
              weight: 1.0
          - model: WizardLM/WizardLM-13B-V1.2
            parameters:
              weight: 0.3
          - model: garage-bAInd/Platypus2-13B
            parameters:
              weight: 0.5
        merge_method: linear
        dtype: float16
        """;

    public const string Ties = """
        models:
          - model: psmathur/orca_mini_v3_13b
            parameters:
              density: [1, 0.7, 0.1] # density gradient
              weight: 1.0
          - model: garage-bAInd/Platypus2-13B
            parameters:
              density: 0.5
              weight: [0, 0.3, 0.7, 1] # weight gradient
          - model: WizardLM/WizardMath-13B-V1.0
            parameters:
              density: 0.33
              weight:
                - filter: mlp
                  value: 0.5
                - value: 0
        merge_method: ties
        base_model: TheBloke/Llama-2-13B-fp16
        parameters:
          normalize: true
          int8_mask: true
        dtype: float16
        """;

    public const string DareTies = """
        models:
          - model: mistralai/Mistral-7B-v0.1
            # no parameters necessary for base model
          - model: samir-fama/SamirGPT-v1
            parameters:
              density: 0.53
              weight: 0.4
          - model: abacusai/Slerp-CM-mist-dpo
            parameters:
              density: 0.53
              weight: 0.3
        merge_method: dare_ties
        base_model: mistralai/Mistral-7B-v0.1
        parameters:
          int8_mask: true
        dtype: bfloat16
        """;

    public const string Slerp = """
        slices:
          - sources:
              - model: psmathur/orca_mini_v3_13b
                layer_range: [0, 40]
              - model: garage-bAInd/Platypus2-13B
                layer_range: [0, 40]
        merge_method: slerp
        base_model: psmathur/orca_mini_v3_13b
        parameters:
          t:
            - filter: self_attn
              value: [0, 0.5, 0.3, 0.7, 1]
            - filter: mlp
              value: [1, 0.5, 0.7, 0.3, 0]
            - value: 0.5 # fallback for rest of tensors
        dtype: float16
        """;

    public const string Passthrough = """
        slices:
          - sources:
            - model: meta-llama/Llama-2-13b-hf
              layer_range: [0, 24]
          - sources:
            - model: meta-llama/Llama-2-13b-hf
              layer_range: [8, 40]
        merge_method: passthrough
        dtype: bfloat16
        """;

    public const string ModelStock = """
        models:
          - model: NousResearch/Meta-Llama-3-8B-Instruct
          - model: cognitivecomputations/dolphin-2.9-llama3-8b
          - model: Weyaxi/Einstein-v6.1-Llama3-8B
        merge_method: model_stock
        base_model: meta-llama/Meta-Llama-3-8B
        dtype: bfloat16
        """;

    public const string TaskArithmetic = """
        merge_method: task_arithmetic
        base_model: meta-llama/Llama-2-7b-hf
        models:
          - model: meta-llama/Llama-2-7b-hf+someone/llama2-lora@v2
            parameters: {weight: 0.7}
          - model:
              model:
                path: ./local/ft-2
                revision: main
              lora: ./adapters/chat
            parameters:
              weight: 0.3
        parameters:
          lambda: 0.8
          normalize: false
        tokenizer_source: union
        out_dtype: torch.bfloat16
        chat_template: chatml
        """;
}
