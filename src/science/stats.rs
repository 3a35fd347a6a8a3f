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
/// pass is one masked sweep over `v` as it is, vectorised, with nothing moved (removing the
/// clipped values, pass after pass, was two thirds of the time). The sweep takes the count,
/// Σ(x − c) and Σ(x − c)² about the mean `c` of the pass before (the first about a value of
/// `v`), so a pass's mean and σ come from one sweep, not two; the (mean, std) returned are
/// those of a sweep about the kept values' own mean.
pub fn clipped_mean_std(v: &[f64], nsigma: f64, min_keep: usize) -> Option<(f64, f64)> {
    #[cfg(target_arch = "x86_64")]
    {
        if super::simd::avx512() {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return clipped_body(v, nsigma, min_keep, |v, lo, hi, c| unsafe {
                moments_avx512(v, lo, hi, c)
            });
        }
        if super::simd::avx2_fma() {
            // SAFETY: the CPU has AVX2 (checked just above).
            return clipped_body(v, nsigma, min_keep, |v, lo, hi, c| unsafe {
                moments_avx2(v, lo, hi, c)
            });
        }
    }
    clipped_body(v, nsigma, min_keep, moments)
}

/// The count, mean and population σ of one sweep's [`Moments`] about `c`.
#[inline(always)]
fn mean_std((n, s1, s2): Moments, c: f64) -> (usize, f64, f64) {
    let m1 = s1 / n as f64;
    (n, c + m1, (s2 / n as f64 - m1 * m1).max(0.0).sqrt())
}

/// [`clipped_mean_std`] with the sweeps of `moments` (this CPU's widest or the plain loop:
/// the same operations per lane either way, so the same bits).
#[inline(always)]
fn clipped_body(
    v: &[f64],
    nsigma: f64,
    min_keep: usize,
    moments: impl Fn(&[f64], f64, f64, f64) -> Moments,
) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
    // About a finite value (none: nothing to clip); it lies in the first, unbounded pass, so
    // that pass counts at least one value.
    let mut c = *v.iter().find(|x| x.is_finite())?;
    let (mut n, mut mean, mut std) = mean_std(moments(v, lo, hi, c), c);
    loop {
        let (next_lo, next_hi) = (lo.max(mean - nsigma * std), hi.min(mean + nsigma * std));
        let next = moments(v, next_lo, next_hi, mean);
        if next.0 == n {
            // The same values, now about their own mean.
            let (_, m, s) = mean_std(next, mean);
            return Some((m, s));
        }
        if next.0 < min_keep {
            // This pass's values again, about their own mean.
            let (_, m, s) = mean_std(moments(v, lo, hi, mean), mean);
            return Some((m, s));
        }
        (lo, hi, c) = (next_lo, next_hi, mean);
        (n, mean, std) = mean_std(next, c);
    }
}

/// A sweep's count of the values in `[lo, hi]`, Σ(x − c) and Σ(x − c)² over them.
type Moments = (usize, f64, f64);

/// [`Moments`] in eight interleaved partial sums each, added pairwise at the end (as numpy's
/// pairwise sum does within a block): eight independent additions per step instead of one chain
/// waiting on each, no branch, and no less accurate than a running sum. The plain loop
/// ([`moments_avx2`] does the same per lane in vectors: the compiler did not vectorise three
/// sums at once).
#[inline(always)]
fn moments(v: &[f64], lo: f64, hi: f64, c: f64) -> Moments {
    let (mut n, mut s1, mut s2) = ([0f64; 8], [0f64; 8], [0f64; 8]);
    // The last values padded with NaN, which no interval holds.
    let mut sweep = |x: &[f64; 8]| {
        let mut d = [0f64; 8];
        let mut one = [0f64; 8];
        for l in 0..8 {
            let inside = (x[l] >= lo) & (x[l] <= hi);
            d[l] = if inside { x[l] - c } else { 0.0 };
            one[l] = if inside { 1.0 } else { 0.0 };
        }
        for l in 0..8 {
            n[l] += one[l];
            s1[l] += d[l];
            s2[l] += d[l] * d[l];
        }
    };
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for ch in chunks {
        sweep(ch.try_into().unwrap());
    }
    let mut last = [f64::NAN; 8];
    last[..rest.len()].copy_from_slice(rest);
    sweep(&last);
    summed(n, s1, s2)
}

/// The eight lanes of each of a sweep's sums added pairwise, in the one order every path uses
/// (the same bits whichever path swept).
#[inline(always)]
fn summed(n: [f64; 8], s1: [f64; 8], s2: [f64; 8]) -> Moments {
    let pairwise = |[a, b, c, d, e, f, g, h]: [f64; 8]| ((a + b) + (c + d)) + ((e + f) + (g + h));
    (pairwise(n) as usize, pairwise(s1), pairwise(s2))
}

/// [`moments`] in two 256-bit vectors a sum (lanes 0–3 and 4–7): the same operations per
/// lane (a compare pair, a masked difference, an add, a multiply and add), so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn moments_avx2(v: &[f64], lo: f64, hi: f64, c: f64) -> Moments {
    use std::arch::x86_64::*;
    let (vlo, vhi, vc, one) = (
        _mm256_set1_pd(lo),
        _mm256_set1_pd(hi),
        _mm256_set1_pd(c),
        _mm256_set1_pd(1.0),
    );
    // [n, Σd, Σd²] for lanes 0–3, then for lanes 4–7.
    let mut acc = [[_mm256_setzero_pd(); 3]; 2];
    let step = |acc: &mut [__m256d; 3], x: __m256d| {
        let inside = _mm256_and_pd(
            _mm256_cmp_pd::<_CMP_GE_OQ>(x, vlo),
            _mm256_cmp_pd::<_CMP_LE_OQ>(x, vhi),
        );
        let d = _mm256_and_pd(inside, _mm256_sub_pd(x, vc));
        acc[0] = _mm256_add_pd(acc[0], _mm256_and_pd(inside, one));
        acc[1] = _mm256_add_pd(acc[1], d);
        acc[2] = _mm256_add_pd(acc[2], _mm256_mul_pd(d, d));
    };
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for ch in chunks {
        // SAFETY: eight f64 from ch, unaligned loads.
        step(&mut acc[0], _mm256_loadu_pd(ch.as_ptr()));
        step(&mut acc[1], _mm256_loadu_pd(ch.as_ptr().add(4)));
    }
    let mut last = [f64::NAN; 8];
    last[..rest.len()].copy_from_slice(rest);
    step(&mut acc[0], _mm256_loadu_pd(last.as_ptr()));
    step(&mut acc[1], _mm256_loadu_pd(last.as_ptr().add(4)));
    let lanes = |k: usize| {
        let mut out = [0f64; 8];
        _mm256_storeu_pd(out.as_mut_ptr(), acc[0][k]);
        _mm256_storeu_pd(out.as_mut_ptr().add(4), acc[1][k]);
        out
    };
    summed(lanes(0), lanes(1), lanes(2))
}

/// [`moments`] in one 512-bit vector a sum, the compares into a mask: the same operations per
/// lane as the plain loop (the count adds 1.0 where the mask is set and leaves the lane where
/// it is not, as adding +0.0 does; the difference is +0.0 outside), so the same bits, in
/// fewer than half [`moments_avx2`]'s instructions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn moments_avx512(v: &[f64], lo: f64, hi: f64, c: f64) -> Moments {
    use std::arch::x86_64::*;
    let (vlo, vhi, vc, one) = (
        _mm512_set1_pd(lo),
        _mm512_set1_pd(hi),
        _mm512_set1_pd(c),
        _mm512_set1_pd(1.0),
    );
    let [mut n, mut s1, mut s2] = [_mm512_setzero_pd(); 3];
    let mut step = |x: __m512d| {
        let inside =
            _mm512_mask_cmp_pd_mask::<_CMP_LE_OQ>(_mm512_cmp_pd_mask::<_CMP_GE_OQ>(x, vlo), x, vhi);
        let d = _mm512_maskz_sub_pd(inside, x, vc);
        n = _mm512_mask_add_pd(n, inside, n, one);
        s1 = _mm512_add_pd(s1, d);
        s2 = _mm512_add_pd(s2, _mm512_mul_pd(d, d));
    };
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for ch in chunks {
        // SAFETY: eight f64 from ch, an unaligned load.
        step(_mm512_loadu_pd(ch.as_ptr()));
    }
    let mut last = [f64::NAN; 8];
    last[..rest.len()].copy_from_slice(rest);
    step(_mm512_loadu_pd(last.as_ptr()));
    let lanes = |x: __m512d| {
        let mut out = [0f64; 8];
        _mm512_storeu_pd(out.as_mut_ptr(), x);
        out
    };
    summed(lanes(n), lanes(s1), lanes(s2))
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
        // The first sweep is about the first value: a bright pixel 10⁷ noise σ away there
        // still gives the noise's mean and σ as removing values does, to rounding.
        let mut v: Vec<f64> = (0..500)
            .map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0)
            .collect();
        v[0] = 1e7;
        let (m, s) = clipped_mean_std(&v, 3.0, 3).unwrap();
        let (wm, ws) = clipped_by_removal(&v, 3.0, 3).unwrap();
        assert!(
            (m - wm).abs() < 1e-13 && (s - ws).abs() < 1e-13 * ws,
            "{m} {s} against {wm} {ws}"
        );
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
            proptest::prop_assert_eq!(bits(got), bits(clipped_body(&v, 3.0, min_keep, moments)));
            #[cfg(target_arch = "x86_64")]
            {
                // Each vector path this CPU has, whichever the dispatch took.
                let via = |f: unsafe fn(&[f64], f64, f64, f64) -> Moments| {
                    // SAFETY: called only where the CPU has the path's instructions.
                    bits(clipped_body(&v, 3.0, min_keep, |v, lo, hi, c| unsafe { f(v, lo, hi, c) }))
                };
                if std::arch::is_x86_feature_detected!("avx2") {
                    proptest::prop_assert_eq!(bits(got), via(moments_avx2));
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    proptest::prop_assert_eq!(bits(got), via(moments_avx512));
                }
            }
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
