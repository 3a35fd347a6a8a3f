//! Ionospheric Faraday rotation as FRion models it: the time-averaged modulation
//! θ(λ²) = (1/(t_last − t_first)) ∫ exp(2i λ² RM_ion(t)) dt, and the correction
//! P_corr = P_obs / θ.
//!
//! The integral is scipy's `simpson` (scipy ≥ 1.11: composite Simpson over pairs of intervals of
//! any spacing; for an even number of samples the last interval gets Cartwright's correction),
//! and the division is numpy's complex division (Smith's method), so that results match FRion's
//! to rounding.

use super::C_M_S;

/// scipy.integrate.simpson(y, x=x) for samples at (possibly uneven) abscissae `x`.
pub fn simpson(y: &[f64], x: &[f64]) -> f64 {
    assert_eq!(y.len(), x.len(), "simpson: y and x differ in length");
    let n = y.len();
    match n {
        0 | 1 => 0.0,
        2 => 0.5 * (x[1] - x[0]) * (y[1] + y[0]),
        _ if n % 2 == 1 => basic_simpson(y, x, n - 2),
        _ => {
            let mut result = basic_simpson(y, x, n - 3);
            let h0 = x[n - 2] - x[n - 3];
            let h1 = x[n - 1] - x[n - 2];
            let ratio = |num: f64, den: f64| if den != 0.0 { num / den } else { 0.0 };
            let alpha = ratio(2.0 * h1 * h1 + 3.0 * h0 * h1, 6.0 * (h1 + h0));
            let beta = ratio(h1 * h1 + 3.0 * h0 * h1, 6.0 * h0);
            let eta = ratio(h1 * h1 * h1, 6.0 * h0 * (h0 + h1));
            result += alpha * y[n - 1] + beta * y[n - 2] - eta * y[n - 3];
            result
        }
    }
}

/// Simpson over the interval pairs starting at 0, 2, 4, … below `stop` (scipy's
/// `_basic_simpson(y, 0, stop, x)`), summed in the same order as numpy's pairwise sum for the
/// short arrays this sees.
fn basic_simpson(y: &[f64], x: &[f64], stop: usize) -> f64 {
    let terms: Vec<f64> = (0..stop)
        .step_by(2)
        .map(|i| {
            let h0 = x[i + 1] - x[i];
            let h1 = x[i + 2] - x[i + 1];
            let hsum = h0 + h1;
            let hprod = h0 * h1;
            let h0divh1 = if h1 != 0.0 { h0 / h1 } else { 0.0 };
            let inv = if h0divh1 != 0.0 { 1.0 / h0divh1 } else { 0.0 };
            let mid = if hprod != 0.0 { hsum / hprod } else { 0.0 };
            hsum / 6.0 * (y[i] * (2.0 - inv) + y[i + 1] * (hsum * mid) + y[i + 2] * (2.0 - h0divh1))
        })
        .collect();
    numpy_sum(&terms)
}

/// numpy's float64 `sum`: pairwise summation in blocks of 8 with 8 partial sums for arrays of
/// more than 8 elements; a straight loop for fewer.
pub fn numpy_sum(v: &[f64]) -> f64 {
    let n = v.len();
    if n < 8 {
        let mut s = 0.0;
        for &x in v {
            s += x;
        }
        return s;
    }
    if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&v[..8]);
        let mut i = 8;
        while i + 8 <= n {
            for k in 0..8 {
                r[k] += v[i + k];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += v[i];
            i += 1;
        }
        return res;
    }
    let half = (n / 2) - (n / 2) % 8;
    numpy_sum(&v[..half]) + numpy_sum(&v[half..])
}

/// θ(ν) for each frequency (Hz), from RM_ion (rad/m²) sampled at `times` (seconds).
pub fn modulation(times: &[f64], rms: &[f64], freqs: &[f64]) -> Vec<(f64, f64)> {
    let span = times[times.len() - 1] - times[0];
    freqs
        .iter()
        .map(|&f| {
            let l2 = (C_M_S / f).powi(2);
            let (re, im): (Vec<f64>, Vec<f64>) = rms
                .iter()
                .map(|&rm| {
                    // numpy: exp(2j·(l2·rm)) = exp(0 + i·2·l2·rm).
                    let phase = 2.0 * (l2 * rm);
                    (phase.cos(), phase.sin())
                })
                .unzip();
            (simpson(&re, times) / span, simpson(&im, times) / span)
        })
        .collect()
}

/// (a + ib) / (c + id) as numpy computes it (Smith's method).
pub fn complex_div(a: f64, b: f64, c: f64, d: f64) -> (f64, f64) {
    let (cabs, dabs) = (c.abs(), d.abs());
    if cabs >= dabs {
        if cabs == 0.0 && dabs == 0.0 {
            (a / cabs, b / dabs)
        } else {
            let rat = d / c;
            let scl = 1.0 / (c + d * rat);
            ((a + b * rat) * scl, (b - a * rat) * scl)
        }
    } else {
        let rat = c / d;
        let scl = 1.0 / (d + c * rat);
        ((a * rat + b) * scl, (b * rat - a) * scl)
    }
}

/// Warnings FRion's `check_numeric_problems` would give: a jump in polarisation angle of more
/// than 0.5 rad between time samples at the longest wavelength (the integral is then unreliable),
/// Divide Q + iU by θ channel by channel, in place (FRion's correction): `q` and `u` hold
/// `theta.len()` planes of `plane` pixels each; NaN pixels stay NaN; the arithmetic is in f64
/// with numpy's complex division, the result rounded to f32 as the cubes are stored.
pub fn correct_qu(q: &mut [f32], u: &mut [f32], plane: usize, theta: &[(f64, f64)]) {
    for (c, &(tr, ti)) in theta.iter().enumerate() {
        let (qs, us) = (
            &mut q[c * plane..(c + 1) * plane],
            &mut u[c * plane..(c + 1) * plane],
        );
        let (qs, us) = (qs.iter_mut(), us.iter_mut());
        // [`complex_div`] with its branch and its ratio and scale worked out once per channel
        // (they depend on θ alone): the same operations in the same order, pixel by pixel, in
        // a loop without branches that the compiler vectorises.
        let (cabs, dabs) = (tr.abs(), ti.abs());
        if cabs == 0.0 && dabs == 0.0 {
            for (qv, uv) in qs.zip(us) {
                let (a, b) = complex_div(*qv as f64, *uv as f64, tr, ti);
                (*qv, *uv) = (a as f32, b as f32);
            }
        } else if cabs >= dabs {
            let rat = ti / tr;
            let scl = 1.0 / (tr + ti * rat);
            for (qv, uv) in qs.zip(us) {
                let (a, b) = (*qv as f64, *uv as f64);
                (*qv, *uv) = (((a + b * rat) * scl) as f32, ((b - a * rat) * scl) as f32);
            }
        } else {
            let rat = tr / ti;
            let scl = 1.0 / (ti + tr * rat);
            for (qv, uv) in qs.zip(us) {
                let (a, b) = (*qv as f64, *uv as f64);
                (*qv, *uv) = (((a * rat + b) * scl) as f32, ((b * rat - a) * scl) as f32);
            }
        }
    }
}

/// and strong ionospheric depolarisation (|θ| below 0.1, or 0.02).
pub fn numeric_warnings(rms: &[f64], freqs: &[f64], theta: &[(f64, f64)]) -> Vec<String> {
    let mut w = Vec::new();
    let fmin = freqs.iter().copied().fold(f64::INFINITY, f64::min);
    let l2max = (C_M_S / fmin).powi(2);
    let jump = rms
        .windows(2)
        .map(|p| (p[1] - p[0]).abs())
        .fold(0.0, f64::max);
    if jump * l2max > 0.5 {
        w.push(format!(
            "RM_ion changes by up to {jump:.3} rad/m² between samples: {:.2} rad of polarisation angle at the lowest frequency; sample the ionosphere more often",
            jump * l2max
        ));
    }
    let min_amp = theta
        .iter()
        .map(|&(re, im)| re.hypot(im))
        .fold(f64::INFINITY, f64::min);
    if min_amp < 0.02 {
        w.push(format!("the ionosphere depolarises by more than 98% (|θ| = {min_amp:.4}); the correction amplifies the noise enormously"));
    } else if min_amp < 0.1 {
        w.push(format!("the ionosphere depolarises by more than 90% (|θ| = {min_amp:.4}); the correction amplifies the noise"));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correction_is_complex_division_bit_for_bit_in_every_branch() {
        // |Re θ| ≥ |Im θ|, below it, and θ = 0 (NaN/inf as numpy gives).
        let theta = [(0.8, -0.3), (0.1, 0.7), (-0.5, 0.5), (0.0, 0.0)];
        let plane = 37;
        let vals = |s: f32| -> Vec<f32> {
            (0..plane * theta.len())
                .map(|k| {
                    if k % 11 == 5 {
                        f32::NAN
                    } else {
                        s * (k as f32 * 0.37).sin()
                    }
                })
                .collect()
        };
        let (q0, u0) = (vals(1.3), vals(-0.7));
        let (mut q, mut u) = (q0.clone(), u0.clone());
        correct_qu(&mut q, &mut u, plane, &theta);
        for k in 0..q.len() {
            let (tr, ti) = theta[k / plane];
            let (a, b) = complex_div(q0[k] as f64, u0[k] as f64, tr, ti);
            assert_eq!(q[k].to_bits(), (a as f32).to_bits(), "q {k}");
            assert_eq!(u[k].to_bits(), (b as f32).to_bits(), "u {k}");
        }
    }

    #[test]
    fn correction_undoes_a_rotation_per_channel_and_keeps_blanks() {
        // Two channels of two pixels: P rotated by θ = e^{2iψ} per channel is put back.
        let theta = [(0.0, 1.0), (0.5f64.sqrt(), -(0.5f64.sqrt()))];
        let p = [(1.0f64, 0.5f64), (-0.25, 2.0)];
        let mut q = Vec::new();
        let mut u = Vec::new();
        for &(tr, ti) in &theta {
            for &(a, b) in &p {
                q.push((a * tr - b * ti) as f32);
                u.push((a * ti + b * tr) as f32);
            }
        }
        q[3] = f32::NAN;
        correct_qu(&mut q, &mut u, 2, &theta);
        for c in 0..2 {
            for (k, &(a, b)) in p.iter().enumerate() {
                let i = c * 2 + k;
                if i == 3 {
                    assert!(q[i].is_nan() && u[i].is_nan());
                    continue;
                }
                assert!((q[i] as f64 - a).abs() < 1e-6 && (u[i] as f64 - b).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn simpson_is_exact_for_quadratics_on_any_grid_and_cubics_on_even_ones() {
        // Each parabola through three samples integrates quadratics exactly whatever the
        // spacing, and so does Cartwright's last-interval correction; pairs of even intervals
        // integrate cubics exactly too.
        let quad = |x: f64| 2.0 * x * x - x + 3.0;
        let quad_int = |a: f64, b: f64| {
            let p = |x: f64| 2.0 * x.powi(3) / 3.0 - 0.5 * x * x + 3.0 * x;
            p(b) - p(a)
        };
        let cubic = |x: f64| x * x * x - 4.0 * x;
        let cubic_int = |a: f64, b: f64| {
            let p = |x: f64| 0.25 * x.powi(4) - 2.0 * x * x;
            p(b) - p(a)
        };
        for n in [3usize, 4, 5, 6, 9, 10, 11] {
            let uneven: Vec<f64> = (0..n).map(|i| i as f64 + 0.3 * (i as f64).sin()).collect();
            let y: Vec<f64> = uneven.iter().map(|&x| quad(x)).collect();
            let (got, want) = (simpson(&y, &uneven), quad_int(uneven[0], uneven[n - 1]));
            assert!(
                (got - want).abs() < 1e-9 * want.abs(),
                "quadratic n={n}: {got} vs {want}"
            );
            if n % 2 == 0 {
                continue;
            }
            let even: Vec<f64> = (0..n).map(|i| 0.5 * i as f64).collect();
            let y: Vec<f64> = even.iter().map(|&x| cubic(x)).collect();
            let (got, want) = (simpson(&y, &even), cubic_int(even[0], even[n - 1]));
            assert!(
                (got - want).abs() < 1e-9 * want.abs().max(1.0),
                "cubic n={n}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn constant_ionosphere_rotates_by_rm_lambda_squared() {
        let times: Vec<f64> = (0..7).map(|i| 300.0 * i as f64).collect();
        let rms = vec![1.7; 7];
        let f = 900e6;
        let th = modulation(&times, &rms, &[f]);
        let l2 = (C_M_S / f).powi(2);
        assert!((th[0].0 - (2.0 * 1.7 * l2).cos()).abs() < 1e-12);
        assert!((th[0].1 - (2.0 * 1.7 * l2).sin()).abs() < 1e-12);
        // Dividing a rotated vector by θ undoes the rotation.
        let (q, u) = complex_div(
            0.3 * th[0].0 - 0.4 * th[0].1,
            0.3 * th[0].1 + 0.4 * th[0].0,
            th[0].0,
            th[0].1,
        );
        assert!((q - 0.3).abs() < 1e-12 && (u - 0.4).abs() < 1e-12);
    }

    #[test]
    fn numpy_sum_matches_plain_sum_closely() {
        let v: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.37).sin()).collect();
        let plain: f64 = v.iter().sum();
        assert!((numpy_sum(&v) - plain).abs() < 1e-12);
    }
}
