namespace Weld.Engine.Evaluation;

/// <summary>Turns UTF-8 text into token ids for scoring.</summary>
public interface ITokenizer
{
    /// <summary>The token ids of <paramref name="utf8"/>, without special tokens.</summary>
    int[] Encode(ReadOnlySpan<byte> utf8);
}

/// <summary>The zoo's byte-level vocabulary: token id = byte value (vocab_size 256, no tokenizer files).</summary>
public sealed class ByteTokenizer : ITokenizer
{
    /// <summary>The one instance.</summary>
    public static ByteTokenizer Instance { get; } = new();

    private ByteTokenizer() { }

    /// <inheritdoc />
    public int[] Encode(ReadOnlySpan<byte> utf8)
    {
        var ids = new int[utf8.Length];
        for (int i = 0; i < utf8.Length; i++) ids[i] = utf8[i];
        return ids;
    }
}
