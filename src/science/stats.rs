//! Robust statistics used by the kernels.

/// Median of finite values (NaNs ignored); NaN when there are none. Even counts average the two
/// middle values (numpy's convention).
pub fn nanmedian(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    // Selection, not a sort: O(n), and the same values a sort would put at the middle.
    let n = v.len();
    let (below, mid, _) = v.select_nth_unstable_by(n / 2, |a, b| a.total_cmp(b));
    let upper = *mid;
    if n % 2 == 1 {
        upper
    } else {
        // The largest of the lower half is the other middle value.
        let lower = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lower + upper)
    }
}

/// |re + i·im| as √(re² + im²): within an ulp of `hypot`, several times faster, and the values
/// here (flux densities) are nowhere near where the squares over- or underflow.
#[inline]
pub fn cabs(re: f64, im: f64) -> f64 {
    (re * re + im * im).sqrt()
}

/// Median absolute deviation scaled to a Gaussian sigma: median(|a - median(a)|) / 0.6745.
pub fn mad_sigma(values: &[f64]) -> f64 {
    let med = nanmedian(values);
    let dev: Vec<f64> = values.iter().map(|x| (x - med).abs()).collect();
    nanmedian(&dev) / 0.6745
}

/// Mean of finite values; NaN when there are none.
pub fn nanmean(values: &[f64]) -> f64 {
    let (s, n) = values
        .iter()
        .filter(|x| !x.is_nan())
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

/// Iterative σ clipping about the mean with the population standard deviation (astropy's
/// `sigma_clip` with a Gaussian ML centre and width), until nothing more is clipped or fewer than
/// `min_keep` values would remain. Returns (mean, std); `None` for no values. `v` is left holding
/// the values of the last pass (callers reuse it as a buffer).
pub fn clipped_mean_std(v: &mut Vec<f64>, nsigma: f64, min_keep: usize) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    loop {
        let n = v.len() as f64;
        let mean = sum_lanes(v, |x| x) / n;
        let std = (sum_lanes(v, |x| (x - mean) * (x - mean)) / n).sqrt();
        let before = v.len();
        // In place, order kept: the next pass sums the same values in the same order (and the
        // values are not needed again once this pass's mean and σ are the answer).
        v.retain(|&x| (x - mean).abs() <= nsigma * std);
        if v.len() == before || v.len() < min_keep {
            return Some((mean, std));
        }
    }
}

/// A sum in eight interleaved partial sums added pairwise at the end (as numpy's pairwise sum
/// does within a block): eight independent additions per step instead of one chain waiting on
/// each (the compiler vectorises it), and no less accurate than a running sum.
fn sum_lanes(v: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (lane, &x) in lanes.iter_mut().zip(c) {
            *lane += f(x);
        }
    }
    for (lane, &x) in lanes.iter_mut().zip(rest) {
        *lane += f(x);
    }
    let [a, b, c, d, e, f, g, h] = lanes;
    ((a + b) + (c + d)) + ((e + f) + (g + h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_follow_numpy() {
        assert_eq!(nanmedian(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(nanmedian(&[4.0, 1.0, f64::NAN, 2.0, 3.0]), 2.5);
        assert!(nanmedian(&[f64::NAN]).is_nan());
        assert!((mad_sigma(&[1.0, 2.0, 3.0, 4.0, 100.0]) - 1.0 / 0.6745).abs() < 1e-12);
    }

    #[test]
    fn clipping_drops_outliers_until_stable_or_too_few() {
        let mut v: Vec<f64> = (0..20).map(|i| (i % 2) as f64).collect();
        v.push(100.0);
        // Pass 1 drops 100 (mean 4.76, σ 21.3); pass 2 keeps every 0 and 1.
        assert_eq!(clipped_mean_std(&mut v.clone(), 3.0, 3), Some((0.5, 0.5)));
        // Keeping fewer than min_keep stops at the pass before.
        let (mean, std) = clipped_mean_std(&mut v.clone(), 3.0, 21).unwrap();
        assert!(
            (mean - 110.0 / 21.0).abs() < 1e-12 && std > 20.0,
            "{mean} {std}"
        );
        assert_eq!(clipped_mean_std(&mut Vec::new(), 3.0, 1), None);
    }

    proptest::proptest! {
        /// Selection gives exactly the median a full sort gives.
        #[test]
        fn selection_median_equals_sorted_median(
            v in proptest::collection::vec(
                proptest::prop_oneof![-1e3f64..1e3, proptest::strategy::Just(f64::NAN)], 1..60)
        ) {
            let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
            s.sort_by(|a, b| a.total_cmp(b));
            let want = match s.len() {
                0 => f64::NAN,
                n if n % 2 == 1 => s[n / 2],
                n => 0.5 * (s[n / 2 - 1] + s[n / 2]),
            };
            let got = nanmedian(&v);
            proptest::prop_assert!(got == want || (got.is_nan() && want.is_nan()));
        }
    }
}
