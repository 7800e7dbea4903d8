using Weld.Engine.Config;
using Weld.Engine.Models;

namespace Weld.Engine.Planning;

/// <summary>
/// The model folders a recipe refers to, each opened once. A reference is a local path, tried as given
/// (relative to the working directory, as mergekit reads it) and then relative to the recipe's folder.
/// </summary>
public sealed class ModelSet : IDisposable
{
    private readonly List<ModelFolder> _folders = [];
    private readonly Dictionary<string, int> _byPath = new(StringComparer.Ordinal);
    private readonly string? _recipeFolder;
    private readonly string _recipeName;

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
        if (reference.Lora is not null)
            throw new RecipeException($"{_recipeName}:{reference.Line}: {reference.Raw}: LoRA references (model+lora) are not supported yet; fold the adapter into the model first");
        if (reference.Model.Revision is not null)
            throw new RecipeException($"{_recipeName}:{reference.Line}: {reference.Raw}: revisions (@{reference.Model.Revision}) name Hugging Face Hub versions; Weld reads local folders only");
        string path = Locate(reference);
        if (Redirect?.Invoke(path) is string redirected) path = redirected;
        if (_byPath.TryGetValue(path, out int index)) return index;
        _folders.Add(ModelFolder.Open(path));
        _byPath[path] = _folders.Count - 1;
        return _folders.Count - 1;
    }

    /// <summary>The opened folder of a reference.</summary>
    public ModelFolder this[ModelReference reference] => _folders[IndexOf(reference)];

    private string Locate(ModelReference reference)
    {
        string given = reference.Model.Path;
        if (Directory.Exists(given) || File.Exists(given)) return Path.GetFullPath(given);
        if (_recipeFolder is not null && !Path.IsPathRooted(given))
        {
            string beside = Path.Combine(_recipeFolder, given);
            if (Directory.Exists(beside) || File.Exists(beside)) return Path.GetFullPath(beside);
        }
        string hint = given.Count(c => c == '/') == 1 && !given.StartsWith('.')
            ? " It looks like a Hugging Face Hub id: Weld does not download; fetch it first (e.g. `huggingface-cli download " + given + " --local-dir DIR`) and name the folder."
            : "";
        throw new RecipeException($"{_recipeName}:{reference.Line}: model {given} not found: no such folder or file{hint}");
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var folder in _folders) folder.Dispose();
        _folders.Clear();
        _byPath.Clear();
    }
}
