//! A small Levenberg–Marquardt least-squares fitter for a handful of parameters (the Stokes I
//! model and the RMSF main lobe), in the spirit of MINPACK/mpfit: an analytic Jacobian where the
//! caller gives one ([`fit_with_jacobian`]), else forward differences; fixed parameters; parameter
//! errors from the unscaled covariance (JᵀJ)⁻¹ as mpfit reports them. (Forward differences make
//! the errors of a fifth-order Stokes I model tens of per cent wrong: its columns are nearly
//! collinear, so the covariance amplifies the differencing error.)

/// The result of a fit.
#[derive(Clone, Debug)]
pub struct Fit {
    /// Best parameters (fixed ones unchanged).
    pub params: Vec<f64>,
    /// 1-sigma errors from the covariance diagonal (0 for fixed parameters).
    pub perror: Vec<f64>,
    /// Covariance of all parameters, row-major n×n (zero rows/columns for fixed ones).
    pub covar: Vec<f64>,
    /// Sum of squared residuals at the best parameters.
    pub chi_sq: f64,
    /// Iterations taken.
    pub iterations: usize,
    /// 1: converged on chi-square; 2: on parameters; 5: hit the iteration limit.
    pub status: i32,
}

/// Minimise Σ r_i(p)² where `residuals(p, out)` fills `out` (length `n_res`). Parameters with
/// `fixed[j]` are held at their start values.
pub fn fit(
    start: &[f64],
    fixed: &[bool],
    n_res: usize,
    residuals: &dyn Fn(&[f64], &mut [f64]),
    max_iter: usize,
) -> Fit {
    fit_with_jacobian(start, fixed, n_res, residuals, None, max_iter)
}

/// The Jacobian of the residuals: `jac(p, out)` fills `out[i * n_params + j]` = ∂r_i/∂p_j for every
/// parameter (fixed ones included; their columns are ignored).
pub type Jacobian<'a> = &'a dyn Fn(&[f64], &mut [f64]);

/// [`fit`] with the Jacobian given analytically (`None`: forward differences).
pub fn fit_with_jacobian(
    start: &[f64],
    fixed: &[bool],
    n_res: usize,
    residuals: &dyn Fn(&[f64], &mut [f64]),
    analytic: Option<Jacobian>,
    max_iter: usize,
) -> Fit {
    let free: Vec<usize> = (0..start.len()).filter(|&j| !fixed[j]).collect();
    let m = free.len();
    let mut p = start.to_vec();
    let mut r = vec![0.0; n_res];
    residuals(&p, &mut r);
    let mut chi = r.iter().map(|x| x * x).sum::<f64>();
    let mut lambda = 1e-3;
    let mut jac = vec![0.0; n_res * m];
    let mut r2 = vec![0.0; n_res];
    let mut status = 5;
    let mut iterations = 0;
    let eps = f64::EPSILON.sqrt();
    // Forward-difference Jacobian at `p` (residuals `r`), columns of the free parameters;
    // `scratch` holds the shifted residuals.
    let n_par = start.len();
    let mut full = vec![0.0; if analytic.is_some() { n_res * n_par } else { 0 }];
    let mut jacobian = |p: &[f64], r: &[f64], jac: &mut [f64], scratch: &mut [f64]| {
        if let Some(a) = analytic {
            a(p, &mut full);
            for i in 0..n_res {
                for (c, &j) in free.iter().enumerate() {
                    jac[i * m + c] = full[i * n_par + j];
                }
            }
            return;
        }
        for (c, &j) in free.iter().enumerate() {
            let h = if p[j] == 0.0 { eps } else { eps * p[j].abs() };
            let mut pj = p.to_vec();
            pj[j] += h;
            residuals(&pj, scratch);
            for i in 0..n_res {
                jac[i * m + c] = (scratch[i] - r[i]) / h;
            }
        }
    };
    for it in 0..max_iter {
        iterations = it + 1;
        jacobian(&p, &r, &mut jac, &mut r2);
        let (jtj, jtr) = normal_equations(&jac, &r, n_res, m);
        let mut improved = false;
        for _ in 0..30 {
            let mut a = jtj.clone();
            for d in 0..m {
                a[d * m + d] += lambda * jtj[d * m + d].max(1e-300);
            }
            let Some(step) = solve(&a, &jtr.iter().map(|x| -x).collect::<Vec<_>>(), m) else {
                lambda *= 10.0;
                continue;
            };
            let mut trial = p.clone();
            for (c, &j) in free.iter().enumerate() {
                trial[j] += step[c];
            }
            residuals(&trial, &mut r2);
            let chi2 = r2.iter().map(|x| x * x).sum::<f64>();
            if chi2.is_finite() && chi2 <= chi {
                let rel_chi = (chi - chi2) / chi.max(1e-300);
                let rel_par = free
                    .iter()
                    .enumerate()
                    .map(|(c, &j)| step[c].abs() / (p[j].abs() + 1e-300))
                    .fold(0.0, f64::max);
                p = trial;
                std::mem::swap(&mut r, &mut r2);
                chi = chi2;
                lambda = (lambda / 10.0).max(1e-12);
                improved = true;
                if rel_chi < 1e-12 {
                    status = 1;
                } else if rel_par < 1e-12 {
                    status = 2;
                }
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            status = 1;
            break;
        }
        if status != 5 {
            break;
        }
    }
    // Covariance from the Jacobian at the solution, through its QR factors (as MINPACK does):
    // forming JᵀJ would square a condition number that reaches 1e6 for a fifth-order model.
    jacobian(&p, &r, &mut jac, &mut r2);
    let n = start.len();
    let mut perror = vec![0.0; n];
    let mut covar = vec![0.0; n * n];
    if let Some(inv) = covariance_qr(&jac, n_res, m) {
        for (c, &j) in free.iter().enumerate() {
            perror[j] = inv[c * m + c].max(0.0).sqrt();
            for (c2, &j2) in free.iter().enumerate() {
                covar[j * n + j2] = inv[c * m + c2];
            }
        }
    }
    Fit {
        params: p,
        perror,
        covar,
        chi_sq: chi,
        iterations,
        status,
    }
}

fn normal_equations(jac: &[f64], r: &[f64], n: usize, m: usize) -> (Vec<f64>, Vec<f64>) {
    let mut jtj = vec![0.0; m * m];
    let mut jtr = vec![0.0; m];
    for i in 0..n {
        let row = &jac[i * m..(i + 1) * m];
        for a in 0..m {
            jtr[a] += row[a] * r[i];
            for b in 0..m {
                jtj[a * m + b] += row[a] * row[b];
            }
        }
    }
    (jtj, jtr)
}

/// Householder QR in place of A (n×m, row-major, n ≥ m): R is left in the upper triangle of the
/// first m rows; `rhs`, when given, is multiplied by Qᵀ alongside. False when a column is zero or
/// not finite (A is rank-deficient).
pub fn householder_qr(a: &mut [f64], n: usize, m: usize, mut rhs: Option<&mut [f64]>) -> bool {
    for k in 0..m {
        let norm = (k..n)
            .map(|i| a[i * m + k] * a[i * m + k])
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return false;
        }
        let alpha = if a[k * m + k] > 0.0 { -norm } else { norm };
        // The reflector v = x − αe₁ of column k below the diagonal.
        let mut v: Vec<f64> = (k..n).map(|i| a[i * m + k]).collect();
        v[0] -= alpha;
        let vv: f64 = v.iter().map(|x| x * x).sum();
        if vv == 0.0 {
            continue;
        }
        for c in k..m {
            let f = 2.0 * (k..n).map(|i| v[i - k] * a[i * m + c]).sum::<f64>() / vv;
            for i in k..n {
                a[i * m + c] -= f * v[i - k];
            }
        }
        if let Some(b) = rhs.as_deref_mut() {
            let f = 2.0 * (k..n).map(|i| v[i - k] * b[i]).sum::<f64>() / vv;
            for i in k..n {
                b[i] -= f * v[i - k];
            }
        }
    }
    true
}

/// (JᵀJ)⁻¹ for J (n×m, row-major) from J = QR by Householder reflections: R⁻¹R⁻ᵀ. `None` when R
/// is singular.
fn covariance_qr(jac: &[f64], n: usize, m: usize) -> Option<Vec<f64>> {
    if n < m {
        return None;
    }
    let mut a = jac.to_vec();
    if !householder_qr(&mut a, n, m, None) {
        return None;
    }
    // R is the upper triangle of the first m rows; invert it by back substitution.
    let mut rinv = vec![0.0; m * m];
    for col in 0..m {
        for row in (0..=col).rev() {
            let mut s = if row == col { 1.0 } else { 0.0 };
            for k in row + 1..=col {
                s -= a[row * m + k] * rinv[k * m + col];
            }
            let d = a[row * m + row];
            if d == 0.0 {
                return None;
            }
            rinv[row * m + col] = s / d;
        }
    }
    let mut cov = vec![0.0; m * m];
    for i in 0..m {
        for j in 0..m {
            cov[i * m + j] = (0..m).map(|k| rinv[i * m + k] * rinv[j * m + k]).sum();
        }
    }
    Some(cov)
}

/// Solve A x = b (A m×m, row-major) by Gaussian elimination with partial pivoting.
fn solve(a: &[f64], b: &[f64], m: usize) -> Option<Vec<f64>> {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    for col in 0..m {
        let piv =
            (col..m).max_by(|&x, &y| a[x * m + col].abs().total_cmp(&a[y * m + col].abs()))?;
        if a[piv * m + col].abs() < 1e-300 || !a[piv * m + col].is_finite() {
            return None;
        }
        if piv != col {
            for k in 0..m {
                a.swap(piv * m + k, col * m + k);
            }
            b.swap(piv, col);
        }
        for row in col + 1..m {
            let f = a[row * m + col] / a[col * m + col];
            for k in col..m {
                a[row * m + k] -= f * a[col * m + k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; m];
    for row in (0..m).rev() {
        let s: f64 = (row + 1..m).map(|k| a[row * m + k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row * m + row];
    }
    Some(x)
}

/// The inverse of A (m×m), for tests that check covariances against the normal equations.
#[cfg(test)]
pub fn invert(a: &[f64], m: usize) -> Option<Vec<f64>> {
    let mut inv = vec![0.0; m * m];
    for c in 0..m {
        let mut e = vec![0.0; m];
        e[c] = 1.0;
        let col = solve(a, &e, m)?;
        for r in 0..m {
            inv[r * m + c] = col[r];
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_gaussian_and_holds_fixed_parameters() {
        let xs: Vec<f64> = (0..50).map(|i| i as f64 * 0.2 - 5.0).collect();
        let truth = [2.0, 0.7, 1.3];
        let model = |p: &[f64], x: f64| p[0] * (-(x - p[1]).powi(2) / (2.0 * p[2] * p[2])).exp();
        let ys: Vec<f64> = xs.iter().map(|&x| model(&truth, x)).collect();
        let res = |p: &[f64], out: &mut [f64]| {
            for (i, &x) in xs.iter().enumerate() {
                out[i] = model(p, x) - ys[i];
            }
        };
        let f = fit(
            &[1.0, 0.0, 2.0],
            &[false, false, false],
            xs.len(),
            &res,
            200,
        );
        for (got, want) in f.params.iter().zip(truth) {
            assert!((got - want).abs() < 1e-7, "{:?}", f.params);
        }
        let f = fit(&[1.0, 0.7, 2.0], &[false, true, false], xs.len(), &res, 200);
        assert_eq!(f.params[1], 0.7);
        assert_eq!(f.perror[1], 0.0);
    }
}
