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
/// `min_keep` values would remain. Returns (mean, std); `None` for no values.
///
/// Each pass keeps the values within `mean ± nsigma·std` of those the pass before kept, so what
/// is kept is always the values inside one interval (the intersection of the passes' bounds): a
/// pass is two masked sums over `v` as it is, vectorised, with nothing moved (removing the
/// clipped values, pass after pass, was two thirds of the time).
pub fn clipped_mean_std(v: &[f64], nsigma: f64, min_keep: usize) -> Option<(f64, f64)> {
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx2_fma() {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { clipped_avx2(v, nsigma, min_keep) };
    }
    clipped_body(v, nsigma, min_keep)
}

/// [`clipped_mean_std`] in 256-bit vectors (the masked sums' selects need AVX's blends to be
/// faster than removing values; the same operations per lane either way, so the same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn clipped_avx2(v: &[f64], nsigma: f64, min_keep: usize) -> Option<(f64, f64)> {
    clipped_body(v, nsigma, min_keep)
}

#[inline(always)]
fn clipped_body(v: &[f64], nsigma: f64, min_keep: usize) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
    let (mut sum, mut n) = masked_sum(v, lo, hi);
    if n == 0 {
        return None;
    }
    loop {
        let mean = sum / n as f64;
        let std = (masked_sum_sq(v, lo, hi, mean) / n as f64).sqrt();
        let (next_lo, next_hi) = (lo.max(mean - nsigma * std), hi.min(mean + nsigma * std));
        let (next_sum, next_n) = masked_sum(v, next_lo, next_hi);
        if next_n == n || next_n < min_keep {
            return Some((mean, std));
        }
        (lo, hi, sum, n) = (next_lo, next_hi, next_sum, next_n);
    }
}

/// The sum and the count of the values in `[lo, hi]`, in eight interleaved partial sums (see
/// [`sum_lanes`]), without a branch.
#[inline(always)]
fn masked_sum(v: &[f64], lo: f64, hi: f64) -> (f64, usize) {
    let (mut s, mut n) = ([0f64; 8], [0f64; 8]);
    let mut add = |l: usize, x: f64| {
        let inside = (x >= lo) & (x <= hi);
        s[l] += if inside { x } else { 0.0 };
        n[l] += if inside { 1.0 } else { 0.0 };
    };
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, &x) in c.iter().enumerate() {
            add(l, x);
        }
    }
    for (l, &x) in rest.iter().enumerate() {
        add(l, x);
    }
    let [a, b, c, d, e, f, g, h] = s;
    (
        ((a + b) + (c + d)) + ((e + f) + (g + h)),
        n.iter().sum::<f64>() as usize,
    )
}

/// Σ (x − mean)² over the values in `[lo, hi]`.
#[inline(always)]
fn masked_sum_sq(v: &[f64], lo: f64, hi: f64, mean: f64) -> f64 {
    sum_lanes(v, |x| {
        let inside = (x >= lo) & (x <= hi);
        if inside {
            (x - mean) * (x - mean)
        } else {
            0.0
        }
    })
}

/// A sum in eight interleaved partial sums added pairwise at the end (as numpy's pairwise sum
/// does within a block): eight independent additions per step instead of one chain waiting on
/// each (the compiler vectorises it), and no less accurate than a running sum.
#[inline(always)]
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
        assert_eq!(clipped_mean_std(&v, 3.0, 3), Some((0.5, 0.5)));
        // Keeping fewer than min_keep stops at the pass before.
        let (mean, std) = clipped_mean_std(&v, 3.0, 21).unwrap();
        assert!(
            (mean - 110.0 / 21.0).abs() < 1e-12 && std > 20.0,
            "{mean} {std}"
        );
        assert_eq!(clipped_mean_std(&[], 3.0, 1), None);
    }

    /// Clipping as astropy does it: the clipped values removed after each pass.
    fn clipped_by_removal(v: &[f64], nsigma: f64, min_keep: usize) -> Option<(f64, f64)> {
        let mut v = v.to_vec();
        if v.is_empty() {
            return None;
        }
        loop {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let std = (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
            let kept: Vec<f64> = v
                .iter()
                .copied()
                .filter(|&x| x >= mean - nsigma * std && x <= mean + nsigma * std)
                .collect();
            if kept.len() == v.len() || kept.len() < min_keep {
                return Some((mean, std));
            }
            v = kept;
        }
    }

    proptest::proptest! {
        /// The interval form clips what removing values pass after pass clips (noise with
        /// outliers, a few values to many), to rounding.
        #[test]
        fn clipping_in_one_interval_agrees_with_removing_values(
            noise in proptest::collection::vec(-1.0f64..1.0, 1..700),
            outliers in proptest::collection::vec((0usize..700, -50.0f64..50.0), 0..12),
            min_keep in 1usize..40,
        ) {
            let mut v = noise;
            for (at, x) in outliers {
                let n = v.len();
                v[at % n] = x;
            }
            let got = clipped_mean_std(&v, 3.0, min_keep);
            // The vector instructions and the plain loop: the same bits.
            let bits = |r: Option<(f64, f64)>| r.map(|(m, s)| (m.to_bits(), s.to_bits()));
            proptest::prop_assert_eq!(bits(got), bits(clipped_body(&v, 3.0, min_keep)));
            let want = clipped_by_removal(&v, 3.0, min_keep);
            let (Some((m, s)), Some((wm, ws))) = (got, want) else {
                proptest::prop_assert!(got.is_none() && want.is_none());
                return Ok(());
            };
            let tol = 1e-12 * (1.0 + ws + wm.abs());
            proptest::prop_assert!((m - wm).abs() <= tol && (s - ws).abs() <= tol, "{got:?} {want:?}");
        }

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
