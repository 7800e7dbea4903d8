using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>Loss along the line between two checkpoints, and the barrier height.</summary>
public class LossInterpolationTests
{
    [Fact]
    public void Alphas_are_evenly_spaced_and_include_both_ends()
    {
        Assert.Equal([0, 0.25, 0.5, 0.75, 1], LossInterpolation.Alphas(5));
        Assert.Throws<WeldException>(() => LossInterpolation.Alphas(1));
    }

    [Fact]
    public void Barrier_is_the_largest_rise_above_the_chord()
    {
        // Chord from 1.0 to 2.0: 1.25 at α 0.25, 1.5 at 0.5, 1.75 at 0.75.
        InterpolationPoint[] points = [new(0, 1.0, 0), new(0.25, 1.5, 0), new(0.5, 2.5, 0), new(0.75, 1.0, 0), new(1, 2.0, 0)];
        Assert.Equal(1.0, LossInterpolation.BarrierHeight(points), 12);
        // A curve below its chord: the end points give 0.
        InterpolationPoint[] convex = [new(0, 1.0, 0), new(0.5, 0.2, 0), new(1, 1.0, 0)];
        Assert.Equal(0.0, LossInterpolation.BarrierHeight(convex), 12);
    }

    [Fact]
    public void Digits_mlps_end_points_reproduce_the_models_and_the_middle_rises()
    {
        ClassificationData data = ClassificationData.Load(Path.Combine(TestPaths.SharedModels, "data", "digits.safetensors"));
        using var folderA = ModelFolder.Open(TestPaths.Model("mlp-digits-a"));
        using var folderB = ModelFolder.Open(TestPaths.Model("mlp-digits-b"));
        TensorSet a = TensorSet.Load(folderA), b = TensorSet.Load(folderB);
        InterpolationCurve curve = LossInterpolation.Scan(a, b, 3, set =>
        {
            ClassificationResult r = new MlpClassifier(folderA.Config!, set).Evaluate(data);
            return (r.MeanLoss, r.Accuracy);
        });

        Assert.Equal(3, curve.Points.Count);
        Assert.Equal(MlpClassifier.Load(folderA).Evaluate(data).MeanLoss, curve.Points[0].Loss);
        Assert.Equal(MlpClassifier.Load(folderB).Evaluate(data).MeanLoss, curve.Points[2].Loss);
        Assert.Equal(ReferenceMetrics.Mlp("mlp-digits-a", "test_accuracy"), curve.Points[0].Metric, 5);
        double chord = (curve.Points[0].Loss + curve.Points[2].Loss) / 2;
        Assert.Equal(curve.Points[1].Loss - chord, curve.BarrierHeight, 12);
        // Independently trained MLPs are not linearly connected: the midpoint is clearly worse.
        Assert.True(curve.BarrierHeight > 0.1, $"barrier {curve.BarrierHeight}");
    }
}
