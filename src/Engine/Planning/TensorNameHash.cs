using System.Text;

namespace Weld.Engine.Planning;

/// <summary>Stable 32-bit hash of a tensor name (FNV-1a over its UTF-8 bytes): keys the random streams.</summary>
public static class TensorNameHash
{
    /// <summary>FNV-1a 32 of the UTF-8 encoding of <paramref name="name"/>.</summary>
    public static uint Compute(string name)
    {
        uint hash = 2166136261;
        Span<byte> buffer = name.Length <= 256 ? stackalloc byte[Encoding.UTF8.GetMaxByteCount(name.Length)] : new byte[Encoding.UTF8.GetMaxByteCount(name.Length)];
        int count = Encoding.UTF8.GetBytes(name, buffer);
        foreach (byte b in buffer[..count])
        {
            hash ^= b;
            hash *= 16777619;
        }
        return hash;
    }
}
