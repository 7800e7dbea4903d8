using System.Numerics;
using System.Runtime.CompilerServices;

namespace Weld.Kernels.Cpu;

/// <summary>
/// How a combine kernel reads element i of stacked row k: as stored, or pre-scaled by s_k. A struct type argument, so
/// the JIT compiles each kernel once per kind and the unscaled path pays nothing for the option.
/// </summary>
internal unsafe interface IStackedRowRead
{
    /// <summary>The vector of row <paramref name="k"/> at <paramref name="at"/>.</summary>
    Vector<float> Load(float* at, int k);

    /// <summary>The element of row <paramref name="k"/> at <paramref name="at"/>.</summary>
    float Read(float* at, int k);
}

/// <summary>Rows as stored.</summary>
internal readonly unsafe struct RowsAsStored : IStackedRowRead
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector<float> Load(float* at, int k) => Vector.Load(at);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Read(float* at, int k) => *at;
}

/// <summary>
/// Row k times s_k, rounded to float32: x·s_k with x first, the bits a <c>Scale</c> pass (TensorPrimitives.Multiply)
/// over the row would have stored, computed in registers instead of read, multiplied, written and read again.
/// </summary>
internal readonly unsafe struct RowsPreScaled(float* scales) : IStackedRowRead
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector<float> Load(float* at, int k) => Vector.Load(at) * new Vector<float>(scales[k]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Read(float* at, int k) => *at * scales[k];
}
