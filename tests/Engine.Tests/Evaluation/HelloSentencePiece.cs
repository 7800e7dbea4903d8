using Weld.Engine.Tokenizers;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>A Llama 2 style SentencePiece vocabulary of 274 pieces, small enough to encode "hello world" by hand.</summary>
internal static class HelloSentencePiece
{
    /// <summary>
    /// Llama 2's layout: 0 &lt;unk&gt;, 1 &lt;s&gt;, 2 &lt;/s&gt;, 3-258 the byte pieces &lt;0x00&gt;-&lt;0xFF&gt;,
    /// then single characters (low scores) and merged pieces (score = priority: higher merges first).
    /// </summary>
    public static SentencePiece[] Pieces()
    {
        var pieces = new List<SentencePiece>
        {
            new("<unk>", 0, SentencePieceType.Unknown), new("<s>", 0, SentencePieceType.Control), new("</s>", 0, SentencePieceType.Control),
        };
        for (int b = 0; b < 256; b++) pieces.Add(new($"<0x{b:X2}>", 0, SentencePieceType.Byte));
        (string Piece, float Score)[] normal =
        [
            ("\u2581", -100), ("h", -101), ("e", -102), ("l", -103), ("o", -104), ("w", -105), ("r", -106), ("d", -107), // 259-266
            ("ll", -1), ("he", -2), ("llo", -3), ("hello", -4), ("\u2581hello", -5), ("or", -6), ("\u2581w", -7), // 267-273
        ];
        foreach ((string piece, float score) in normal) pieces.Add(new(piece, score, SentencePieceType.Normal));
        return pieces.ToArray();
    }
}
