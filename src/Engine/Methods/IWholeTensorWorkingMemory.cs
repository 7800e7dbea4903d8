namespace Weld.Engine.Methods;

/// <summary>
/// A method whose <see cref="IMergeMethod.Merge"/> allocates large working memory of its own, beyond the executor's
/// float32 buffers (TSV's float64 factorisations). The whole-tensor fallback counts it when it decides whether a
/// tensor fits the memory the machine can give (<c>Execution.WholeTensors</c>).
/// </summary>
public interface IWholeTensorWorkingMemory
{
    /// <summary>
    /// An upper estimate of the bytes <see cref="IMergeMethod.Merge"/> allocates at its peak for a tensor of
    /// <paramref name="shape"/> with these parameters (one entry of <paramref name="modelParameters"/> per input model).
    /// </summary>
    long WorkingBytes(long[] shape, IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global);
}
