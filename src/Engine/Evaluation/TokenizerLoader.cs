namespace Weld.Engine.Evaluation;

/// <summary>
/// Picks the tokenizer of a model folder for evaluation. Microsoft.ML.Tokenizers does the tokenizing wherever it covers
/// the folder's files; Weld's own <see cref="BpeTokenizer"/> only takes the byte-level tokenizer.json files the
/// library cannot reproduce (see <see cref="MlBpeTokenizer"/>), and <see cref="ByteTokenizer"/> the byte-level zoo.
/// </summary>
public static class TokenizerLoader
{
    /// <summary>
    /// In order: <c>tokenizer.json</c> with a byte-level BPE model; <c>tokenizer.model</c> (a tiktoken rank file, else
    /// SentencePiece; also when a tokenizer.json beside it is not byte-level, as in Llama 2 / Mistral folders); a single
    /// <c>*.tiktoken</c> file; raw bytes for a 256-entry vocabulary without tokenizer files.
    /// </summary>
    /// <exception cref="InvalidModelFileException">A tokenizer file is unreadable or of an unsupported kind (the message names it).</exception>
    /// <exception cref="WeldException">No tokenizer file and a vocabulary that is not 256 bytes.</exception>
    public static ITokenizer ForFolder(string folder, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(folder);
        string json = Path.Combine(folder, "tokenizer.json");
        string model = Path.Combine(folder, "tokenizer.model");
        if (File.Exists(json))
        {
            ByteLevelBpeFile? file = null;
            try
            {
                file = ByteLevelBpeFile.Read(json);
            }
            catch (InvalidModelFileException) when (File.Exists(model))
            {
                // A SentencePiece-style tokenizer.json (byte fallback, Metaspace): its tokenizer.model says the same.
            }

            if (file is not null)
                return MlBpeTokenizer.UncoveredReason(file) is null ? MlBpeTokenizer.FromFile(file) : BpeTokenizer.FromFile(file);
        }

        if (File.Exists(model))
            return MlTiktokenTokenizer.LooksLikeTiktoken(model) ? MlTiktokenTokenizer.Load(model) : MlSentencePieceTokenizer.Load(model);

        string[] tiktoken = Directory.Exists(folder) ? Directory.GetFiles(folder, "*.tiktoken") : [];
        if (tiktoken.Length == 1) return MlTiktokenTokenizer.Load(tiktoken[0]);
        if (tiktoken.Length > 1)
            throw new WeldException($"{folder}: has {tiktoken.Length} *.tiktoken files and no tokenizer.json; cannot tell which one the model uses.");
        if (vocabSize == 256) return ByteTokenizer.Instance;
        throw new WeldException(
            $"{folder}: has no tokenizer.json, tokenizer.model or *.tiktoken and vocab_size {vocabSize} is not the 256 of a byte-level model; cannot tokenize text.");
    }
}
