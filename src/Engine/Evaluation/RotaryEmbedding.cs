namespace Weld.Engine.Evaluation;

/// <summary>
/// Rotary position embedding tables and their application with rotate-half, computed in float32 the way
/// Hugging Face's <c>LlamaRotaryEmbedding</c> does (inv_freq, angles, cos and sin all float32).
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly float[] _cos; // [positions, headDim / 2]
    private readonly float[] _sin;
    private readonly int _half;

    /// <summary>Builds tables for positions <c>[0, positions)</c>.</summary>
    public RotaryEmbedding(int headDim, int positions, double theta, Llama3RopeScaling? scaling = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(headDim, 2);
        ArgumentOutOfRangeException.ThrowIfNegative(positions);
        _half = headDim / 2;
        float[] inverseFrequency = InverseFrequencies(headDim, theta, scaling);
        _cos = new float[positions * _half];
        _sin = new float[positions * _half];
        for (int p = 0; p < positions; p++)
        {
            for (int i = 0; i < _half; i++)
            {
                float angle = p * inverseFrequency[i];
                _cos[p * _half + i] = MathF.Cos(angle);
                _sin[p * _half + i] = MathF.Sin(angle);
            }
        }
    }

    /// <summary>Positions covered by the tables.</summary>
    public int Positions => _cos.Length / _half;

    /// <summary><c>1 / θ^(2i/d)</c> in float32 (HF: <c>1.0 / base ** (arange(0, d, 2).float() / d)</c>), then Llama-3 scaling.</summary>
    public static float[] InverseFrequencies(int headDim, double theta, Llama3RopeScaling? scaling = null)
    {
        int half = headDim / 2;
        var result = new float[half];
        for (int i = 0; i < half; i++)
            result[i] = 1f / MathF.Pow((float)theta, (2 * i) / (float)headDim);
        if (scaling is null) return result;

        // transformers' _compute_llama3_parameters, element by element.
        double lowWavelength = scaling.OriginalContextLength / scaling.LowFrequencyFactor;
        double highWavelength = scaling.OriginalContextLength / scaling.HighFrequencyFactor;
        for (int i = 0; i < half; i++)
        {
            double frequency = result[i];
            double wavelength = 2 * Math.PI / frequency;
            if (wavelength > lowWavelength)
            {
                frequency /= scaling.Factor;
            }
            else if (wavelength >= highWavelength)
            {
                double smooth = (scaling.OriginalContextLength / wavelength - scaling.LowFrequencyFactor) /
                                (scaling.HighFrequencyFactor - scaling.LowFrequencyFactor);
                frequency = (1 - smooth) * frequency / scaling.Factor + smooth * frequency;
            }

            result[i] = (float)frequency;
        }

        return result;
    }

    /// <summary>
    /// Rotates one head vector at <paramref name="position"/> in place:
    /// <c>x' = x·cos + rotate_half(x)·sin</c> with <c>rotate_half(x) = [−x₂, x₁]</c>.
    /// </summary>
    public void Apply(Span<float> head, int position)
    {
        ReadOnlySpan<float> cos = _cos.AsSpan(position * _half, _half);
        ReadOnlySpan<float> sin = _sin.AsSpan(position * _half, _half);
        Span<float> x1 = head[.._half];
        Span<float> x2 = head.Slice(_half, _half);
        for (int i = 0; i < _half; i++)
        {
            float a = x1[i], b = x2[i];
            // Two products then a sum, each rounded, as the float32 tensor expression does (no fused multiply-add).
            float first = a * cos[i];
            float second = -b * sin[i];
            float third = b * cos[i];
            float fourth = a * sin[i];
            x1[i] = first + second;
            x2[i] = third + fourth;
        }
    }
}
