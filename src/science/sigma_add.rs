//! The catalogue's `sigma_add`: Arrakis's combination of the Q and U extra-scatter estimates
//! (each a log-normal through its percentiles) into the median and spread of √(Q² + U²).
//!
//! Formulas: `../shared/science/catalogue.md` §5. This differs from Arrakis on purpose: Arrakis
//! draws 1 000 unseeded log-normal samples (its `sigma_add_err` swings by up to ±70 % between
//! runs); here the median and standard deviation of √(Q² + U²) are computed by quadrature, so a
//! catalogue is the same bytes every time. Kept apart from `complexity` (which rmsynth runs per
//! component) so that a change here reruns only the catalogue.
//! Must never: depend on the CPU for its bits (sums in a fixed order).

use super::complexity::SigmaAdd;

/// Arrakis's `sigma_add_fix`, deterministic: the Q and U estimates are each taken as log-normal
/// through their 15.72 and 84.27 percentiles; returns the median and the standard deviation
/// (ddof 0) of √(Q² + U²). NaN when either percentile pair cannot define a log-normal (a lower
/// percentile ≤ 0, NaN, or equal to the upper), as scipy refuses it in Arrakis.
pub fn combine_sigma_add(q: SigmaAdd, u: SigmaAdd) -> (f64, f64) {
    let (Some((mq, sq)), Some((mu, su))) = (lognormal(q), lognormal(u)) else {
        return (f64::NAN, f64::NAN);
    };
    // The mean's integrand is smooth (analytic): the trapezoid rule converges exponentially,
    // and steps of 0.2 agree with steps of 0.05 to 3e-10 (s = 2) and far better for narrower
    // log-normals (81² pairs instead of 321²).
    let (w, qs, us) = grid(0.2, (mq, sq), (mu, su));
    let mean = weighted_mean_modulus(&w, &qs, &us);
    // The median's integrand stops where Q reaches t: steps of 0.05.
    let (w, qs, _) = grid(0.05, (mq, sq), (mu, su));
    let second = (2.0 * mq + 2.0 * sq * sq).exp() + (2.0 * mu + 2.0 * su * su).exp();
    let sd = (second - mean * mean).max(0.0).sqrt();
    // P(√(Q²+U²) ≤ t) = ∫ φ(zq) Φ((ln √(t² − Q²) − μu)/su) dzq over Q < t.
    let cdf = |t: f64| -> f64 {
        (0..qs.len())
            .filter(|&i| qs[i] < t)
            .map(|i| {
                let zu = (0.5 * (t * t - qs[i] * qs[i]).ln() - mu) / su;
                w[i] * normal_cdf(zu)
            })
            .sum()
    };
    // The median lies between max(median Q, median U) (there P(√(Q²+U²) ≤ t) ≤ P(Q ≤ t)·P(U ≤ t)
    // ≤ ½) and √2·max of the two log-normals' Φ⁻¹(√½) points (there each of Q, U ≤ t/√2 has
    // probability ≥ √½, so the modulus ≤ t has ≥ ½).
    // Where the quadrature's rounding puts a bound on the wrong side, [`median_of`] starts from
    // 0 or goes out to 9σ beyond both instead (`far`).
    const Z_ROOT_HALF: f64 = 0.545; // Φ(0.545) = 0.70713 > √½
    let lo = mq.exp().max(mu.exp());
    let hi = std::f64::consts::SQRT_2
        * (mq + Z_ROOT_HALF * sq)
            .exp()
            .max((mu + Z_ROOT_HALF * su).exp());
    let far = (mq + 9.0 * sq).exp().hypot((mu + 9.0 * su).exp());
    (median_of(cdf, lo, hi, far), sd)
}

/// z ∈ [−8, 8] in steps of `h`: the trapezoid rule's weights on the Gaussian, and the
/// log-normals e^(μ + s·z) of Q and U at each z.
fn grid(h: f64, (mq, sq): (f64, f64), (mu, su): (f64, f64)) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = (16.0 / h).round() as usize + 1;
    let z = |i: usize| -8.0 + i as f64 * h;
    let w = (0..n)
        .map(|i| (-0.5 * z(i) * z(i)).exp() * h / (2.0 * std::f64::consts::PI).sqrt())
        .collect();
    let qs = (0..n).map(|i| (mq + sq * z(i)).exp()).collect();
    let us = (0..n).map(|i| (mu + su * z(i)).exp()).collect();
    (w, qs, us)
}

/// The t in [`lo`, `hi`] where the increasing `cdf` crosses ½ (from 0 instead where the cdf
/// at `lo` is already past ½, up to `far` where at `hi` it is still short of it), to 1e-12 of
/// t: the Illinois method (false position that halves the weight of an end kept twice), ~13
/// evaluations from the combination's bracket (~20 from [0, 9σ]; bisection takes ~45); each
/// evaluation costs 321 logarithms and error functions.
fn median_of(cdf: impl Fn(f64) -> f64, lo: f64, hi: f64, far: f64) -> f64 {
    let (mut a, mut b) = (lo, hi);
    let (mut fa, mut fb) = (if lo > 0.0 { cdf(lo) - 0.5 } else { -0.5 }, cdf(hi) - 0.5);
    if fa > 0.0 {
        (a, fa) = (0.0, -0.5);
    }
    if fb < 0.0 {
        (a, fa) = (b, fb);
        (b, fb) = (far, cdf(far) - 0.5);
    }
    let mut kept = 0i8;
    for _ in 0..200 {
        let secant = (a * fb - b * fa) / (fb - fa);
        let c = if secant > a && secant < b {
            secant
        } else {
            0.5 * (a + b)
        };
        let fc = cdf(c) - 0.5;
        if fc < 0.0 {
            (a, fa) = (c, fc);
            if kept == -1 {
                fb *= 0.5;
            }
            kept = -1;
        } else {
            (b, fb) = (c, fc);
            if kept == 1 {
                fa *= 0.5;
            }
            kept = 1;
        }
        if b - a <= 1e-12 * b || fc == 0.0 {
            return c;
        }
    }
    0.5 * (a + b)
}

/// Σᵢ Σⱼ wᵢ wⱼ √(qᵢ² + uⱼ²). Each row's sum runs in eight lanes of fixed order (the same bits
/// on every CPU; the compiler packs the square roots two or four to an instruction) instead of
/// a `hypot` call for each pair (6 561 of them on the mean's grid): ~5× less CPU.
/// Squares of values outside 1e±150 could overflow or lose precision: those take `hypot`.
fn weighted_mean_modulus(w: &[f64], qs: &[f64], us: &[f64]) -> f64 {
    let tame = |v: &[f64]| v.iter().all(|&x| (1e-150..=1e150).contains(&x));
    if !(tame(qs) && tame(us)) {
        let mut mean = 0.0;
        for (wi, q) in w.iter().zip(qs) {
            for (wj, u) in w.iter().zip(us) {
                mean += wi * wj * q.hypot(*u);
            }
        }
        return mean;
    }
    const LANES: usize = 8;
    let u2: Vec<f64> = us.iter().map(|u| u * u).collect();
    let whole = w.len() / LANES * LANES;
    let mut mean = 0.0;
    for (wi, q) in w.iter().zip(qs) {
        let q2 = q * q;
        let mut lanes = [0.0f64; LANES];
        for (ws, u2s) in w[..whole]
            .chunks_exact(LANES)
            .zip(u2[..whole].chunks_exact(LANES))
        {
            for k in 0..LANES {
                lanes[k] += ws[k] * (q2 + u2s[k]).sqrt();
            }
        }
        let mut row = lanes.iter().sum::<f64>();
        for (wj, u2j) in w[whole..].iter().zip(&u2[whole..]) {
            row += wj * (q2 + u2j).sqrt();
        }
        mean += wi * row;
    }
    mean
}

/// (μ, s) of the log-normal whose 15.72 and 84.27 percentiles are the estimate's.
fn lognormal(e: SigmaAdd) -> Option<(f64, f64)> {
    const Z1: f64 = -1.006_032;
    const Z2: f64 = 1.005_617;
    let lo = e.median - e.minus;
    let hi = e.median + e.plus;
    if lo.is_nan() || lo <= 0.0 || !hi.is_finite() || hi <= lo {
        return None;
    }
    let s = (hi.ln() - lo.ln()) / (Z2 - Z1);
    let mu = (Z2 * lo.ln() - Z1 * hi.ln()) / (Z2 - Z1);
    Some((mu, s))
}

/// Φ(x), the standard normal CDF (erfc with |error| < 1.2e-7, Numerical Recipes' Chebyshev
/// form).
fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::science::complexity::tests::normals;

    #[test]
    fn the_combination_matches_sampling_and_refuses_what_scipy_refuses() {
        let q = SigmaAdd {
            median: 2.25,
            minus: 0.1,
            plus: 0.12,
        };
        let u = SigmaAdd {
            median: 2.12,
            minus: 0.09,
            plus: 0.1,
        };
        let (med, sd) = combine_sigma_add(q, u);
        // Monte Carlo with many draws from the same log-normals.
        let (mq, sq) = lognormal(q).unwrap();
        let (mu, su) = lognormal(u).unwrap();
        let (a, b) = (normals(400_000, 1), normals(400_000, 2));
        let mut p: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (mq + sq * x).exp().hypot((mu + su * y).exp()))
            .collect();
        p.sort_by(f64::total_cmp);
        let mc_med = p[p.len() / 2];
        let m = p.iter().sum::<f64>() / p.len() as f64;
        let mc_sd = (p.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / p.len() as f64).sqrt();
        assert!((med - mc_med).abs() < 2e-3, "{med} {mc_med}");
        assert!((sd - mc_sd).abs() / mc_sd < 1e-2, "{sd} {mc_sd}");
        assert!((med - 3.09).abs() < 0.02, "{med}");
        let zero = SigmaAdd {
            median: 0.1,
            minus: 0.1,
            plus: 0.2,
        };
        assert!(combine_sigma_add(zero, u).0.is_nan());
        assert!(combine_sigma_add(SigmaAdd::NAN, u).1.is_nan());
    }

    #[test]
    fn the_weighted_modulus_sum_agrees_with_hypot_pair_by_pair() {
        let pairs = |w: &[f64], qs: &[f64], us: &[f64]| -> f64 {
            let mut m = 0.0;
            for (wi, q) in w.iter().zip(qs) {
                for (wj, u) in w.iter().zip(us) {
                    m += wi * wj * q.hypot(*u);
                }
            }
            m
        };
        let z = normals(321, 7);
        let w: Vec<f64> = z.iter().map(|x| (-0.5 * x * x).exp() * 0.05).collect();
        for (mq, sq, mu, su) in [(0.8, 0.05, 0.75, 0.04), (-3.0, 0.9, 2.0, 1.5)] {
            let qs: Vec<f64> = z.iter().map(|x| f64::exp(mq + sq * x)).collect();
            let us: Vec<f64> = z.iter().rev().map(|x| f64::exp(mu + su * x)).collect();
            let (fast, slow) = (weighted_mean_modulus(&w, &qs, &us), pairs(&w, &qs, &us));
            assert!((fast - slow).abs() <= 1e-13 * slow, "{fast} {slow}");
        }
        // Squares that would overflow go through hypot: finite, and the same sum.
        let big = vec![1e200; 321];
        let m = weighted_mean_modulus(&w, &big, &big);
        assert!(m.is_finite() && m == pairs(&w, &big, &big), "{m}");
    }

    #[test]
    fn the_mean_in_steps_of_a_fifth_is_the_mean_in_steps_of_a_twentieth() {
        for (q, u) in [
            ((0.8, 0.05), (0.75, 0.04)),
            ((-3.0, 0.9), (2.0, 1.5)),
            ((0.0, 2.0), (0.1, 0.02)),
            ((5.0, 0.3), (-5.0, 1.0)),
        ] {
            let mean = |h: f64| {
                let (w, qs, us) = grid(h, q, u);
                weighted_mean_modulus(&w, &qs, &us)
            };
            let (coarse, fine) = (mean(0.2), mean(0.05));
            assert!(
                (coarse - fine).abs() <= 1e-9 * fine,
                "{q:?} {u:?}: {coarse} {fine}"
            );
            // Steps of 1 are off by more: the test can tell.
            assert!((mean(1.0) - fine).abs() > 1e-9 * fine, "{q:?} {u:?}");
        }
    }

    #[test]
    fn a_bracket_on_the_wrong_side_of_the_median_falls_back_to_zero_or_far() {
        let (m, s) = (0.7f64, 0.3);
        let cdf = |t: f64| normal_cdf((t.ln() - m) / s);
        let far = f64::exp(m + 9.0 * s);
        for (lo, hi) in [
            (m.exp() * 0.9, m.exp() * 1.1),
            ((m + s).exp(), (m + 2.0 * s).exp()),
            ((m - 2.0 * s).exp(), (m - s).exp()),
            ((m + s).exp(), (m - s).exp()),
        ] {
            let found = median_of(cdf, lo, hi, far);
            assert!(
                (found / m.exp() - 1.0).abs() < 1e-6,
                "[{lo}, {hi}]: {found}"
            );
        }
    }

    #[test]
    fn the_median_is_found_in_few_evaluations_where_bisection_finds_it() {
        // Log-normal moduli of several widths: the median of e^(m + s·z) is e^m.
        for (m, s) in [(1.1, 0.05), (-2.0, 0.4), (3.0, 1.2), (0.0, 2.0)] {
            let evaluations = std::cell::Cell::new(0);
            let cdf = |t: f64| {
                evaluations.set(evaluations.get() + 1);
                normal_cdf((t.ln() - m) / s)
            };
            let found = median_of(cdf, 0.0, f64::exp(m + 9.0 * s), f64::exp(m + 9.0 * s));
            let (mut lo, mut hi) = (0.0, f64::exp(m + 9.0 * s));
            let mut halvings = 0;
            while hi - lo > 1e-12 * hi {
                halvings += 1;
                let mid = 0.5 * (lo + hi);
                if normal_cdf((mid.ln() - m) / s) < 0.5 {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            // Φ is good to 1.2e-7 (and steps by 2.3e-7 at 0), so the crossing of ½ is defined
            // to ~1e-7 of σ: the two methods may settle on either side of that step.
            let bisected = 0.5 * (lo + hi);
            assert!(
                (found - bisected).abs() <= 1e-7 * s * bisected,
                "{found} {bisected}"
            );
            assert!(
                (found - m.exp()).abs() <= 1e-6 * m.exp(),
                "{found} {}",
                m.exp()
            );
            assert!(
                evaluations.get() <= 24 && 3 * evaluations.get() <= halvings,
                "{m} {s}: {} evaluations, bisection {halvings}",
                evaluations.get()
            );
        }
    }

    #[test]
    fn normal_cdf_is_accurate() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.0) - 0.841_344_746).abs() < 2e-7);
        assert!((normal_cdf(-1.96) - 0.024_997_895).abs() < 2e-7);
    }
}
