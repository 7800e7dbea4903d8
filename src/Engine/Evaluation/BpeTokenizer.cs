using System.Text;
using System.Text.RegularExpressions;

namespace Weld.Engine.Evaluation;

/// <summary>
/// Weld's own byte-level BPE from a Hugging Face <c>tokenizer.json</c> (GPT-2, Llama-3, Qwen2 style), used where
/// Microsoft.ML.Tokenizers cannot reproduce the file (see <see cref="MlBpeTokenizer"/>): the text is split by the
/// pre-tokenizer's regex, each piece's UTF-8 bytes are mapped to printable characters (GPT-2's byte-to-unicode
/// table), and adjacent symbols are merged by merge rank until no ranked pair is left.
/// </summary>
/// <remarks>
/// Supported pre-tokenizers: <c>ByteLevel</c> (with <c>use_regex</c>: GPT-2's pattern; <c>add_prefix_space</c>), and a
/// <c>Sequence</c> of <c>Split</c> (a <c>Regex</c> or <c>String</c> pattern, behaviour <c>Isolated</c> or <c>Removed</c>)
/// and <c>ByteLevel</c> steps. Normalizers: none or NFC. Added / special tokens are not matched in the text: scoring
/// plain text never needs them.
/// </remarks>
public sealed class BpeTokenizer : ITokenizer
{
    /// <summary>GPT-2's pre-tokenizer pattern (what <c>ByteLevel</c> with <c>use_regex: true</c> applies).</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly char[] s_byteToChar = BuildByteToChar();

    private readonly Dictionary<string, int> _vocabulary;
    private readonly Dictionary<(string Left, string Right), int> _mergeRanks;
    private readonly PieceCache _pieces;
    private readonly bool _ignoreMerges;

    /// <summary>Creates a tokenizer from its parts.</summary>
    /// <param name="vocabulary">Token string (in byte-to-unicode characters) → id.</param>
    /// <param name="merges">Merge pairs, highest priority first.</param>
    /// <param name="splitPatterns">Regexes whose matches become pieces (gaps between matches become pieces too);
    /// applied in order. Empty: the whole text is one piece.</param>
    /// <param name="addPrefixSpace">Prefix a space to the text when it does not start with one (ByteLevel's option).</param>
    /// <param name="ignoreMerges">Take a whole piece as one token when the vocabulary has it (Llama-3's <c>ignore_merges</c>).</param>
    public BpeTokenizer(IReadOnlyDictionary<string, int> vocabulary, IReadOnlyList<(string Left, string Right)> merges,
        IReadOnlyList<string> splitPatterns, bool addPrefixSpace = false, bool ignoreMerges = false)
        : this(vocabulary, merges,
            new PreTokenizerSplitter(splitPatterns.Select(p => new PreTokenizerSplitter.Step(new Regex(p, RegexOptions.CultureInvariant), Remove: false)).ToList(),
                addPrefixSpace, normalizeNfc: false),
            ignoreMerges)
    {
    }

    private BpeTokenizer(IReadOnlyDictionary<string, int> vocabulary, IReadOnlyList<(string Left, string Right)> merges,
        PreTokenizerSplitter splitter, bool ignoreMerges)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        ArgumentNullException.ThrowIfNull(merges);
        _vocabulary = new Dictionary<string, int>(vocabulary, StringComparer.Ordinal);
        _mergeRanks = new Dictionary<(string, string), int>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++) _mergeRanks.TryAdd(merges[rank], rank);
        _pieces = new PieceCache(splitter, EncodePiece);
        _ignoreMerges = ignoreMerges;
    }

    /// <summary>Number of entries in the vocabulary.</summary>
    public int VocabularySize => _vocabulary.Count;

    /// <summary>Reads a <c>tokenizer.json</c> with a byte-level BPE model.</summary>
    /// <exception cref="InvalidModelFileException">The file is not JSON, not BPE, or uses an unsupported pre-tokenizer or normalizer.</exception>
    public static BpeTokenizer Load(string path) => FromFile(ByteLevelBpeFile.Read(path));

    internal static BpeTokenizer FromFile(ByteLevelBpeFile file) => new(file.Vocabulary, file.Merges, file.Splitter, file.IgnoreMerges);

    /// <inheritdoc />
    public int[] Encode(ReadOnlySpan<byte> utf8)
    {
        return _pieces.Encode(utf8);
    }

    /// <summary>BPE on one pre-token: byte-to-unicode symbols, then repeatedly merge the lowest-ranked adjacent pair.</summary>
    private int[] EncodePiece(string piece)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(piece);
        var mapped = new StringBuilder(bytes.Length);
        foreach (byte b in bytes) mapped.Append(s_byteToChar[b]);
        string word = mapped.ToString();
        if (_ignoreMerges && _vocabulary.TryGetValue(word, out int whole)) return [whole];

        var symbols = new List<string>(word.Length);
        foreach (char ch in word) symbols.Add(ch.ToString());
        while (symbols.Count > 1)
        {
            int bestRank = int.MaxValue;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (_mergeRanks.TryGetValue((symbols[i], symbols[i + 1]), out int rank) && rank < bestRank)
                    bestRank = rank;
            if (bestRank == int.MaxValue) break;

            // Merge every occurrence of the best pair, left to right (GPT-2's loop).
            var merged = new List<string>(symbols.Count);
            for (int i = 0; i < symbols.Count; i++)
            {
                if (i + 1 < symbols.Count && _mergeRanks.TryGetValue((symbols[i], symbols[i + 1]), out int rank) && rank == bestRank)
                {
                    merged.Add(symbols[i] + symbols[i + 1]);
                    i++;
                }
                else
                {
                    merged.Add(symbols[i]);
                }
            }

            symbols = merged;
        }

        var ids = new int[symbols.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            if (!_vocabulary.TryGetValue(symbols[i], out ids[i]))
                throw new WeldException($"tokenizer: the symbol '{symbols[i]}' (from the text piece '{piece}') is not in the vocabulary.");
        }

        return ids;
    }

    /// <summary>GPT-2's reversible map of the 256 byte values to printable characters.</summary>
    public static char ByteToChar(byte value) => s_byteToChar[value];

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }

        return map;
    }
}
