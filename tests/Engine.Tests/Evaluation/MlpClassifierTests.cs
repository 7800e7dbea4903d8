using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>The digits MLPs' test accuracy and loss against the zoo's reference numbers.</summary>
public class MlpClassifierTests
{
    [Theory]
    [InlineData("mlp-digits-a", 351)]
    [InlineData("mlp-digits-b", 352)]
    [InlineData("mlp-digits-a-permuted", 351)]
    public void Digits_accuracy_and_loss_match_the_reference(string model, int expectedCorrect)
    {
        ClassificationData data = ClassificationData.Load(Path.Combine(TestPaths.SharedModels, "data", "digits.safetensors"));
        Assert.Equal(360, data.Samples);
        Assert.Equal(64, data.Features);
        using var folder = ModelFolder.Open(TestPaths.Model(model));
        ClassificationResult result = MlpClassifier.Load(folder).Evaluate(data);
        Assert.Equal(expectedCorrect / 360.0, result.Accuracy, 12);
        Assert.Equal(ReferenceMetrics.Mlp(model, "test_accuracy"), result.Accuracy, 5);
        // The reference is rounded to 6 decimals.
        Assert.InRange(result.MeanLoss, ReferenceMetrics.Mlp(model, "test_loss") - 1e-6, ReferenceMetrics.Mlp(model, "test_loss") + 1e-6);
    }

    [Fact]
    public void Test_split_is_every_fifth_sample()
    {
        ClassificationData all = ClassificationData.Load(Path.Combine(TestPaths.SharedModels, "data", "digits.safetensors"), split: null);
        ClassificationData test = ClassificationData.Load(Path.Combine(TestPaths.SharedModels, "data", "digits.safetensors"));
        Assert.Equal(1797, all.Samples);
        for (int i = 0; i < test.Samples; i++)
        {
            Assert.Equal(all.Labels[5 * i], test.Labels[i]);
            Assert.Equal(all.Inputs.AsSpan(5 * i * 64, 64).ToArray(), test.Inputs.AsSpan(i * 64, 64).ToArray());
        }
    }

    [Fact]
    public void A_missing_split_tensor_names_file_and_tensor()
    {
        var e = Assert.Throws<InvalidModelFileException>(() =>
            ClassificationData.Load(Path.Combine(TestPaths.SharedModels, "data", "digits.safetensors"), split: "val_idx"));
        Assert.Contains("val_idx", e.Message);
        Assert.Contains("digits.safetensors", e.Message);
    }
}
