using Weld.Engine.Alignment;
using Weld.Engine.Compression;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.Moe;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Moe;

/// <summary>MC-SMoE's pieces (<see cref="RoutingStatistics"/>, <see cref="ExpertGrouping"/>, <see cref="ExpertMerging"/>,
/// <see cref="ExpertLowRank"/>) and <see cref="MoeCompressor"/> on a zoo-built MoE.</summary>
public sealed class MoeCompressorTests
{
    private static float[] Read(ModelFolder folder, string name)
    {
        ModelTensor t = folder.GetTensor(name);
        var values = new float[t.ElementCount];
        t.ReadFloat32(0, values);
        return values;
    }

    [Fact]
    public void Routing_statistics_count_top_k_choices_and_the_cosine_of_logit_columns()
    {
        // 4 experts, 3 tokens: column 1 = 2 × column 0, column 3 = −column 2 … known cosines.
        var stats = new RoutingStatistics(layers: 1, experts: 4);
        float[] logits =
        [
            1, 2, 3, -3,
            2, 4, -1, 1,
            0.5f, 1, 2, -2,
        ];
        stats.Observe(0, 3, logits, [2, 1, 1, 0, 2, 1]);
        Assert.Equal([1L, 3, 2, 0], stats.Counts(0).ToArray());
        Assert.Equal([1 / 6.0, 3 / 6.0, 2 / 6.0, 0], stats.Frequencies(0));
        double[] cosine = stats.LogitCosines(0);
        double[] Column(int e) => [logits[e], logits[4 + e], logits[8 + e]];
        double Cos(int a, int b)
        {
            double[] x = Column(a), y = Column(b);
            double dot = 0, nx = 0, ny = 0;
            for (int i = 0; i < 3; i++) { dot += x[i] * y[i]; nx += x[i] * x[i]; ny += y[i] * y[i]; }
            return dot / Math.Sqrt(nx) / Math.Sqrt(ny);
        }

        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 4; b++)
                Assert.Equal(Cos(a, b), cosine[a * 4 + b], 1e-12);
        Assert.Equal(1.0, cosine[0 * 4 + 1], 1e-12);
        Assert.Equal(-1.0, cosine[2 * 4 + 3], 1e-12);
        Assert.Equal(3L, stats.Rows(0));
    }

    [Fact]
    public void Grouping_makes_the_k_most_used_experts_dominant_and_joins_the_others_by_routing_similarity()
    {
        // 5 experts; frequencies rank 3 > 0 > 4 > 1 > 2. Similarities: 1 is closest to 3, 2 to 0, 4 (K = 2) to 3.
        double[] frequency = [0.3, 0.1, 0.05, 0.4, 0.15];
        double[] similarity = new double[25];
        void Set(int a, int b, double value) { similarity[a * 5 + b] = value; similarity[b * 5 + a] = value; }
        for (int i = 0; i < 5; i++) Set(i, i, 1);
        Set(1, 3, 0.9); Set(1, 0, 0.2); Set(1, 4, 0.95);
        Set(2, 0, 0.7); Set(2, 3, 0.6); Set(2, 4, 0.1);
        Set(4, 3, 0.5); Set(4, 0, 0.4);

        ExpertGroups two = ExpertGrouping.Group(frequency, similarity, 2);
        Assert.Equal([0, 3], two.Dominant);
        Assert.Equal([0, 1, 0, 1, 1], two.GroupOf);
        Assert.Equal([3, 1, 4], two.Members(1));

        // K = 3 makes 4 dominant too; 1 then prefers 4 (0.95) over 3 (0.9).
        ExpertGroups three = ExpertGrouping.Group(frequency, similarity, 3);
        Assert.Equal([0, 3, 4], three.Dominant);
        Assert.Equal([0, 2, 0, 1, 2], three.GroupOf);

        // Ties: equal frequencies rank the lower index first; equal similarities go to the more used dominant expert.
        ExpertGroups tied = ExpertGrouping.Group([0.25, 0.25, 0.25, 0.25], new double[16], 2);
        Assert.Equal([0, 1], tied.Dominant);
        Assert.Equal([0, 1, 0, 0], tied.GroupOf);
        Assert.Throws<ArgumentOutOfRangeException>(() => ExpertGrouping.Group(frequency, similarity, 6));
        Assert.Throws<ArgumentOutOfRangeException>(() => ExpertGrouping.Group(frequency, similarity, 0));
    }

    private static float[] RandomValues(Random random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }

    private static IEnumerable<int[]> AllPermutations(int n)
    {
        if (n == 0) { yield return []; yield break; }
        foreach (int[] rest in AllPermutations(n - 1))
            for (int position = 0; position <= rest.Length; position++)
                yield return [.. rest[..position], n - 1, .. rest[position..]];
    }

    [Fact]
    public void Merging_aligns_each_member_to_the_dominant_expert_then_averages_by_frequency_as_a_scalar_reference_does()
    {
        const int h = 3, inter = 5;
        var random = new Random(5);
        ExpertWeights Random() => new(RandomValues(random, inter * h), RandomValues(random, h * inter), RandomValues(random, inter * h));
        ExpertWeights[] members = [Random(), Random(), Random()];
        double[] frequency = [0.5, 0.2, 0.1];

        (ExpertWeights merged, int[][] permutations) = ExpertMerging.Merge(members, frequency, h, inter);

        // Reference: for each member, the permutation p (unit i of the result = unit p[i] of the member) maximising
        // Σ_i ⟨w1_dom[i,:], w1_m[p[i],:]⟩ + ⟨w3 rows⟩ + ⟨w2_dom[:,i], w2_m[:,p[i]]⟩, found by trying all 120.
        double Score(ExpertWeights d, ExpertWeights m, int[] p)
        {
            double s = 0;
            for (int i = 0; i < inter; i++)
                for (int c = 0; c < h; c++)
                    s += (double)d.W1[i * h + c] * m.W1[p[i] * h + c] + (double)d.W3[i * h + c] * m.W3[p[i] * h + c]
                        + (double)d.W2[c * inter + i] * m.W2[c * inter + p[i]];
            return s;
        }

        var expected = new double[3][];
        expected[0] = new double[inter * h];
        expected[1] = new double[h * inter];
        expected[2] = new double[inter * h];
        for (int m = 0; m < members.Length; m++)
        {
            int[] best = Enumerable.Range(0, inter).ToArray();
            if (m > 0)
            {
                double bestScore = double.NegativeInfinity;
                foreach (int[] p in AllPermutations(inter))
                {
                    double s = Score(members[0], members[m], p);
                    if (s > bestScore) (bestScore, best) = (s, p);
                }
            }

            Assert.Equal(best, permutations[m]);
            for (int i = 0; i < inter; i++)
                for (int c = 0; c < h; c++)
                {
                    expected[0][i * h + c] += frequency[m] * members[m].W1[best[i] * h + c];
                    expected[2][i * h + c] += frequency[m] * members[m].W3[best[i] * h + c];
                    expected[1][c * inter + i] += frequency[m] * members[m].W2[c * inter + best[i]];
                }
        }

        double total = frequency.Sum();
        float[] Expected(double[] sum) => sum.Select(v => (float)(v / total)).ToArray();
        // Same float64 sums in the same member order, then one rounding: exact.
        Assert.Equal(Expected(expected[0]), merged.W1);
        Assert.Equal(Expected(expected[1]), merged.W2);
        Assert.Equal(Expected(expected[2]), merged.W3);
    }

    [Fact]
    public void A_group_nobody_routed_to_is_averaged_uniformly()
    {
        var random = new Random(9);
        ExpertWeights a = new(RandomValues(random, 8), RandomValues(random, 8), RandomValues(random, 8));
        ExpertWeights merged = ExpertMerging.Merge([a, a], [0.0, 0.0], 2, 4).Merged;
        Assert.Equal(a.W1, merged.W1);
        Assert.Equal(a.W2, merged.W2);
    }

    [Fact]
    public void Low_rank_truncation_finds_the_rank_of_an_error_budget_and_matches_the_exact_svd_tail()
    {
        const int m = 40, n = 24;
        var random = new Random(3);
        // Rank 3 plus noise of relative size ~1e-4.
        float[] u = RandomValues(random, m * 3), v = RandomValues(random, 3 * n);
        var matrix = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int r = 0; r < 3; r++) s += u[i * 3 + r] * (r + 1.0) * v[r * n + j];
                matrix[i * n + j] = (float)(s + 1e-4 * (random.NextDouble() - 0.5));
            }

        float[] budget = (float[])matrix.Clone();
        LowRankOutcome byError = ExpertLowRank.Truncate(budget, m, n, LowRankTarget.Error(1e-3), seed: 1);
        Assert.Equal(3, byError.Rank);
        Assert.True(byError.RelativeError <= 1e-3, $"{byError.RelativeError}");

        // A fixed rank: the error of an optimal rank-2 truncation, i.e. sqrt(Σ_{i≥2} σᵢ²)/‖W‖, from the exact SVD.
        float[] fixedRank = (float[])matrix.Clone();
        LowRankOutcome two = ExpertLowRank.Truncate(fixedRank, m, n, LowRankTarget.FixedRank(2), seed: 1);
        TruncatedSvd exact = ExactSvd.Compute(matrix, m, n, Math.Min(m, n));
        double tail = 0, all = 0;
        for (int i = 0; i < exact.Rank; i++) { all += (double)exact.S[i] * exact.S[i]; if (i >= 2) tail += (double)exact.S[i] * exact.S[i]; }
        Assert.Equal(2, two.Rank);
        Assert.Equal(Math.Sqrt(tail / all), two.RelativeError, 1e-4);

        float[] full = (float[])matrix.Clone();
        Assert.Equal(new LowRankOutcome(24, 0), ExpertLowRank.Truncate(full, m, n, LowRankTarget.FixedRank(99), seed: 1));
        Assert.Equal(matrix, full);
    }

    /// <summary>
    /// A 4-expert MoE on lm-base whose experts are lm-ft-c's MLP under four different random permutations of its
    /// hidden units (expert 0 unpermuted), stored as float32, routers random.
    /// </summary>
    private static string PermutedCopiesMoe(string folder)
    {
        string identical = Path.Combine(folder, "identical");
        MoeBuilder.Build(MoeConfig.Parse($"""
            base_model: '{TestPaths.Model("lm-base")}'
            gate_mode: random
            dtype: float32
            experts_per_token: 2
            experts:
              - source_model: '{TestPaths.Model("lm-ft-c")}'
              - source_model: '{TestPaths.Model("lm-ft-c")}'
              - source_model: '{TestPaths.Model("lm-ft-c")}'
              - source_model: '{TestPaths.Model("lm-ft-c")}'
            """, Path.Combine(folder, "moe.yml")), identical, false, false, seed: 3);
        string permuted = Path.Combine(folder, "permuted");
        Directory.CreateDirectory(permuted);
        using var source = ModelFolder.Open(identical);
        var random = new Random(11);
        var permutations = new Dictionary<(string Layer, int Expert), int[]>();
        TensorHeader[] headers = source.TensorNames.Select(n => new TensorHeader(n, DType.F32, source.GetTensor(n).Shape)).ToArray();
        using (var writer = new SafeTensorsWriter(Path.Combine(permuted, "model.safetensors"), headers, null))
        {
            foreach (TensorHeader header in headers)
            {
                float[] values = Read(source, header.Name);
                string[] parts = header.Name.Split('.');
                if (parts.Length == 8 && parts[3] == "block_sparse_moe" && parts[5] != "0")
                {
                    int expert = int.Parse(parts[5]);
                    if (!permutations.TryGetValue((parts[2], expert), out int[]? p))
                        permutations[(parts[2], expert)] = p = Enumerable.Range(0, 384).OrderBy(_ => random.Next()).ToArray();
                    values = TensorPermuter.Permute(values, header.Shape, parts[6] == "w2" ? [null, p] : [p, null]);
                }

                writer.WriteFloat32(values);
            }

            writer.Complete();
        }

        File.Copy(Path.Combine(identical, "config.json"), Path.Combine(permuted, "config.json"));
        return permuted;
    }

    [Fact]
    public void An_moe_of_permuted_copies_compresses_to_one_expert_with_the_same_evaluator_outputs()
    {
        string folder = TestPaths.NewTempDir();
        string input = PermutedCopiesMoe(folder);
        string output = Path.Combine(folder, "k1");
        string text = Path.Combine(TestPaths.SharedModels, "eval", "c.txt");
        MoeCompressResult result = MoeCompressor.Compress(input, output,
            new MoeCompressionSettings(1, [text], Window: 64, Bytes: 4096, Skip: 32768), cancel: default);
        Assert.Equal((4, 1, 1), (result.ExpertsBefore, result.ExpertsAfter, result.ExpertsPerToken));
        Assert.Equal(4096L, result.CalibrationTokens); // 64 windows of 64 byte tokens

        using var before = ModelFolder.Open(input);
        using var after = ModelFolder.Open(output);
        Assert.True(File.Exists(Path.Combine(output, OutputFolder.MarkerFileName)));
        Assert.Equal(1, (int)after.Config!.Raw["num_local_experts"]!);
        Assert.Equal(1, (int)after.Config.Raw["num_experts_per_tok"]!);
        for (int layer = 0; layer < 4; layer++)
        {
            // The permuted copies align back onto the dominant one exactly, so their average is the dominant expert's bits.
            int dominant = result.Groups[layer].Dominant[0];
            string p = $"model.layers.{layer}.block_sparse_moe.";
            foreach (string w in (string[])["w1", "w2", "w3"])
                Assert.Equal(Read(before, $"{p}experts.{dominant}.{w}.weight"), Read(after, $"{p}experts.0.{w}.weight"));
            Assert.Equal(Read(before, p + "gate.weight").AsSpan(dominant * 128, 128).ToArray(), Read(after, p + "gate.weight"));
            Assert.Equal(1.0, result.Frequencies[layer].Sum(), 12);
        }

        Assert.Equal(Read(before, "lm_head.weight"), Read(after, "lm_head.weight"));

        // Every expert of the input computes the same function, so top-2 over 4 and top-1 over 1 agree up to float32
        // rounding (the permuted copies sum their hidden units in other orders, and the two routing weights sum to 1
        // in float32): per-window NLL within a relative 1e-5.
        LlamaModel original = LlamaModel.Load(before), compressed = LlamaModel.Load(after);
        int[] tokens = File.ReadAllBytes(text)[..(16 * 64)].Select(x => (int)x).ToArray();
        var a = new double[16];
        var b = new double[16];
        original.ScoreWindows(tokens, 16, 64, a);
        compressed.ScoreWindows(tokens, 16, 64, b);
        for (int w = 0; w < 16; w++) Assert.Equal(a[w], b[w], Math.Abs(a[w]) * 1e-5);
    }

    [Fact]
    public void Bad_inputs_are_refused_with_one_line_naming_the_problem()
    {
        string folder = TestPaths.NewTempDir();
        string text = Path.Combine(TestPaths.SharedModels, "eval", "c.txt");
        var dense = Assert.Throws<WeldException>(() => MoeCompressor.Compress(TestPaths.Model("lm-base"), Path.Combine(folder, "x"), new MoeCompressionSettings(1, [text])));
        Assert.Contains("is not a mixture of experts", dense.Message);
        Assert.False(Directory.Exists(Path.Combine(folder, "x")));
    }
}
