using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Weld.Engine.Evaluation;

/// <summary>
/// A tiktoken rank file (<c>base64-token rank</c> per line: a <c>*.tiktoken</c> file, or Llama 3's original
/// <c>tokenizer.model</c>) on Microsoft.ML.Tokenizers' <see cref="TiktokenTokenizer"/>: token id = rank, byte pairs
/// merged by the rank of their concatenation. The file holds no pre-tokenizer; Weld uses Llama 3's (cl100k's) pattern.
/// </summary>
public sealed class MlTiktokenTokenizer : ITokenizer
{
    /// <summary>Llama 3's pre-tokenizer pattern (cl100k_base's), applied to the text before the ranks.</summary>
    public const string Llama3Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private readonly TiktokenTokenizer _model;

    private MlTiktokenTokenizer(TiktokenTokenizer model) => _model = model;

    /// <summary>Whether <paramref name="path"/> starts like a tiktoken rank file (a base64 token, a space, a number).</summary>
    public static bool LooksLikeTiktoken(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var reader = new StreamReader(path, Encoding.ASCII);
        string? line = reader.ReadLine();
        return line is not null && Regex.IsMatch(line, @"^[A-Za-z0-9+/]+={0,2} [0-9]+$", RegexOptions.CultureInvariant);
    }

    /// <summary>Reads a tiktoken rank file.</summary>
    /// <exception cref="InvalidModelFileException">The file cannot be read or parsed.</exception>
    public static MlTiktokenTokenizer Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string fullPath = Path.GetFullPath(path);
        try
        {
            using FileStream stream = File.OpenRead(fullPath);
            var preTokenizer = new RegexPreTokenizer(new Regex(Llama3Pattern, RegexOptions.CultureInvariant), null);
            return new MlTiktokenTokenizer(TiktokenTokenizer.Create(stream, preTokenizer, normalizer: null));
        }
        catch (IOException e)
        {
            throw new InvalidModelFileException(fullPath, $"cannot read the tiktoken file ({e.Message}).");
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException or InvalidOperationException or FormatException)
        {
            throw new InvalidModelFileException(fullPath, $"not a tiktoken rank file ({e.Message.ReplaceLineEndings(" ")}).");
        }
    }

    /// <inheritdoc />
    public int[] Encode(ReadOnlySpan<byte> utf8)
    {
        IReadOnlyList<int> ids = _model.EncodeToIds(Encoding.UTF8.GetString(utf8));
        var result = new int[ids.Count];
        for (int i = 0; i < result.Length; i++) result[i] = ids[i];
        return result;
    }
}
