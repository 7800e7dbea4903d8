using System.Text.Json.Nodes;
using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.Planning;
using Weld.Tests;
using Xunit;
using static Weld.Engine.Tests.Tokenizers.VocabularyFixtures;

namespace Weld.Engine.Tests.Tokenizers;

/// <summary>
/// Output vocabularies (mergekit's tokenizer_source / tokenizer:) over zoo models with added tokens: which row of
/// which model lands on each output row, checked by exact row equality. A linear merge with weight 1 on one model
/// and 0 on the others writes that model's permuted rows unchanged.
/// </summary>
public sealed class VocabularyMergeTests
{
    private const string Embed = "model.embed_tokens.weight";
    private const string Head = "lm_head.weight";

    /// <summary>base adds &lt;|a|&gt; (256); c adds &lt;|b|&gt; (256), &lt;|s|&gt; (257); py adds &lt;|s|&gt; (256), &lt;|a|&gt; (257).</summary>
    private sealed class Three
    {
        public Three(int? baseRows = null, int? pyRows = null, bool tied = false, bool baseTied = false, bool pyTied = false)
        {
            Folder = TestPaths.NewTempDir();
            Base = Make(Path.Combine(Folder, "base"), "lm-base", ["<|a|>"], baseRows, tied || baseTied, seed: 1);
            C = Make(Path.Combine(Folder, "c"), "lm-ft-c", ["<|b|>", "<|s|>"], null, tied, seed: 2);
            Py = Make(Path.Combine(Folder, "py"), "lm-ft-python", ["<|s|>", "<|a|>"], pyRows, tied || pyTied, seed: 3);
        }

        public string Folder { get; }
        public string Base { get; }
        public string C { get; }
        public string Py { get; }

        public string Yaml(string tokenizer, string select, string method = "linear") => $"""
            models:
              - model: {Base}
                parameters: {W(select == "base")}
              - model: {C}
                parameters: {W(select == "c")}
              - model: {Py}
                parameters: {W(select == "py")}
            base_model: {Base}
            merge_method: {method}
            dtype: float32
            {tokenizer}
            """;

        private static string W(bool on) => on ? "{weight: 1.0}" : "{weight: 0.0}";

        public string Merge(string yaml, long shardBytes = 5_000_000_000)
        {
            string output = Path.Combine(TestPaths.NewTempDir(), "out");
            MergeRunner.Run(RecipeParser.Parse(yaml, Path.Combine(Folder, "recipe.yml")),
                new MergeOptions { OutputPath = output, MaxShardBytes = shardBytes, Threads = 2 });
            return output;
        }
    }

    private static float[] Average(params float[][] rows)
    {
        var sum = new float[rows[0].Length];
        foreach (float[] r in rows)
            for (int i = 0; i < sum.Length; i++) sum[i] += r[i];
        for (int i = 0; i < sum.Length; i++) sum[i] /= rows.Length;
        return sum;
    }

    /// <summary>The padding row: the rows' mean, summed in float64 in row order.</summary>
    internal static float[] MeanOfRows(float[][] rows)
    {
        var sum = new double[rows[0].Length];
        foreach (float[] r in rows)
            for (int i = 0; i < sum.Length; i++) sum[i] += r[i];
        return sum.Select(v => (float)(v / rows.Length)).ToArray();
    }

    private static void RowsEqual(float[] expected, string output, string tensor, int row) =>
        Assert.Equal(expected, Row(output, tensor, row));

    [Fact]
    public void Union_puts_the_base_vocabulary_first_then_the_added_tokens_of_the_others_and_permutes_every_model()
    {
        var m = new Three();
        var source = new Dictionary<string, string> { ["base"] = m.Base, ["c"] = m.C, ["py"] = m.Py };
        foreach (string select in new[] { "base", "c", "py" })
        {
            string output = m.Merge(m.Yaml("tokenizer_source: union", select));
            foreach (string tensor in new[] { Embed, Head })
            {
                Assert.Equal(259, Rows(output, tensor));
                foreach (int b in new[] { 0, 65, 255 })
                    RowsEqual(Row(source[select], tensor, b), output, tensor, b);
                // <|a|> (256): base and py hold it (py at 257); c lacks it and takes the base's row.
                RowsEqual(select == "py" ? Row(m.Py, tensor, 257) : Row(m.Base, tensor, 256), output, tensor, 256);
                // <|b|> (257): only c holds it: c's row in every model.
                RowsEqual(Row(m.C, tensor, 256), output, tensor, 257);
                // <|s|> (258): c and py hold it, the base does not: the base takes their average.
                float[] s = select switch
                {
                    "c" => Row(m.C, tensor, 257),
                    "py" => Row(m.Py, tensor, 256),
                    _ => Average(Row(m.C, tensor, 257), Row(m.Py, tensor, 256)),
                };
                RowsEqual(s, output, tensor, 258);
            }

            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!;
            Assert.Equal(259, config["vocab_size"]!.GetValue<int>());
            var tokenizer = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "tokenizer.json")))!;
            var added = tokenizer["added_tokens"]!.AsArray().Select(t => (t!["id"]!.GetValue<int>(), t["content"]!.GetValue<string>(), t["special"]!.GetValue<bool>())).ToList();
            Assert.Equal([(256, "<|a|>", true), (257, "<|b|>", true), (258, "<|s|>", true)], added);
            var decoder = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "tokenizer_config.json")))!["added_tokens_decoder"]!.AsObject();
            Assert.Equal(["256", "257", "258"], decoder.Select(kv => kv.Key).ToArray());
            Assert.Equal("<|s|>", decoder["258"]!["content"]!.GetValue<string>());
            Assert.True(File.Exists(Path.Combine(output, "special_tokens_map.json")));
        }
    }

    [Fact]
    public void Tokens_entries_of_every_kind_and_padding_to_a_multiple()
    {
        var m = new Three();
        string tokenizer = $$"""
            tokenizer:
              source: union
              pad_to_multiple_of: 8
              tokens:
                "<|a|>":
                  source: {kind: model_token, model: {{m.C}}, token_id: 65}
                  force: true
                "<|b|>":
                  source: {kind: zero}
                "<|s|>":
                  source: {{m.Py}}
                "<|new|>":
                  source: {kind: model_token, model: {{m.Base}}, token: "A"}
                "<|none|>": {}
            """;
        var source = new Dictionary<string, string> { ["base"] = m.Base, ["c"] = m.C, ["py"] = m.Py };
        foreach (string select in new[] { "base", "c", "py" })
        {
            string output = m.Merge(m.Yaml(tokenizer, select));
            foreach (string tensor in new[] { Embed, Head })
            {
                // 259 union tokens + <|new|> (259) + <|none|> (260) = 261, padded to 264.
                Assert.Equal(264, Rows(output, tensor));
                RowsEqual(Row(source[select], tensor, 66), output, tensor, 66);
                // force: every model takes c's row of token id 65, even those holding <|a|>.
                RowsEqual(Row(m.C, tensor, 65), output, tensor, 256);
                // zero, not forced: c keeps its own row, the others get zeros.
                RowsEqual(select == "c" ? Row(m.C, tensor, 256) : new float[128], output, tensor, 257);
                // a model source: py's row where a model lacks it (the base), own rows otherwise.
                RowsEqual(select == "c" ? Row(m.C, tensor, 257) : Row(m.Py, tensor, 256), output, tensor, 258);
                // a model_token by text: the base's row of "A" (byte 65), in every model.
                RowsEqual(Row(m.Base, tensor, 65), output, tensor, 259);
                // in no model and no source: zeros.
                RowsEqual(new float[128], output, tensor, 260);
                // The padding rows: the mean of the model's 261 token rows (mergekit), here the selected model's.
                float[] mean = MeanOfRows(Enumerable.Range(0, 261).Select(r => Row(output, tensor, r)).ToArray());
                Assert.NotEqual(new float[128], mean);
                for (int r = 261; r < 264; r++) RowsEqual(mean, output, tensor, r);
            }
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!;
            Assert.Equal(264, config["vocab_size"]!.GetValue<int>());
            var added = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "tokenizer.json")))!["added_tokens"]!.AsArray();
            Assert.Equal(["<|a|>", "<|b|>", "<|s|>", "<|new|>", "<|none|>"], added.Select(t => t!["content"]!.GetValue<string>()).ToArray());
            Assert.False(added[3]!["special"]!.GetValue<bool>());
            Assert.Equal(260, added[4]!["id"]!.GetValue<int>());
        }
    }

    [Fact]
    public void Base_and_model_sources_keep_that_tokenizer_and_permute_into_it()
    {
        var m = new Three();
        string output = m.Merge(m.Yaml("tokenizer_source: base", "c"));
        Assert.Equal(257, Rows(output, Embed));
        RowsEqual(Row(m.Base, Embed, 256), output, Embed, 256); // c lacks <|a|>: the base's row
        output = m.Merge(m.Yaml("tokenizer_source: base", "py"));
        RowsEqual(Row(m.Py, Head, 257), output, Head, 256);
        Assert.Single(JsonNode.Parse(File.ReadAllText(Path.Combine(output, "tokenizer.json")))!["added_tokens"]!.AsArray());

        string yaml = m.Yaml($"tokenizer:\n  source: {m.C}", "base");
        output = m.Merge(yaml);
        Assert.Equal(258, Rows(output, Embed));
        RowsEqual(Row(m.C, Embed, 256), output, Embed, 256); // <|b|> only in c
        RowsEqual(Average(Row(m.C, Embed, 257), Row(m.Py, Embed, 256)), output, Embed, 257); // <|s|>: base lacks it
        Assert.Equal(258, JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!["vocab_size"]!.GetValue<int>());
    }

    [Fact]
    public void Padded_checkpoints_map_tokenizer_ids_and_drop_the_padding_rows()
    {
        // The base has 260 rows for 257 tokens, py 264 rows for 258 tokens.
        var m = new Three(baseRows: 260, pyRows: 264);
        string output = m.Merge(m.Yaml("tokenizer_source: base", "base"));
        Assert.Equal(257, Rows(output, Embed));
        RowsEqual(Row(m.Base, Embed, 256), output, Embed, 256);
        output = m.Merge(m.Yaml("tokenizer_source: union", "base"));
        Assert.Equal(259, Rows(output, Head));
        RowsEqual(Average(Row(m.C, Head, 257), Row(m.Py, Head, 256)), output, Head, 258);
        output = m.Merge(m.Yaml("tokenizer_source: union", "py"));
        RowsEqual(Row(m.Py, Head, 257), output, Head, 256);
        Assert.Equal(259, JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!["vocab_size"]!.GetValue<int>());
    }

    [Fact]
    public void Tied_embeddings_are_permuted_once()
    {
        var m = new Three(tied: true);
        string output = m.Merge(m.Yaml("tokenizer_source: union", "base"));
        using (var folder = Weld.Engine.Models.ModelFolder.Open(output))
            Assert.False(folder.Contains(Head));
        RowsEqual(Row(m.C, Embed, 256), output, Embed, 257);
        RowsEqual(Average(Row(m.C, Embed, 257), Row(m.Py, Embed, 256)), output, Embed, 258);
    }

    [Fact]
    public void A_tied_base_gives_its_embedding_as_lm_head_and_the_output_keeps_the_untied_models_lm_head()
    {
        // base ties lm_head to its embedding (stores none); c and py have their own (mergekit's tied_names).
        var m = new Three(baseTied: true);
        var plan = Plan(m, m.Yaml("tokenizer_source: union", "base"));
        Assert.Contains(plan.Notes, n => n.StartsWith("lm_head.weight: ", StringComparison.Ordinal) && n.Contains("ties it to its embedding", StringComparison.Ordinal));
        foreach (string select in new[] { "base", "c", "py" })
        {
            string output = m.Merge(m.Yaml("tokenizer_source: union", select));
            Assert.Equal(259, Rows(output, Head));
            // The base's lm_head rows are its embedding rows.
            string ownHead = select == "base" ? Embed : Head;
            string own = select switch { "base" => m.Base, "c" => m.C, _ => m.Py };
            foreach (int b in new[] { 0, 65, 255 })
                RowsEqual(Row(own, ownHead, b), output, Head, b);
            // <|a|>: c lacks it and takes the base's row, which for lm_head is the base's embedding row.
            RowsEqual(select == "py" ? Row(m.Py, Head, 257) : Row(m.Base, Embed, 256), output, Head, 256);
            RowsEqual(Row(m.C, Head, 256), output, Head, 257); // <|b|>: only c
            RowsEqual(select switch
            {
                "c" => Row(m.C, Head, 257),
                "py" => Row(m.Py, Head, 256),
                _ => Average(Row(m.C, Head, 257), Row(m.Py, Head, 256)),
            }, output, Head, 258);
            RowsEqual(select == "py" ? Row(m.Py, Embed, 257) : Row(m.Base, Embed, 256), output, Embed, 256); // embeddings unchanged
            // The base's config said tie_word_embeddings: true; the output's lm_head would be ignored under it.
            Assert.False(JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!["tie_word_embeddings"]!.GetValue<bool>());
        }
    }

    [Fact]
    public void A_tied_model_among_untied_ones_gives_its_embedding_rows_where_others_take_its_lm_head_rows()
    {
        var m = new Three(pyTied: true);
        string output = m.Merge(m.Yaml("tokenizer_source: union", "py"));
        RowsEqual(Row(m.Py, Embed, 65), output, Head, 65);
        RowsEqual(Row(m.Py, Embed, 256), output, Head, 258); // <|s|>: py's own (embedding) row
        RowsEqual(Row(m.Py, Embed, 257), output, Head, 256); // <|a|>
        RowsEqual(Row(m.C, Head, 256), output, Head, 257); // <|b|>: c's lm_head row
        output = m.Merge(m.Yaml("tokenizer_source: union", "base"));
        RowsEqual(Average(Row(m.C, Head, 257), Row(m.Py, Embed, 256)), output, Head, 258); // the base lacks <|s|>: c's and py's rows
        Assert.False(JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!["tie_word_embeddings"]!.GetValue<bool>());
    }

    [Fact]
    public void Without_a_tokenizer_section_a_tied_model_also_gives_its_embedding_as_lm_head()
    {
        string folder = TestPaths.NewTempDir();
        string tied = Make(Path.Combine(folder, "tied"), "lm-base", [], tied: true, seed: 1);
        string untied = Make(Path.Combine(folder, "untied"), "lm-ft-c", [], seed: 2);
        foreach (var (first, second) in new[] { (tied, untied), (untied, tied) })
        {
            foreach (bool selectFirst in new[] { true, false })
            {
                string output = Path.Combine(TestPaths.NewTempDir(), "out");
                MergeRunner.Run(RecipeParser.Parse($"""
                    models:
                      - model: {first}
                        parameters: {(selectFirst ? "{weight: 1.0}" : "{weight: 0.0}")}
                      - model: {second}
                        parameters: {(selectFirst ? "{weight: 0.0}" : "{weight: 1.0}")}
                    merge_method: linear
                    dtype: float32
                    """, Path.Combine(folder, "recipe.yml")), new MergeOptions { OutputPath = output, Threads = 2 });
                string selected = selectFirst ? first : second;
                foreach (int row in new[] { 0, 7, 255 })
                    RowsEqual(Row(selected, selected == tied ? Embed : Head, row), output, Head, row);
                Assert.False(JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!["tie_word_embeddings"]!.GetValue<bool>());
            }
        }
    }

    private static MergePlan Plan(Three m, string yaml)
    {
        using var models = new ModelSet(m.Folder);
        return MergePlanner.Plan(RecipeParser.Parse(yaml, Path.Combine(m.Folder, "recipe.yml")), models);
    }

    [Theory]
    [InlineData("linear", "{weight: 0.5}")]
    [InlineData("ties", "{weight: 0.5, density: 0.5}")]
    [InlineData("task_arithmetic", "{weight: 0.5}")]
    [InlineData("dare_ties", "{weight: 0.5, density: 0.5}")]
    [InlineData("breadcrumbs_ties", "{weight: 0.5, density: 0.5}")]
    [InlineData("model_stock", "{}")]
    public void Every_method_merges_the_permuted_rows(string method, string parameters)
    {
        var m = new Three();
        string yaml = m.Yaml("tokenizer_source: union", "c", method).Replace("{weight: 0.0}", parameters).Replace("{weight: 1.0}", parameters);
        string output = m.Merge(yaml);
        Assert.Equal(259, Rows(output, Embed));
        // <|b|> holds c's row in every model: a task-vector method gives it back unchanged (its deltas are 0).
        if (method is "ties" or "task_arithmetic" or "dare_ties" or "breadcrumbs_ties")
            RowsEqual(Row(m.C, Embed, 256), output, Embed, 257);
    }

    /// <summary>
    /// Rows gathered into the output vocabulary take DARE's drop after the gather (DecodeDrop.Apply), keyed by their
    /// index in the output tensor: the bytes of the method's own drop pass.
    /// </summary>
    [Fact]
    public void Dare_drops_the_permuted_rows_as_the_method_would()
    {
        var m = new Three();
        string yaml = m.Yaml("tokenizer_source: union", "c", "dare_ties")
            .Replace("{weight: 0.0}", "{weight: 0.5, density: 0.4}").Replace("{weight: 1.0}", "{weight: 0.7, density: 0.6}");
        var recipe = RecipeParser.Parse(yaml, Path.Combine(m.Folder, "recipe.yml"));
        byte[] Merge(bool dropInDecode)
        {
            string output = Path.Combine(TestPaths.NewTempDir(), "out");
            MergeRunner.Run(recipe, new MergeOptions { OutputPath = output, Threads = 2, Seed = 3, DropInDecode = dropInDecode });
            return Merging.RecipeHarness.TensorFileBytes(output);
        }
        Assert.True(Merge(dropInDecode: false).AsSpan().SequenceEqual(Merge(dropInDecode: true)), "the drop in the decode changed the permuted rows");
    }

    [Fact]
    public void Parts_and_finalize_give_the_bytes_of_one_run()
    {
        // With padding (its mean computed once per row map) and a tied model among untied ones; 2 threads against 1.
        var m = new Three(pyTied: true);
        string yaml = m.Yaml("tokenizer:\n  source: union\n  pad_to_multiple_of: 8", "c", "ties").Replace("{weight: 0.0}", "{weight: 0.5, density: 0.5}");
        string whole = m.Merge(yaml, shardBytes: 400_000);
        string output = Path.Combine(TestPaths.NewTempDir(), "out");
        var recipe = RecipeParser.Parse(yaml, Path.Combine(m.Folder, "recipe.yml"));
        foreach (string part in new[] { "1/2", "2/2" })
            MergeRunner.Run(recipe, new MergeOptions { OutputPath = output, MaxShardBytes = 400_000, Threads = 1, Part = PartSelection.Parse(part) });
        MergeRunner.Finalize(output);
        Assert.Equal(Merging.RecipeHarness.TensorFileBytes(whole), Merging.RecipeHarness.TensorFileBytes(output));
        Assert.Equal(File.ReadAllText(Path.Combine(whole, "tokenizer.json")), File.ReadAllText(Path.Combine(output, "tokenizer.json")));
    }

    [Fact]
    public void Bad_token_sources_are_recipe_errors()
    {
        var m = new Three();
        string other = Make(Path.Combine(m.Folder, "other"), "lm-ft-markup", [], seed: 4);
        RecipeException PlanError(string tokenizer)
        {
            using var models = new ModelSet(m.Folder);
            return Assert.Throws<RecipeException>(() => MergePlanner.Plan(RecipeParser.Parse(m.Yaml(tokenizer, "base"), "t.yml"), models));
        }
        Assert.Contains("not part of the merge", PlanError($$$"""
            tokenizer:
              tokens:
                "<|x|>": {source: {kind: model_token, model: {{{other}}}, token_id: 3}}
            """).Message);
        Assert.Contains("\"<|q|>\" is not in the vocabulary", PlanError($$$"""
            tokenizer:
              tokens:
                "<|x|>": {source: {kind: model_token, model: {{{m.C}}}, token: "<|q|>"}}
            """).Message);
        Assert.Contains("out of range", PlanError($$$"""
            tokenizer:
              tokens:
                "<|x|>": {source: {kind: model_token, model: {{{m.C}}}, token_id: 258}}
            """).Message);
        Assert.Contains("is not in the vocabulary of", PlanError($$$"""
            tokenizer:
              tokens:
                "<|b|>": {source: {{{m.Py}}}}
            """).Message);

        File.Delete(Path.Combine(m.Py, "tokenizer.json"));
        File.WriteAllBytes(Path.Combine(m.Py, "tokenizer.model"), [0x0A, 0x05, 0x0A]);
        string message = PlanError("tokenizer_source: union").Message;
        Assert.Contains(Path.Combine(m.Py, "tokenizer.model") + ": not a sentencepiece model", message);
        Assert.Contains("runs past the end", message);
    }
}

/// <summary><see cref="Weld.Engine.Tokenizers.RowMap"/> reads any element range, row-aligned or not, the same as the whole matrix.</summary>
public sealed class RowMapTests
{
    [Fact]
    public void Any_element_range_reads_the_same_values_as_the_whole_matrix()
    {
        string folder = TestPaths.NewTempDir();
        string a = Make(Path.Combine(folder, "a"), "lm-base", ["<|a|>"], rows: 260, seed: 1);
        string b = Make(Path.Combine(folder, "b"), "lm-ft-c", ["<|b|>", "<|a|>"], seed: 2);
        using var models = new ModelSet(folder);
        var plan = MergePlanner.Plan(RecipeParser.Parse($"""
            models:
              - model: {a}
                parameters: {"{weight: 1}"}
              - model: {b}
                parameters: {"{weight: 1}"}
            merge_method: linear
            tokenizer: {"{source: union, pad_to_multiple_of: 16}"}
            """, "t.yml"), models);
        foreach (TensorSource source in plan.Tensors.Where(t => t.Header.Name == "lm_head.weight").SelectMany(t => t.Inputs))
        {
            var map = source.Rows!;
            Assert.Equal(272 * 128, map.ElementCount);
            var whole = new float[map.ElementCount];
            map.Read(models.Folders, 0, whole, rejectNonFinite: true);
            var random = new Random(5);
            for (int i = 0; i < 200; i++)
            {
                long start = random.NextInt64(whole.Length);
                int length = (int)Math.Min(whole.Length - start, random.Next(1, 2000));
                var part = new float[length];
                map.Read(models.Folders, start, part, rejectNonFinite: true);
                Assert.Equal(whole.AsSpan((int)start, length).ToArray(), part);
            }
            // The rows themselves: own rows in order, <|b|> from b in a, padding the mean of the 258 token rows.
            Assert.Equal(Row(source.Model == models.IndexOf(ModelReference.Parse(a, 0)) ? a : b, "lm_head.weight", 7), whole.AsSpan(7 * 128, 128).ToArray());
            Assert.Equal(Row(b, "lm_head.weight", 256), whole.AsSpan(257 * 128, 128).ToArray());
            float[] mean = VocabularyMergeTests.MeanOfRows(Enumerable.Range(0, 258).Select(r => whole.AsSpan(r * 128, 128).ToArray()).ToArray());
            for (int r = 258; r < 272; r++) Assert.Equal(mean, whole.AsSpan(r * 128, 128).ToArray());
        }
    }
}
