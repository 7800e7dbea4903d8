using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>
/// A method whose first step on each task vector, after δ_k = θ_k − θ_base, is DARE's random drop: the executor may do
/// the drop while it decodes the row (<see cref="DecodeDrop"/>), so the row is written once, already dropped, and the
/// method skips its own pass over it (<see cref="TensorMergeInputs.DecodedDrops"/>). The method must give the same bits
/// either way.
/// </summary>
/// <remarks>
/// Asked only where the executor forms the task vectors itself (<see cref="MethodTraits.TakesTaskVectors"/>, the CPU
/// backend). The drop's L1 norm partials are statistics: for a streamed tensor the executor sums them in the statistics
/// passes only, and the apply pass's chunks carry none.
/// </remarks>
public interface IDropsWhileDecoding
{
    /// <summary>The drop of row <paramref name="row"/> of this tensor (its δ), or null to leave the row to the method.</summary>
    /// <param name="tensor">The tensor's description: parameters, keys, <see cref="TensorMergeInputs.TensorLength"/>; no data.</param>
    /// <param name="row">The row, in the order of <see cref="TensorMergeInputs.Models"/>.</param>
    RandomDrop? DropInDecode(TensorMergeInputs tensor, int row);
}
