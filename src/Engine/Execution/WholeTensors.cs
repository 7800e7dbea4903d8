using Weld.Engine.Methods;
using Weld.Engine.Planning;

namespace Weld.Engine.Execution;

/// <summary>
/// The tensors of a plan that its method must merge in one piece: the method is neither elementwise nor streams them
/// (<see cref="IStreamingMergeMethod.CanStream"/>: TSV's SVDs, a variant that needs the whole tensor), so all their
/// float32 buffers are held at once: every input row, the base, auxiliary rows and the output.
/// </summary>
public static class WholeTensors
{
    /// <summary>Bytes of float32 buffers <paramref name="task"/> holds when merged in one piece.</summary>
    public static long BufferBytes(TensorTask task) => (long)(task.Rows + 1) * task.ElementCount * sizeof(float);

    /// <summary>
    /// Bytes <paramref name="task"/> needs when merged in one piece: its buffers plus the method's own working memory
    /// (<see cref="IWholeTensorWorkingMemory"/>; 0 for most methods).
    /// </summary>
    public static long NeededBytes(MergePlan plan, TensorTask task) => BufferBytes(task) + WorkingBytes(plan, task);

    /// <summary>The method's own working memory for <paramref name="task"/> (<see cref="IWholeTensorWorkingMemory"/>), else 0.</summary>
    public static long WorkingBytes(MergePlan plan, TensorTask task) =>
        plan.Method is IWholeTensorWorkingMemory working ? working.WorkingBytes(task.Header.Shape, task.ModelParameters, task.Global) : 0;

    /// <summary>True when <paramref name="plan"/>'s method must hold <paramref name="task"/> whole (cannot chunk it).</summary>
    public static bool MustBeWhole(MergePlan plan, TensorTask task) =>
        task.CopyFrom is null && !plan.Method.Traits.Elementwise
        && !(plan.Method is IStreamingMergeMethod streaming && streaming.CanStream(task.ModelParameters, task.Global));

    /// <summary>The tensors that must be merged whole and whose buffers exceed <paramref name="budgetBytes"/>, in plan order.</summary>
    public static IReadOnlyList<TensorTask> AboveBudget(MergePlan plan, long budgetBytes) =>
        plan.Tensors.Where(t => MustBeWhole(plan, t) && BufferBytes(t) > budgetBytes).ToArray();
}
