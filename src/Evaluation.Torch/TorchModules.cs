using TorchSharp;
using Weld.Engine.Evaluation;
using static TorchSharp.torch;
using static TorchSharp.torch.nn.functional;

namespace Weld.Evaluation.Torch;

/// <summary>A bias-optional projection <c>x·Wᵀ + b</c> whose weight is kept as loaded and run in the compute type.</summary>
internal sealed class Projection : nn.Module<Tensor, Tensor>
{
    private readonly Tensor _weight;
    private readonly Tensor? _bias;
    private readonly ScalarType _compute;

    public Projection(string name, Tensor weight, Tensor? bias, TorchComputeType compute) : base(name)
    {
        _compute = compute == TorchComputeType.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float32;
        _weight = weight.to_type(_compute);
        _bias = bias?.to_type(_compute);
        register_buffer("weight", _weight);
        if (_bias is not null) register_buffer("bias", _bias);
    }

    /// <summary>Output features (rows of the weight).</summary>
    public long OutFeatures => _weight.shape[0];

    public override Tensor forward(Tensor input) => linear(input.to_type(_compute), _weight, _bias).to_type(ScalarType.Float32);
}

/// <summary>RMSNorm, Hugging Face order: <c>x·rsqrt(mean(x²) + ε)</c>, then times the weight (float32).</summary>
internal sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Tensor _weight;
    private readonly Scalar _eps;

    public RmsNorm(string name, Tensor weight, double eps) : base(name)
    {
        _weight = weight.to_type(ScalarType.Float32);
        // ε as a float32 Scalar (the float32 expression mean + eps), held by the module: see TorchScalars.
        _eps = ((float)eps).ToScalar();
        register_buffer("weight", _weight);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor meanSquare = x.square().mean([-1], keepdim: true);
        return (x * meanSquare.add(_eps).rsqrt() * _weight).MoveToOuterDisposeScope();
    }
}

/// <summary>SwiGLU: <c>down(silu(gate(x))·up(x))</c>.</summary>
internal sealed class SwiGlu(string name, Projection gate, Projection up, Projection down) : nn.Module<Tensor, Tensor>(name)
{
    private readonly Projection _gate = gate, _up = up, _down = down;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return _down.forward(silu(_gate.forward(x)) * _up.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Grouped-query causal self-attention with rotary positions (rotate-half), eager: softmax(q·kᵀ/√d + causal mask)·v
/// in float32; each key/value head serves heads/kvHeads consecutive query heads. Qwen3's optional q_norm/k_norm are
/// RMSNorms of every query and key head over head_dim, applied before the rotation.
/// </summary>
internal sealed class Attention : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    private readonly Projection _q, _k, _v, _o;
    private readonly RmsNorm? _qNorm, _kNorm;
    private readonly int _heads, _kvHeads, _headDim;
    private readonly Scalar _scale;

    public Attention(string name, Projection q, Projection k, Projection v, Projection o, RmsNorm? qNorm, RmsNorm? kNorm,
        LlamaConfig config) : base(name)
    {
        (_q, _k, _v, _o, _qNorm, _kNorm) = (q, k, v, o, qNorm, kNorm);
        _heads = config.HeadCount;
        _kvHeads = config.KeyValueHeadCount;
        _headDim = config.HeadDim;
        _scale = ((float)(1.0 / Math.Sqrt(_headDim))).ToScalar();
        RegisterComponents();
    }

    /// <summary>x [B, T, h]; cos and sin [T, d] (the half-tables duplicated).</summary>
    public override Tensor forward(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], t = x.shape[1];
        Tensor q = _q.forward(x).view(batch, t, _heads, _headDim);
        Tensor k = _k.forward(x).view(batch, t, _kvHeads, _headDim);
        if (_qNorm is not null) q = _qNorm.forward(q);
        if (_kNorm is not null) k = _kNorm.forward(k);
        q = q.transpose(1, 2);
        k = k.transpose(1, 2);
        Tensor v = _v.forward(x).view(batch, t, _kvHeads, _headDim).transpose(1, 2);
        q = Rotate(q, cos, sin);
        k = Rotate(k, cos, sin);
        int group = _heads / _kvHeads;
        if (group > 1)
        {
            k = k.repeat_interleave(group, 1);
            v = v.repeat_interleave(group, 1);
        }

        Tensor scores = q.matmul(k.transpose(2, 3)).mul(_scale);
        using Tensor mask = ones([t, t], ScalarType.Bool).triu(1);
        Tensor weights = scores.masked_fill(mask, TorchScalars.NegativeInfinity).softmax(-1);
        Tensor attended = weights.matmul(v).transpose(1, 2).reshape(batch, t, _heads * _headDim);
        return _o.forward(attended).MoveToOuterDisposeScope();
    }

    /// <summary><c>x·cos + rotate_half(x)·sin</c>, <c>rotate_half(x) = [−x₂, x₁]</c>.</summary>
    private static Tensor Rotate(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
        return x * cos + cat([-x2, x1], -1) * sin;
    }
}

/// <summary>
/// A sparse MoE block: softmax over all E router logits (float32), top-k; Mixtral renormalises the k weights to sum to
/// 1, Qwen2-MoE / Qwen3-MoE only with norm_topk_prob; output = Σ weightᵢ·expertᵢ(x), experts added in index order,
/// then (Qwen2-MoE) sigmoid(shared_expert_gate·x)·shared_expert(x).
/// </summary>
internal sealed class SparseMoe : nn.Module<Tensor, Tensor>
{
    private readonly Projection _router;
    private readonly SwiGlu[] _experts;
    private readonly Scalar[] _expertIndex;
    private readonly int _topK;
    private readonly bool _normalize;
    private readonly SwiGlu? _shared;
    private readonly Projection? _sharedGate;

    public SparseMoe(string name, Projection router, SwiGlu[] experts, int topK, bool normalize, SwiGlu? shared = null,
        Projection? sharedGate = null) : base(name)
    {
        if ((shared is null) != (sharedGate is null)) throw new ArgumentException("a shared expert needs its gate, and only it.", nameof(sharedGate));
        _router = router;
        _experts = experts;
        _topK = topK;
        _normalize = normalize;
        (_shared, _sharedGate) = (shared, sharedGate);
        _expertIndex = new Scalar[experts.Length];
        for (int e = 0; e < experts.Length; e++) _expertIndex[e] = ((long)e).ToScalar();
        for (int e = 0; e < experts.Length; e++) register_module($"experts_{e}", experts[e]);
        register_module("gate", router);
        if (shared is not null)
        {
            register_module("shared_expert", shared);
            register_module("shared_expert_gate", sharedGate!);
        }
    }

    /// <summary>x [rows, h].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor probabilities = _router.forward(x).softmax(-1);
        (Tensor top, Tensor chosen) = probabilities.topk(_topK, -1);
        if (_normalize) top = top / top.sum(-1, keepdim: true);
        Tensor output = zeros_like(x);
        for (int e = 0; e < _experts.Length; e++)
        {
            Tensor hit = chosen.eq(_expertIndex[e]);
            Tensor rows = hit.any(-1).nonzero().squeeze(-1);
            if (rows.shape[0] == 0) continue;
            Tensor weight = (top * hit.to_type(ScalarType.Float32)).sum(-1).index_select(0, rows).unsqueeze(-1);
            Tensor value = _experts[e].forward(x.index_select(0, rows)) * weight;
            output.index_add_(0, rows, value, TorchScalars.One);
        }

        if (_shared is not null) output = output + _shared.forward(x) * _sharedGate!.forward(x).sigmoid();
        return output.MoveToOuterDisposeScope();
    }
}

/// <summary>One decoder layer: pre-norm attention and pre-norm MLP (dense or sparse), each added to the residual.</summary>
internal sealed class DecoderLayer : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    private readonly RmsNorm _inputNorm, _postAttentionNorm;
    private readonly Attention _attention;
    private readonly nn.Module<Tensor, Tensor> _mlp;

    public DecoderLayer(string name, RmsNorm inputNorm, Attention attention, RmsNorm postAttentionNorm, nn.Module<Tensor, Tensor> mlp) : base(name)
    {
        (_inputNorm, _attention, _postAttentionNorm, _mlp) = (inputNorm, attention, postAttentionNorm, mlp);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        Tensor h = x + _attention.forward(_inputNorm.forward(x), cos, sin);
        Tensor normed = _postAttentionNorm.forward(h);
        Tensor mlp = _mlp is SparseMoe
            ? _mlp.forward(normed.reshape(-1, normed.shape[^1])).view(normed.shape)
            : _mlp.forward(normed);
        return (h + mlp).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Scalars that live as long as the process. Every Scalar the modules pass to libtorch is held by a field rather than
/// made by an implicit conversion: a temporary Scalar that nothing references can be finalized by the GC while the
/// native call still reads it (seen here as c10's "Expected false to be true" from Scalar::toFloat under load).
/// </summary>
internal static class TorchScalars
{
    public static readonly Scalar NegativeInfinity = float.NegativeInfinity.ToScalar();
    public static readonly Scalar One = 1.ToScalar();
}
