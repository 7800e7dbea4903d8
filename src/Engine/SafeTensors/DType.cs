namespace Weld.Engine.SafeTensors;

/// <summary>Element types of the safetensors format.</summary>
public enum DType
{
    /// <summary>IEEE float64.</summary>
    F64,
    /// <summary>IEEE float32.</summary>
    F32,
    /// <summary>IEEE float16.</summary>
    F16,
    /// <summary>bfloat16 (the top half of a float32).</summary>
    BF16,
    /// <summary>Signed 64-bit integer.</summary>
    I64,
    /// <summary>Signed 32-bit integer.</summary>
    I32,
    /// <summary>Signed 16-bit integer.</summary>
    I16,
    /// <summary>Signed 8-bit integer.</summary>
    I8,
    /// <summary>Unsigned 8-bit integer.</summary>
    U8,
    /// <summary>Boolean, one byte each.</summary>
    BOOL,
    /// <summary>8-bit float, 4 exponent and 3 mantissa bits (no infinities).</summary>
    F8_E4M3,
    /// <summary>8-bit float, 5 exponent and 2 mantissa bits.</summary>
    F8_E5M2,
}
