using Weld.Engine.Compression;
using Weld.Engine.Config;
using Weld.Engine.Models;

namespace Weld.Engine.Planning;

/// <summary>
/// The model folders a recipe refers to, each opened once. A reference is a local path, tried as given
/// (relative to the working directory, as mergekit reads it) and then relative to the recipe's folder.
/// A <c>model+lora</c> reference is resolved by folding the PEFT LoRA adapter into the model
/// (<see cref="LoraApplier.Apply"/>) in a temporary folder that lives as long as the set.
/// </summary>
public sealed class ModelSet : IDisposable
{
    private readonly List<ModelFolder> _folders = [];
    private readonly Dictionary<string, int> _byPath = new(StringComparer.Ordinal);
    private readonly string? _recipeFolder;
    private readonly string _recipeName;
    private readonly List<string> _foldedFolders = [];
    private readonly List<string> _inputPaths = [];
    private readonly Dictionary<int, (string Model, string Adapter)> _folded = [];

    /// <summary>Creates an empty set; <paramref name="recipeFolder"/> is the second place relative paths are looked up.</summary>
    /// <param name="recipeFolder">The recipe's folder, or null.</param>
    /// <param name="recipeName">The recipe's name for messages (<c>recipe.yml:LINE: ...</c>).</param>
    public ModelSet(string? recipeFolder, string recipeName = "recipe")
    {
        _recipeFolder = recipeFolder;
        _recipeName = recipeName;
    }

    /// <summary>
    /// Maps a located model's full path to the folder to open instead (null: none), e.g. its aligned copy.
    /// </summary>
    public Func<string, string?>? Redirect { get; init; }

    /// <summary>The opened folders; indexes are those <see cref="IndexOf"/> returns.</summary>
    public IReadOnlyList<ModelFolder> Folders => _folders;

    /// <summary>Opens (once) the model a reference names and returns its index.</summary>
    public int IndexOf(ModelReference reference)
    {
        if (reference.Model.Revision is not null || reference.Lora?.Revision is not null)
            throw new RecipeException($"{_recipeName}:{reference.Line}: {reference.Raw}: revisions (@{reference.Model.Revision ?? reference.Lora!.Value.Revision}) name Hugging Face Hub versions; Weld reads local folders only");
        string path = Locate(reference, reference.Model.Path, "model");
        if (Redirect?.Invoke(path) is string redirected) path = redirected;
        string? lora = reference.Lora is { } adapter ? Locate(reference, adapter.Path, "LoRA adapter") : null;
        // '+' cannot start a path component here (mergekit splits references on it), so the key is unambiguous.
        string key = lora is null ? path : path + "+" + lora;
        if (_byPath.TryGetValue(key, out int index)) return index;
        if (!_inputPaths.Contains(path)) _inputPaths.Add(path);
        if (lora is not null && !_inputPaths.Contains(lora)) _inputPaths.Add(lora);
        _folders.Add(ModelFolder.Open(lora is null ? path : Fold(reference, path, lora)));
        _byPath[key] = _folders.Count - 1;
        if (lora is not null) _folded[_folders.Count - 1] = (path, lora);
        return _folders.Count - 1;
    }

    /// <summary>
    /// The located inputs (model folders or files and LoRA adapters, full paths, before any folding): an output may
    /// not be, hold or lie inside one of them.
    /// </summary>
    public IReadOnlyList<string> InputPaths => _inputPaths;

    /// <summary>
    /// One line per input file that decides the bytes of <see cref="Folders"/>[<paramref name="index"/>]: a plain
    /// model's files by path, size and modification time; a <c>model+lora</c> reference by its model's files the same
    /// way and its adapter's files by content (SHA-256), never by the temporary folder it was folded into — so a plan
    /// fingerprint survives a re-run (<c>--resume</c>, <c>--part</c>, <c>weld finalize</c>).
    /// </summary>
    public IEnumerable<string> Fingerprint(int index)
    {
        if (!_folded.TryGetValue(index, out var pair))
        {
            foreach (var file in _folders[index].Files) yield return FileStamp(file.FilePath);
            // The tokenizer decides the output vocabulary (and so the permuted embedding rows) and the copied files.
            foreach (string side in _folders[index].SideFiles)
                if (System.IO.Path.GetFileName(side) is "tokenizer.json" or "tokenizer_config.json" or "special_tokens_map.json" or "tokenizer.model" or "added_tokens.json")
                    yield return FileStamp(side);
            yield break;
        }
        yield return "model+lora";
        foreach (string file in FilesOf(pair.Model)) yield return FileStamp(file);
        foreach (string file in FilesOf(pair.Adapter))
        {
            using var stream = File.OpenRead(file);
            yield return $"{Path.GetFileName(file)},{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream))}";
        }
    }

    private static string FileStamp(string path)
    {
        var info = new FileInfo(path);
        return $"{info.FullName},{info.Length},{info.LastWriteTimeUtc.Ticks}";
    }

    private static IEnumerable<string> FilesOf(string path) =>
        Directory.Exists(path) ? Directory.GetFiles(path).Order(StringComparer.Ordinal) : [path];

    /// <summary>Writes the model with the adapter folded in to a temporary folder deleted by <see cref="Dispose"/>.</summary>
    private string Fold(ModelReference reference, string model, string adapter)
    {
        string folder = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"weld-lora-{Guid.NewGuid():N}");
        _foldedFolders.Add(folder); // before the fold: a failed fold's half-written copy is removed too
        try
        {
            LoraApplier.Apply(model, adapter, folder);
        }
        catch (WeldException e) when (e is not RecipeException)
        {
            throw new RecipeException($"{_recipeName}:{reference.Line}: {reference.Raw}: {e.Message}");
        }
        return folder;
    }

    /// <summary>The opened folder of a reference.</summary>
    public ModelFolder this[ModelReference reference] => _folders[IndexOf(reference)];

    private string Locate(ModelReference reference, string given, string what)
    {
        if (Directory.Exists(given) || File.Exists(given)) return Path.GetFullPath(given);
        if (_recipeFolder is not null && !Path.IsPathRooted(given))
        {
            string beside = Path.Combine(_recipeFolder, given);
            if (Directory.Exists(beside) || File.Exists(beside)) return Path.GetFullPath(beside);
        }
        string hint = given.Count(c => c == '/') == 1 && !given.StartsWith('.')
            ? " It looks like a Hugging Face Hub id: Weld does not download; fetch it first (e.g. `huggingface-cli download " + given + " --local-dir DIR`) and name the folder."
            : "";
        throw new RecipeException($"{_recipeName}:{reference.Line}: {what} {given} not found: no such folder or file{hint}");
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var folder in _folders) folder.Dispose();
        _folders.Clear();
        _byPath.Clear();
        foreach (string folded in _foldedFolders)
        {
            try
            {
                if (Directory.Exists(folded)) Directory.Delete(folded, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A leftover temporary copy must not turn a finished merge into a failure.
            }
        }
        _foldedFolders.Clear();
    }
}
