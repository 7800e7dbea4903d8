using Weld.Engine.Config;
using Xunit;

namespace Weld.Engine.Tests.Config;

public sealed class ParameterValueTests
{
    /// <summary>
    /// Independent reference: the piecewise-linear function through (k/(n-1), p[k]), evaluated by locating the
    /// segment that contains t and interpolating along it (numpy.interp's definition).
    /// </summary>
    private static double PiecewiseLinear(double[] points, double t)
    {
        if (points.Length == 1)
        {
            return points[0];
        }

        double step = 1.0 / (points.Length - 1);
        for (int k = 0; k < points.Length - 1; k++)
        {
            double left = k * step, right = (k + 1) * step;
            if (t <= right || k == points.Length - 2)
            {
                return points[k] + ((points[k + 1] - points[k]) * (t - left) / (right - left));
            }
        }

        throw new InvalidOperationException("unreachable");
    }

    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(0.125, 0.25)]   // x = 0.5 in segment [0, 0.5]
    [InlineData(0.25, 0.5)]     // exactly at a point
    [InlineData(0.3, 0.46)]     // x = 1.2: 0.5 + (0.3 - 0.5) * 0.2
    [InlineData(0.625, 0.5)]    // x = 2.5: midway 0.3 .. 0.7
    [InlineData(0.9, 0.88)]     // x = 3.6: 0.7 + 0.3 * 0.6
    [InlineData(1.0, 1.0)]
    public void Gradient_MatchesHandComputedPiecewiseLinear(double t, double expected)
    {
        var gradient = new GradientParameter([0, 0.5, 0.3, 0.7, 1]);

        Assert.Equal(expected, gradient.Interpolate(t), 12);
        Assert.Equal(expected, gradient.Evaluate("any", t)!.Value.Number, 12);
    }

    [Fact]
    public void Gradient_MatchesReferenceOnAGridForSeveralLengths()
    {
        double[][] cases = [[0.25], [1, 0], [1, 0.7, 0.1], [0, 0.3, 0.7, 1], [2, -1, 4, 0.5, 3, -2]];
        foreach (double[] points in cases)
        {
            var gradient = new GradientParameter(points);
            for (int i = 0; i <= 200; i++)
            {
                double t = i / 200.0;
                Assert.Equal(PiecewiseLinear(points, t), gradient.Interpolate(t), 12);
            }
        }
    }

    [Fact]
    public void Gradient_AtLayerPositionsOfASlice_MatchesReference()
    {
        double[] points = [1, 0.5, 0.7, 0.3, 0];
        var gradient = new GradientParameter(points);
        for (int layer = 0; layer < 7; layer++)
        {
            double t = LayerPosition.InSlice(layer, 7);
            Assert.Equal(PiecewiseLinear(points, t), gradient.Interpolate(t), 12);
        }
    }

    [Fact]
    public void Stepped_PicksElementAtTruncatedIndex()
    {
        var stepped = new SteppedParameter(
            [ParameterScalar.FromString("a"), ParameterScalar.FromString("b"), ParameterScalar.FromString("c")]);

        // index = int(t * 2)
        Assert.Equal("a", stepped.Evaluate(null, 0)!.Value.Text);
        Assert.Equal("a", stepped.Evaluate(null, 0.49)!.Value.Text);
        Assert.Equal("b", stepped.Evaluate(null, 0.5)!.Value.Text);
        Assert.Equal("b", stepped.Evaluate(null, 0.99)!.Value.Text);
        Assert.Equal("c", stepped.Evaluate(null, 1)!.Value.Text);
    }

    [Fact]
    public void Conditional_FirstMatchingFilterWins()
    {
        var conditional = new ConditionalParameter(
        [
            new ParameterCondition("self_attn", new ScalarParameter(ParameterScalar.FromNumber(1))),
            new ParameterCondition("attn", new ScalarParameter(ParameterScalar.FromNumber(2))),
            new ParameterCondition("mlp", new GradientParameter([0, 1])),
            new ParameterCondition(null, new ScalarParameter(ParameterScalar.FromNumber(9))),
            new ParameterCondition("norm", new ScalarParameter(ParameterScalar.FromNumber(5))),
        ]);

        Assert.Equal(1, conditional.Evaluate("model.layers.3.self_attn.k_proj.weight", 0.5)!.Value.Number);
        Assert.Equal(2, conditional.Evaluate("model.layers.3.cross_attn.k_proj.weight", 0.5)!.Value.Number);
        Assert.Equal(0.25, conditional.Evaluate("model.layers.3.mlp.up_proj.weight", 0.25)!.Value.Number);
        // The catch-all comes before "norm", so "norm" is never reached.
        Assert.Equal(9, conditional.Evaluate("model.norm.weight", 0.5)!.Value.Number);
    }

    [Fact]
    public void Conditional_NoMatch_GivesNoValue_AndStarIsACatchAll()
    {
        var noDefault = new ConditionalParameter(
            [new ParameterCondition("mlp", new ScalarParameter(ParameterScalar.FromNumber(1)))]);
        Assert.Null(noDefault.Evaluate("model.layers.0.self_attn.q_proj.weight", 0));

        var star = new ConditionalParameter(
            [new ParameterCondition("*", new ScalarParameter(ParameterScalar.FromNumber(3)))]);
        Assert.Equal(3, star.Evaluate("lm_head.weight", 0)!.Value.Number);
    }

    [Fact]
    public void Conditional_FilterIsCaseSensitiveSubstring_AndNeedsATensorName()
    {
        var conditional = new ConditionalParameter(
            [new ParameterCondition("MLP", new ScalarParameter(ParameterScalar.FromNumber(1)))]);
        Assert.Null(conditional.Evaluate("model.layers.0.mlp.up_proj.weight", 0));
        Assert.Null(conditional.Evaluate(null, 0));
        Assert.Null(conditional.Evaluate("", 0));
    }

    [Fact]
    public void Evaluate_RejectsPositionOutsideUnitInterval()
    {
        var gradient = new GradientParameter([0, 1]);
        Assert.Throws<ArgumentOutOfRangeException>(() => gradient.Evaluate("x", 1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => gradient.Evaluate("x", double.NaN));
    }

    [Fact]
    public void LayerPosition_FollowsMergekitPlanner()
    {
        Assert.Equal(0.0, LayerPosition.InSlice(0, 5));
        Assert.Equal(0.25, LayerPosition.InSlice(1, 5));
        Assert.Equal(1.0, LayerPosition.InSlice(4, 5));
        Assert.Equal(1.0, LayerPosition.InSlice(0, 1));
        Assert.Equal(0.0, LayerPosition.PreLayer);
        Assert.Equal(0.0, LayerPosition.PostLayer);
        Assert.Throws<ArgumentOutOfRangeException>(() => LayerPosition.InSlice(5, 5));
    }
}
