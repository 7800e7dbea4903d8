using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Weld.Kernels.Gpu;

/// <summary>One GPU kernel compiled to PTX.</summary>
/// <param name="Name">The kernel's name, <c>Class.Method</c> (the file name of <see cref="PtxExport.Write"/> without <c>.ptx</c>).</param>
/// <param name="Assembly">The PTX text ILGPU generated.</param>
public sealed record PtxKernel(string Name, string Assembly);

/// <summary>
/// Compiles every GPU kernel to PTX without a GPU: ILGPU's PTX backend on a context that has no CUDA device. What
/// <c>Weld.Bench ptx DIR</c> writes, and what the PTX tests read (no <c>.ftz</c>, no <c>.approx</c>, every float
/// operation's rounding pinned, the intended FMA count).
/// </summary>
/// <remarks>
/// A kernel is a static <c>void</c> method of a static class in namespace <c>Weld.Kernels.Gpu</c> that takes at least
/// one <see cref="ArrayView{T}"/> (explicitly grouped: ILGPU passes no index parameter). Generic methods and methods
/// with <c>ref</c>/<c>out</c> parameters are device helpers, not kernels.
/// </remarks>
public static class PtxExport
{
    /// <summary>
    /// The driver version the instruction set is chosen for: ILGPU picks the newest PTX ISA that this driver and the
    /// architecture support, as a CUDA accelerator on a current driver would.
    /// </summary>
    private static readonly CudaDriverVersion s_driver = CudaDriverVersion.FromMajorMinor(13, 0);

    /// <summary>The newest architecture ILGPU 1.5.3 can target (the largest <c>CudaArchitecture.SM_*</c>).</summary>
    public static CudaArchitecture NewestArchitecture
    {
        get
        {
            CudaArchitecture newest = CudaArchitecture.SM_20;
            foreach (FieldInfo member in typeof(CudaArchitecture).GetFields(BindingFlags.Public | BindingFlags.Static))
            {
                if (member.FieldType == typeof(CudaArchitecture) && member.GetValue(null) is CudaArchitecture architecture
                    && architecture.CompareTo(newest) > 0)
                    newest = architecture;
            }
            return newest;
        }
    }

    /// <summary>The Hopper architecture (H100, H200), the GPUs the bench runs on.</summary>
    public static CudaArchitecture Hopper => CudaArchitecture.SM_90;

    /// <summary>Every GPU kernel method, ordered by class and method name.</summary>
    public static IReadOnlyList<MethodInfo> Kernels()
    {
        var kernels = new List<MethodInfo>();
        foreach (Type type in typeof(GpuKernels).Assembly.GetTypes())
        {
            // Static classes only: abstract + sealed in IL. Nested closures and the backend class itself are not.
            if (type.Namespace != typeof(GpuKernels).Namespace || !type.IsClass || !type.IsAbstract || !type.IsSealed || type.IsNested)
                continue;
            foreach (MethodInfo method in type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.DeclaredOnly))
            {
                if (IsKernel(method))
                    kernels.Add(method);
            }
        }
        kernels.Sort((a, b) => string.CompareOrdinal(NameOf(a), NameOf(b)));
        return kernels;
    }

    /// <summary>The kernel's name, <c>Class.Method</c>.</summary>
    /// <param name="kernel">A method of <see cref="Kernels"/>.</param>
    public static string NameOf(MethodInfo kernel)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        return $"{kernel.DeclaringType!.Name}.{kernel.Name}";
    }

    /// <summary>Compiles every kernel for <paramref name="architecture"/> (default <see cref="NewestArchitecture"/>).</summary>
    /// <param name="architecture">The target (for example <c>CudaArchitecture.SM_90</c>).</param>
    /// <returns>One entry per kernel, in <see cref="Kernels"/> order.</returns>
    /// <exception cref="InvalidOperationException">A kernel does not compile (the message names it).</exception>
    public static IReadOnlyList<PtxKernel> Compile(CudaArchitecture? architecture = null)
    {
        CudaArchitecture target = architecture ?? NewestArchitecture;
        // As a CUDA accelerator does: ILGPU writes `.target` for the lowest architecture that has the capabilities
        // it uses (sm_80 for any newer GPU in 1.5.3) and picks the ISA for that target and the driver.
        var capabilities = new CudaCapabilityContext(target);
        CudaInstructionSet instructionSet = CudaAccelerator.GetInstructionSet(capabilities.TargetArchitecture, s_driver);
        // The same context settings as GpuDevice.Cuda (default math: no fast math; default optimisation level), with
        // no device in it.
        using Context context = Context.Create(builder => builder.Math(MathMode.Default).EnableAlgorithms());
        using var backend = new PTXBackend(context, capabilities, target, instructionSet, nvvmAPI: null);
        var result = new List<PtxKernel>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (MethodInfo kernel in Kernels())
        {
            string name = NameOf(kernel);
            // Overloads get a numbered file each rather than overwriting one another.
            for (int n = 2; !names.Add(name); n++)
                name = $"{NameOf(kernel)}.{n}";
            try
            {
                var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(kernel), KernelSpecialization.Empty);
                result.Add(new PtxKernel(name, compiled.PTXAssembly));
            }
            catch (Exception error) when (error is not OutOfMemoryException)
            {
                throw new InvalidOperationException($"{name} does not compile to PTX for {target}: {error.Message}", error);
            }
        }
        return result;
    }

    /// <summary>
    /// Writes <c>Class.Method.ptx</c> for every kernel into <paramref name="directory"/> (created) and returns the paths.
    /// </summary>
    /// <param name="directory">The output folder.</param>
    /// <param name="architecture">The target (default <see cref="NewestArchitecture"/>).</param>
    public static IReadOnlyList<string> Write(string directory, CudaArchitecture? architecture = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        Directory.CreateDirectory(directory);
        var paths = new List<string>();
        foreach (PtxKernel kernel in Compile(architecture))
        {
            string path = Path.Combine(directory, kernel.Name + ".ptx");
            File.WriteAllText(path, kernel.Assembly);
            paths.Add(path);
        }
        return paths;
    }

    /// <summary>
    /// The instructions of <paramref name="ptx"/> that can execute, in text order: code behind a branch on a constant
    /// predicate is dropped, as ptxas drops it. ILGPU does not fold <c>CudaAsm.IsSupported</c>: every
    /// <see cref="GpuArithmetic"/> call leaves its plain C# fallback (<c>mul.f32</c>, ...) in the PTX behind a
    /// <c>setp.ne.s32 %p, 1, 1</c> branch that is never taken.
    /// </summary>
    /// <param name="ptx">One kernel's PTX (one entry).</param>
    /// <returns>Each reachable statement without its predicate guard, for example <c>fma.rn.f32 %f3, %f1, %f2, %f0</c>.</returns>
    public static IReadOnlyList<string> ReachableInstructions(string ptx)
    {
        ArgumentNullException.ThrowIfNull(ptx);
        int entry = ptx.IndexOf(".entry", StringComparison.Ordinal);
        int open = entry < 0 ? -1 : ptx.IndexOf('{', ptx.IndexOf(')', entry));
        if (open < 0)
            throw new ArgumentException("no .entry body in the PTX", nameof(ptx));
        var statements = new List<(string? Guard, string Text)>();
        var labels = new Dictionary<string, int>(StringComparer.Ordinal);
        // Statements end at ';'; scoping braces (around calls) are separators too. Comments go first.
        string body = string.Join('\n', ptx[(open + 1)..].Split('\n').Select(line => line.Split("//", 2)[0]));
        foreach (string raw in body.Replace('{', ';').Replace('}', ';').Split(';'))
        {
            string text = raw.Trim();
            while (LabelOf(text) is { } label)
            {
                labels[label] = statements.Count;
                text = text[(label.Length + 1)..].Trim();
            }
            if (text.Length == 0 || text[0] == '.')
                continue;
            string? guard = null;
            if (text[0] == '@')
            {
                int space = text.IndexOfAny([' ', '\t']);
                guard = text[1..space];
                text = text[space..].Trim();
            }
            statements.Add((guard, string.Join(' ', text.Split((char[])[' ', '\t', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries))));
        }

        Dictionary<string, bool?> constants = ConstantPredicates(statements);
        var reachable = new bool[statements.Count];
        var work = new Stack<int>();
        work.Push(0);
        while (work.Count > 0)
        {
            int at = work.Pop();
            if (at >= statements.Count || reachable[at])
                continue;
            reachable[at] = true;
            (string? guard, string text) = statements[at];
            string opcode = text.Split(' ', 2)[0];
            bool? taken = guard is null ? true : guard[0] == '!' ? !Lookup(constants, guard[1..]) : Lookup(constants, guard);
            bool isBranch = opcode is "bra" or "bra.uni";
            bool ends = isBranch || opcode is "ret" or "exit" or "trap";
            if (taken != true || !ends)
                work.Push(at + 1);
            if (isBranch && taken != false && labels.TryGetValue(text.Split(' ', 2)[1].Trim(), out int target))
                work.Push(target);
        }
        var result = new List<string>();
        for (int i = 0; i < statements.Count; i++)
        {
            if (reachable[i])
                result.Add(statements[i].Text);
        }
        return result;
    }

    /// <summary>How many reachable instructions have exactly the opcode <paramref name="opcode"/> (for example <c>fma.rn.f32</c>).</summary>
    /// <param name="ptx">One kernel's PTX.</param>
    /// <param name="opcode">The opcode with its modifiers.</param>
    public static int Count(string ptx, string opcode)
    {
        int count = 0;
        foreach (string instruction in ReachableInstructions(ptx))
        {
            if (instruction.Split(' ', 2)[0] == opcode)
                count++;
        }
        return count;
    }

    private static string? LabelOf(string text)
    {
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0)
            return null;
        for (int i = 0; i < colon; i++)
        {
            if (!char.IsLetterOrDigit(text[i]) && text[i] is not '_' and not '$')
                return null;
        }
        return text[..colon];
    }

    private static bool? Lookup(Dictionary<string, bool?> constants, string predicate) =>
        constants.TryGetValue(predicate, out bool? value) ? value : null;

    /// <summary>Predicates written once, by a comparison of two integer literals or a mov of one: their value.</summary>
    private static Dictionary<string, bool?> ConstantPredicates(List<(string? Guard, string Text)> statements)
    {
        var writes = new Dictionary<string, int>(StringComparer.Ordinal);
        var values = new Dictionary<string, bool?>(StringComparer.Ordinal);
        foreach ((string? guard, string text) in statements)
        {
            string[] parts = text.Split(' ', 2);
            if (!parts[0].StartsWith("setp.", StringComparison.Ordinal) && parts[0] != "mov.pred")
                continue;
            string[] operands = parts.Length > 1 ? parts[1].Split(',', StringSplitOptions.TrimEntries) : [];
            if (operands.Length == 0)
                continue;
            string destination = operands[0].Split('|')[0];
            writes[destination] = writes.GetValueOrDefault(destination) + 1;
            bool? value = null;
            if (guard is null && parts[0] == "mov.pred" && operands.Length == 2 && operands[1] is "0" or "1")
                value = operands[1] == "1";
            else if (guard is null && operands.Length == 3 && long.TryParse(operands[1], out long left) && long.TryParse(operands[2], out long right))
            {
                value = parts[0].Split('.')[1] switch
                {
                    "eq" => left == right,
                    "ne" => left != right,
                    "lt" => left < right,
                    "le" => left <= right,
                    "gt" => left > right,
                    "ge" => left >= right,
                    _ => null,
                };
            }
            values[destination] = value;
        }
        foreach ((string predicate, int count) in writes)
        {
            if (count != 1)
                values[predicate] = null;
        }
        return values;
    }

    private static bool IsKernel(MethodInfo method)
    {
        if (method.ReturnType != typeof(void) || method.IsGenericMethodDefinition || method.IsSpecialName
            || method.IsDefined(typeof(CpuAcceleratorOnlyAttribute), inherit: false))
            return false;
        bool hasView = false;
        foreach (ParameterInfo parameter in method.GetParameters())
        {
            Type type = parameter.ParameterType;
            if (type.IsByRef || type.IsPointer)
                return false;
            if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(ArrayView<>))
                hasView = true;
        }
        return hasView;
    }
}

/// <summary>
/// Marks a kernel that only ILGPU's CPU accelerator runs (a CUDA twin exists with PTX-safe numerics), so PTX export
/// and its checks leave it out.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class CpuAcceleratorOnlyAttribute : Attribute;
