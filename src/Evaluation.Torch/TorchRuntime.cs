using System.Runtime.InteropServices;
using TorchSharp;
using Weld.Engine;

namespace Weld.Evaluation.Torch;

/// <summary>Loads libtorch once, and turns a load failure into one line that says what to do.</summary>
public static class TorchRuntime
{
    private static readonly object s_gate = new();
    private static bool s_ready;

    /// <summary>Makes sure libtorch (through TorchSharp's native library) is loaded and usable.</summary>
    /// <exception cref="WeldException">The native libraries cannot be loaded on this system.</exception>
    public static void EnsureLoaded()
    {
        lock (s_gate)
        {
            if (s_ready) return;
            try
            {
                torch.InitializeDeviceType(DeviceType.CPU);
            }
            catch (Exception e) when (e is NotSupportedException or DllNotFoundException or TypeInitializationException or ExternalException)
            {
                throw new WeldException(
                    $"the torch engine cannot load libtorch ({FirstLine(e)}); on Linux, build Weld so that its GLIBCXX step runs (docs/evaluation.md), or use --engine builtin.", e);
            }

            s_ready = true;
        }
    }

    private static string FirstLine(Exception e)
    {
        while (e.InnerException is not null && e is TypeInitializationException) e = e.InnerException;
        string message = e.Message;
        int end = message.IndexOf('\n', StringComparison.Ordinal);
        return end < 0 ? message : message[..end];
    }
}
