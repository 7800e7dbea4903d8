using Weld.Engine.Evaluation;
using Weld.Engine.Tests.Tokenizers;
using Weld.Engine.Tokenizers;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>
/// A Llama 2 style SentencePiece BPE model small enough to encode by hand (<see cref="HelloSentencePiece"/>), read by
/// Microsoft.ML.Tokenizers through <see cref="TokenizerLoader"/>.
/// </summary>
public class MlSentencePieceTokenizerTests
{
    private static ITokenizer Load(bool byteFallback = true)
    {
        string folder = TestPaths.NewTempDir();
        File.WriteAllBytes(Path.Combine(folder, "tokenizer.model"), SentencePieceWriter.WriteLlama2Style(HelloSentencePiece.Pieces(), byteFallback));
        return TokenizerLoader.ForFolder(folder, 274);
    }

    [Fact]
    public void Merges_follow_the_piece_scores()
    {
        ITokenizer tokenizer = Load();
        Assert.IsType<MlSentencePieceTokenizer>(tokenizer);
        // "▁hello▁world": ▁ h e l l o ▁ w o r l d. Best scores in turn: ll (−1), he (−2), llo (−3), hello (−4),
        // ▁hello (−5), or (−6), ▁w (−7); then no adjacent pair forms a piece: ▁hello ▁w or l d.
        Assert.Equal([271, 273, 272, 262, 266], tokenizer.Encode("hello world"u8));
    }

    [Fact]
    public void Only_the_text_start_gets_the_dummy_prefix_and_spaces_are_kept()
    {
        ITokenizer tokenizer = Load();
        // "▁he▁▁lo": ▁ h e ▁ ▁ l o → he; "lo" and "▁▁" are no pieces.
        Assert.Equal([259, 268, 259, 259, 262, 263], tokenizer.Encode("he  lo"u8));
        // "▁hello\nhello": the newline is no piece (byte 0x0A = id 13), and the second word has no ▁ to merge with.
        Assert.Equal([271, 13, 270], tokenizer.Encode("hello\nhello"u8));
    }

    [Fact]
    public void Characters_outside_the_pieces_fall_back_to_bytes_or_unk()
    {
        // "▁hé": é is no piece → its UTF-8 bytes C3 A9 → ids 3 + 0xC3, 3 + 0xA9.
        Assert.Equal([259, 260, 3 + 0xC3, 3 + 0xA9], Load().Encode("hé"u8));
        Assert.Equal([259, 260, 0], Load(byteFallback: false).Encode("hz"u8));
    }

    [Fact]
    public void A_llama2_folder_with_a_sentencepiece_tokenizer_json_uses_its_tokenizer_model()
    {
        string folder = TestPaths.NewTempDir();
        File.WriteAllBytes(Path.Combine(folder, "tokenizer.model"), SentencePieceWriter.WriteLlama2Style(HelloSentencePiece.Pieces()));
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), """
            {"normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
             "pre_tokenizer": null, "model": {"type": "BPE", "byte_fallback": true, "vocab": {}, "merges": []}}
            """);
        ITokenizer tokenizer = TokenizerLoader.ForFolder(folder, 274);
        Assert.IsType<MlSentencePieceTokenizer>(tokenizer);
        Assert.Equal([271, 273, 272, 262, 266], tokenizer.Encode("hello world"u8));
    }

    [Fact]
    public void An_unreadable_tokenizer_model_is_one_line_naming_the_file()
    {
        string folder = TestPaths.NewTempDir();
        string path = Path.Combine(folder, "tokenizer.model");
        File.WriteAllBytes(path, [0x0A, 0xFF, 0x01, 0x02]); // field 1, a length past the end
        var e = Assert.Throws<InvalidModelFileException>(() => TokenizerLoader.ForFolder(folder, 274));
        Assert.StartsWith(path, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_tokenizer_json_of_another_kind_without_tokenizer_model_is_refused_naming_it()
    {
        string folder = TestPaths.NewTempDir();
        string path = Path.Combine(folder, "tokenizer.json");
        File.WriteAllText(path, """{"model": {"type": "WordPiece", "vocab": {}}}""");
        var e = Assert.Throws<InvalidModelFileException>(() => TokenizerLoader.ForFolder(folder, 300));
        Assert.StartsWith(path, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_tiktoken_tokenizer_model_is_read_as_ranks()
    {
        string folder = TestPaths.NewTempDir();
        // Ranks: the 256 bytes at their values, then "ab" (256) and "abc" (257).
        var lines = new System.Text.StringBuilder();
        for (int b = 0; b < 256; b++) lines.Append(Convert.ToBase64String([(byte)b])).Append(' ').Append(b).Append('\n');
        lines.Append(Convert.ToBase64String("ab"u8)).Append(" 256\n").Append(Convert.ToBase64String("abc"u8)).Append(" 257\n");
        File.WriteAllText(Path.Combine(folder, "tokenizer.model"), lines.ToString());
        ITokenizer tokenizer = TokenizerLoader.ForFolder(folder, 258);
        Assert.IsType<MlTiktokenTokenizer>(tokenizer);
        // Pre-tokens "abc", " abd", "!": abc whole; " abd" → ' ', ab, d (no rank for " a" or "abd").
        Assert.Equal([257, 32, 256, 100, 33], tokenizer.Encode("abc abd!"u8));
    }
}
