namespace Weld.Engine.Config;

/// <summary>
/// One model location as mergekit writes it: a Hugging Face repository id or a local folder,
/// optionally pinned to a revision (<c>path@revision</c>).
/// </summary>
/// <param name="Path">The repository id or local folder.</param>
/// <param name="Revision">The revision after <c>@</c>, or <see langword="null"/> when none is given.</param>
public readonly record struct ModelPath(string Path, string? Revision)
{
    /// <summary>The mergekit spelling: <c>path</c> or <c>path@revision</c>.</summary>
    public override string ToString() => Revision is null ? Path : $"{Path}@{Revision}";
}

/// <summary>
/// A reference to an input model, optionally with a LoRA adapter to apply first. mergekit accepts the string
/// form <c>model[@rev][+lora[@rev]]</c> and the mapping form
/// <c>{model: {path, revision}, lora: ..., override_architecture: ...}</c>; both parse to this type.
/// </summary>
/// <remarks>
/// Equality follows mergekit's (pydantic field equality): model path and revision, LoRA path and revision, and
/// architecture override. <see cref="Raw"/> and <see cref="Line"/> say where the reference was written and take
/// no part in equality, so the same model named in two places is the same model.
/// </remarks>
public sealed class ModelReference : IEquatable<ModelReference>
{
    /// <summary>Creates a reference.</summary>
    /// <param name="model">The model location.</param>
    /// <param name="lora">The LoRA adapter location, if any.</param>
    /// <param name="overrideArchitecture">An architecture name that replaces the one in the model's config.</param>
    /// <param name="raw">The text as written in the recipe (the canonical spelling for the mapping form).</param>
    /// <param name="line">The 1-based recipe line, or 0 when the reference was not read from a recipe.</param>
    public ModelReference(ModelPath model, ModelPath? lora, string? overrideArchitecture, string raw, int line)
    {
        ArgumentException.ThrowIfNullOrEmpty(model.Path);
        ArgumentNullException.ThrowIfNull(raw);
        Model = model;
        Lora = lora;
        OverrideArchitecture = overrideArchitecture;
        Raw = raw;
        Line = line;
    }

    /// <summary>The model location.</summary>
    public ModelPath Model { get; }

    /// <summary>The LoRA adapter to merge into <see cref="Model"/> before use (<c>model+lora</c>), if any.</summary>
    public ModelPath? Lora { get; }

    /// <summary>mergekit's <c>override_architecture</c>: replaces the architecture named by the model's config.</summary>
    public string? OverrideArchitecture { get; }

    /// <summary>The reference exactly as written in the recipe (string form), or its canonical spelling.</summary>
    public string Raw { get; }

    /// <summary>The 1-based recipe line the reference was read from (0 when built in code).</summary>
    public int Line { get; }

    /// <summary>
    /// Parses mergekit's string form: one optional <c>+</c> separates model and LoRA, and each part may carry one
    /// <c>@revision</c>.
    /// </summary>
    /// <param name="text">The reference text.</param>
    /// <param name="line">The recipe line to remember (0 when not from a recipe).</param>
    /// <returns>The reference.</returns>
    /// <exception cref="FormatException">More than one <c>+</c>, more than one <c>@</c> in a part, or an empty part.</exception>
    public static ModelReference Parse(string text, int line = 0)
    {
        ArgumentNullException.ThrowIfNull(text);
        // mergekit splits on '+' first (model vs adapter), then each half on '@' (path vs revision).
        string[] chunks = text.Split('+');
        if (chunks.Length > 2)
        {
            throw new FormatException($"model reference '{text}' has more than one '+' (expected 'model' or 'model+lora')");
        }

        ModelPath model = ParsePath(chunks[0], text);
        ModelPath? lora = chunks.Length == 2 ? ParsePath(chunks[1], text) : null;
        return new ModelReference(model, lora, overrideArchitecture: null, text, line);
    }

    /// <summary>Parses one <c>path[@revision]</c> part the way mergekit's <c>ModelPath</c> does.</summary>
    /// <param name="text">The part to parse.</param>
    /// <param name="whole">The whole reference, for the message.</param>
    /// <returns>The path.</returns>
    /// <exception cref="FormatException">More than one <c>@</c>, or an empty path or revision.</exception>
    public static ModelPath ParsePath(string text, string whole)
    {
        ArgumentNullException.ThrowIfNull(text);
        string[] parts = text.Split('@');
        if (parts.Length > 2)
        {
            throw new FormatException($"model path '{text}' in '{whole}' has more than one '@'");
        }

        if (parts[0].Length == 0)
        {
            throw new FormatException($"model reference '{whole}' has an empty model path");
        }

        if (parts.Length == 2 && parts[1].Length == 0)
        {
            throw new FormatException($"model path '{text}' in '{whole}' has an empty revision after '@'");
        }

        return new ModelPath(parts[0], parts.Length == 2 ? parts[1] : null);
    }

    /// <summary>mergekit's spelling: <c>model[@rev]</c> or <c>model[@rev]+lora[@rev]</c>.</summary>
    public override string ToString() => Lora is { } lora ? $"{Model}+{lora}" : Model.ToString();

    /// <inheritdoc/>
    public bool Equals(ModelReference? other) =>
        other is not null
        && Model == other.Model
        && Lora == other.Lora
        && string.Equals(OverrideArchitecture, other.OverrideArchitecture, StringComparison.Ordinal);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as ModelReference);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Model, Lora, OverrideArchitecture);
}
