using System.Text.Json.Nodes;
using Weld.Engine.SafeTensors;

namespace Weld.Engine.Models;

/// <summary>
/// A checkpoint in Hugging Face layout, opened for reading: a folder with <c>model.safetensors</c>, or
/// <c>model.safetensors.index.json</c> and its shards, or a PEFT adapter (<c>adapter_model.safetensors</c> +
/// <c>adapter_config.json</c>), or a single <c>.safetensors</c> file. Pickle checkpoints are refused.
/// </summary>
/// <remarks>All safetensors files are opened (memory-mapped and validated) at <see cref="Open"/> and closed on dispose.</remarks>
public sealed class ModelFolder : IDisposable
{
    private const string ConfigFileName = "config.json";
    private const string AdapterWeightsFileName = "adapter_model.safetensors";
    private const string AdapterConfigFileName = "adapter_config.json";

    /// <summary>Files copied from an input model into a merged output when present.</summary>
    private static readonly string[] s_sideFileNames =
    [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json",
        "merges.txt", "added_tokens.json", "generation_config.json", "chat_template.jinja", "chat_template.json",
    ];

    private readonly List<SafeTensorsFile> _files;
    private readonly Dictionary<string, ModelTensor> _tensors;

    private ModelFolder(string path, List<SafeTensorsFile> files, List<string> names, Dictionary<string, ModelTensor> tensors,
        ModelConfig? config, JsonObject? adapterConfig, IReadOnlyList<string> sideFiles)
    {
        Path = path;
        _files = files;
        TensorNames = names;
        _tensors = tensors;
        Config = config;
        AdapterConfig = adapterConfig;
        SideFiles = sideFiles;
        foreach (ModelTensor tensor in tensors.Values)
        {
            TotalBytes += tensor.Info.ByteLength;
            ParameterCount += tensor.Info.ElementCount;
        }
    }

    /// <summary>The model's path as opened (full path of the folder, or of the single file).</summary>
    public string Path { get; }

    /// <summary>The parsed <c>config.json</c>, when the folder has one.</summary>
    public ModelConfig? Config { get; }

    /// <summary>True for a PEFT adapter folder.</summary>
    public bool IsAdapter => AdapterConfig is not null;

    /// <summary>The parsed <c>adapter_config.json</c> of an adapter folder (r, lora_alpha, target_modules, ...).</summary>
    public JsonObject? AdapterConfig { get; }

    /// <summary>Tensor names in a stable order: the index's order for sharded models, else the file's (offset) order.</summary>
    public IReadOnlyList<string> TensorNames { get; }

    /// <summary>Full paths of the tokenizer / generation files present, to copy into a merged output.</summary>
    public IReadOnlyList<string> SideFiles { get; }

    /// <summary>Bytes of all tensors.</summary>
    public long TotalBytes { get; }

    /// <summary>Elements of all tensors.</summary>
    public long ParameterCount { get; }

    /// <summary>The open safetensors files (one per shard).</summary>
    public IReadOnlyList<SafeTensorsFile> Files => _files;

    /// <summary>Whether the model has a tensor called <paramref name="name"/>.</summary>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>The tensor called <paramref name="name"/>.</summary>
    /// <exception cref="WeldException">The model has no such tensor.</exception>
    public ModelTensor GetTensor(string name) =>
        _tensors.TryGetValue(name, out ModelTensor tensor)
            ? tensor
            : throw new WeldException($"{Path}: the model has no tensor named '{name}'.");

    /// <summary>Opens a model folder or a single safetensors file.</summary>
    /// <exception cref="WeldException">The path is missing, holds no safetensors checkpoint, or only a pickle one.</exception>
    /// <exception cref="InvalidModelFileException">A file is corrupt, or the index and shards disagree.</exception>
    public static ModelFolder Open(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string fullPath = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(path));

        if (File.Exists(fullPath))
        {
            if (IsPickleFile(System.IO.Path.GetFileName(fullPath)))
                throw new WeldException($"{fullPath}: {PickleExplanation}");
            if (!fullPath.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
                throw new WeldException($"{fullPath}: not a model: expected a folder or a .safetensors file.");
            return FromFiles(fullPath, [fullPath], null, null, null, []);
        }

        if (!Directory.Exists(fullPath))
            throw new WeldException($"{fullPath}: no such model folder or file.");

        string Child(string name) => System.IO.Path.Combine(fullPath, name);
        ModelConfig? config = File.Exists(Child(ConfigFileName)) ? ModelConfig.Load(Child(ConfigFileName)) : null;
        var sideFiles = new List<string>();
        foreach (string name in s_sideFileNames)
            if (File.Exists(Child(name))) sideFiles.Add(Child(name));

        // transformers' order of preference: a single file first, then the sharded index.
        if (File.Exists(Child(ShardLayout.SingleFileName)))
            return FromFiles(fullPath, [Child(ShardLayout.SingleFileName)], null, config, null, sideFiles);

        if (File.Exists(Child(ShardIndex.FileName)))
            return OpenSharded(fullPath, Child(ShardIndex.FileName), config, sideFiles);

        if (File.Exists(Child(AdapterWeightsFileName)))
        {
            if (!File.Exists(Child(AdapterConfigFileName)))
            {
                throw new WeldException(
                    $"{fullPath}: has {AdapterWeightsFileName} but no {AdapterConfigFileName}; a PEFT adapter needs both.");
            }

            JsonObject adapterConfig = ModelConfig.Load(Child(AdapterConfigFileName)).Raw;
            return FromFiles(fullPath, [Child(AdapterWeightsFileName)], null, config, adapterConfig, sideFiles);
        }

        foreach (string file in Directory.EnumerateFiles(fullPath))
            if (IsPickleFile(System.IO.Path.GetFileName(file)))
                throw new WeldException($"{fullPath}: the checkpoint is a pickle file ({System.IO.Path.GetFileName(file)}). {PickleExplanation}");

        throw new WeldException(
            $"{fullPath}: no model found: expected {ShardLayout.SingleFileName}, {ShardIndex.FileName} with its shards, or {AdapterWeightsFileName} with {AdapterConfigFileName}.");
    }

    private const string PickleExplanation =
        "Weld does not load pickle checkpoints (.bin/.pt/.pth): unpickling can execute arbitrary code. " +
        "Convert it to safetensors first, e.g. in Python: `model.save_pretrained(out_dir, safe_serialization=True)` with " +
        "transformers, or `safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors')`.";

    private static bool IsPickleFile(string fileName) =>
        fileName.EndsWith(".pt", StringComparison.OrdinalIgnoreCase) ||
        fileName.EndsWith(".pth", StringComparison.OrdinalIgnoreCase) ||
        (fileName.EndsWith(".bin", StringComparison.OrdinalIgnoreCase) &&
         (fileName.StartsWith("pytorch_model", StringComparison.OrdinalIgnoreCase) ||
          fileName.Equals("adapter_model.bin", StringComparison.OrdinalIgnoreCase)));

    private static ModelFolder OpenSharded(string folder, string indexPath, ModelConfig? config, List<string> sideFiles)
    {
        ShardIndexContents index = ShardIndex.Read(indexPath);
        var shardPaths = new List<string>();
        var shardByName = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (KeyValuePair<string, string> entry in index.Entries)
        {
            if (shardByName.ContainsKey(entry.Value)) continue;
            string shardPath = ResolveShard(folder, indexPath, entry.Key, entry.Value);
            if (!File.Exists(shardPath))
            {
                throw new InvalidModelFileException(indexPath,
                    $"shard '{entry.Value}' (holding tensor '{entry.Key}') is missing from the model folder.");
            }

            shardByName.Add(entry.Value, shardPath);
            shardPaths.Add(shardPath);
        }

        var names = new List<string>(index.Entries.Count);
        foreach (KeyValuePair<string, string> entry in index.Entries) names.Add(entry.Key);
        return FromFiles(folder, shardPaths, (index, indexPath, shardByName), config, null, sideFiles, names);
    }

    /// <summary>Resolves a shard name from the index, refusing any that would leave the model folder.</summary>
    private static string ResolveShard(string folder, string indexPath, string tensor, string shardName)
    {
        string root = folder + System.IO.Path.DirectorySeparatorChar;
        string resolved = System.IO.Path.GetFullPath(System.IO.Path.Combine(folder, shardName));
        if (System.IO.Path.IsPathRooted(shardName) || shardName.Contains('\\') ||
            !resolved.StartsWith(root, StringComparison.Ordinal))
        {
            throw new InvalidModelFileException(indexPath,
                $"shard name '{shardName}' (for tensor '{tensor}') points outside the model folder; refusing to read it.");
        }

        return resolved;
    }

    private static ModelFolder FromFiles(string path, List<string> filePaths,
        (ShardIndexContents Index, string IndexPath, Dictionary<string, string> ShardPaths)? sharding,
        ModelConfig? config, JsonObject? adapterConfig, IReadOnlyList<string> sideFiles, List<string>? names = null)
    {
        var files = new List<SafeTensorsFile>(filePaths.Count);
        try
        {
            foreach (string filePath in filePaths) files.Add(SafeTensorsFile.Open(filePath));
            var tensors = new Dictionary<string, ModelTensor>(StringComparer.Ordinal);
            if (sharding is { } s)
            {
                CheckIndexAgainstShards(s.Index, s.IndexPath, s.ShardPaths, files, tensors);
            }
            else
            {
                names = [];
                foreach (TensorInfo info in files[0].Tensors)
                {
                    tensors.Add(info.Name, new ModelTensor(files[0], info));
                    names.Add(info.Name);
                }
            }

            return new ModelFolder(path, files, names!, tensors, config, adapterConfig, sideFiles);
        }
        catch
        {
            foreach (SafeTensorsFile file in files) file.Dispose();
            throw;
        }
    }

    /// <summary>Every index entry must be in its shard, and every shard tensor in the index under that shard.</summary>
    private static void CheckIndexAgainstShards(ShardIndexContents index, string indexPath,
        Dictionary<string, string> shardPaths, List<SafeTensorsFile> files, Dictionary<string, ModelTensor> tensors)
    {
        var fileByPath = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        foreach (SafeTensorsFile file in files) fileByPath[file.FilePath] = file;

        foreach (KeyValuePair<string, string> entry in index.Entries)
        {
            SafeTensorsFile file = fileByPath[shardPaths[entry.Value]];
            if (!file.TryGetTensor(entry.Key, out TensorInfo info))
            {
                throw new InvalidModelFileException(indexPath,
                    $"the index maps tensor '{entry.Key}' to shard '{entry.Value}', which does not contain it.");
            }

            tensors.Add(entry.Key, new ModelTensor(file, info));
        }

        foreach (SafeTensorsFile file in files)
        {
            foreach (TensorInfo info in file.Tensors)
            {
                if (!tensors.TryGetValue(info.Name, out ModelTensor listed) || !ReferenceEquals(listed.File, file))
                {
                    throw new InvalidModelFileException(indexPath,
                        $"shard '{System.IO.Path.GetFileName(file.FilePath)}' contains tensor '{info.Name}', which the index does not map to it.");
                }
            }
        }
    }

    /// <summary>Closes every file of the model.</summary>
    public void Dispose()
    {
        foreach (SafeTensorsFile file in _files) file.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => Path;
}
