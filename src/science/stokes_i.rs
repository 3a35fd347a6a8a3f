//! The Stokes I spectral model: a log-polynomial (power law with curvature) or a linear
//! polynomial in x = ν/ν_ref, fitted by least squares, as RM-Tools fits it.
//!
//! Parameters are ordered [C5, C4, C3, C2, C1, C0] (highest order first). Orders above
//! `poly_ord` are held at 0. `log`: I = C0·x^(C1 + C2·L + C3·L² + C4·L³ + C5·L⁴), L = log10 x.
//! `linear`: I = Σ C_k x^k. ν_ref = 1/√(mean(1/ν²)) over good channels.

use super::lm;
use super::stats::nanmean;

/// Which Stokes I model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FitFunction {
    /// Log-polynomial (power law with curvature).
    Log,
    /// Linear polynomial.
    Linear,
}

impl FitFunction {
    /// Parse `log` / `linear`.
    pub fn parse(s: &str) -> Option<FitFunction> {
        match s {
            "log" => Some(FitFunction::Log),
            "linear" => Some(FitFunction::Linear),
            _ => None,
        }
    }
    /// The RM-Tools spelling.
    pub fn name(self) -> &'static str {
        match self {
            FitFunction::Log => "log",
            FitFunction::Linear => "linear",
        }
    }
}

/// A fitted Stokes I model.
#[derive(Clone, Debug)]
pub struct StokesIModel {
    /// [C5, C4, C3, C2, C1, C0].
    pub params: [f64; 6],
    /// 1-sigma errors of `params`.
    pub perror: [f64; 6],
    /// Covariance of `params` (6×6 row-major).
    pub covar: [f64; 36],
    /// Model order actually used.
    pub poly_ord: i32,
    /// Fitter status plus flags: +128 model negative somewhere, +64 model below dI somewhere;
    /// 9 when the fit failed (model ≡ 1).
    pub fit_status: i32,
    /// χ² of the fit.
    pub chi_sq: f64,
    /// χ² / (N_channels − poly_ord − 1), all channels counted (RM-Tools' convention).
    pub chi_sq_red: f64,
    /// Reference frequency ν_ref in Hz.
    pub reference_frequency_hz: f64,
    /// Which model.
    pub fit_function: FitFunction,
}

fn eval(params: &[f64], f: FitFunction, x: f64) -> f64 {
    eval_ln(params, f, x, x.ln())
}

/// [`eval`] with ln x already known (the fit evaluates the same channels hundreds of times).
/// The power is exp(expo · ln x): the same value as `powf` to the last bit or two, at a third of
/// the cost.
#[inline]
fn eval_ln(params: &[f64], f: FitFunction, x: f64, ln_x: f64) -> f64 {
    let [c5, c4, c3, c2, c1, c0] = [
        params[0], params[1], params[2], params[3], params[4], params[5],
    ];
    match f {
        FitFunction::Linear => ((((c5 * x + c4) * x + c3) * x + c2) * x + c1) * x + c0,
        FitFunction::Log => {
            let l = ln_x * std::f64::consts::LOG10_E;
            let expo = (((c5 * l + c4) * l + c3) * l + c2) * l + c1;
            c0 * (expo * ln_x).exp()
        }
    }
}

impl StokesIModel {
    /// The model at `freq_hz`.
    pub fn at(&self, freq_hz: f64) -> f64 {
        eval(
            &self.params,
            self.fit_function,
            freq_hz / self.reference_frequency_hz,
        )
    }

    /// The same model with its reference frequency moved to `new_ref_hz` (values unchanged;
    /// coefficients and their errors transformed, as RM-Tools' `renormalize_StokesI_model`).
    pub fn renormalized(&self, new_ref_hz: f64) -> StokesIModel {
        let x = new_ref_hz / self.reference_frequency_hz;
        let transform = |p: &[f64]| -> [f64; 6] {
            let [a, b, c, d, f, g] = [p[0], p[1], p[2], p[3], p[4], p[5]];
            match self.fit_function {
                FitFunction::Linear => [
                    a * x.powi(5),
                    b * x.powi(4),
                    c * x.powi(3),
                    d * x.powi(2),
                    f * x,
                    g,
                ],
                FitFunction::Log => {
                    let l = x.log10();
                    [
                        a,
                        5.0 * a * l + b,
                        10.0 * a * l * l + 4.0 * b * l + c,
                        10.0 * a * l.powi(3) + 6.0 * b * l * l + 3.0 * c * l + d,
                        5.0 * a * l.powi(4)
                            + 4.0 * b * l.powi(3)
                            + 3.0 * c * l * l
                            + 2.0 * d * l
                            + f,
                        g * 10f64.powf(
                            a * l.powi(5) + b * l.powi(4) + c * l.powi(3) + d * l * l + f * l,
                        ),
                    ]
                }
            }
        };
        let new = transform(&self.params);
        // First-order error propagation through the transform's Jacobian.
        let mut jac = [[0.0; 6]; 6];
        for j in 0..6 {
            let h = 1e-7 * self.params[j].abs().max(1e-7);
            let mut p = self.params;
            p[j] += h;
            let t = transform(&p);
            for i in 0..6 {
                jac[i][j] = (t[i] - new[i]) / h;
            }
        }
        let mut perror = [0.0; 6];
        let mut covar = [0.0; 36];
        for i in 0..6 {
            for k in 0..6 {
                let mut v = 0.0;
                for a in 0..6 {
                    for b in 0..6 {
                        v += jac[i][a] * jac[k][b] * self.covar[a * 6 + b];
                    }
                }
                covar[i * 6 + k] = v;
            }
            perror[i] = covar[i * 6 + i].max(0.0).sqrt();
        }
        StokesIModel {
            params: new,
            perror,
            covar,
            reference_frequency_hz: new_ref_hz,
            ..self.clone()
        }
    }

    /// The model that stands in when there is no Stokes I (I ≡ 1).
    pub fn unity(_n_chan: usize, poly_ord: i32, f: FitFunction, fit_status: i32) -> StokesIModel {
        StokesIModel {
            params: [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
            perror: [0.0; 6],
            covar: [0.0; 36],
            poly_ord,
            fit_status,
            chi_sq: 0.0,
            chi_sq_red: 0.0,
            reference_frequency_hz: 1.0,
            fit_function: f,
        }
    }
}

fn fit_order(x: &[f64], y: &[f64], dy: &[f64], order: usize, f: FitFunction) -> lm::Fit {
    let c0 = nanmean(y);
    let start = [0.0, 0.0, 0.0, 0.0, 0.0, c0];
    let fixed: Vec<bool> = (0..6).map(|i| 6 - i - 1 > order).collect();
    let ln_x: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    let res = |p: &[f64], out: &mut [f64]| {
        for i in 0..x.len() {
            out[i] = (eval_ln(p, f, x[i], ln_x[i]) - y[i]) / dy[i];
        }
    };
    let jac = |p: &[f64], out: &mut [f64]| {
        for i in 0..x.len() {
            let row = &mut out[i * 6..i * 6 + 6];
            derivatives(p, f, x[i], ln_x[i], row);
            row.iter_mut().for_each(|d| *d /= dy[i]);
        }
    };
    lm::fit_with_jacobian(&start, &fixed, x.len(), &res, Some(&jac), 200)
}

/// ∂model/∂[C5..C0] at x (ln x given). `log`: ∂I/∂C0 = I/C0 (the power), ∂I/∂C_k = I·ln x·L^(k−1)
/// for k ≥ 1; `linear`: ∂I/∂C_k = x^k.
fn derivatives(p: &[f64], f: FitFunction, x: f64, ln_x: f64, out: &mut [f64]) {
    match f {
        FitFunction::Linear => {
            let mut xk = 1.0;
            for k in 0..6 {
                out[5 - k] = xk;
                xk *= x;
            }
        }
        FitFunction::Log => {
            let l = ln_x * std::f64::consts::LOG10_E;
            let expo = ((((p[0] * l + p[1]) * l + p[2]) * l + p[3]) * l) + p[4];
            let power = (expo * ln_x).exp();
            let model = p[5] * power;
            out[5] = power;
            let mut lk = 1.0;
            for k in 1..6 {
                out[5 - k] = model * ln_x * lk;
                lk *= l;
            }
        }
    }
}

/// Fit the Stokes I spectrum. `poly_ord` ≥ 0 fits that order (at most 5); negative orders choose
/// the order dynamically up to |poly_ord| by AIC. Channels with non-finite I or dI are ignored.
/// Flags +128 / +64 are added as RM-Tools does; a fit that cannot run gives the unity model with
/// status 9.
pub fn fit(freq_hz: &[f64], i: &[f64], di: &[f64], poly_ord: i32, f: FitFunction) -> StokesIModel {
    let n = freq_hz.len();
    let good: Vec<usize> = (0..n)
        .filter(|&k| i[k].is_finite() && di[k].is_finite())
        .collect();
    if good.is_empty() {
        return StokesIModel::unity(n, poly_ord, f, 9);
    }
    let inv_sq: Vec<f64> = good
        .iter()
        .map(|&k| 1.0 / (freq_hz[k] * freq_hz[k]))
        .collect();
    let ref_hz = 1.0 / nanmean(&inv_sq).sqrt();
    let x: Vec<f64> = good.iter().map(|&k| freq_hz[k] / ref_hz).collect();
    let y: Vec<f64> = good.iter().map(|&k| i[k]).collect();
    let mut dy: Vec<f64> = good.iter().map(|&k| di[k]).collect();
    if dy.iter().all(|&d| d == 0.0) {
        dy.iter_mut().for_each(|d| *d = 1.0);
    }
    let (best, order, chi) = if poly_ord < 0 {
        let highest = poly_ord.unsigned_abs().min(5) as usize;
        let mut best = fit_order(&x, &y, &dy, 0, f);
        let mut old_aic = 2.0 + best.chi_sq;
        let mut current = 1;
        while current <= highest {
            let next = fit_order(&x, &y, &dy, current, f);
            let aic = 2.0 * (current as f64 + 1.0) + next.chi_sq;
            if aic < old_aic {
                old_aic = aic;
                best = next;
                current += 1;
            } else {
                break;
            }
        }
        let chi = best.chi_sq;
        (best, current as i32 - 1, chi)
    } else {
        let order = (poly_ord as usize).min(5);
        let b = fit_order(&x, &y, &dy, order, f);
        let chi = b.chi_sq;
        (b, poly_ord, chi)
    };
    if best.params.iter().any(|p| !p.is_finite()) {
        return StokesIModel::unity(n, poly_ord, f, 9);
    }
    let mut params = [0.0; 6];
    let mut perror = [0.0; 6];
    let mut covar = [0.0; 36];
    params.copy_from_slice(&best.params);
    perror.copy_from_slice(&best.perror);
    covar.copy_from_slice(&best.covar);
    let dof = n as f64 - order as f64 - 1.0;
    let mut model = StokesIModel {
        params,
        perror,
        covar,
        poly_ord: order,
        fit_status: best.status,
        chi_sq: chi,
        chi_sq_red: chi / dof,
        reference_frequency_hz: ref_hz,
        fit_function: f,
    };
    let values: Vec<f64> = freq_hz.iter().map(|&v| model.at(v)).collect();
    if values.iter().copied().fold(f64::INFINITY, f64::min) < 0.0 {
        model.fit_status += 128;
    }
    if values.iter().zip(di).any(|(m, d)| m < d) {
        model.fit_status += 64;
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analytic_derivatives_match_central_differences() {
        let p = [0.01, -0.02, 0.05, 0.3, -0.7, 2.5];
        for f in [FitFunction::Log, FitFunction::Linear] {
            for x in [0.8, 0.95, 1.0, 1.2] {
                let mut d = [0.0; 6];
                derivatives(&p, f, x, f64::ln(x), &mut d);
                for j in 0..6 {
                    let h = 1e-6;
                    let (mut a, mut b) = (p, p);
                    a[j] += h;
                    b[j] -= h;
                    let num = (eval(&a, f, x) - eval(&b, f, x)) / (2.0 * h);
                    assert!(
                        (d[j] - num).abs() <= 1e-7 * (1.0 + num.abs()),
                        "{f:?} x={x} j={j}: {} vs {num}",
                        d[j]
                    );
                }
            }
        }
    }

    #[test]
    fn coefficient_errors_are_the_least_squares_covariance() {
        // A linear model is linear least squares: the errors are exactly √diag((AᵀA)⁻¹). (Third
        // order: at fifth, AᵀA is too ill-conditioned for this reference to be exact.)
        let freq: Vec<f64> = (0..288).map(|k| 800e6 + 1e6 * k as f64).collect();
        let i: Vec<f64> = freq.iter().map(|&v| 1.0 + 0.2 * (v / 944e6)).collect();
        let di = vec![0.01; 288];
        let m = fit(&freq, &i, &di, 3, FitFunction::Linear);
        let x: Vec<f64> = freq.iter().map(|&v| v / m.reference_frequency_hz).collect();
        // Free parameters C3..C0 (indices 2..5).
        let mut ata = [0.0; 16];
        for &xv in &x {
            let row: Vec<f64> = (0..4i32).map(|j| xv.powi(3 - j) / 0.01).collect();
            for a in 0..4 {
                for b in 0..4 {
                    ata[a * 4 + b] += row[a] * row[b];
                }
            }
        }
        let inv = crate::science::lm::invert(&ata, 4).unwrap();
        for j in 0..4 {
            let exact = inv[j * 4 + j].sqrt();
            assert!(
                (m.perror[j + 2] / exact - 1.0).abs() < 1e-4,
                "C{}: {} vs {exact}",
                3 - j,
                m.perror[j + 2]
            );
        }
    }

    #[test]
    fn recovers_a_curved_power_law_and_renormalises_without_changing_values() {
        let freq: Vec<f64> = (0..100).map(|k| 800e6 + 3e6 * k as f64).collect();
        let truth = |v: f64| {
            let x: f64 = v / 900e6;
            let l = x.log10();
            2.5 * x.powf(-0.7 + 0.3 * l)
        };
        let i: Vec<f64> = freq.iter().map(|&v| truth(v)).collect();
        let di = vec![0.01; 100];
        let m = fit(&freq, &i, &di, 2, FitFunction::Log);
        for &v in &freq {
            assert!(
                (m.at(v) / truth(v) - 1.0).abs() < 1e-8,
                "{v} {} {} {:?} st {} it",
                m.at(v),
                truth(v),
                m.params,
                m.fit_status
            );
        }
        let r = m.renormalized(950e6);
        for &v in &freq {
            assert!((r.at(v) / m.at(v) - 1.0).abs() < 1e-10);
        }
        let lin = fit(&freq, &i, &di, 3, FitFunction::Linear);
        assert!((lin.at(900e6) / truth(900e6) - 1.0).abs() < 1e-3);
        assert!(lin.fit_status < 64);
    }
}
