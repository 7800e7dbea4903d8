using System.Reflection;
using System.Runtime.Loader;

namespace Weld.Bench;

/// <summary>
/// Runs the GPU tests of built xunit test assemblies without the .NET SDK (the GPU machines have a runtime at most,
/// no <c>dotnet test</c>): every method carrying a CUDA or NVRTC fact/theory attribute, each data row of a theory,
/// on a fresh instance of its class. Prints PASS/FAIL/SKIP per test and a summary.
/// </summary>
/// <remarks>
/// Attributes are recognised by name (<c>CudaFactAttribute</c>, <c>CudaTheoryAttribute</c>, <c>CudaDeviceTheoryAttribute</c>,
/// <c>NvrtcFactAttribute</c>, <c>NvrtcTheoryAttribute</c>, <c>CublasFactAttribute</c>, <c>CudaGemmFactAttribute</c>) so the bench needs no reference to xunit; theory rows come
/// from each data attribute's own <c>GetData(MethodInfo)</c>, as xunit takes them.
/// </remarks>
public static class GpuTestRunner
{
    private static readonly HashSet<string> s_testAttributes = new(StringComparer.Ordinal)
    {
        "CudaFactAttribute", "CudaTheoryAttribute", "CudaDeviceTheoryAttribute", "NvrtcFactAttribute", "NvrtcTheoryAttribute",
        "CublasFactAttribute", "CudaGemmFactAttribute",
    };

    /// <summary>Runs the GPU tests of <paramref name="assemblyPaths"/>.</summary>
    /// <returns>0 when every test ran and passed; 1 on a failure; 2 when a test was skipped or none was found.</returns>
    public static int Run(IReadOnlyList<string> assemblyPaths)
    {
        int passed = 0, failed = 0, skipped = 0;
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
                foreach (MethodInfo method in type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly))
                {
                    Attribute? test = method.GetCustomAttributes().FirstOrDefault(a => s_testAttributes.Contains(a.GetType().Name));
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
                        string label = row.Length == 0 ? name : $"{name}({string.Join(", ", row)})";
                        if (RunOne(type, method, row, out string? failure))
                        {
                            Console.WriteLine($"PASS {label}");
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
        Console.WriteLine($"gpu tests: {passed} passed, {failed} failed, {skipped} skipped");
        return failed > 0 ? 1 : skipped > 0 || passed == 0 ? 2 : 0;
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
