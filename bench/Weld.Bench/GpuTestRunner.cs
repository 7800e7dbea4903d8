using System.Reflection;
using System.Runtime.Loader;

namespace Weld.Bench;

/// <summary>
/// Runs the GPU tests of built xunit test assemblies without the .NET SDK (a GPU machine may have a runtime only, no
/// <c>dotnet test</c>): every fact and theory of the GPU test classes, each data row of a theory, on a fresh
/// instance of its class. Prints PASS/FAIL/SKIP per test and a summary.
/// </summary>
/// <remarks>
/// GPU test classes: those in a <c>*.Gpu</c> namespace (tests/Kernels.Tests/Gpu), and those whose name starts with
/// <c>Gpu</c> or contains <c>Device</c> (the engine's and the CLI's device tests). Attributes are recognised by their
/// type's name (<c>FactAttribute</c>, <c>TheoryAttribute</c> and their subclasses) so the bench needs no reference to
/// xunit; theory rows come from each data attribute's own <c>GetData(MethodInfo)</c>, as xunit takes them.
/// With <c>--device cuda</c> the rows for the emulator (an argument <c>ilgpu-cpu</c> or <c>emulated-…</c>) are left
/// out: CI runs them on every commit, and the GPU machine's minutes are for the device.
/// </remarks>
public static class GpuTestRunner
{
    /// <summary>Runs the GPU tests of the assemblies in <paramref name="arguments"/> (optionally after <c>--device cuda</c>).</summary>
    /// <returns>0 when every test ran and passed; 1 on a failure; 2 when a test was skipped or none was found.</returns>
    public static int Run(IReadOnlyList<string> arguments)
    {
        bool deviceOnly = arguments.Count >= 2 && arguments[0] == "--device" && arguments[1] != "ilgpu-cpu";
        IEnumerable<string> assemblyPaths = arguments.Count >= 2 && arguments[0] == "--device" ? arguments.Skip(2) : arguments;
        int passed = 0, failed = 0, skipped = 0, leftOut = 0;
        foreach (string path in assemblyPaths)
        {
            string folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
            AssemblyLoadContext.Default.Resolving += (context, name) =>
            {
                string candidate = Path.Combine(folder, name.Name + ".dll");
                return File.Exists(candidate) ? context.LoadFromAssemblyPath(candidate) : null;
            };
            Assembly tests = AssemblyLoadContext.Default.LoadFromAssemblyPath(Path.GetFullPath(path));
            foreach (Type type in tests.GetTypes())
            {
                if (!IsGpuTestClass(type))
                    continue;
                foreach (MethodInfo method in type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly))
                {
                    Attribute? test = method.GetCustomAttributes().FirstOrDefault(IsTestAttribute);
                    if (test is null)
                        continue;
                    string name = $"{type.Name}.{method.Name}";
                    if (test.GetType().GetProperty("Skip")?.GetValue(test) is string { Length: > 0 } reason)
                    {
                        Console.WriteLine($"SKIP {name}: {reason}");
                        skipped++;
                        continue;
                    }
                    foreach (object?[] row in Rows(method))
                    {
                        if (deviceOnly && row.Any(value => value is "ilgpu-cpu" || value is string text && text.StartsWith("emulated-", StringComparison.Ordinal)))
                        {
                            leftOut++;
                            continue;
                        }
                        string label = row.Length == 0 ? name : $"{name}({string.Join(", ", row)})";
                        var watch = System.Diagnostics.Stopwatch.StartNew();
                        if (RunOne(type, method, row, out string? failure))
                        {
                            Console.WriteLine($"PASS {label} [{watch.Elapsed.TotalSeconds:F1} s]");
                            passed++;
                        }
                        else
                        {
                            Console.WriteLine($"FAIL {label}: {failure}");
                            failed++;
                        }
                    }
                }
            }
        }
        Console.WriteLine($"gpu tests: {passed} passed, {failed} failed, {skipped} skipped{(deviceOnly ? $", {leftOut} emulator rows left to CI" : "")}");
        return failed > 0 ? 1 : skipped > 0 || passed == 0 ? 2 : 0;
    }

    private static bool IsGpuTestClass(Type type) =>
        type is { IsClass: true, IsAbstract: false, IsPublic: true }
        && (type.Namespace?.EndsWith(".Gpu", StringComparison.Ordinal) == true
            || type.Name.StartsWith("Gpu", StringComparison.Ordinal)
            || type.Name.Contains("Device", StringComparison.Ordinal));

    private static bool IsTestAttribute(Attribute attribute)
    {
        for (Type? type = attribute.GetType(); type is not null; type = type.BaseType)
        {
            if (type.Name is "FactAttribute" or "TheoryAttribute")
                return true;
        }
        return false;
    }

    private static IEnumerable<object?[]> Rows(MethodInfo method)
    {
        bool any = false;
        foreach (Attribute attribute in method.GetCustomAttributes())
        {
            MethodInfo? getData = attribute.GetType().GetMethod("GetData", [typeof(MethodInfo)]);
            if (getData?.Invoke(attribute, [method]) is not IEnumerable<object?[]> rows)
                continue;
            foreach (object?[] row in rows)
            {
                any = true;
                yield return row;
            }
        }
        if (!any)
            yield return [];
    }

    private static bool RunOne(Type type, MethodInfo method, object?[] row, out string? failure)
    {
        object? instance = null;
        try
        {
            instance = Activator.CreateInstance(type);
            method.Invoke(instance, row);
            failure = null;
            return true;
        }
        catch (TargetInvocationException error) when (error.InnerException is not null)
        {
            failure = error.InnerException.ToString();
            return false;
        }
        catch (Exception error)
        {
            failure = error.ToString();
            return false;
        }
        finally
        {
            (instance as IDisposable)?.Dispose();
        }
    }
}
