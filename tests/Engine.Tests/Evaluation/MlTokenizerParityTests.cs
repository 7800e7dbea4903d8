using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>
/// Microsoft.ML.Tokenizers against Weld's own <see cref="BpeTokenizer"/> on the zoo's held-out texts, whole: the same
/// ids, exactly, for the zoo's byte vocabulary and for merges learned from the zoo in each pre-tokenizer style.
/// </summary>
public class MlTokenizerParityTests
{
    public static TheoryData<string> Styles => new(ZooBpeFixtures.Styles);

    [Fact]
    public void Zoo_byte_vocabulary_gives_the_byte_ids_through_the_library()
    {
        string path = ZooBpeFixtures.WriteZooBytes(TestPaths.NewTempDir());
        MlBpeTokenizer library = MlBpeTokenizer.Load(path);
        BpeTokenizer own = BpeTokenizer.Load(path);
        foreach (string domain in ZooBpeFixtures.Domains)
        {
            byte[] text = ZooBpeFixtures.Text(domain);
            int[] ids = library.Encode(text);
            Assert.Equal(ByteTokenizer.Instance.Encode(text), ids);
            Assert.Equal(own.Encode(text), ids);
        }
    }

    [Theory]
    [MemberData(nameof(Styles))]
    public void Learned_merges_give_the_same_ids_as_weld_own_bpe(string style)
    {
        string path = ZooBpeFixtures.WriteTrained(TestPaths.NewTempDir(), style);
        MlBpeTokenizer library = MlBpeTokenizer.Load(path);
        BpeTokenizer own = BpeTokenizer.Load(path);
        foreach (string domain in ZooBpeFixtures.Domains)
        {
            byte[] text = ZooBpeFixtures.Text(domain);
            int[] ids = library.Encode(text);
            Assert.Equal(own.Encode(text), ids);
            // The merges are used: far fewer tokens than bytes.
            Assert.True(ids.Length < text.Length * 3 / 4, $"{style}/{domain}: {ids.Length} tokens for {text.Length} bytes");
        }
    }

    [Fact]
    public void Tiktoken_ranks_of_the_learned_vocabulary_give_the_llama3_style_ids()
    {
        string folder = TestPaths.NewTempDir();
        BpeTokenizer own = BpeTokenizer.Load(ZooBpeFixtures.WriteTrained(folder, "llama3"));
        MlTiktokenTokenizer tiktoken = MlTiktokenTokenizer.Load(ZooBpeFixtures.WriteTrainedTiktoken(Path.Combine(folder, "zoo.tiktoken")));
        foreach (string domain in ZooBpeFixtures.Domains)
        {
            byte[] text = ZooBpeFixtures.Text(domain);
            Assert.Equal(own.Encode(text), tiktoken.Encode(text));
        }
    }

    [Fact]
    public void A_folder_picks_the_library_for_a_covered_tokenizer_json_and_weld_own_code_otherwise()
    {
        string folder = TestPaths.NewTempDir();
        ZooBpeFixtures.WriteTrained(folder, "gpt2");
        Assert.IsType<MlBpeTokenizer>(TokenizerLoader.ForFolder(folder, 556));

        // Without the byte symbols the library would drop unknown bytes silently; Weld's own code says which one is missing.
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), """
            {"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}
            """);
        ITokenizer own = TokenizerLoader.ForFolder(folder, 3);
        Assert.IsType<BpeTokenizer>(own);
        Assert.Equal([2, 0], own.Encode("aba"u8));
        var e = Assert.Throws<WeldException>(() => own.Encode("abz"u8));
        Assert.Contains("'z'", e.Message);
    }

    [Fact]
    public void A_merge_the_library_cannot_apply_is_refused_naming_the_file()
    {
        string folder = TestPaths.NewTempDir();
        ZooBpeFixtures.WriteZooBytes(folder);
        string path = Path.Combine(folder, "tokenizer.json");
        // A merge whose product is not in the vocabulary: Hugging Face refuses such a file too.
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"merges\":[]", "\"merges\":[\"a b\"]", StringComparison.Ordinal));
        var e = Assert.Throws<InvalidModelFileException>(() => TokenizerLoader.ForFolder(folder, 256));
        Assert.StartsWith(path, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Zoo_perplexity_through_the_library_tokenizer_is_the_byte_perplexity()
    {
        string folder = TestPaths.NewTempDir();
        foreach (string file in Directory.GetFiles(TestPaths.Model("lm-base")))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        ZooBpeFixtures.WriteZooBytes(folder);
        using var model = ModelFolder.Open(folder);
        LlamaConfig config = LlamaConfig.FromModelConfig(model.Config!);
        ITokenizer tokenizer = PerplexityEvaluator.TokenizerFor(model, config);
        Assert.IsType<MlBpeTokenizer>(tokenizer);
        var llama = LlamaModel.Load(model);
        var options = new PerplexityOptions { Bytes = 8192 };
        PerplexityResult viaLibrary = PerplexityEvaluator.EvaluateFile(llama, tokenizer, ReferenceMetrics.Text("prose"), options);
        PerplexityResult viaBytes = PerplexityEvaluator.EvaluateFile(llama, ByteTokenizer.Instance, ReferenceMetrics.Text("prose"), options);
        Assert.Equal(viaBytes.TotalNll, viaLibrary.TotalNll);
        Assert.Equal(viaBytes.Tokens, viaLibrary.Tokens);
    }
}
