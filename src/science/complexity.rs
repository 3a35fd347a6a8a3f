//! Faraday complexity measures: RM-Tools' `sigma_add` (the extra scatter of the fractional q, u
//! spectra about the Faraday-thin model of the FDF peak), per component. Arrakis's combination
//! of the Q and U estimates into the catalogue's one `sigma_add` is `science::sigma_add`.
//!
//! Formulas: `../shared/science/catalogue.md` §5.

use super::C_M_S;

/// One `calc_sigma_add` result: the posterior median and its distance to the 15.72 and 84.27
/// percentiles, in units of the per-channel noise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SigmaAdd {
    /// Median of the posterior of the extra scatter.
    pub median: f64,
    /// Median − 15.72th percentile.
    pub minus: f64,
    /// 84.27th percentile − median.
    pub plus: f64,
}

impl SigmaAdd {
    /// All NaN (nothing to measure).
    pub const NAN: SigmaAdd = SigmaAdd {
        median: f64::NAN,
        minus: f64::NAN,
        plus: f64::NAN,
    };
}

/// The three estimates RM-Tools' `measure_qu_complexity` makes: from q, from u, and from both
/// concatenated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuComplexity {
    /// From the q residuals.
    pub q: SigmaAdd,
    /// From the u residuals.
    pub u: SigmaAdd,
    /// From q and u together.
    pub c: SigmaAdd,
}

/// The value at percentile `pct` of a tabulated CDF, as RM-Tools' `cdf_percentile`: the first
/// sample whose CDF exceeds it, linearly interpolated from the sample before (the first sample's
/// value when that is the first); NaN when none exceeds it.
fn cdf_percentile(x: &[f64], cdf: &[f64], pct: f64) -> f64 {
    let q = pct / 100.0;
    let Some(i) = cdf.iter().position(|&p| p > q) else {
        return f64::NAN;
    };
    if i == 0 {
        return x[0];
    }
    let m = (cdf[i] - cdf[i - 1]) / (x[i] - x[i - 1]);
    let c = cdf[i] - m * x[i];
    (q - c) / m
}

/// RM-Tools' `calc_sigma_add` on normalised residuals `y` with per-point errors `dy` (1, or NaN
/// where the channel has no noise estimate), on a grid of `n_samp` trial scatters from R/n to R,
/// R = max(y + dy) − min(y − dy): Gaussian likelihood with the extra variance and a 1/σ prior.
pub fn calc_sigma_add(y: &[f64], dy: &[f64], n_samp: usize) -> SigmaAdd {
    let hi = y
        .iter()
        .zip(dy)
        .map(|(a, b)| a + b)
        .filter(|v| !v.is_nan())
        .fold(f64::NEG_INFINITY, f64::max);
    let lo = y
        .iter()
        .zip(dy)
        .map(|(a, b)| a - b)
        .filter(|v| !v.is_nan())
        .fold(f64::INFINITY, f64::min);
    let range = hi - lo;
    if !range.is_finite() || range <= 0.0 || n_samp < 2 {
        return SigmaAdd::NAN;
    }
    let step = (range - range / n_samp as f64) / (n_samp - 1) as f64;
    let grid: Vec<f64> = (0..n_samp)
        .map(|j| range / n_samp as f64 + j as f64 * step)
        .collect();
    let n_data = y.len() as f64;
    // The usual case: every error is 1 (or NaN where a channel has none), so both sums depend on
    // the trial scatter only through 1 + σ²: O(1) per trial instead of O(channels).
    let unit = dy.iter().all(|d| *d == 1.0 || d.is_nan());
    let n_unit = dy.iter().filter(|d| **d == 1.0).count() as f64;
    let sum_sq: f64 = y
        .iter()
        .zip(dy)
        .filter(|(a, d)| !a.is_nan() && **d == 1.0)
        .map(|(a, _)| a * a)
        .sum();
    let ln_p: Vec<f64> = grid
        .iter()
        .map(|&s| {
            let s2 = s * s;
            let head = -s.ln() - n_data * (2.0 * std::f64::consts::PI).ln() / 2.0;
            if unit {
                let tot = 1.0 + s2;
                return head - n_unit * 0.5 * tot.ln() - sum_sq / tot / 2.0;
            }
            let (mut ln_sum, mut chi) = (0.0, 0.0);
            for (a, d) in y.iter().zip(dy) {
                let tot = d * d + s2;
                let l = 0.5 * tot.ln();
                if !l.is_nan() {
                    ln_sum += l;
                }
                let c = a * a / tot;
                if !c.is_nan() {
                    chi += c;
                }
            }
            head - ln_sum - chi / 2.0
        })
        .collect();
    let top = ln_p
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(f64::NEG_INFINITY, f64::max);
    let p: Vec<f64> = ln_p.iter().map(|v| (v - top).exp()).collect();
    let total: f64 = p.iter().filter(|v| !v.is_nan()).sum();
    let mut acc = 0.0;
    let cdf: Vec<f64> = p
        .iter()
        .map(|v| {
            acc += v;
            acc / total
        })
        .collect();
    let median = cdf_percentile(&grid, &cdf, 50.0);
    SigmaAdd {
        median,
        minus: median - cdf_percentile(&grid, &cdf, 15.72),
        plus: cdf_percentile(&grid, &cdf, 84.27) - median,
    }
}

/// RM-Tools' `measure_qu_complexity`: subtract the Faraday-thin model p0·exp(2i(ψ0 + RM·λ²)) from
/// the fractional spectra and measure the extra scatter of q/dq, u/du and both (1 000 samples).
#[allow(clippy::too_many_arguments)]
pub fn measure_qu_complexity(
    freq_hz: &[f64],
    q: &[f64],
    u: &[f64],
    dq: &[f64],
    du: &[f64],
    frac_pol: f64,
    psi0_deg: f64,
    rm_radm2: f64,
) -> QuComplexity {
    let n = freq_hz.len();
    let mut yq = Vec::with_capacity(n);
    let mut yu = Vec::with_capacity(n);
    let mut dyq = Vec::with_capacity(n);
    let mut dyu = Vec::with_capacity(n);
    for k in 0..n {
        let l2 = (C_M_S / freq_hz[k]).powi(2);
        let ang = 2.0 * (psi0_deg.to_radians() + rm_radm2 * l2);
        let (qm, um) = (frac_pol * ang.cos(), frac_pol * ang.sin());
        yq.push((q[k] - qm) / dq[k]);
        yu.push((u[k] - um) / du[k]);
        // RM-Tools' dq/dq: 1 where the noise is usable, NaN where it is NaN, zero or infinite.
        dyq.push(unit_or_nan(dq[k]));
        dyu.push(unit_or_nan(du[k]));
    }
    let both = |a: &[f64], b: &[f64]| [a, b].concat();
    QuComplexity {
        q: calc_sigma_add(&yq, &dyq, 1000),
        u: calc_sigma_add(&yu, &dyu, 1000),
        c: calc_sigma_add(&both(&yq, &yu), &both(&dyq, &dyu), 1000),
    }
}

/// x/x: 1 for a finite non-zero x, NaN otherwise.
fn unit_or_nan(x: f64) -> f64 {
    if x.is_finite() && x != 0.0 {
        1.0
    } else {
        f64::NAN
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Gaussian deviates from a fixed LCG and Box–Muller (no RNG crate in the kernels).
    pub(crate) fn normals(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (a, b) = (next(), next());
                (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
            })
            .collect()
    }

    #[test]
    fn recovers_an_injected_extra_scatter_and_not_a_missing_one() {
        let n = 2000;
        let ones = vec![1.0; n];
        for (extra, tol) in [(0.0, 0.15), (2.0, 0.15)] {
            let y: Vec<f64> = normals(n, 7)
                .iter()
                .map(|g| g * (1.0f64 + extra * extra).sqrt())
                .collect();
            let s = calc_sigma_add(&y, &ones, 1000);
            assert!((s.median - extra).abs() < tol, "{extra}: {s:?}");
            assert!(s.minus > 0.0 && s.plus > 0.0, "{s:?}");
        }
    }

    #[test]
    fn the_unit_error_shortcut_is_the_general_sum() {
        let mut y = normals(300, 3);
        let mut dy = vec![1.0; 300];
        y[5] = f64::NAN;
        dy[9] = f64::NAN;
        let fast = calc_sigma_add(&y, &dy, 1000);
        // The same errors written as 1 + ε take the general path with identical values.
        let general_dy: Vec<f64> = dy.iter().map(|d| d * (1.0 + f64::EPSILON)).collect();
        let slow = calc_sigma_add(&y, &general_dy, 1000);
        for (a, b) in [
            (fast.median, slow.median),
            (fast.minus, slow.minus),
            (fast.plus, slow.plus),
        ] {
            assert!((a - b).abs() < 1e-9, "{fast:?} {slow:?}");
        }
    }

    #[test]
    fn percentiles_interpolate_and_clamp() {
        let x = [1.0, 2.0, 3.0];
        assert_eq!(cdf_percentile(&x, &[0.6, 0.8, 1.0], 50.0), 1.0);
        assert!((cdf_percentile(&x, &[0.2, 0.6, 1.0], 50.0) - 1.75).abs() < 1e-12);
        assert!(cdf_percentile(&x, &[0.1, 0.2, 0.3], 50.0).is_nan());
    }
}
