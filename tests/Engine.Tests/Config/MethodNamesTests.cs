using Weld.Engine.Config;
using Xunit;

namespace Weld.Engine.Tests.Config;

public sealed class MethodNamesTests
{
    [Theory]
    [InlineData("dare-ties", "dare_ties")]
    [InlineData("DARE TIES", "dare_ties")]
    [InlineData("Task-Arithmetic", "task_arithmetic")]
    [InlineData("tie", "ties")]
    [InlineData("slerpp", "slerp")]
    [InlineData("modelstock", "model_stock")]
    [InlineData("breadcrumb_ties", "breadcrumbs_ties")]
    public void Suggest_FindsIntendedMethod(string given, string expected)
    {
        Assert.Equal(expected, MethodNames.Suggest(given, MethodNames.MergeKit));
    }

    [Fact]
    public void Suggest_ReturnsNullWhenNothingIsClose()
    {
        Assert.Null(MethodNames.Suggest("frobnicate", MethodNames.MergeKit));
        Assert.Null(MethodNames.Suggest("x", []));
    }

    [Theory]
    [InlineData("", "", 0)]
    [InlineData("abc", "", 3)]
    [InlineData("kitten", "sitting", 3)]
    [InlineData("flaw", "lawn", 2)]
    [InlineData("ties", "ties", 0)]
    public void Levenshtein_KnownDistances(string a, string b, int expected)
    {
        Assert.Equal(expected, MethodNames.Levenshtein(a, b));
        Assert.Equal(expected, MethodNames.Levenshtein(b, a));
    }

    [Fact]
    public void Normalize_FoldsCaseDashesAndSpaces()
    {
        Assert.Equal("dare_ties_x", MethodNames.Normalize("Dare-TIES x"));
    }
}
