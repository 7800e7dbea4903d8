using System.Diagnostics;
using System.Text;
using Xunit;

namespace Weld.Cli.Tests.Docs;

/// <summary>Runs documented shell commands as a reader would: bash, with the built <c>weld</c> on the PATH.</summary>
internal static class DocShell
{
    public static void WriteWeldShim(string bin)
    {
        string weld = Path.Combine(AppContext.BaseDirectory, "weld.dll");
        Assert.True(File.Exists(weld), $"{weld} not found");
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        string shim = Path.Combine(bin, "weld");
        File.WriteAllText(shim, $"#!/bin/sh\nexec \"{dotnet}\" \"{weld}\" \"$@\"\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(shim, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    public static (int ExitCode, string Output) Run(string workingDirectory, string bin, string script, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        start.ArgumentList.Add("-euo");
        start.ArgumentList.Add("pipefail");
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(script);
        start.Environment["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH");
        foreach ((string name, string value) in environment ?? new Dictionary<string, string>())
            start.Environment[name] = value;
        using Process process = Process.Start(start)!;
        var output = new StringBuilder();
        Task stdout = Task.Run(() => output.Append(process.StandardOutput.ReadToEnd()));
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            return (-1, "timed out after 3 minutes");
        }
        stdout.Wait();
        output.Append(stderr.GetAwaiter().GetResult());
        return (process.ExitCode, output.ToString());
    }
}
