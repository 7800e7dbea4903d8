using System.Text;
using Microsoft.ML.Tokenizers;

namespace Weld.Engine.Evaluation;

/// <summary>
/// Byte-level BPE from a Hugging Face <c>tokenizer.json</c> (GPT-2, Llama-3, Qwen2 style) on Microsoft.ML.Tokenizers'
/// <see cref="Microsoft.ML.Tokenizers.BpeTokenizer"/> (its byte-to-unicode map and merge loop). Weld applies the
/// file's normalizer and pre-tokenizer (<see cref="PreTokenizerSplitter"/>: Hugging Face keeps the text between regex
/// matches, the library's regex pre-tokenizer drops it) and <c>ignore_merges</c>, then hands the library one piece at a time.
/// </summary>
/// <remarks>
/// Covers every file <see cref="BpeTokenizer"/> reads except two, which <see cref="TokenizerLoader"/> leaves to Weld's
/// own code: a vocabulary without all 256 byte symbols (the library drops a symbol it cannot find instead of failing),
/// and a merge whose parts contain a space (the library takes merges as <c>"left right"</c> strings).
/// </remarks>
public sealed class MlBpeTokenizer : ITokenizer
{
    private readonly Microsoft.ML.Tokenizers.BpeTokenizer _bpe;
    private readonly PieceCache _pieces;
    private readonly Dictionary<string, int>? _wholePieces;

    private MlBpeTokenizer(Microsoft.ML.Tokenizers.BpeTokenizer bpe, PreTokenizerSplitter splitter, Dictionary<string, int>? wholePieces)
    {
        _bpe = bpe;
        _pieces = new PieceCache(splitter, EncodePiece);
        _wholePieces = wholePieces;
    }

    /// <summary>Reads a <c>tokenizer.json</c> with a byte-level BPE model.</summary>
    /// <exception cref="InvalidModelFileException">The file is not a byte-level BPE tokenizer this type covers.</exception>
    public static MlBpeTokenizer Load(string path)
    {
        ByteLevelBpeFile file = ByteLevelBpeFile.Read(path);
        if (UncoveredReason(file) is { } reason)
            throw new InvalidModelFileException(file.Path, $"Microsoft.ML.Tokenizers cannot load this tokenizer: {reason}.");
        return FromFile(file);
    }

    /// <summary>Why the library cannot reproduce <paramref name="file"/> exactly; null when it can.</summary>
    internal static string? UncoveredReason(ByteLevelBpeFile file)
    {
        for (int b = 0; b < 256; b++)
        {
            if (!file.Vocabulary.ContainsKey(BpeTokenizer.ByteToChar((byte)b).ToString()))
                return $"the vocabulary lacks the byte symbol of 0x{b:X2}";
        }

        foreach ((string left, string right) in file.Merges)
        {
            if (left.Contains(' ', StringComparison.Ordinal) || right.Contains(' ', StringComparison.Ordinal))
                return $"the merge [\"{left}\", \"{right}\"] has a space inside a part";
        }

        return null;
    }

    internal static MlBpeTokenizer FromFile(ByteLevelBpeFile file)
    {
        // Rank = first position, as Hugging Face and BpeTokenizer keep it; the library refuses a repeated pair.
        var seen = new HashSet<(string, string)>();
        var merges = new List<string>(file.Merges.Count);
        foreach ((string left, string right) pair in file.Merges)
        {
            if (seen.Add(pair)) merges.Add(pair.left + " " + pair.right);
        }

        var options = new BpeOptions(file.Vocabulary) { Merges = merges, ByteLevel = true };
        Microsoft.ML.Tokenizers.BpeTokenizer bpe;
        try
        {
            bpe = Microsoft.ML.Tokenizers.BpeTokenizer.Create(options);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidModelFileException(file.Path, $"Microsoft.ML.Tokenizers refuses the BPE model ({e.Message}).");
        }

        return new MlBpeTokenizer(bpe, file.Splitter, file.IgnoreMerges ? file.Vocabulary : null);
    }

    /// <inheritdoc />
    public int[] Encode(ReadOnlySpan<byte> utf8)
    {
        return _pieces.Encode(utf8);
    }

    private int[] EncodePiece(string piece)
    {
        // ignore_merges (Llama-3): a pre-token the vocabulary holds whole is one token, merges or not.
        if (_wholePieces is not null && _wholePieces.TryGetValue(ByteSymbols(piece), out int whole)) return [whole];
        IReadOnlyList<int> ids = _bpe.EncodeToIds(piece, considerPreTokenization: false, considerNormalization: false);
        var result = new int[ids.Count];
        for (int i = 0; i < result.Length; i++) result[i] = ids[i];
        return result;
    }

    private static string ByteSymbols(string piece)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(piece);
        var symbols = new StringBuilder(bytes.Length);
        foreach (byte b in bytes) symbols.Append(BpeTokenizer.ByteToChar(b));
        return symbols.ToString();
    }
}
