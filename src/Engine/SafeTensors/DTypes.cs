namespace Weld.Engine.SafeTensors;

/// <summary>Facts about <see cref="DType"/>: element sizes and the names used by safetensors and PyTorch.</summary>
public static class DTypes
{
    /// <summary>Bytes per element of <paramref name="dtype"/>.</summary>
    public static int SizeOf(DType dtype) => dtype switch
    {
        DType.F64 or DType.I64 => 8,
        DType.F32 or DType.I32 => 4,
        DType.F16 or DType.BF16 or DType.I16 => 2,
        DType.I8 or DType.U8 or DType.BOOL or DType.F8_E4M3 or DType.F8_E5M2 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown dtype."),
    };

    /// <summary>
    /// Parses a safetensors header dtype name ("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8",
    /// "BOOL", "F8_E4M3", "F8_E5M2"); exact, case-sensitive, as the format specifies.
    /// </summary>
    public static bool TryParse(string name, out DType dtype)
    {
        switch (name)
        {
            case "F64": dtype = DType.F64; return true;
            case "F32": dtype = DType.F32; return true;
            case "F16": dtype = DType.F16; return true;
            case "BF16": dtype = DType.BF16; return true;
            case "I64": dtype = DType.I64; return true;
            case "I32": dtype = DType.I32; return true;
            case "I16": dtype = DType.I16; return true;
            case "I8": dtype = DType.I8; return true;
            case "U8": dtype = DType.U8; return true;
            case "BOOL": dtype = DType.BOOL; return true;
            case "F8_E4M3": dtype = DType.F8_E4M3; return true;
            case "F8_E5M2": dtype = DType.F8_E5M2; return true;
            default: dtype = default; return false;
        }
    }

    /// <summary>The safetensors header name of <paramref name="dtype"/> (the inverse of <see cref="TryParse"/>).</summary>
    public static string ToName(DType dtype) => dtype switch
    {
        DType.F64 => "F64",
        DType.F32 => "F32",
        DType.F16 => "F16",
        DType.BF16 => "BF16",
        DType.I64 => "I64",
        DType.I32 => "I32",
        DType.I16 => "I16",
        DType.I8 => "I8",
        DType.U8 => "U8",
        DType.BOOL => "BOOL",
        DType.F8_E4M3 => "F8_E4M3",
        DType.F8_E5M2 => "F8_E5M2",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown dtype."),
    };

    /// <summary>True for the floating-point dtypes (F64, F32, F16, BF16 and the two fp8 formats).</summary>
    public static bool IsFloatingPoint(DType dtype) =>
        dtype is DType.F64 or DType.F32 or DType.F16 or DType.BF16 or DType.F8_E4M3 or DType.F8_E5M2;

    /// <summary>
    /// Reads a PyTorch dtype name as written in config.json's <c>torch_dtype</c> or a mergekit recipe's
    /// <c>dtype</c> / <c>out_dtype</c>: "bfloat16", "float16", "float32", "float64", mergekit's short names
    /// "bf16", "fp16", "fp32", "float", "half", "double", and the integer / fp8 names; an optional
    /// "torch." prefix is accepted. Case-insensitive.
    /// </summary>
    /// <exception cref="WeldException">The name is not a known dtype.</exception>
    public static DType FromTorchDType(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        string key = name.Trim().ToLowerInvariant();
        if (key.StartsWith("torch.", StringComparison.Ordinal)) key = key["torch.".Length..];
        return key switch
        {
            "bfloat16" or "bf16" => DType.BF16,
            "float16" or "fp16" or "half" => DType.F16,
            "float32" or "fp32" or "float" => DType.F32,
            "float64" or "fp64" or "double" => DType.F64,
            "int64" or "long" => DType.I64,
            "int32" or "int" => DType.I32,
            "int16" or "short" => DType.I16,
            "int8" => DType.I8,
            "uint8" => DType.U8,
            "bool" => DType.BOOL,
            "float8_e4m3fn" => DType.F8_E4M3,
            "float8_e5m2" => DType.F8_E5M2,
            _ => throw new WeldException(
                $"Unknown dtype '{name}': expected bfloat16, float16 or float32 (or bf16, fp16, fp32, float, half)."),
        };
    }

    /// <summary>The PyTorch name of <paramref name="dtype"/> as config.json writes it ("bfloat16", "float16", ...).</summary>
    public static string ToTorchDType(DType dtype) => dtype switch
    {
        DType.F64 => "float64",
        DType.F32 => "float32",
        DType.F16 => "float16",
        DType.BF16 => "bfloat16",
        DType.I64 => "int64",
        DType.I32 => "int32",
        DType.I16 => "int16",
        DType.I8 => "int8",
        DType.U8 => "uint8",
        DType.BOOL => "bool",
        DType.F8_E4M3 => "float8_e4m3fn",
        DType.F8_E5M2 => "float8_e5m2",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown dtype."),
    };
}
