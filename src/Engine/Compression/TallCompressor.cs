using System.Globalization;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;

namespace Weld.Engine.Compression;

/// <summary>What <see cref="TallCompressor.Compress"/> wrote.</summary>
/// <param name="Tensors">Tensors compressed.</param>
/// <param name="Elements">Elements per task (the sum over tensors).</param>
/// <param name="KeptPerTask">Mask bits set, per task in input order.</param>
/// <param name="Bytes">Size of the compressed file.</param>
public sealed record TallCompressionSummary(int Tensors, long Elements, IReadOnlyList<long> KeptPerTask, long Bytes);

/// <summary>
/// TALL-mask compression (Wang et al. 2024): N fine-tunes of one base become one multi-task vector
/// τ_MTL = Σ_t (θ_t − θ_base) (float32) plus one packed bit mask per task, m_t = [ |τ_t| ≥ λ_t · |τ_MTL − τ_t| ];
/// task t comes back as θ_t ≈ θ_base + m_t ⊙ τ_MTL. Works tensor by tensor, holding N + 2 float32 copies of one tensor.
/// </summary>
/// <remarks>
/// File layout (one <c>.safetensors</c>): for every tensor X of the base, <c>X</c> is τ_MTL (F32, X's shape) and
/// <c>X.tall_mask.T</c> is task T's mask (U8, ⌈n/8⌉ bytes, see <see cref="TallMasks"/>). Metadata <c>format</c> =
/// <c>weld-tall</c>, <c>tasks</c> = the task names (folder names) joined by newlines, <c>lambdas</c> likewise.
/// </remarks>
public static class TallCompressor
{
    /// <summary>The <c>format</c> metadata value of a compressed file.</summary>
    public const string Format = "weld-tall";

    private const string MaskInfix = ".tall_mask.";

    /// <summary>Compresses <paramref name="tasks"/> (fine-tunes of <paramref name="basePath"/>) into <paramref name="outputFile"/>.</summary>
    /// <param name="basePath">The base model folder or file.</param>
    /// <param name="tasks">The fine-tuned models, each with every tensor of the base in the same shape.</param>
    /// <param name="lambdas">λ_t per task (the paper tunes it in [0.2, 0.6]).</param>
    /// <param name="outputFile">The <c>.safetensors</c> file to write (beside it first, renamed into place when complete).</param>
    /// <param name="overwrite">Replace an existing file, when it is a TALL file Weld wrote (never another file, never an input).</param>
    /// <returns>What was written.</returns>
    /// <exception cref="WeldException">A task lacks a tensor or has another shape.</exception>
    public static TallCompressionSummary Compress(string basePath, IReadOnlyList<string> tasks, IReadOnlyList<double> lambdas, string outputFile,
        bool overwrite = false)
    {
        ArgumentNullException.ThrowIfNull(tasks);
        ArgumentNullException.ThrowIfNull(lambdas);
        if (tasks.Count == 0) throw new WeldException("TALL compression needs at least one fine-tuned model");
        if (lambdas.Count != tasks.Count) throw new WeldException($"TALL compression: {tasks.Count} models but {lambdas.Count} lambda values");
        using var baseline = ModelFolder.Open(basePath);
        var models = new List<ModelFolder>();
        try
        {
            foreach (string task in tasks) models.Add(ModelFolder.Open(task));
            var headers = new List<TensorHeader>();
            foreach (string name in baseline.TensorNames)
            {
                ModelTensor b = baseline.GetTensor(name);
                if (!DTypes.IsFloatingPoint(b.DType)) throw new WeldException($"{baseline.Path}: tensor {name} is not floating-point; TALL compresses float tensors only");
                foreach (ModelFolder m in models)
                {
                    if (!m.Contains(name)) throw new WeldException($"{m.Path}: tensor {name} of the base is missing");
                    if (!m.GetTensor(name).Shape.AsSpan().SequenceEqual(b.Shape))
                        throw new WeldException($"{m.Path}: tensor {name} has shape [{string.Join(", ", m.GetTensor(name).Shape)}], the base has [{string.Join(", ", b.Shape)}]");
                }
                headers.Add(new TensorHeader(name, DType.F32, b.Shape));
                for (int t = 0; t < models.Count; t++)
                    headers.Add(new TensorHeader(MaskName(name, t), DType.U8, [TallMasks.PackedLength(b.ElementCount)]));
            }
            var metadata = new Dictionary<string, string>
            {
                ["format"] = Format,
                ["tasks"] = string.Join('\n', tasks.Select(t => Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(t))))),
                ["lambdas"] = string.Join('\n', lambdas.Select(l => l.ToString("R", CultureInfo.InvariantCulture))),
            };
            var kept = new long[models.Count];
            long elements = 0;
            // Written beside the target and renamed into place when complete; an existing file is replaced only when
            // overwriting is allowed and it is a TALL file Weld wrote.
            using var output = new OutputFile(outputFile, overwrite, tasks.Prepend(basePath), IsTallFile);
            using (var writer = new SafeTensorsWriter(output.WorkPath, headers, metadata))
            {
                foreach (string name in baseline.TensorNames)
                {
                    ModelTensor b = baseline.GetTensor(name);
                    int n = checked((int)b.ElementCount);
                    elements += n;
                    var theta0 = new float[n];
                    b.ReadFloat32(0, theta0);
                    var tau = new float[models.Count][];
                    var mtl = new float[n];
                    for (int t = 0; t < models.Count; t++)
                    {
                        tau[t] = new float[n];
                        models[t].GetTensor(name).ReadFloat32(0, tau[t]);
                        for (int i = 0; i < n; i++)
                        {
                            tau[t][i] -= theta0[i];
                            mtl[i] += tau[t][i];
                        }
                    }
                    writer.WriteFloat32(mtl);
                    var packed = new byte[TallMasks.PackedLength(n)];
                    for (int t = 0; t < models.Count; t++)
                    {
                        kept[t] += TallMasks.Pack(tau[t], mtl, (float)lambdas[t], packed);
                        writer.WriteBytes(packed);
                    }
                }
                writer.Complete();
            }
            output.Commit();
            return new TallCompressionSummary(baseline.TensorNames.Count, elements, kept, new FileInfo(output.TargetPath).Length);
        }
        finally
        {
            foreach (ModelFolder m in models) m.Dispose();
        }
    }

    /// <summary>The task names a compressed file holds, in order.</summary>
    /// <param name="compressedFile">A file <see cref="Compress"/> wrote.</param>
    /// <returns>The names.</returns>
    public static IReadOnlyList<string> TaskNames(string compressedFile)
    {
        using SafeTensorsFile file = SafeTensorsFile.Open(compressedFile);
        return Tasks(file);
    }

    /// <summary>
    /// Restores task <paramref name="task"/> (its name or 0-based index) as a single-file model folder
    /// <paramref name="outputFolder"/>, each tensor in the base's dtype; the base's <c>config.json</c> is copied.
    /// </summary>
    /// <param name="basePath">The base the file was compressed against.</param>
    /// <param name="compressedFile">A file <see cref="Compress"/> wrote.</param>
    /// <param name="task">The task name or index.</param>
    /// <param name="outputFolder">The folder to create (atomically, with <see cref="OutputFolder"/>'s rules).</param>
    /// <param name="overwrite">Replace an existing folder Weld wrote (or an empty one).</param>
    /// <exception cref="WeldException">Not a TALL file, unknown task, or the base does not match.</exception>
    public static void Restore(string basePath, string compressedFile, string task, string outputFolder, bool overwrite = false)
    {
        using SafeTensorsFile file = SafeTensorsFile.Open(compressedFile);
        IReadOnlyList<string> names = Tasks(file);
        int index = names.ToList().IndexOf(task);
        if (index < 0 && (!int.TryParse(task, NumberStyles.None, CultureInfo.InvariantCulture, out index) || index >= names.Count))
            throw new WeldException($"{compressedFile}: no task '{task}' (tasks: {string.Join(", ", names)}, or an index 0..{names.Count - 1})");
        using var baseline = ModelFolder.Open(basePath);
        var headers = baseline.TensorNames.Select(n => new TensorHeader(n, baseline.GetTensor(n).DType, baseline.GetTensor(n).Shape)).ToArray();
        using var output = new OutputFolder(outputFolder, overwrite, [basePath, compressedFile]);
        using (var writer = new SafeTensorsWriter(Path.Combine(output.WorkPath, ShardLayout.SingleFileName), headers, new Dictionary<string, string> { ["format"] = "pt" }))
        {
            foreach (TensorHeader header in headers)
            {
                ModelTensor b = baseline.GetTensor(header.Name);
                if (!file.TryGetTensor(header.Name, out TensorInfo mtlInfo) || !file.TryGetTensor(MaskName(header.Name, index), out TensorInfo maskInfo))
                    throw new InvalidModelFileException(compressedFile, $"tensor {header.Name} of the base (or its mask for task {index}) is missing");
                if (mtlInfo.ElementCount != b.ElementCount || maskInfo.ByteLength != TallMasks.PackedLength(b.ElementCount))
                    throw new InvalidModelFileException(compressedFile, $"tensor {header.Name}: {mtlInfo.ElementCount} elements and a {maskInfo.ByteLength}-byte mask, the base has {b.ElementCount} elements");
                int n = checked((int)b.ElementCount);
                var theta0 = new float[n];
                var mtl = new float[n];
                b.ReadFloat32(0, theta0);
                file.ReadFloat32(mtlInfo, 0, mtl);
                var restored = new float[n];
                TallMasks.Restore(theta0, mtl, file.GetBytes(maskInfo, 0, checked((int)maskInfo.ByteLength)), restored);
                writer.WriteFloat32(restored);
            }
            writer.Complete();
        }
        string config = Path.Combine(baseline.Path, "config.json");
        if (File.Exists(config)) File.Copy(config, Path.Combine(output.WorkPath, "config.json"));
        output.Commit();
    }

    /// <summary>Whether <paramref name="path"/> is a TALL file Weld wrote (header metadata <c>format: weld-tall</c>).</summary>
    private static bool IsTallFile(string path)
    {
        try
        {
            using SafeTensorsFile file = SafeTensorsFile.Open(path);
            return file.Metadata.TryGetValue("format", out string? format) && format == Format;
        }
        catch (WeldException)
        {
            return false; // not a safetensors file at all
        }
    }

    private static string MaskName(string tensor, int task) => tensor + MaskInfix + task.ToString(CultureInfo.InvariantCulture);

    private static IReadOnlyList<string> Tasks(SafeTensorsFile file) =>
        file.Metadata.TryGetValue("format", out string? format) && format == Format && file.Metadata.TryGetValue("tasks", out string? tasks)
            ? tasks.Split('\n')
            : throw new InvalidModelFileException(file.FilePath, $"not a TALL-compressed file (metadata format is not {Format})");
}
