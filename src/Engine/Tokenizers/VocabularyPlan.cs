using System.Globalization;
using Weld.Engine.Config;
using Weld.Engine.Models;
using Weld.Engine.Planning;

namespace Weld.Engine.Tokenizers;

/// <summary>A token of the output vocabulary that the output tokenizer adds beyond its source's (union / <c>tokens:</c>).</summary>
/// <param name="Id">Its output id.</param>
/// <param name="Content">Its text.</param>
/// <param name="Settings">Its added-token settings (another model's entry, or a plain non-special token).</param>
public sealed record NewToken(int Id, string Content, System.Text.Json.Nodes.JsonObject Settings);

/// <summary>Where the rows of one output embedding row come from when a model lacks the token (or it is forced).</summary>
/// <param name="Rows">(model index, row) pairs averaged; empty: zeros.</param>
/// <param name="Description">For the dry-run: "base", "only model X", "average of N", "zero", "tokens: ...".</param>
public sealed record DefaultRow(IReadOnlyList<(int Model, int Row)> Rows, string Description);

/// <summary>
/// The output vocabulary and, for every model taking part, which of its embedding rows lands on each output row —
/// mergekit's <c>build_tokenizer</c> and <c>PermutedEmbeddings</c>. Built once when planning; the executor reads
/// permuted rows through <see cref="RowMap"/>s, row block by row block.
/// </summary>
public sealed class VocabularyPlan
{
    /// <summary>Output token texts by id (the tokenizer's tokens; rows past them are padding).</summary>
    public required IReadOnlyList<string> Tokens { get; init; }

    /// <summary>Output rows: the tokens, padded up to <c>pad_to_multiple_of</c>.</summary>
    public required int Rows { get; init; }

    /// <summary>The source's tokenizer folder (base, or the named model) the output tokenizer files start from.</summary>
    public required ModelFolder Source { get; init; }

    /// <summary>The vocabulary of <see cref="Source"/>.</summary>
    public required ModelVocabulary SourceVocabulary { get; init; }

    /// <summary>Tokens added beyond the source tokenizer's, in id order.</summary>
    public required IReadOnlyList<NewToken> Added { get; init; }

    /// <summary>Model indexes (into the plan's model list) taking part, in their averaging order.</summary>
    public required IReadOnlyList<int> Models { get; init; }

    /// <summary>Per model index: output row → that model's row, or -1 when it lacks the token.</summary>
    public required IReadOnlyDictionary<int, int[]> Permutations { get; init; }

    /// <summary>Per output token: the row used where a model lacks the token (or forced); null: none (zeros).</summary>
    public required IReadOnlyList<DefaultRow?> Defaults { get; init; }

    /// <summary>Per output token: forced (<c>force: true</c>): every model takes the default row.</summary>
    public required IReadOnlyList<bool> Forced { get; init; }

    /// <summary>Warnings for the log (tokens found nowhere, ...).</summary>
    public required IReadOnlyList<string> Warnings { get; init; }

    /// <summary>
    /// The row map of one model's embed_tokens / lm_head (or of a tensor laid out like it, such as its Fisher
    /// diagonal): <paramref name="donors"/> names, for the model and every model its default rows come from
    /// (<see cref="DonorsOf"/>), the tensor whose rows are read.
    /// </summary>
    public RowMap MapFor(int model, IReadOnlyDictionary<int, RowDonor> donors, long columns) => new(this, model, donors, columns);

    /// <summary>The models whose rows output rows of <paramref name="model"/> read: itself (when it keeps any own row) and every default row's models.</summary>
    public IReadOnlyList<int> DonorsOf(int model)
    {
        var donors = new List<int>();
        for (int r = 0; r < Tokens.Count; r++)
        {
            var (own, fallback) = Source_(model, r);
            if (own >= 0) { if (!donors.Contains(model)) donors.Add(model); continue; }
            if (fallback is null) continue;
            foreach (var (m, _) in fallback.Rows)
                if (!donors.Contains(m)) donors.Add(m);
        }
        return donors;
    }

    /// <summary>Where output row <paramref name="row"/> of model <paramref name="model"/> comes from: its own row, the default, or zeros.</summary>
    internal (int OwnRow, DefaultRow? Default) Source_(int model, int row)
    {
        if (row >= Tokens.Count) return (-1, null);
        int own = Permutations[model][row];
        if (own >= 0 && !Forced[row]) return (own, null);
        return (-1, Defaults[row]);
    }

    /// <summary>For the dry-run: how many output rows of each model come from where.</summary>
    public IEnumerable<(int Model, int Own, Dictionary<string, int> Other)> RowCounts()
    {
        foreach (int m in Models)
        {
            int own = 0;
            var other = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int r = 0; r < Rows; r++)
            {
                var (o, d) = Source_(m, r);
                if (o >= 0) { own++; continue; }
                string what = r >= Tokens.Count ? "padding (mean of the token rows)" : d?.Description ?? "zero (no source)";
                other[what] = other.GetValueOrDefault(what) + 1;
            }
            yield return (m, own, other);
        }
    }

    /// <summary>
    /// Builds the plan for a recipe with <c>tokenizer_source</c> / <c>tokenizer:</c>, or returns null when the recipe
    /// keeps the old behaviour (no tokenizer settings; or plain <c>tokenizer_source: base | model</c> with a model
    /// lacking a tokenizer (tokenizer.json or tokenizer.model), where the tokenizer is copied and embeddings cropped to the common rows).
    /// </summary>
    public static VocabularyPlan? Build(MergeRecipe recipe, ModelSet models, IReadOnlyList<ModelReference> referenced, ModelReference baseRef)
    {
        TokenizerSource? source = recipe.Tokenizer?.Source ?? recipe.TokenizerSource;
        if (source is null) return null;
        string at(int line) => $"{recipe.SourceName}:{line}";
        if (recipe.Tokenizer is null && source.Kind != TokenizerSourceKind.Union
            && referenced.Any(r => !ModelVocabulary.HasTokenizer(models[r])))
            return null;

        // Vocabularies: the base's (stripped to its config vocab_size), then every other referenced model's.
        var indexes = new List<int>();
        var vocabs = new Dictionary<int, ModelVocabulary>();
        int baseIndex = models.IndexOf(baseRef);
        foreach (ModelReference r in new[] { baseRef }.Concat(referenced))
        {
            int i = models.IndexOf(r);
            if (vocabs.ContainsKey(i)) continue;
            try
            {
                vocabs[i] = ModelVocabulary.Load(models.Folders[i]);
            }
            catch (WeldException e)
            {
                throw new RecipeException($"{at(source.Line)}: tokenizer {SourceText(source)}: {e.Message}");
            }
            indexes.Add(i);
        }
        var order = referenced.Select(models.IndexOf).Distinct().ToList();
        if (!order.Contains(baseIndex)) order.Insert(0, baseIndex);

        ModelVocabulary baseVocab = vocabs[baseIndex];
        ModelFolder sourceFolder;
        ModelVocabulary sourceVocab;
        var tokens = new List<string>();
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        var added = new List<NewToken>();
        void Add(string token, System.Text.Json.Nodes.JsonObject settings)
        {
            if (ids.ContainsKey(token)) return;
            ids[token] = tokens.Count;
            added.Add(new NewToken(tokens.Count, token, settings));
            tokens.Add(token);
        }
        void Start(ModelVocabulary v)
        {
            // The source tokenizer's own ids; a gap in them (an id no token holds) is an error, as the rows would be ambiguous.
            var byId = new string?[v.Tokens.Count == 0 ? 0 : v.Tokens.Values.Max() + 1];
            foreach (var (t, id) in v.Tokens) byId[id] = t;
            for (int id = 0; id < byId.Length; id++)
            {
                string t = byId[id] ?? throw new RecipeException($"{at(source.Line)}: {v.Path}: no token has id {id}; Weld needs contiguous ids to build a vocabulary");
                ids[t] = id;
                tokens.Add(t);
            }
        }

        switch (source.Kind)
        {
            case TokenizerSourceKind.Base:
                sourceFolder = models.Folders[baseIndex];
                sourceVocab = baseVocab;
                Start(baseVocab);
                break;
            case TokenizerSourceKind.Model:
                int mi = models.IndexOf(source.Model!);
                sourceFolder = models.Folders[mi];
                try
                {
                    // mergekit loads the named tokenizer as it is (not stripped to vocab_size).
                    sourceVocab = ModelVocabulary.Load(sourceFolder, cutAtVocabSize: false);
                }
                catch (WeldException e)
                {
                    throw new RecipeException($"{at(source.Line)}: tokenizer source {source.Model}: {e.Message}");
                }
                Start(sourceVocab);
                break;
            default:
                sourceFolder = models.Folders[baseIndex];
                sourceVocab = baseVocab;
                Start(baseVocab);
                // Regular tokens of the other models (id order) that the base lacks, then their added tokens, first settings win.
                var addedSettings = new Dictionary<string, System.Text.Json.Nodes.JsonObject>(StringComparer.Ordinal);
                foreach (int i in indexes)
                    foreach (AddedToken a in vocabs[i].Added)
                        addedSettings.TryAdd(a.Content, a.Settings);
                foreach (int i in indexes)
                {
                    if (i == baseIndex) continue;
                    foreach (var (t, _) in vocabs[i].InIdOrder())
                        if (!addedSettings.ContainsKey(t) && !baseVocab.Tokens.ContainsKey(t)) Add(t, PlainToken(t));
                }
                foreach (int i in indexes)
                    foreach (AddedToken a in vocabs[i].Added)
                        Add(a.Content, addedSettings[a.Content]);
                break;
        }

        if (sourceVocab.Pieces is { } pieces && pieces.Count > sourceVocab.EmbeddingRows)
            throw new RecipeException(string.Create(CultureInfo.InvariantCulture,
                $"{at(source.Line)}: {sourceVocab.Path} has {pieces.Count} pieces, but its config's vocab_size is {sourceVocab.EmbeddingRows}: ") +
                "Weld does not cut pieces out of a sentencepiece model; give this model a tokenizer.json (save it once with transformers' fast tokenizer) or take the tokenizer from another model");

        // tokens: keys the vocabulary lacks are added (mergekit's add_tokens).
        IReadOnlyList<TokenEmbeddingSpec> specs = recipe.Tokenizer?.Tokens ?? [];
        foreach (TokenEmbeddingSpec spec in specs) Add(spec.Token, PlainToken(spec.Token));

        int count = tokens.Count;
        int rows = count;
        if (recipe.Tokenizer?.PadToMultipleOf is int pad && rows % pad != 0) rows += pad - rows % pad;

        // Permutations: output row → each model's row (-1: absent, or an id at / above its vocab_size).
        var permutations = new Dictionary<int, int[]>();
        foreach (int m in order)
        {
            var p = new int[count];
            ModelVocabulary v = vocabs[m];
            for (int r = 0; r < count; r++) p[r] = v.Tokens.TryGetValue(tokens[r], out int id) && id < v.EmbeddingRows ? id : -1;
            permutations[m] = p;
        }

        var defaults = new DefaultRow?[count];
        var forced = new bool[count];
        var warnings = new List<string>();
        var specByToken = new Dictionary<string, TokenEmbeddingSpec>(StringComparer.Ordinal);
        foreach (TokenEmbeddingSpec spec in specs) specByToken[spec.Token] = spec;
        string Name(int m) => referenced.FirstOrDefault(r => models.IndexOf(r) == m)?.ToString() ?? baseRef.ToString();
        for (int r = 0; r < count; r++)
        {
            string token = tokens[r];
            if (specByToken.TryGetValue(token, out TokenEmbeddingSpec? spec))
            {
                forced[r] = spec.Force;
                defaults[r] = FromSpec(spec, r);
                continue;
            }
            var present = order.Where(m => permutations[m][r] >= 0).ToList();
            if (present.Count == 1)
                defaults[r] = new DefaultRow([(present[0], permutations[present[0]][r])], $"only in {Name(present[0])}");
            else if (present.Count == 0)
            {
                defaults[r] = new DefaultRow([], "zero (in no model)");
                warnings.Add($"token {Quote(token)} (output id {r}) is in no model's vocabulary: its rows are zeros");
            }
            else if (permutations[baseIndex][r] >= 0)
                defaults[r] = new DefaultRow([(baseIndex, permutations[baseIndex][r])], "the base's row");
            else
                defaults[r] = new DefaultRow(present.Select(m => (m, permutations[m][r])).ToList(), $"average of {present.Count} models");
        }

        DefaultRow FromSpec(TokenEmbeddingSpec spec, int r)
        {
            string where = at(spec.Line);
            int ModelOf(ModelReference reference)
            {
                int m = models.IndexOf(reference);
                if (!permutations.ContainsKey(m))
                    throw new RecipeException($"{where}: tokens: {Quote(spec.Token)}: model {reference} is not part of the merge");
                return m;
            }
            switch (spec.SourceKind)
            {
                case TokenEmbeddingSourceKind.Zero:
                    return new DefaultRow([], "tokens: zero");
                case TokenEmbeddingSourceKind.Model:
                {
                    int m = ModelOf(spec.Model!);
                    int row = permutations[m][r];
                    if (row < 0) throw new RecipeException($"{where}: tokens: {Quote(spec.Token)} is not in the vocabulary of {spec.Model}");
                    return new DefaultRow([(m, row)], $"tokens: {spec.Model}");
                }
                case TokenEmbeddingSourceKind.ModelToken:
                {
                    int m = ModelOf(spec.Model!);
                    int id;
                    if (spec.SourceTokenId is int given) id = given;
                    else if (!vocabs[m].Tokens.TryGetValue(spec.SourceToken!, out id))
                        throw new RecipeException($"{where}: tokens: {Quote(spec.Token)}: token {Quote(spec.SourceToken!)} is not in the vocabulary of {spec.Model}");
                    int embeddingRows = models.Folders[m].Config?.VocabSize ?? vocabs[m].EmbeddingRows;
                    if (id < 0 || id >= embeddingRows)
                        throw new RecipeException($"{where}: tokens: {Quote(spec.Token)}: token id {id} is out of range for {spec.Model} ({embeddingRows} rows)");
                    return new DefaultRow([(m, id)], $"tokens: {spec.Model} token {id.ToString(CultureInfo.InvariantCulture)}");
                }
                default:
                {
                    // No source: mergekit's defaults apply (one model → its row; base; average; zero).
                    var present = order.Where(m => permutations[m][r] >= 0).ToList();
                    if (present.Count == 0)
                    {
                        warnings.Add($"token {Quote(spec.Token)} (output id {r}) is in no model's vocabulary: its rows are zeros");
                        return new DefaultRow([], "zero (in no model)");
                    }
                    if (present.Count == 1) return new DefaultRow([(present[0], permutations[present[0]][r])], $"only in {Name(present[0])}");
                    if (permutations[baseIndex][r] >= 0) return new DefaultRow([(baseIndex, permutations[baseIndex][r])], "the base's row");
                    return new DefaultRow(present.Select(m => (m, permutations[m][r])).ToList(), $"average of {present.Count} models");
                }
            }
        }

        return new VocabularyPlan
        {
            Tokens = tokens, Rows = rows, Source = sourceFolder, SourceVocabulary = sourceVocab, Added = added, Models = order,
            Permutations = permutations, Defaults = defaults, Forced = forced, Warnings = warnings,
        };
    }

    private static string SourceText(TokenizerSource source) => source.Kind switch
    {
        TokenizerSourceKind.Union => "union",
        TokenizerSourceKind.Base => "base",
        _ => source.Model!.ToString(),
    };

    private static System.Text.Json.Nodes.JsonObject PlainToken(string token) => new()
    {
        // transformers' add_tokens(str): a non-special token, normalized.
        ["content"] = token, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = true, ["special"] = false,
    };

    internal static string Quote(string token) => System.Text.Json.JsonSerializer.Serialize(token, s_quote);

    private static readonly System.Text.Json.JsonSerializerOptions s_quote = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}

/// <summary>The tensor a <see cref="RowMap"/> reads for one model: which opened folder, which tensor name.</summary>
/// <param name="Folder">Index into the merge's model folders (a model, or the Fisher file of one).</param>
/// <param name="TensorName">The tensor in that folder (lm_head, the tied embed_tokens standing in for it, a Fisher tensor).</param>
public readonly record struct RowDonor(int Folder, string TensorName);

/// <summary>
/// One model's embedding / lm_head as seen in the output vocabulary: output row r is the model's own row for the
/// token, else the default row (another model's row, the average of several, or zeros); padding rows
/// (<c>pad_to_multiple_of</c>) are the mean of the token rows, as mergekit pads. Reads any element range row by row
/// straight from the mapped files, so no permuted copy of the matrix is ever made. The same map over each model's
/// Fisher tensor gives the Fisher rows that go with those embedding rows.
/// </summary>
public sealed class RowMap
{
    private readonly VocabularyPlan _plan;
    private readonly IReadOnlyDictionary<int, RowDonor> _donors;
    private readonly Lock _paddingLock = new();
    private float[]? _paddingRow;

    internal RowMap(VocabularyPlan plan, int model, IReadOnlyDictionary<int, RowDonor> donors, long columns)
    {
        _plan = plan;
        _donors = donors;
        Model = model;
        Columns = columns;
    }

    /// <summary>The model whose rows these are.</summary>
    public int Model { get; }

    /// <summary>Columns per row (hidden size).</summary>
    public long Columns { get; }

    /// <summary>Output elements (rows × columns).</summary>
    public long ElementCount => _plan.Rows * Columns;

    private ModelTensor Donor(IReadOnlyList<ModelFolder> models, int model) =>
        _donors.TryGetValue(model, out RowDonor donor) ? models[donor.Folder].GetTensor(donor.TensorName)
        : throw new WeldException($"{models[model].Path}: the output vocabulary reads rows of this model, but the plan gave no tensor for it");

    /// <summary>
    /// The padding row: the mean of the token rows (mergekit's <c>torch.mean(new_embed[:len(vocab)], dim=0)</c>),
    /// summed in float64 in row order and divided once, so it is the same on any thread count. Computed on first use,
    /// with one extra pass over the token rows.
    /// </summary>
    private float[] PaddingRow(IReadOnlyList<ModelFolder> models, bool rejectNonFinite)
    {
        lock (_paddingLock)
        {
            if (_paddingRow is not null) return _paddingRow;
            int tokens = _plan.Tokens.Count;
            var sum = new double[Columns];
            const int BlockRows = 64;
            var block = new float[BlockRows * Columns];
            for (int first = 0; first < tokens; first += BlockRows)
            {
                int rows = Math.Min(BlockRows, tokens - first);
                Span<float> values = block.AsSpan(0, (int)(rows * Columns));
                Read(models, first * Columns, values, rejectNonFinite);
                for (int r = 0; r < rows; r++)
                {
                    ReadOnlySpan<float> row = values.Slice((int)(r * Columns), (int)Columns);
                    for (int i = 0; i < row.Length; i++) sum[i] += row[i];
                }
            }
            var mean = new float[Columns];
            for (int i = 0; i < mean.Length; i++) mean[i] = tokens == 0 ? 0f : (float)(sum[i] / tokens);
            return _paddingRow = mean;
        }
    }

    /// <summary>Reads output elements [<paramref name="firstElement"/>, + destination.Length) as float32.</summary>
    public void Read(IReadOnlyList<ModelFolder> models, long firstElement, Span<float> destination, bool rejectNonFinite)
    {
        long end = firstElement + destination.Length;
        long position = firstElement;
        float[]? scratch = null;
        while (position < end)
        {
            int row = (int)(position / Columns);
            long column = position - row * Columns;
            int count = (int)Math.Min(Columns - column, end - position);
            Span<float> target = destination.Slice((int)(position - firstElement), count);
            var (own, fallback) = _plan.Source_(Model, row);
            if (row >= _plan.Tokens.Count)
                PaddingRow(models, rejectNonFinite).AsSpan((int)column, count).CopyTo(target);
            else if (own >= 0)
            {
                // Consecutive rows kept in order (most of a vocabulary) are read in one call.
                int run = 1;
                while (position + count < end && _plan.Source_(Model, row + run) is var (next, _) && next == own + run)
                {
                    count += (int)Math.Min(Columns, end - position - count);
                    run++;
                }
                target = destination.Slice((int)(position - firstElement), count);
                Donor(models, Model).ReadFloat32(own * Columns + column, target, rejectNonFinite);
            }
            else if (fallback is null || fallback.Rows.Count == 0)
                target.Clear();
            else if (fallback.Rows.Count == 1)
                Donor(models, fallback.Rows[0].Model).ReadFloat32(fallback.Rows[0].Row * Columns + column, target, rejectNonFinite);
            else
            {
                // The average, summed in float32 in the plan's model order, then divided by the count.
                scratch ??= new float[Columns];
                Span<float> part = scratch.AsSpan(0, count);
                target.Clear();
                foreach (var (m, r) in fallback.Rows)
                {
                    Donor(models, m).ReadFloat32(r * Columns + column, part, rejectNonFinite);
                    for (int i = 0; i < count; i++) target[i] += part[i];
                }
                float n = fallback.Rows.Count;
                for (int i = 0; i < count; i++) target[i] /= n;
            }
            position += count;
        }
    }
}
