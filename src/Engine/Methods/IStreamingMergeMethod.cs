namespace Weld.Engine.Methods;

/// <summary>
/// A method that can merge a tensor too large for the memory limit by reading it several times in chunks:
/// zero or more statistics passes (top-k thresholds, norms), then an apply pass that writes the output chunk by
/// chunk. The streamed output has the same bits as <see cref="IMergeMethod.Merge"/> on the whole tensor.
/// </summary>
public interface IStreamingMergeMethod : IMergeMethod
{
    /// <summary>Whether tensors with these parameters can be streamed (some variants need the whole tensor).</summary>
    bool CanStream(IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global);

    /// <summary>
    /// Starts one tensor. <paramref name="description"/> carries the kernels, names, parameters, keys and
    /// <see cref="TensorMergeInputs.TensorLength"/>; its data is empty.
    /// </summary>
    IStreamingTensorMerge BeginTensor(TensorMergeInputs description);
}

/// <summary>The state of one tensor being streamed.</summary>
/// <remarks>
/// The caller runs, for pass = 0 … <see cref="StatisticsPasses"/> − 1, <see cref="Observe"/> on every chunk in index
/// order and then <see cref="EndPass"/>; then <see cref="Merge"/> on every chunk in index order. Chunks start at
/// multiples of <see cref="TensorMergeInputs.ChunkAlignment"/>; their rows are scratch the state may overwrite (in a
/// statistics pass the base row too: nothing reads it after <see cref="Observe"/>).
/// </remarks>
public interface IStreamingTensorMerge
{
    /// <summary>
    /// Statistics passes needed before the output can be written (0: one pass suffices). The caller reads it again after
    /// each <see cref="EndPass"/>: a state may find after a pass that it needs fewer than it first said (never more).
    /// </summary>
    int StatisticsPasses { get; }

    /// <summary>Gathers statistics from one chunk in pass <paramref name="pass"/>.</summary>
    void Observe(int pass, TensorMergeInputs chunk);

    /// <summary>Closes pass <paramref name="pass"/> after its last chunk.</summary>
    void EndPass(int pass);

    /// <summary>Writes the output elements of one chunk.</summary>
    void Merge(TensorMergeInputs chunk, Span<float> output);
}
