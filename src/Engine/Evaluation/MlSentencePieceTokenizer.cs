using System.Text;
using Microsoft.ML.Tokenizers;

namespace Weld.Engine.Evaluation;

/// <summary>
/// A SentencePiece <c>tokenizer.model</c> (Llama 2, Mistral: BPE with byte fallback; also unigram models) on
/// Microsoft.ML.Tokenizers' <see cref="SentencePieceTokenizer"/>: the model's own normalizer settings (dummy prefix,
/// whitespace as ▁), no beginning- or end-of-sentence token (scored text never carries them).
/// </summary>
public sealed class MlSentencePieceTokenizer : ITokenizer
{
    private readonly SentencePieceTokenizer _model;

    private MlSentencePieceTokenizer(SentencePieceTokenizer model) => _model = model;

    /// <summary>Reads a SentencePiece model file.</summary>
    /// <exception cref="InvalidModelFileException">The file cannot be read or is not a model the library supports.</exception>
    public static MlSentencePieceTokenizer Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string fullPath = Path.GetFullPath(path);
        try
        {
            using FileStream stream = File.OpenRead(fullPath);
            return new MlSentencePieceTokenizer(SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false));
        }
        catch (IOException e)
        {
            throw new InvalidModelFileException(fullPath, $"cannot read the SentencePiece model ({e.Message}).");
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException or InvalidOperationException or FormatException or NotSupportedException or IndexOutOfRangeException)
        {
            // The library parses the protobuf itself and reports a bad or unsupported model with these.
            throw new InvalidModelFileException(fullPath,
                $"not a SentencePiece model Microsoft.ML.Tokenizers can load ({e.Message.ReplaceLineEndings(" ")}).");
        }
    }

    /// <inheritdoc />
    public int[] Encode(ReadOnlySpan<byte> utf8)
    {
        IReadOnlyList<int> ids = _model.EncodeToIds(Encoding.UTF8.GetString(utf8), addBeginningOfSentence: false, addEndOfSentence: false);
        var result = new int[ids.Count];
        for (int i = 0; i < result.Length; i++) result[i] = ids[i];
        return result;
    }
}
