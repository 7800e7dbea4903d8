namespace Weld.Engine.Config;

/// <summary>Where the output tokenizer comes from.</summary>
public enum TokenizerSourceKind
{
    /// <summary><c>union</c>: the union of all input vocabularies.</summary>
    Union,
    /// <summary><c>base</c>: the base model's tokenizer.</summary>
    Base,
    /// <summary>A named model's tokenizer.</summary>
    Model,
}

/// <summary>A tokenizer source: <c>union</c>, <c>base</c> or a model reference.</summary>
/// <param name="Kind">Which kind of source.</param>
/// <param name="Model">The model when <paramref name="Kind"/> is <see cref="TokenizerSourceKind.Model"/>.</param>
/// <param name="Line">The recipe line.</param>
public sealed record TokenizerSource(TokenizerSourceKind Kind, ModelReference? Model, int Line);

/// <summary>Where the embedding of one added or forced token comes from.</summary>
public enum TokenEmbeddingSourceKind
{
    /// <summary>No source given: mergekit's default choice.</summary>
    Default,
    /// <summary><c>kind: model_token</c>: copy the embedding of a token (by id or text) from a model.</summary>
    ModelToken,
    /// <summary><c>kind: zero</c>: a zero vector.</summary>
    Zero,
    /// <summary>A model reference: the same token's embedding in that model.</summary>
    Model,
}

/// <summary>One entry of <c>tokenizer.tokens</c>.</summary>
/// <param name="Token">The token text (the mapping key).</param>
/// <param name="SourceKind">Where its embedding comes from.</param>
/// <param name="Model">The model for <see cref="TokenEmbeddingSourceKind.ModelToken"/> and <see cref="TokenEmbeddingSourceKind.Model"/>.</param>
/// <param name="SourceTokenId">For <see cref="TokenEmbeddingSourceKind.ModelToken"/>: the token id to copy.</param>
/// <param name="SourceToken">For <see cref="TokenEmbeddingSourceKind.ModelToken"/>: the token text to copy.</param>
/// <param name="Force">Whether to overwrite the embedding even when the token already exists.</param>
/// <param name="Line">The recipe line.</param>
public sealed record TokenEmbeddingSpec(
    string Token,
    TokenEmbeddingSourceKind SourceKind,
    ModelReference? Model,
    int? SourceTokenId,
    string? SourceToken,
    bool Force,
    int Line);

/// <summary>mergekit's <c>tokenizer:</c> section.</summary>
/// <param name="Source">The tokenizer source (<c>union</c> when not given, as mergekit).</param>
/// <param name="Tokens">Per-token embedding sources, in recipe order.</param>
/// <param name="PadToMultipleOf">Pad the vocabulary to a multiple of this, when given.</param>
/// <param name="Line">The recipe line.</param>
public sealed record TokenizerSettings(
    TokenizerSource Source,
    IReadOnlyList<TokenEmbeddingSpec> Tokens,
    int? PadToMultipleOf,
    int Line);
