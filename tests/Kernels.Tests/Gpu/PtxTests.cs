using System.Text.RegularExpressions;
using Weld.Kernels.Gpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// The PTX of every GPU kernel, generated without a GPU (<see cref="PtxExport"/>, as <c>Weld.Bench ptx DIR</c> writes
/// it): no flush-to-zero, no approximate instruction, no float operation whose rounding ptxas may change, the
/// intended number of FMAs, and no reachable call to a function that would not link.
/// </summary>
/// <remarks>
/// What ILGPU 1.5.3 emits for plain C# float arithmetic: <c>mul.f32</c>, <c>add.f32</c>, <c>sub.f32</c> (and the
/// <c>.f64</c> forms) with no rounding modifier, which ptxas is free to contract into an FMA; <c>a / b</c> and
/// <c>MathF.Sqrt</c> become <c>div.rn</c> / <c>sqrt.rn</c>; <c>MathF.Exp</c> becomes <c>ex2.approx</c>;
/// <c>MathF.FusedMultiplyAdd</c> becomes a call to an undefined <c>.extern .func FusedMultiplyAdd</c> (ILGPU maps it
/// to libdevice only when the context loads libdevice). The kernels
/// therefore pin every float operation through <see cref="GpuArithmetic"/> (inline PTX <c>.rn</c> forms); ILGPU keeps
/// each call's plain fallback behind a branch on a constant predicate, which ptxas drops and
/// <see cref="PtxExport.ReachableInstructions"/> skips.
/// </remarks>
public sealed partial class PtxTests
{
    /// <summary>
    /// Kernels whose CPU counterpart uses <see cref="MathF.FusedMultiplyAdd"/>: how many <c>fma.rn.f32</c> their PTX
    /// must hold (every other kernel: none).
    /// </summary>
    private static readonly Dictionary<string, int> s_intendedFma = new(StringComparer.Ordinal)
    {
        // The tiled GEMM accumulates with one FMA per step of p, as the CPU GEMM does.
        ["GemmKernels.Tiled"] = 1,
    };

    private static readonly Lazy<Dictionary<string, string>> s_ptx = new(() =>
        PtxExport.Compile().ToDictionary(kernel => kernel.Name, kernel => kernel.Assembly, StringComparer.Ordinal));

    /// <summary>Every kernel's name.</summary>
    public static TheoryData<string> Kernels() => new(PtxExport.Kernels().Select(PtxExport.NameOf));

    [Fact]
    public void Kernels_are_found_and_the_fma_table_names_only_kernels()
    {
        var names = PtxExport.Kernels().Select(PtxExport.NameOf).ToList();

        Assert.Contains("ElementwiseKernels.WeightedSum", names);
        // Device helpers (returning a value) and the launch wrappers are not kernels.
        Assert.DoesNotContain(names, name => name.StartsWith("GpuArithmetic.", StringComparison.Ordinal));
        Assert.DoesNotContain(names, name => name.StartsWith("GpuKernels.", StringComparison.Ordinal));
        Assert.All(s_intendedFma.Keys, name => Assert.Contains(name, names));
        Assert.Equal(names.Count, s_ptx.Value.Count);
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Kernel_ptx_has_no_fast_math_and_pins_every_float_operation(string kernel)
    {
        string ptx = s_ptx.Value[kernel];

        Assert.Matches(@"(?m)^\.version \d+\.\d+$", ptx);
        Assert.Matches(@"(?m)^\.target sm_\d+$", ptx);
        // Anywhere in the text, dead code included: neither ever belongs in a bit-exact kernel.
        Assert.DoesNotContain(".ftz", ptx, StringComparison.Ordinal);
        Assert.DoesNotContain(".approx", ptx, StringComparison.Ordinal);
        // ILGPU.Algorithms compiles Math.Exp/Log/… for PTX as CORDIC iterations of unknown accuracy: no kernel may
        // lean on them (the softmax kernel carries fdlibm's exp and log instead).
        Assert.DoesNotContain("Hyperbolic", ptx, StringComparison.Ordinal);
        IReadOnlyList<string> code = PtxExport.ReachableInstructions(ptx);
        Assert.NotEmpty(code);
        // A reachable call to an undefined function (ILGPU's translation of MathF.FusedMultiplyAdd and other libdevice
        // functions) does not link on the device; GpuArithmetic.Fma's emulator fallback is a software FMA for that reason.
        string[] unresolved = code.Select(Callee).Where(callee => callee is not null && ExternFunctions(ptx).Contains(callee)).ToArray()!;
        Assert.True(unresolved.Length == 0, $"{kernel}: reachable calls to undefined functions: {string.Join(", ", unresolved)}");
        string[] unpinned = code.Where(IsUnpinnedFloatArithmetic).ToArray();
        Assert.True(unpinned.Length == 0, $"{kernel}: float arithmetic without a rounding modifier (use GpuArithmetic): {string.Join("; ", unpinned)}");
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Kernel_ptx_holds_the_intended_number_of_fmas(string kernel)
    {
        string ptx = s_ptx.Value[kernel];

        int expected = s_intendedFma.GetValueOrDefault(kernel);

        Assert.Equal(expected, PtxExport.Count(ptx, "fma.rn.f32"));
        Assert.Equal(0, PtxExport.Count(ptx, "fma.rn.f64"));
    }

    [Fact]
    public void Reachability_drops_the_fallback_behind_a_constant_predicate_and_keeps_real_branches()
    {
        // The shape ILGPU gives a GpuArithmetic.Mul call (the dead plain fallback), then a loop on a real condition.
        const string ptx = """
            .visible .entry Kernel_Probe(
            	.param .b64 _x
            )
            {
            	.reg .pred	%p<4>;
            	setp.ne.s32	%p1, 1, 1;
            	@%p1 bra	L_2;
            	bra.uni	L_1;
            	L_1:
            	mul.rn.f32 	%f3, %f1, %f2;
            	bra	L_3;
            	L_2:
            	mul.f32	%f4, %f1, %f2;
            	bra	L_3;
            	L_3:
            	setp.lt.s64	%p2, %rd1, %rd2;
            	@%p2 bra	L_4;
            	add.f32	%f5, %f3, %f3; // reachable: the loop exit
            	ret;
            	L_4:
            	{
            	call.uni (ret), Helper, (
            		a
            	);
            	}
            	fma.rn.f32 	%f6, %f1, %f2, %f3;
            	mov.pred	%p3, 0;
            	@!%p3 bra.uni	L_3;
            	sub.f32	%f7, %f1, %f2;
            }
            """;

        IReadOnlyList<string> code = PtxExport.ReachableInstructions(ptx);

        Assert.Contains("mul.rn.f32 %f3, %f1, %f2", code);
        Assert.DoesNotContain("mul.f32 %f4, %f1, %f2", code);
        Assert.Contains("add.f32 %f5, %f3, %f3", code);
        Assert.Contains("call.uni (ret), Helper, ( a )", code);
        Assert.DoesNotContain("sub.f32 %f7, %f1, %f2", code);
        Assert.Equal(1, PtxExport.Count(ptx, "fma.rn.f32"));
        Assert.Equal(["add.f32 %f5, %f3, %f3"], code.Where(IsUnpinnedFloatArithmetic));
        Assert.Equal(["Helper"], code.Select(Callee).Where(callee => callee is not null));
        Assert.Equal(["FusedMultiplyAdd"], ExternFunctions(".extern .func (.param .f32 retval_1) FusedMultiplyAdd(\n .param .f32 a\n);"));
    }

    [Fact]
    public void Write_puts_one_ptx_file_per_kernel_in_the_folder()
    {
        string folder = Path.Combine(Path.GetTempPath(), $"weld-ptx-{Guid.NewGuid():N}");
        try
        {
            IReadOnlyList<string> paths = PtxExport.Write(folder, PtxExport.Hopper);

            Assert.Equal(PtxExport.Kernels().Count, paths.Count);
            Assert.Equal(paths.Order(StringComparer.Ordinal), Directory.GetFiles(folder).Order(StringComparer.Ordinal));
            Assert.Contains(Path.Combine(folder, "ElementwiseKernels.WeightedSum.ptx"), paths);
            Assert.Contains(".entry", File.ReadAllText(paths[0]), StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(folder))
                Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void The_newest_architecture_is_the_largest_ilgpu_knows()
    {
        Assert.True(PtxExport.NewestArchitecture.CompareTo(PtxExport.Hopper) > 0);
    }

    private static HashSet<string> ExternFunctions(string ptx) =>
        ExternDeclaration().Matches(ptx).Select(match => match.Groups[1].Value).ToHashSet(StringComparer.Ordinal);

    private static string? Callee(string instruction)
    {
        Match match = CallInstruction().Match(instruction);
        return match.Success ? match.Groups[1].Value : null;
    }

    /// <summary>add/sub/mul/fma/mad/div/rcp/sqrt on f32/f64 without .rn/.rz/.rm/.rp: ptxas may fuse or approximate it.</summary>
    private static bool IsUnpinnedFloatArithmetic(string instruction)
    {
        string opcode = instruction.Split(' ', 2)[0];
        if (!FloatArithmetic().IsMatch(opcode))
            return false;
        string[] modifiers = opcode.Split('.');
        return !modifiers.Any(m => m is "rn" or "rz" or "rm" or "rp");
    }

    [GeneratedRegex(@"\.extern\s+\.func\s+(?:\([^)]*\)\s*)?([A-Za-z_$][\w$]*)\s*\(")]
    private static partial Regex ExternDeclaration();

    [GeneratedRegex(@"^call(?:\.uni)?\s+(?:\([^)]*\)\s*,\s*)?([A-Za-z_$][\w$]*)")]
    private static partial Regex CallInstruction();

    [GeneratedRegex(@"^(add|sub|mul|fma|mad|div|rcp|sqrt)(\.[a-z0-9]+)*\.f(32|64)$")]
    private static partial Regex FloatArithmetic();
}
