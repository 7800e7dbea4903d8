namespace Weld.Engine.Methods;

/// <summary>
/// The k-th smallest of a float sample without sorting it (quickselect: O(n) where a sort is O(n log n)), in the order
/// <c>Array.Sort</c> gives: NaNs first, then ascending. The value equals sorted[k] under that order;
/// only a zero may carry the other sign, since the sort ranks −0 and +0 as equal.
/// </summary>
internal static class OrderStatistic
{
    private const int SmallRange = 16;

    /// <summary>
    /// Reorders <paramref name="values"/> so that values[k] is the k-th smallest, every value before it no larger and
    /// every value after it no smaller (NaNs count as the smallest); returns it. Quantiles taken in ascending k can go on
    /// with the part after k.
    /// </summary>
    public static float Select(Span<float> values, int k)
    {
        if ((uint)k >= (uint)values.Length)
            throw new ArgumentOutOfRangeException(nameof(k), $"{k} is not a position in {values.Length} values.");
        int nans = MoveNaNsFirst(values);
        if (k < nans)
            return values[k];
        Span<float> numbers = values[nans..];
        k -= nans;
        int lo = 0, hi = numbers.Length - 1;
        // Median-of-three pivots make a bad split unlikely but not impossible: past this many rounds, sort the rest.
        int roundsLeft = 2 * (int)Math.Log2(numbers.Length + 1) + 8;
        while (hi - lo >= SmallRange)
        {
            if (roundsLeft-- == 0)
            {
                numbers[lo..(hi + 1)].Sort();
                return numbers[k];
            }
            int mid = lo + (hi - lo) / 2;
            if (numbers[mid] < numbers[lo]) Swap(numbers, mid, lo);
            if (numbers[hi] < numbers[lo]) Swap(numbers, hi, lo);
            if (numbers[hi] < numbers[mid]) Swap(numbers, hi, mid);
            float pivot = numbers[mid];
            int i = lo, j = hi;
            while (i <= j)
            {
                while (numbers[i] < pivot) i++;
                while (pivot < numbers[j]) j--;
                if (i <= j) Swap(numbers, i++, j--);
            }
            // [lo, j] ≤ pivot, [i, hi] ≥ pivot, and anything between equals the pivot.
            if (k <= j) hi = j;
            else if (k >= i) lo = i;
            else return numbers[k];
        }
        numbers[lo..(hi + 1)].Sort();
        return numbers[k];
    }

    /// <summary>Moves every NaN to the front; returns how many there are.</summary>
    private static int MoveNaNsFirst(Span<float> values)
    {
        int count = 0;
        for (int i = 0; i < values.Length; i++)
        {
            if (float.IsNaN(values[i]))
                Swap(values, i, count++);
        }
        return count;
    }

    private static void Swap(Span<float> values, int a, int b) => (values[a], values[b]) = (values[b], values[a]);
}
