using System.Security.Cryptography;
using System.Text;

namespace Weld.Kernels.Cuda;

/// <summary>
/// PTX compiled by NVRTC, kept on disk under <c>~/.cache/weld/ptx/&lt;sha256&gt;.ptx</c>, the hash taken over the
/// source, the options and the device, so a change to any of them compiles afresh. A cache that cannot be read or
/// written only costs a compile.
/// </summary>
internal static class PtxCache
{
    /// <summary>Environment variable that moves the cache folder.</summary>
    public const string FolderVariable = "WELD_PTX_CACHE";

    /// <summary>The cache folder.</summary>
    public static string Folder =>
        Environment.GetEnvironmentVariable(FolderVariable) is { Length: > 0 } chosen
            ? chosen
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "weld", "ptx");

    /// <summary>The cache key: SHA-256 (hex) of source, options and device description.</summary>
    public static string Key(string source, IReadOnlyList<string> options, string device)
    {
        string text = source + "\0" + string.Join("\0", options) + "\0" + device;
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    /// <summary>Returns the cached PTX for the key, or compiles, stores and returns it.</summary>
    public static string GetOrCompile(string source, IReadOnlyList<string> options, string device, Func<string> compile) =>
        GetOrCompile(Folder, source, options, device, compile);

    /// <summary>Returns the PTX cached in <paramref name="folder"/> for the key, or compiles, stores and returns it.</summary>
    public static string GetOrCompile(string folder, string source, IReadOnlyList<string> options, string device, Func<string> compile)
    {
        string path = Path.Combine(folder, Key(source, options, device) + ".ptx");
        try
        {
            if (File.Exists(path))
                return File.ReadAllText(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        string ptx = compile();
        try
        {
            Directory.CreateDirectory(folder);
            // Write then rename: a concurrent reader never sees half a file.
            string temporary = path + $".{Environment.ProcessId}.tmp";
            File.WriteAllText(temporary, ptx);
            File.Move(temporary, path, overwrite: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return ptx;
    }
}
