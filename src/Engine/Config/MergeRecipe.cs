using Weld.Engine.SafeTensors;

namespace Weld.Engine.Config;

/// <summary>
/// A parsed mergekit-compatible merge recipe. Exactly one of <see cref="Models"/> and <see cref="Slices"/> is set.
/// </summary>
public sealed class MergeRecipe
{
    /// <summary>Creates a recipe; <see cref="RecipeParser"/> is the usual way to get one.</summary>
    /// <param name="mergeMethod">The merge method name as written.</param>
    /// <param name="mergeMethodLine">The line of <c>merge_method</c>.</param>
    /// <param name="baseModel">The base model, if any.</param>
    /// <param name="models">The <c>models:</c> list, or <see langword="null"/> for a slices recipe.</param>
    /// <param name="slices">The <c>slices:</c> list, or <see langword="null"/> for a models recipe.</param>
    /// <param name="parameters">The global <c>parameters:</c>.</param>
    /// <param name="dtype">The compute dtype, if given.</param>
    /// <param name="outDType">The output dtype, if given.</param>
    /// <param name="tokenizerSource">The <c>tokenizer_source</c>, if given.</param>
    /// <param name="tokenizer">The <c>tokenizer:</c> section, if given.</param>
    /// <param name="chatTemplate">The <c>chat_template</c>, if given.</param>
    /// <param name="name">The <c>name</c> (used by multi-stage recipes), if given.</param>
    /// <param name="yamlText">The recipe's text.</param>
    /// <param name="sourceName">The file name or label used in messages.</param>
    public MergeRecipe(
        string mergeMethod,
        int mergeMethodLine,
        ModelReference? baseModel,
        IReadOnlyList<InputModel>? models,
        IReadOnlyList<OutputSlice>? slices,
        ParameterSet parameters,
        DType? dtype,
        DType? outDType,
        TokenizerSource? tokenizerSource,
        TokenizerSettings? tokenizer,
        string? chatTemplate,
        string? name,
        string yamlText,
        string sourceName)
    {
        ArgumentNullException.ThrowIfNull(mergeMethod);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(yamlText);
        ArgumentNullException.ThrowIfNull(sourceName);
        if ((models is null) == (slices is null))
        {
            throw new ArgumentException("exactly one of models and slices must be given");
        }

        MergeMethod = mergeMethod;
        MergeMethodLine = mergeMethodLine;
        BaseModel = baseModel;
        Models = models;
        Slices = slices;
        Parameters = parameters;
        DType = dtype;
        OutDType = outDType;
        TokenizerSource = tokenizerSource;
        Tokenizer = tokenizer;
        ChatTemplate = chatTemplate;
        Name = name;
        YamlText = yamlText;
        SourceName = sourceName;
    }

    /// <summary>
    /// The <c>align_to</c> model, if given: every other model is permuted to match it (Git Re-Basin weight matching)
    /// before merging.
    /// </summary>
    public ModelReference? AlignTo { get; init; }

    /// <summary>The merge method name, e.g. <c>ties</c>.</summary>
    public string MergeMethod { get; }

    /// <summary>The recipe line of <c>merge_method</c>, for messages about the method.</summary>
    public int MergeMethodLine { get; }

    /// <summary>The recipe's <c>base_model</c>, if any.</summary>
    public ModelReference? BaseModel { get; }

    /// <summary>The <c>models:</c> list (whole-model merges), or <see langword="null"/>.</summary>
    public IReadOnlyList<InputModel>? Models { get; }

    /// <summary>The <c>slices:</c> list (layer-range merges), or <see langword="null"/>.</summary>
    public IReadOnlyList<OutputSlice>? Slices { get; }

    /// <summary>The global <c>parameters:</c> (least specific level of lookup).</summary>
    public ParameterSet Parameters { get; }

    /// <summary>The compute dtype (<c>dtype:</c>), if given.</summary>
    public DType? DType { get; }

    /// <summary>The output storage dtype (<c>out_dtype:</c>), if given.</summary>
    public DType? OutDType { get; }

    /// <summary>The <c>tokenizer_source:</c>, if given.</summary>
    public TokenizerSource? TokenizerSource { get; }

    /// <summary>The <c>tokenizer:</c> section, if given (never together with <see cref="TokenizerSource"/>).</summary>
    public TokenizerSettings? Tokenizer { get; }

    /// <summary>The <c>chat_template:</c> (a template name such as <c>chatml</c> or <c>auto</c>, or template text).</summary>
    public string? ChatTemplate { get; }

    /// <summary>The recipe's <c>name:</c>, if given.</summary>
    public string? Name { get; }

    /// <summary>The recipe text as given to the parser.</summary>
    public string YamlText { get; }

    /// <summary>The file path or label used in messages (<c>name:line: problem</c>).</summary>
    public string SourceName { get; }

    /// <summary>The top-level <c>lines:</c> (LiNeS depth scaling of the merged task vector), if given.</summary>
    public LinesScaling? Lines { get; init; }

    /// <summary>The number of output slices: the length of <see cref="Slices"/>, or 1 for a models recipe.</summary>
    public int SliceCount => Slices?.Count ?? 1;
}
