using System.Text;

namespace Weld.Engine.Evaluation;

/// <summary>
/// Encodes text pre-token by pre-token, remembering each pre-token's ids: running text repeats its words, and BPE on a
/// word is the costly part. Shared by the byte-level BPE tokenizers; not thread-safe (neither are they).
/// </summary>
internal sealed class PieceCache(PreTokenizerSplitter splitter, Func<string, int[]> encodePiece)
{
    // Bounds the memo on long texts with an open-ended set of pre-tokens.
    private const int MaxEntries = 1 << 20;

    private readonly Dictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    /// <summary>The ids of UTF-8 text: each pre-token's ids in order.</summary>
    public int[] Encode(ReadOnlySpan<byte> utf8)
    {
        List<string> pieces = splitter.Split(Encoding.UTF8.GetString(utf8));
        var ids = new List<int>(utf8.Length / 3 + 1);
        foreach (string piece in pieces)
        {
            if (!_cache.TryGetValue(piece, out int[]? pieceIds))
            {
                pieceIds = encodePiece(piece);
                if (_cache.Count < MaxEntries) _cache[piece] = pieceIds;
            }

            ids.AddRange(pieceIds);
        }

        return ids.ToArray();
    }
}
