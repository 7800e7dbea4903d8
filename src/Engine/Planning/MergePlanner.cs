using System.Globalization;
using Weld.Engine.Config;
using Weld.Engine.Methods;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Engine.Tokenizers;

namespace Weld.Engine.Planning;

/// <summary>
/// Turns a recipe into a <see cref="MergePlan"/>: which output tensors exist, which input tensors feed each one
/// and every parameter value — and checks all of it (models, names, shapes, ranges) before any tensor is read.
/// </summary>
public static class MergePlanner
{
    /// <summary>Plans <paramref name="recipe"/> over the models in <paramref name="models"/> (opened on demand).</summary>
    public static MergePlan Plan(MergeRecipe recipe, ModelSet models, ulong seed = 0)
    {
        IMergeMethod method = ResolveMethod(recipe);
        RecipeParameterCheck.Check(recipe, method);
        var slices = SliceLayout.From(recipe, models);
        var notes = new List<string>();
        VocabularyPlan? vocabulary = PlanVocabulary(recipe, models, slices);
        if (vocabulary is not null) notes.AddRange(vocabulary.Warnings);
        var tasks = new List<TensorTask>();
        var outputNames = new HashSet<string>(StringComparer.Ordinal);

        ModelFolder template = models.Folders[slices[0].Template];
        // Non-layer tensors: before the layers (embeddings) from the first slice, after them from the last.
        var pre = new List<string>();
        var post = new List<string>();
        foreach (string name in template.TensorNames)
            if (LayerNames.LayerIndex(name) is null)
                (LayerNames.IsPreLayer(name) ? pre : post).Add(name);
        string? untiedHead = UntiedHead(template, slices[^1], models);
        if (untiedHead is not null)
        {
            post.Add(untiedHead);
            notes.Add($"{untiedHead}: {template.Path} ties it to its embedding, another model has its own; the output holds {untiedHead} " +
                "(tied models give their embedding, as mergekit) and a tie_word_embeddings: true in config.json is written false");
        }

        int outputLayers = 0;
        foreach (SliceLayout slice in slices) outputLayers += slice.LayerCount;
        var builder = new TaskBuilder(recipe, method, models, notes, outputLayers, vocabulary);
        foreach (string name in pre)
            tasks.Add(builder.Build(slices[0], sliceIndex: 0, name, layerInSlice: null, LayerPosition.PreLayer));
        int outputLayer = 0;
        for (int s = 0; s < slices.Count; s++)
        {
            SliceLayout slice = slices[s];
            for (int offset = 0; offset < slice.LayerCount; offset++, outputLayer++)
            {
                double t = LayerPosition.InSlice(offset, slice.LayerCount);
                int templateLayer = slice.Sources[0].Range.Start + offset;
                foreach (string name in models.Folders[slice.Sources[0].Model].TensorNames)
                {
                    if (LayerNames.LayerIndex(name) != templateLayer) continue;
                    tasks.Add(builder.Build(slice, s, name, offset, t, LayerNames.WithLayer(name, outputLayer), outputLayer));
                }
            }
        }
        foreach (string name in post)
            tasks.Add(builder.Build(slices[^1], slices.Count - 1, name, layerInSlice: null, LayerPosition.PostLayer));

        foreach (var task in tasks)
            if (!outputNames.Add(task.Header.Name))
                throw new RecipeException($"{recipe.SourceName}: the output would hold tensor {task.Header.Name} twice; check the slices' layer ranges");

        return new MergePlan
        {
            Method = method,
            ModelPaths = models.Folders.Select(f => f.Path).ToArray(),
            Tensors = tasks,
            Seed = seed,
            Notes = notes,
            OutputLayerCount = recipe.Slices is null ? null : outputLayer,
            Vocabulary = vocabulary,
        };
    }

    /// <summary>
    /// The lm_head the output needs although the template model ties it (stores none): the first one a model of the
    /// last slice stores. mergekit writes lm_head whenever any model has one; null when none does.
    /// </summary>
    private static string? UntiedHead(ModelFolder template, SliceLayout last, ModelSet models)
    {
        foreach (string name in template.TensorNames)
            if (LayerNames.LayerIndex(name) is null && TiedEmbeddings.IsHead(name)) return null;
        foreach (SliceSource source in last.Sources)
            foreach (string name in models.Folders[source.Model].TensorNames)
                if (LayerNames.LayerIndex(name) is null && TiedEmbeddings.IsHead(name)) return name;
        return null;
    }

    /// <summary>
    /// The output vocabulary of a recipe with <c>tokenizer_source</c> / <c>tokenizer:</c> (mergekit's build_tokenizer):
    /// the base is <c>base_model</c>, else the first model; every model of every slice takes part.
    /// </summary>
    private static VocabularyPlan? PlanVocabulary(MergeRecipe recipe, ModelSet models, IReadOnlyList<SliceLayout> slices)
    {
        if (recipe.TokenizerSource is null && recipe.Tokenizer is null) return null;
        var referenced = new List<ModelReference>();
        if (recipe.BaseModel is { } b) referenced.Add(b);
        foreach (SliceLayout slice in slices)
            foreach (SliceSource source in slice.Sources)
                if (!referenced.Contains(source.Reference)) referenced.Add(source.Reference);
        return VocabularyPlan.Build(recipe, models, referenced, recipe.BaseModel ?? referenced[0]);
    }

    private static IMergeMethod ResolveMethod(MergeRecipe recipe)
    {
        if (MergeMethods.Find(recipe.MergeMethod) is { } method) return method;
        string where = $"{recipe.SourceName}:{recipe.MergeMethodLine}";
        if (MethodNames.MergeKit.Contains(recipe.MergeMethod))
            throw new RecipeException($"{where}: merge_method {recipe.MergeMethod} is a mergekit method Weld does not implement yet; available: {string.Join(", ", MergeMethods.All.Select(m => m.Name))}");
        string? suggestion = MethodNames.Suggest(recipe.MergeMethod, MergeMethods.All.Select(m => m.Name));
        throw new RecipeException($"{where}: unknown merge_method {recipe.MergeMethod}" + (suggestion is null ? "" : $"; did you mean {suggestion}?"));
    }

    /// <summary>Builds one <see cref="TensorTask"/>: inputs, base, parameters, shape checks.</summary>
    private sealed class TaskBuilder(MergeRecipe recipe, IMergeMethod method, ModelSet models, List<string> notes, int outputLayers,
        VocabularyPlan? vocabulary = null)
    {
        public TensorTask Build(SliceLayout slice, int sliceIndex, string templateName, int? layerInSlice, double t,
            string? outputName = null, int? outputLayer = null)
        {
            outputName ??= templateName;
            ModelReference? baseRef = RecipeParameters.BaseModelFor(recipe, sliceIndex);
            if (method.Traits.BaseModel == BaseModelUse.Required && baseRef is null)
                throw new RecipeException($"{recipe.SourceName}: merge_method {method.Name} needs a base_model");
            // Required and optional bases are kept apart from the inputs; BaseModelUse.None merges a base like any model.
            bool needsBase = baseRef is not null && method.Traits.BaseModel != BaseModelUse.None;

            var inputs = new List<(SliceSource Source, string Name)>();
            (SliceSource Source, string Name)? baseInput = null;
            foreach (SliceSource source in slice.Sources)
            {
                string name = layerInSlice is int offset ? LayerNames.WithLayer(templateName, source.Range.Start + offset) : templateName;
                // A model tying lm_head to its embedding gives the embedding (mergekit's tied_names).
                name = TiedEmbeddings.StoredName(models.Folders[source.Model], name) ?? name;
                bool isBase = baseRef is not null && source.Reference.Equals(baseRef);
                if (needsBase && isBase) baseInput = (source, name);
                else if (!source.AddedBase || method.Traits.BaseModel != BaseModelUse.None) inputs.Add((source, name));
            }
            if (needsBase && baseInput is null)
                throw new RecipeException($"{recipe.SourceName}: base_model {baseRef} is not among the sources of slice {sliceIndex + 1}");
            if (recipe.Lines is { } lines && baseInput is null)
                throw new RecipeException($"{recipe.SourceName}:{lines.Line}: lines: scales the merged task vector against the base model, " +
                    $"but merge_method {method.Name} " + (method.Traits.BaseModel == BaseModelUse.None
                        ? "has no base model (it merges a base like any other model)"
                        : "is given no base_model") + "; use a method with a base_model, or drop lines:");
            if (inputs.Count < method.Traits.MinModels || inputs.Count > method.Traits.MaxModels)
                throw new RecipeException($"{recipe.SourceName}: merge_method {method.Name} takes {Describe(method.Traits)} (besides the base), the recipe gives {inputs.Count}");

            // Shapes: every input must match the template, except vocabulary matrices, cropped to common rows.
            ModelFolder templateModel = models.Folders[slice.Sources[0].Model];
            ModelTensor templateTensor = Tensor(templateModel, TiedEmbeddings.StoredName(templateModel, templateName) ?? templateName);
            if (!DTypes.IsFloatingPoint(templateTensor.Info.DType))
                return CopyTask(slice, inputs, baseInput, outputName, templateModel, templateTensor);
            long[] shape = (long[])templateTensor.Info.Shape.Clone();
            var all = new List<(SliceSource Source, string Name)>(inputs);
            if (baseInput is { } b) all.Add(b);
            // With an output vocabulary, every model's rows are permuted into it (mergekit's PermutedEmbeddings).
            bool permuted = vocabulary is not null && LayerNames.IsVocabularyMatrix(templateName) && shape.Length == 2;
            if (permuted) shape[0] = vocabulary!.Rows;
            foreach (var (source, name) in all)
            {
                if (permuted)
                {
                    long[] own = Tensor(models.Folders[source.Model], name).Info.Shape;
                    if (own.Length != 2 || own[1] != shape[1])
                        throw new RecipeException($"shape mismatch for tensor {name}: {models.Folders[source.Model].Path} has [{string.Join(", ", own)}], {templateModel.Path} has [{string.Join(", ", templateTensor.Info.Shape)}] (the rows may differ, the columns may not)");
                    continue;
                }
                ModelFolder folder = models.Folders[source.Model];
                long[] other = Tensor(folder, name).Info.Shape;
                if (other.AsSpan().SequenceEqual(shape)) continue;
                bool croppable = LayerNames.IsVocabularyMatrix(name) && other.Length == 2 && shape.Length == 2 && other[1] == shape[1];
                if (!croppable)
                    throw new RecipeException($"shape mismatch for tensor {name}: {folder.Path} has [{string.Join(", ", other)}], {templateModel.Path} has [{string.Join(", ", shape)}]");
                shape[0] = Math.Min(shape[0], other[0]);
            }
            if (shape[0] != templateTensor.Info.Shape[0] && !permuted)
                notes.Add($"{outputName}: vocabulary sizes differ; using the common {shape[0]} rows (as mergekit does)");

            DType outputDType = recipe.OutDType ?? recipe.DType ?? templateTensor.Info.DType;

            var perModel = new ResolvedParameters[inputs.Count];
            for (int k = 0; k < inputs.Count; k++)
                perModel[k] = Resolve(ParameterScope.PerModel, sliceIndex, inputs[k].Source.Reference, inputs[k].Name, t);
            ResolvedParameters global = Resolve(ParameterScope.Global, sliceIndex, null, outputName, t);
            CheckWeights(perModel, global, outputName);
            TensorSource[] auxiliary = Auxiliary(sliceIndex, inputs, perModel, global, t, permuted ? templateName : null, permuted ? shape[1] : 0);

            return new TensorTask
            {
                Header = new TensorHeader(outputName, outputDType, shape),
                Inputs = inputs.Select(i => Source(i.Source, i.Name, permuted ? templateName : null, shape)).ToArray(),
                Base = baseInput is { } bi ? Source(bi.Source, bi.Name, permuted ? templateName : null, shape) : null,
                ModelParameters = perModel,
                Global = global,
                Auxiliary = auxiliary,
                LinesScale = recipe.Lines?.ScaleFor(outputLayer, outputLayers),
            };
        }

        /// <summary>
        /// A tensor of an integer or boolean dtype (position ids, masks, quantisation tables) is never merged
        /// arithmetically: it is copied from the base model (else the first input) when every input holds the same dtype,
        /// shape and bytes, and is an error naming the tensor otherwise. The bytes are compared here, before any output.
        /// </summary>
        private TensorTask CopyTask(SliceLayout slice, List<(SliceSource Source, string Name)> inputs, (SliceSource Source, string Name)? baseInput,
            string outputName, ModelFolder templateModel, ModelTensor templateTensor)
        {
            var all = new List<(SliceSource Source, string Name)>();
            if (baseInput is { } b) all.Add(b);
            all.AddRange(inputs);
            if (all.Count == 0) all.Add((slice.Sources[0], templateTensor.Name));
            var (firstSource, firstName) = all[0];
            ModelFolder firstFolder = models.Folders[firstSource.Model];
            ModelTensor first = Tensor(firstFolder, firstName);
            string dtype = DTypes.ToName(first.Info.DType);
            foreach (var (source, name) in all.Skip(1))
            {
                ModelFolder folder = models.Folders[source.Model];
                ModelTensor other = Tensor(folder, name);
                if (other.Info.DType != first.Info.DType || !other.Info.Shape.AsSpan().SequenceEqual(first.Info.Shape))
                    throw new RecipeException($"tensor {name} has dtype {dtype} (not floating point, so it is copied, never merged), but " +
                        $"{folder.Path} has {DTypes.ToName(other.Info.DType)} [{string.Join(", ", other.Info.Shape)}] and {firstFolder.Path} has {dtype} [{string.Join(", ", first.Info.Shape)}]");
                if (!SameBytes(first, other))
                    throw new RecipeException($"tensor {name} has dtype {dtype}, which Weld copies rather than merges, but its values differ between " +
                        $"{firstFolder.Path} and {folder.Path}; integer and boolean tensors must be identical in every model");
            }
            return new TensorTask
            {
                Header = new TensorHeader(outputName, first.Info.DType, (long[])first.Info.Shape.Clone()),
                Inputs = [],
                Base = null,
                CopyFrom = new TensorSource(firstSource.Model, firstName, firstSource.RecipeIndex),
                ModelParameters = [],
                Global = new ResolvedParameters(),
            };
        }

        /// <summary>An input; for a matrix permuted into the output vocabulary (<paramref name="permutedName"/>), its row map.</summary>
        private TensorSource Source(SliceSource source, string name, string? permutedName, long[] shape) =>
            new(source.Model, name, source.RecipeIndex) { Rows = permutedName is null ? null : vocabulary!.MapFor(source.Model, EmbeddingDonors(source.Model, permutedName, shape[1]), shape[1]) };

        /// <summary>
        /// For model <paramref name="model"/>'s rows of <paramref name="outputName"/> in the output vocabulary: the tensor
        /// of each model they read (itself and its default rows' donors): the same name, or a tied model's embedding.
        /// </summary>
        private Dictionary<int, RowDonor> EmbeddingDonors(int model, string outputName, long columns)
        {
            var donors = new Dictionary<int, RowDonor>();
            foreach (int m in vocabulary!.DonorsOf(model))
            {
                ModelFolder folder = models.Folders[m];
                string stored = TiedEmbeddings.StoredName(folder, outputName)
                    ?? throw new RecipeException($"{folder.Path}: tensor {outputName} is missing (the output vocabulary takes rows of it for model {models.Folders[model].Path})");
                long[] own = folder.GetTensor(stored).Info.Shape;
                if (own.Length != 2 || own[1] != columns)
                    throw new RecipeException($"shape mismatch for tensor {stored}: {folder.Path} has [{string.Join(", ", own)}], the output has {columns} columns");
                donors[m] = new RowDonor(m, stored);
            }
            return donors;
        }

        private static bool SameBytes(ModelTensor a, ModelTensor b)
        {
            const int Chunk = 1 << 20;
            long length = a.Info.ByteLength;
            byte[] x = new byte[(int)Math.Min(Chunk, Math.Max(length, 1))], y = new byte[x.Length];
            for (long offset = 0; offset < length; offset += Chunk)
            {
                int count = (int)Math.Min(Chunk, length - offset);
                a.ReadBytes(offset, x.AsSpan(0, count));
                b.ReadBytes(offset, y.AsSpan(0, count));
                if (!x.AsSpan(0, count).SequenceEqual(y.AsSpan(0, count))) return false;
            }
            return true;
        }

        /// <summary>
        /// The extra tensor of each input a <see cref="ParameterSpec.TensorFile"/> parameter names: the file is opened
        /// once, the tensor is the input's name between the optional <c>NAME_key_prefix</c> / <c>NAME_key_suffix</c>,
        /// and must have the input tensor's shape. A missing tensor is an error (no silent fallback to unweighted
        /// merging). For a matrix permuted into the output vocabulary (<paramref name="permutedName"/>), each
        /// auxiliary tensor is permuted with its input's row map: a row a model takes from other models comes with
        /// those models' auxiliary rows (a Fisher diagonal goes with the parameters it weighs).
        /// </summary>
        private TensorSource[] Auxiliary(int sliceIndex, List<(SliceSource Source, string Name)> inputs, ResolvedParameters[] perModel,
            ResolvedParameters global, double t, string? permutedName, long columns)
        {
            ParameterSpec? spec = null;
            foreach (ParameterSpec candidate in method.Parameters)
                if (candidate.NamesTensorFile) spec = candidate;
            if (spec is null) return [];
            string prefix = global.Contains(spec.Name + "_key_prefix") ? global.Text(spec.Name + "_key_prefix") : "";
            string suffix = global.Contains(spec.Name + "_key_suffix") ? global.Text(spec.Name + "_key_suffix") : "";
            var sources = new TensorSource[inputs.Count];
            var byModel = new Dictionary<int, RowDonor>();
            for (int k = 0; k < inputs.Count; k++)
            {
                var (source, name) = inputs[k];
                ParameterScalar value = RecipeParameters.Resolve(recipe, spec.Name, sliceIndex, source.Reference, name, t)
                    ?? throw new RecipeException($"{recipe.SourceName}: merge_method {method.Name} needs parameter {spec.Name} for model {source.Reference}");
                int model = models.IndexOf(ModelReference.Parse(perModel[k].Text(spec.Name), value.Line));
                ModelFolder folder = models.Folders[model];
                string key = prefix + name + suffix;
                if (!folder.Contains(key))
                    throw new RecipeException($"{recipe.SourceName}:{value.Line}: {spec.Name} file {folder.Path} has no tensor {key} (for {name} of {source.Reference})");
                long[] other = folder.GetTensor(key).Info.Shape;
                long[] weighed = models.Folders[source.Model].GetTensor(name).Info.Shape;
                if (!other.AsSpan().SequenceEqual(weighed))
                    throw new RecipeException($"{recipe.SourceName}:{value.Line}: {spec.Name} tensor {key} of {folder.Path} has shape [{string.Join(", ", other)}], the tensor {name} of {source.Reference} it weighs has [{string.Join(", ", weighed)}]");
                if (!DTypes.IsFloatingPoint(folder.GetTensor(key).Info.DType))
                    throw new RecipeException($"{recipe.SourceName}:{value.Line}: {spec.Name} tensor {key} of {folder.Path} is not floating-point");
                sources[k] = new TensorSource(model, key, source.RecipeIndex);
                byModel.TryAdd(source.Model, new RowDonor(model, key));
            }
            if (permutedName is null) return sources;
            for (int k = 0; k < inputs.Count; k++)
            {
                int own = inputs[k].Source.Model;
                var donors = new Dictionary<int, RowDonor>();
                foreach (int m in vocabulary!.DonorsOf(own))
                    donors[m] = byModel.TryGetValue(m, out RowDonor donor) ? donor
                        : throw new RecipeException($"{recipe.SourceName}: rows of {permutedName} for {inputs[k].Source.Reference} come from {models.Folders[m].Path} " +
                            $"in the output vocabulary, but that model is not merged into {permutedName}, so it has no {spec.Name} tensor to weigh them");
                sources[k] = sources[k] with { Rows = vocabulary.MapFor(own, donors, columns) };
            }
            return sources;
        }

        private static string Describe(MethodTraits traits) =>
            traits.MaxModels == int.MaxValue ? $"at least {traits.MinModels} model(s)"
            : traits.MinModels == traits.MaxModels ? $"exactly {traits.MinModels} model(s)"
            : $"{traits.MinModels} to {traits.MaxModels} models";

        private static ModelTensor Tensor(ModelFolder folder, string name) =>
            folder.Contains(name) ? folder.GetTensor(name)
            : throw new RecipeException($"{folder.Path}: tensor {name} is missing (the recipe needs it from this model)");

        private ResolvedParameters Resolve(ParameterScope scope, int sliceIndex, ModelReference? model, string tensorName, double t)
        {
            var resolved = new ResolvedParameters();
            foreach (ParameterSpec spec in method.Parameters)
            {
                if (spec.Scope != scope) continue;
                ParameterScalar? value = RecipeParameters.Resolve(recipe, spec.Name, sliceIndex, model, tensorName, t);
                string who = model is null ? "" : $" for model {model}";
                if (value is not { } v)
                {
                    if (spec.Default is null)
                        throw new RecipeException($"{recipe.SourceName}: merge_method {method.Name} needs parameter {spec.Name}{who} (tensor {tensorName})");
                    resolved.Set(spec.Name, spec.Default);
                    continue;
                }
                string at = $"{recipe.SourceName}:{v.Line}";
                if (spec.Choices is { } choices)
                {
                    string text = v.Kind == ParameterScalarKind.String ? v.Text : v.ToString();
                    if (!choices.Contains(text))
                        throw new RecipeException($"{at}: {spec.Name}{who} must be one of {string.Join(", ", choices)}, not {text}");
                    resolved.Set(spec.Name, text);
                }
                else if (spec.IsText)
                {
                    if (v.Kind != ParameterScalarKind.String)
                        throw new RecipeException($"{at}: {spec.Name}{who} must be text (a path or a name), not {v}");
                    resolved.Set(spec.Name, v.Text);
                }
                else if (spec.IsFlag)
                {
                    if (!v.TryGetBoolean(out bool flag))
                        throw new RecipeException($"{at}: {spec.Name}{who} must be true or false, not {v}");
                    resolved.Set(spec.Name, flag);
                }
                else
                {
                    if (!v.TryGetNumber(out double number))
                        throw new RecipeException($"{at}: {spec.Name}{who} must be a number, not {v}");
                    if (spec.CheckRange(number) is { } problem)
                        throw new RecipeException($"{at}: {problem}{who} (tensor {tensorName})");
                    resolved.Set(spec.Name, number);
                }
            }
            return resolved;
        }

        private void CheckWeights(ResolvedParameters[] perModel, ResolvedParameters global, string tensorName)
        {
            if (!global.Contains("normalize") || !global.Flag("normalize") || method is not Linear) return;
            double sum = 0;
            foreach (var p in perModel) sum += p.Number("weight");
            if (sum == 0)
                throw new RecipeException($"{recipe.SourceName}: the weights for tensor {tensorName} sum to 0, so normalize would divide by 0");
        }
    }
}

/// <summary>One input of an output slice: the model, its layer range, its position in the recipe.</summary>
internal sealed record SliceSource(ModelReference Reference, int Model, LayerRange Range, int RecipeIndex, bool AddedBase);

/// <summary>An output slice resolved against the opened models.</summary>
internal sealed record SliceLayout(IReadOnlyList<SliceSource> Sources, int LayerCount)
{
    /// <summary>The model whose tensor list and config the slice follows (its first source).</summary>
    public int Template => Sources[0].Model;

    public static IReadOnlyList<SliceLayout> From(MergeRecipe recipe, ModelSet models)
    {
        var recipeIndex = new Dictionary<ModelReference, int>();
        int IndexOf(ModelReference r)
        {
            if (!recipeIndex.TryGetValue(r, out int i)) recipeIndex[r] = i = recipeIndex.Count;
            return i;
        }

        var layouts = new List<SliceLayout>();
        if (recipe.Slices is { } slices)
        {
            for (int s = 0; s < slices.Count; s++)
            {
                var sources = new List<SliceSource>();
                foreach (InputSlice input in slices[s].Sources)
                {
                    int model = models.IndexOf(input.Model);
                    CheckRange(recipe, models.Folders[model], input);
                    sources.Add(new SliceSource(input.Model, model, input.LayerRange, IndexOf(input.Model), AddedBase: false));
                }
                int count = sources[0].Range.Count;
                foreach (var source in sources)
                    if (source.Range.Count != count)
                        throw new RecipeException($"{recipe.SourceName}:{slices[s].Line}: all sources of a slice must span the same number of layers ({sources[0].Reference} has {count}, {source.Reference} has {source.Range.Count})");
                ModelReference? baseRef = RecipeParameters.BaseModelFor(recipe, s);
                if (baseRef is not null && !sources.Any(x => x.Reference.Equals(baseRef)))
                {
                    // mergekit adds a base that no source names, over the first source's layer range.
                    int model = models.IndexOf(baseRef);
                    sources.Add(new SliceSource(baseRef, model, sources[0].Range, IndexOf(baseRef), AddedBase: true));
                }
                layouts.Add(new SliceLayout(sources, count));
            }
            return layouts;
        }

        var all = new List<SliceSource>();
        int? layers = null;
        IReadOnlyList<ModelReference> refs = RecipeParameters.SourceModels(recipe, 0);
        for (int i = 0; i < refs.Count; i++)
        {
            int model = models.IndexOf(refs[i]);
            int count = LayersOf(models.Folders[model]);
            layers ??= count;
            if (count != layers)
                throw new RecipeException($"{recipe.SourceName}: {refs[i]} has {count} layers, {refs[0]} has {layers}; use slices: to merge models of different depth");
            bool added = recipe.Models is { } listed && !listed.Any(m => m.Model.Equals(refs[i]));
            all.Add(new SliceSource(refs[i], model, new LayerRange(0, count), IndexOf(refs[i]), added));
        }
        return [new SliceLayout(all, layers ?? 0)];
    }

    private static int LayersOf(ModelFolder folder)
    {
        if (folder.Config?.NumHiddenLayers is int n) return n;
        int max = -1;
        foreach (string name in folder.TensorNames)
            if (LayerNames.LayerIndex(name) is int i && i > max) max = i;
        return max + 1;
    }

    private static void CheckRange(MergeRecipe recipe, ModelFolder folder, InputSlice input)
    {
        int layers = LayersOf(folder);
        if (input.LayerRange.Start < 0 || input.LayerRange.End > layers)
            throw new RecipeException(string.Create(CultureInfo.InvariantCulture,
                $"{recipe.SourceName}:{input.Line}: layer_range [{input.LayerRange.Start}, {input.LayerRange.End}] does not fit {input.Model}, which has {layers} layers"));
    }
}
