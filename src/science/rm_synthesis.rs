//! RM synthesis (Brentjens & de Bruyn 2005) with RM-Tools' conventions: the Faraday-depth
//! axes, weights, λ0², the dirty FDF, the RMSF (optionally fitted), noise estimates and the peak
//! measurement, for one spectrum.
//!
//! The transform is a direct sum F(φ_k) = K Σ_i w_i p_i exp(−2i φ_k (λ²_i − λ0²)) evaluated with a
//! phasor recurrence along φ (one complex multiply per channel and depth, no sin/cos in the inner
//! loop). RM-Tools uses a type-3 NUFFT with tolerance 1e-6, so values agree to ~1e-6 of the peak.

use serde::Serialize;

use super::complexity::{measure_qu_complexity, QuComplexity, SigmaAdd};
use super::lm;
use super::stats::{cabs, mad_sigma, nanmedian};
use super::stokes_i::{self, FitFunction, StokesIModel};
use super::C_M_S;

/// λ² in m² for each frequency in Hz.
pub fn lambda_sq(freq_hz: &[f64]) -> Vec<f64> {
    freq_hz.iter().map(|f| (C_M_S / f).powi(2)).collect()
}

/// Python's `round` (ties to even).
fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

/// The Faraday-depth axes of one synthesis.
#[derive(Clone, Debug)]
pub struct PhiAxes {
    /// Sample spacing dφ in rad/m².
    pub dphi: f64,
    /// FDF axis: N_φ = 2·round(φ_max/dφ) + 1 samples, symmetric about 0 (float32-rounded
    /// values, as RM-Tools stores them).
    pub phi: Vec<f64>,
    /// RMSF axis: 2·N_φ + 1 samples on the same grid.
    pub phi2: Vec<f64>,
    /// Theoretical RMSF FWHM 3.8/Δλ² (rad/m²).
    pub fwhm_rmsf_theory: f64,
}

impl PhiAxes {
    /// Axes for `lambda_sq`: dφ = FWHM/n_samples unless given; φ_max = max(√3/δλ²_max, 10·FWHM)
    /// unless given.
    pub fn new(
        lambda_sq: &[f64],
        dphi: Option<f64>,
        phi_max: Option<f64>,
        n_samples: f64,
    ) -> PhiAxes {
        let max = lambda_sq.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let min = lambda_sq.iter().copied().fold(f64::INFINITY, f64::min);
        let fwhm = 3.8 / (max - min);
        let dl_max = lambda_sq
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f64::max);
        let dphi = dphi.unwrap_or(fwhm / n_samples);
        let phi_max = phi_max.unwrap_or_else(|| (3f64.sqrt() / dl_max).max(10.0 * fwhm));
        let n_half = round_half_even((phi_max / dphi).abs()) as i64;
        let n = 2 * n_half + 1;
        let axis = |len: i64| -> Vec<f64> {
            (0..len)
                .map(|k| ((dphi * (k - len / 2) as f64) as f32) as f64)
                .collect()
        };
        PhiAxes {
            dphi,
            phi: axis(n),
            phi2: axis(2 * n + 1),
            fwhm_rmsf_theory: fwhm,
        }
    }
}

/// λ0² = Σ w λ² / Σ w over the given (already zeroed) weights; 0 if that is not finite.
pub fn lam0_sq(weights: &[f64], lambda_sq: &[f64]) -> f64 {
    let sw: f64 = weights.iter().sum();
    let l = weights
        .iter()
        .zip(lambda_sq)
        .map(|(w, l)| w * l)
        .sum::<f64>()
        / sw;
    if l.is_finite() {
        l
    } else {
        0.0
    }
}

/// Σ_i c_i exp(−2i φ_k a_i) for every φ_k of a uniform grid φ_k = φ_0 + k·dφ, with
/// a_i = λ²_i − λ0². `c` holds (re, im) per channel; channels with zero weight contribute nothing.
///
/// On a CPU with AVX2 and FMA (checked at run time) the loop runs in 256-bit registers with
/// fused multiply-adds, so its sums can differ from the portable loop's in the last bits.
pub fn dft_uniform(
    c_re: &[f64],
    c_im: &[f64],
    a: &[f64],
    phi0: f64,
    dphi: f64,
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
    dft(c_re, c_im, a, phi0, dphi, n, true)
}

/// [`dft_uniform`]; `simd`: use the AVX2+FMA loop when the CPU has it (tests also run the
/// portable one).
fn dft(
    c_re: &[f64],
    c_im: &[f64],
    a: &[f64],
    phi0: f64,
    dphi: f64,
    n: usize,
    simd: bool,
) -> (Vec<f64>, Vec<f64>) {
    let mut st = Phasors::new(c_re, c_im, a, phi0, dphi);
    let mut out_re = vec![0.0; n];
    let mut out_im = vec![0.0; n];
    #[cfg(target_arch = "x86_64")]
    {
        if simd && crate::science::simd::avx2_fma() {
            // Real coefficients (the RMSF): half the products go.
            let real = c_im.iter().all(|&x| x == 0.0);
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            unsafe {
                if real {
                    dft_fma::<true>(&mut st, &mut out_re, &mut out_im);
                } else {
                    dft_fma::<false>(&mut st, &mut out_re, &mut out_im);
                }
            }
            return (out_re, out_im);
        }
    }
    let _ = simd; // used only on x86_64
    dft_portable(&mut st, &mut out_re, &mut out_im);
    (out_re, out_im)
}

/// Lanes of partial sums (four 256-bit registers each for re and im): enough independent chains
/// to hide the add latency.
const LANES: usize = 16;

/// The DFT's working arrays, each padded to a multiple of [`LANES`] with zero coefficients and
/// unit phasors, so the loops have no remainder.
struct Phasors {
    e_re: Vec<f64>,
    e_im: Vec<f64>,
    s_re: Vec<f64>,
    s_im: Vec<f64>,
    c_re: Vec<f64>,
    c_im: Vec<f64>,
}

impl Phasors {
    /// Current phasor e_i = exp(−2i φ_0 a_i) and step s_i = exp(−2i dφ a_i), kept as separate
    /// arrays so the loop vectorises. The recurrence loses about one ulp per step, so after a
    /// few thousand depths the phasors are still good to ~1e-13: no re-anchoring is needed.
    fn new(c_re: &[f64], c_im: &[f64], a: &[f64], phi0: f64, dphi: f64) -> Phasors {
        let mp = a.len().div_ceil(LANES) * LANES;
        let pad = |mut v: Vec<f64>, fill: f64| {
            v.resize(mp, fill);
            v
        };
        let (e_im, e_re): (Vec<f64>, Vec<f64>) =
            a.iter().map(|&ai| (-2.0 * phi0 * ai).sin_cos()).unzip();
        let (s_im, s_re): (Vec<f64>, Vec<f64>) =
            a.iter().map(|&ai| (-2.0 * dphi * ai).sin_cos()).unzip();
        Phasors {
            e_re: pad(e_re, 1.0),
            e_im: pad(e_im, 0.0),
            s_re: pad(s_re, 1.0),
            s_im: pad(s_im, 0.0),
            c_re: pad(c_re.to_vec(), 0.0),
            c_im: pad(c_im.to_vec(), 0.0),
        }
    }
}

fn dft_portable(st: &mut Phasors, out_re: &mut [f64], out_im: &mut [f64]) {
    for k in 0..out_re.len() {
        let mut acc_re = [0.0f64; LANES];
        let mut acc_im = [0.0f64; LANES];
        for i in 0..st.e_re.len() {
            let (x, y) = (st.e_re[i], st.e_im[i]);
            let (c1, c2) = (st.c_re[i], st.c_im[i]);
            acc_re[i % LANES] += c1 * x - c2 * y;
            acc_im[i % LANES] += c1 * y + c2 * x;
            st.e_re[i] = x * st.s_re[i] - y * st.s_im[i];
            st.e_im[i] = x * st.s_im[i] + y * st.s_re[i];
        }
        out_re[k] = acc_re.iter().sum();
        out_im[k] = acc_im.iter().sum();
    }
}

/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dft_fma<const REAL: bool>(st: &mut Phasors, out_re: &mut [f64], out_im: &mut [f64]) {
    use std::arch::x86_64::*;
    let mp = st.e_re.len();
    assert!(
        mp.is_multiple_of(LANES)
            && [&st.e_im, &st.s_re, &st.s_im, &st.c_re, &st.c_im]
                .iter()
                .all(|v| v.len() == mp)
    );
    let (er, ei) = (st.e_re.as_mut_ptr(), st.e_im.as_mut_ptr());
    let (sr, si) = (st.s_re.as_ptr(), st.s_im.as_ptr());
    let (cr, ci) = (st.c_re.as_ptr(), st.c_im.as_ptr());
    for k in 0..out_re.len() {
        let mut ar = [_mm256_setzero_pd(); 4];
        let mut ai = [_mm256_setzero_pd(); 4];
        let mut i = 0;
        while i < mp {
            for j in 0..4 {
                let o = i + 4 * j;
                // SAFETY: o + 4 <= mp, the length of every array.
                unsafe {
                    let x = _mm256_loadu_pd(er.add(o));
                    let y = _mm256_loadu_pd(ei.add(o));
                    let c1 = _mm256_loadu_pd(cr.add(o));
                    if REAL {
                        ar[j] = _mm256_fmadd_pd(c1, x, ar[j]);
                        ai[j] = _mm256_fmadd_pd(c1, y, ai[j]);
                    } else {
                        let c2 = _mm256_loadu_pd(ci.add(o));
                        ar[j] = _mm256_fmadd_pd(c1, x, _mm256_fnmadd_pd(c2, y, ar[j]));
                        ai[j] = _mm256_fmadd_pd(c1, y, _mm256_fmadd_pd(c2, x, ai[j]));
                    }
                    let (s1, s2) = (_mm256_loadu_pd(sr.add(o)), _mm256_loadu_pd(si.add(o)));
                    let nr = _mm256_fmsub_pd(x, s1, _mm256_mul_pd(y, s2));
                    let ni = _mm256_fmadd_pd(x, s2, _mm256_mul_pd(y, s1));
                    _mm256_storeu_pd(er.add(o), nr);
                    _mm256_storeu_pd(ei.add(o), ni);
                }
            }
            i += LANES;
        }
        let mut lanes_re = [0.0f64; LANES];
        let mut lanes_im = [0.0f64; LANES];
        for j in 0..4 {
            // SAFETY: each store writes 4 of the 16 lanes.
            unsafe {
                _mm256_storeu_pd(lanes_re.as_mut_ptr().add(4 * j), ar[j]);
                _mm256_storeu_pd(lanes_im.as_mut_ptr().add(4 * j), ai[j]);
            }
        }
        out_re[k] = lanes_re.iter().sum();
        out_im[k] = lanes_im.iter().sum();
    }
}

/// The dirty FDF of one spectrum in fractional units, and λ0². Channels where q or u is NaN
/// get zero weight; NaN weights are zero.
pub fn rmsynth(
    q: &[f64],
    u: &[f64],
    lambda_sq: &[f64],
    weights: &[f64],
    phi: &[f64],
    dphi: f64,
    lam0: Option<f64>,
) -> (Vec<f64>, Vec<f64>, f64) {
    let w: Vec<f64> = (0..q.len())
        .map(|i| {
            if weights[i].is_nan() || q[i].is_nan() || u[i].is_nan() {
                0.0
            } else {
                weights[i]
            }
        })
        .collect();
    let l0 = lam0.unwrap_or_else(|| lam0_sq(&w, lambda_sq));
    let k = 1.0 / w.iter().sum::<f64>();
    let k = if k.is_finite() { k } else { 0.0 };
    let a: Vec<f64> = lambda_sq.iter().map(|l| l - l0).collect();
    let c_re: Vec<f64> = (0..q.len())
        .map(|i| if w[i] == 0.0 { 0.0 } else { w[i] * q[i] })
        .collect();
    let c_im: Vec<f64> = (0..q.len())
        .map(|i| if w[i] == 0.0 { 0.0 } else { w[i] * u[i] })
        .collect();
    let (mut re, mut im) = dft_uniform(&c_re, &c_im, &a, phi[0], dphi, phi.len());
    re.iter_mut().for_each(|x| *x *= k);
    im.iter_mut().for_each(|x| *x *= k);
    if re.iter().chain(&im).all(|&x| x == 0.0) {
        re.iter_mut().for_each(|x| *x = f64::NAN);
        im.iter_mut().for_each(|x| *x = f64::NAN);
    }
    (re, im, l0)
}

/// The RMSF on the double-length axis, with the same λ0²; masked channels (NaN q) excluded.
pub fn rmsf(
    lambda_sq: &[f64],
    weights: &[f64],
    mask: &[bool],
    phi2: &[f64],
    dphi: f64,
    lam0: f64,
) -> (Vec<f64>, Vec<f64>) {
    let w: Vec<f64> = (0..weights.len())
        .map(|i| {
            if mask[i] || weights[i].is_nan() {
                0.0
            } else {
                weights[i]
            }
        })
        .collect();
    let k = 1.0 / w.iter().sum::<f64>();
    let a: Vec<f64> = lambda_sq.iter().map(|l| l - lam0).collect();
    let zeros = vec![0.0; w.len()];
    // Real weights make R(−φ) = conj R(φ): compute the half from φ = 0 up only.
    let n = phi2.len();
    let centre = n / 2;
    let (half_re, half_im) = dft_uniform(&w, &zeros, &a, phi2[centre], dphi, n - centre);
    let mut re = vec![0.0; n];
    let mut im = vec![0.0; n];
    for j in 0..n - centre {
        re[centre + j] = k * half_re[j];
        im[centre + j] = k * half_im[j];
        re[centre - j] = k * half_re[j];
        im[centre - j] = -k * half_im[j];
    }
    (re, im)
}

/// Fit a Gaussian to the main lobe of |RMSF| (RM-Tools' `fit_rmsf`): the lobe is bounded where
/// |R| first drops below 0.4 right of the peak, mirrored left, and samples below 0.4 are dropped
/// unless fewer than 4 remain. Returns the fitted FWHM, or `None` if the fit fails.
pub fn fit_rmsf_fwhm(phi2: &[f64], abs_rmsf: &[f64]) -> Option<f64> {
    let ipk = argmax_first(abs_rmsf)?;
    let ishift = abs_rmsf[ipk..].iter().position(|&v| v < 0.4)?;
    let il = (ipk + 1).checked_sub(ishift)?;
    let ir = ipk + ishift;
    let mut idx: Vec<usize> = (il..ir).filter(|&i| abs_rmsf[i] >= 0.4).collect();
    if idx.len() < 4 {
        idx = (il..ir).collect();
    }
    let x: Vec<f64> = idx.iter().map(|&i| phi2[i]).collect();
    let y: Vec<f64> = idx.iter().map(|&i| abs_rmsf[i]).collect();
    let b = x[argmax_first(&y)?];
    let w = x.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        - x.iter().copied().fold(f64::INFINITY, f64::min);
    let g = 2.0 * (2.0 * 2f64.ln()).sqrt();
    let res = |p: &[f64], out: &mut [f64]| {
        let s = p[2] / g;
        for i in 0..x.len() {
            out[i] = p[0] * (-(x[i] - p[1]).powi(2) / (2.0 * s * s)).exp() - y[i];
        }
    };
    let f = lm::fit(&[1.0, b, w], &[false, false, false], x.len(), &res, 200);
    f.params[2].is_finite().then_some(f.params[2].abs())
}

fn argmax_first(v: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &x) in v.iter().enumerate() {
        if x.is_nan() {
            continue;
        }
        if best.map(|b| x > v[b]).unwrap_or(true) {
            best = Some(i);
        }
    }
    best
}

/// Vertex of the parabola through three points (RM-Tools' `calc_parabola_vertex`, with the
/// same normalisation).
pub fn parabola_vertex(x1: f64, y1: f64, x2: f64, y2: f64, x3: f64, y3: f64) -> (f64, f64) {
    let mid = x2;
    let dx = x2 - x3;
    let ys = y2;
    let (x1, x2, x3) = ((x1 - mid) / dx, 0.0, (x3 - mid) / dx);
    let (y1, y2, y3) = (y1 / ys, y2 / ys, y3 / ys);
    let d = (x1 - x2) * (x1 - x3) * (x2 - x3);
    let a = (x3 * (y2 - y1) + x2 * (y1 - y3) + x1 * (y3 - y2)) / d;
    let b = (x3 * x3 * (y1 - y2) + x2 * x2 * (y3 - y1) + x1 * x1 * (y2 - y3)) / d;
    let c = (x2 * x3 * (x2 - x3) * y1 + x3 * x1 * (x3 - x1) * y2 + x1 * x2 * (x1 - x2) * y3) / d;
    let xv = -b / (2.0 * a);
    let yv = c - b * b / (4.0 * a);
    (xv * dx + mid, yv * ys)
}

fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= xp[0] {
        return fp[0];
    }
    let n = xp.len();
    if x >= xp[n - 1] {
        return fp[n - 1];
    }
    let j = xp.partition_point(|&v| v <= x) - 1;
    let t = (x - xp[j]) / (xp[j + 1] - xp[j]);
    fp[j] + t * (fp[j + 1] - fp[j])
}

fn mod180(x: f64) -> f64 {
    x.rem_euclid(180.0)
}

/// Peak parameters of an FDF (RM-Tools' `measure_FDF_parms`), with RM-Tools' key names.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
#[allow(non_snake_case)]
pub struct PeakParams {
    /// MAD noise of the FDF away from the peak.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dFDFcorMAD: f64,
    /// Peak Faraday depth (parabolic fit), rad/m².
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub phiPeakPIfit_rm2: f64,
    /// Its error, rad/m².
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dPhiPeakPIfit_rm2: f64,
    /// Peak polarised intensity.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub ampPeakPIfit: f64,
    /// Ricean de-biased peak intensity.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub ampPeakPIfitEff: f64,
    /// Error of the peak intensity (= dFDF).
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dAmpPeakPIfit: f64,
    /// Peak signal-to-noise.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub snrPIfit: f64,
    /// Fractional index of the peak.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub indxPeakPIfit: f64,
    /// Imaginary FDF at the peak.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub peakFDFimagFit: f64,
    /// Real FDF at the peak.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub peakFDFrealFit: f64,
    /// Polarisation angle at λ0², degrees [0, 180).
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub polAngleFit_deg: f64,
    /// Its error, degrees.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dPolAngleFit_deg: f64,
    /// De-rotated (intrinsic) angle, degrees [0, 180).
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub polAngle0Fit_deg: f64,
    /// Its error, degrees.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dPolAngle0Fit_deg: f64,
}

/// Measure the FDF peak (edges excluded), with noise `dfdf`.
pub fn measure_fdf(
    re: &[f64],
    im: &[f64],
    phi: &[f64],
    fwhm_rmsf: f64,
    dfdf: f64,
    lambda_sq: &[f64],
    lam0: f64,
) -> PeakParams {
    let n = re.len();
    let abs: Vec<f64> = re.iter().zip(im).map(|(r, i)| cabs(*r, *i)).collect();
    let k = argmax_first(&abs[1..n.saturating_sub(1)])
        .map(|k| k + 1)
        .unwrap_or(0);
    let dphi = phi
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::INFINITY, f64::min);
    let c = (fwhm_rmsf / dphi).ceil();
    let il = (k as f64 - 2.0 * c).max(0.0) as usize;
    let ir = ((k as f64 + 2.0 * c).min(n as f64)) as usize;
    let outside: Vec<usize> = (0..n)
        .filter(|&j| (j < il || j >= ir) && !re[j].is_nan())
        .collect();
    let dfdf_mad = if (outside.len() as f64) / (n as f64) < 0.3 {
        mad_sigma(&re.iter().chain(im).copied().collect::<Vec<_>>())
    } else {
        let mut a: Vec<f64> = outside.iter().map(|&j| re[j]).collect();
        a.extend(outside.iter().map(|&j| im[j]));
        mad_sigma(&a)
    };
    let n_good = lambda_sq.iter().filter(|l| !l.is_nan()).count() as f64;
    let s1: f64 = lambda_sq.iter().sum();
    let s2: f64 = lambda_sq.iter().map(|l| l * l).sum();
    let var_l = (s2 - s1 * s1 / n_good) / (n_good - 1.0);
    let nan = f64::NAN;
    let mut p = PeakParams {
        dFDFcorMAD: dfdf_mad,
        phiPeakPIfit_rm2: nan,
        dPhiPeakPIfit_rm2: nan,
        ampPeakPIfit: nan,
        ampPeakPIfitEff: nan,
        dAmpPeakPIfit: dfdf,
        snrPIfit: nan,
        indxPeakPIfit: nan,
        peakFDFimagFit: nan,
        peakFDFrealFit: nan,
        polAngleFit_deg: nan,
        dPolAngleFit_deg: nan,
        polAngle0Fit_deg: nan,
        dPolAngle0Fit_deg: nan,
    };
    if k == 0 || k >= n - 1 {
        return p;
    }
    let (mut phi_pk, mut amp) = parabola_vertex(
        phi[k - 1],
        abs[k - 1],
        phi[k],
        abs[k],
        phi[k + 1],
        abs[k + 1],
    );
    let snr = amp / dfdf;
    let phi_abs_max = phi.iter().map(|x| x.abs()).fold(0.0, f64::max);
    if phi_pk.abs() > phi_abs_max {
        phi_pk = nan;
        amp = nan;
    }
    p.phiPeakPIfit_rm2 = phi_pk;
    p.ampPeakPIfit = amp;
    p.snrPIfit = snr;
    p.dPhiPeakPIfit_rm2 = fwhm_rmsf * dfdf / (2.0 * amp);
    p.ampPeakPIfitEff = if snr >= 5.0 {
        (amp * amp - 2.3 * dfdf * dfdf).sqrt()
    } else {
        amp
    };
    let idx: Vec<f64> = (0..n).map(|j| j as f32 as f64).collect();
    p.indxPeakPIfit = interp(phi_pk, phi, &idx);
    p.peakFDFimagFit = interp(phi_pk, phi, im);
    p.peakFDFrealFit = interp(phi_pk, phi, re);
    p.polAngleFit_deg = mod180(0.5 * p.peakFDFimagFit.atan2(p.peakFDFrealFit).to_degrees());
    p.dPolAngleFit_deg = (dfdf / (2.0 * amp)).to_degrees();
    p.polAngle0Fit_deg = mod180((p.polAngleFit_deg.to_radians() - phi_pk * lam0).to_degrees());
    let var = dfdf * dfdf * n_good / (4.0 * (n_good - 2.0) * amp * amp)
        * ((n_good - 1.0) / n_good + lam0 * lam0 / var_l);
    p.dPolAngle0Fit_deg = var.sqrt().to_degrees();
    p
}

/// RM synthesis parameters (the pipeline's names, RM-Tools' meanings).
#[derive(Clone, Debug)]
pub struct SynthParams {
    /// Stokes I model order (negative: dynamic up to |poly_ord|).
    pub poly_ord: i32,
    /// Stokes I model.
    pub fit_function: FitFunction,
    /// Samples across the RMSF FWHM (when `dphi` is not given).
    pub n_samples: f64,
    /// Faraday-depth spacing, rad/m².
    pub dphi: Option<f64>,
    /// Largest |φ|, rad/m².
    pub phi_max: Option<f64>,
    /// `variance` (1/σ²) or uniform weights.
    pub weight_variance: bool,
    /// Fit a Gaussian to the RMSF main lobe for its FWHM.
    pub fit_rmsf: bool,
}

/// The summary of a 1D synthesis, with RM-Tools' key names.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
#[allow(non_snake_case)]
pub struct SynthSummary {
    /// Peak parameters.
    #[serde(flatten)]
    pub peak: PeakParams,
    /// Stokes I model at ν0.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub Ifreq0: f64,
    /// Stokes I model coefficients at ν0 (C5..C0), comma-separated.
    pub polyCoeffs: String,
    /// Their errors.
    pub polyCoefferr: String,
    /// Order used.
    pub polyOrd: i32,
    /// Fit status and flags.
    pub IfitStat: i32,
    /// Reduced χ² of the fit.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub IfitChiSqRed: f64,
    /// `log` or `linear`.
    pub fit_function: String,
    /// λ0², m².
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub lam0Sq_m2: f64,
    /// ν0 = c/√λ0², Hz.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub freq0_Hz: f64,
    /// RMSF FWHM in use (fitted or theoretical), rad/m².
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub fwhmRMSF: f64,
    /// Median of (dQ + dU)/2.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dQU: f64,
    /// Theoretical FDF noise.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dFDFth: f64,
    /// Lowest frequency of a used channel, Hz.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub min_freq: f64,
    /// Highest frequency of a used channel, Hz.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub max_freq: f64,
    /// Channels used.
    pub N_channels: usize,
    /// Median channel width, Hz.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub median_channel_width: f64,
    /// Fractional polarisation ampPeakPIfitEff / Ifreq0.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub fracPol: f64,
    /// RM-Tools' Faraday complexity (`measure_qu_complexity`).
    #[serde(flatten)]
    pub complexity: SigmaAddKeys,
}

/// The extra scatter of q and u about the Faraday-thin model, with RM-Tools' key names (units:
/// the per-channel noise).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[allow(non_snake_case, missing_docs)]
pub struct SigmaAddKeys {
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub sigmaAddQ: f64,
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dSigmaAddMinusQ: f64,
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dSigmaAddPlusQ: f64,
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub sigmaAddU: f64,
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dSigmaAddMinusU: f64,
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dSigmaAddPlusU: f64,
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub sigmaAddC: f64,
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dSigmaAddMinusC: f64,
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dSigmaAddPlusC: f64,
}

impl From<QuComplexity> for SigmaAddKeys {
    fn from(c: QuComplexity) -> Self {
        SigmaAddKeys {
            sigmaAddQ: c.q.median,
            dSigmaAddMinusQ: c.q.minus,
            dSigmaAddPlusQ: c.q.plus,
            sigmaAddU: c.u.median,
            dSigmaAddMinusU: c.u.minus,
            dSigmaAddPlusU: c.u.plus,
            sigmaAddC: c.c.median,
            dSigmaAddMinusC: c.c.minus,
            dSigmaAddPlusC: c.c.plus,
        }
    }
}

impl SigmaAddKeys {
    /// The Q estimate.
    pub fn q(&self) -> SigmaAdd {
        SigmaAdd {
            median: self.sigmaAddQ,
            minus: self.dSigmaAddMinusQ,
            plus: self.dSigmaAddPlusQ,
        }
    }
    /// The U estimate.
    pub fn u(&self) -> SigmaAdd {
        SigmaAdd {
            median: self.sigmaAddU,
            minus: self.dSigmaAddMinusU,
            plus: self.dSigmaAddPlusU,
        }
    }
}

/// Arrays of a 1D synthesis (for output files and RM-CLEAN).
#[derive(Clone, Debug)]
pub struct SynthArrays {
    /// The axes.
    pub axes: PhiAxes,
    /// Dirty FDF (flux units), real and imaginary.
    pub fdf_re: Vec<f64>,
    /// Imaginary part.
    pub fdf_im: Vec<f64>,
    /// RMSF real part.
    pub rmsf_re: Vec<f64>,
    /// RMSF imaginary part.
    pub rmsf_im: Vec<f64>,
    /// λ² of every channel.
    pub lambda_sq: Vec<f64>,
    /// Weights used.
    pub weights: Vec<f64>,
    /// Fractional q, u (for plots and diagnostics).
    pub q: Vec<f64>,
    /// Fractional u.
    pub u: Vec<f64>,
    /// The Stokes I model, referenced to ν0.
    pub model: StokesIModel,
}

/// A 1D spectrum.
pub struct Spectrum<'a> {
    /// Frequencies, Hz, ascending.
    pub freq_hz: &'a [f64],
    /// Stokes I (None: fractional q/u were given).
    pub i: Option<&'a [f64]>,
    /// Stokes Q (or q).
    pub q: &'a [f64],
    /// Stokes U (or u).
    pub u: &'a [f64],
    /// Errors of I.
    pub di: Option<&'a [f64]>,
    /// Errors of Q.
    pub dq: &'a [f64],
    /// Errors of U.
    pub du: &'a [f64],
}

/// RM synthesis of one spectrum, as RM-Tools' `run_rmsynth`.
pub fn run_rmsynth(s: &Spectrum, p: &SynthParams) -> (SynthSummary, SynthArrays) {
    let n = s.freq_hz.len();
    let model = match (s.i, s.di) {
        (Some(i), Some(di)) => stokes_i::fit(s.freq_hz, i, di, p.poly_ord, p.fit_function),
        _ => StokesIModel::unity(n, p.poly_ord, p.fit_function, 0),
    };
    let imod: Vec<f64> = match s.i {
        Some(_) if model.fit_status != 9 => s.freq_hz.iter().map(|&f| model.at(f)).collect(),
        _ => vec![1.0; n],
    };
    let fin = |x: f64| if x.is_finite() { x } else { f64::NAN };
    let q: Vec<f64> = (0..n).map(|k| fin(s.q[k] / imod[k])).collect();
    let u: Vec<f64> = (0..n).map(|k| fin(s.u[k] / imod[k])).collect();
    let dq: Vec<f64> = (0..n).map(|k| s.dq[k] / imod[k]).collect();
    let du: Vec<f64> = (0..n).map(|k| s.du[k] / imod[k]).collect();
    let dqu: Vec<f64> = (0..n).map(|k| fin(((dq[k] + du[k]) / 2.0).abs())).collect();
    let lsq = lambda_sq(s.freq_hz);
    let axes = PhiAxes::new(&lsq, p.dphi, p.phi_max, p.n_samples);
    let weights: Vec<f64> = if p.weight_variance {
        dqu.iter().map(|d| 1.0 / (d * d)).collect()
    } else {
        vec![1.0; n]
    };
    let (mut fdf_re, mut fdf_im, lam0) =
        rmsynth(&q, &u, &lsq, &weights, &axes.phi, axes.dphi, None);
    let mask: Vec<bool> = q.iter().map(|x| !x.is_finite()).collect();
    let (rmsf_re, rmsf_im) = rmsf(&lsq, &weights, &mask, &axes.phi2, axes.dphi, lam0);
    let fwhm = if p.fit_rmsf {
        let abs: Vec<f64> = rmsf_re
            .iter()
            .zip(&rmsf_im)
            .map(|(r, i)| cabs(*r, *i))
            .collect();
        fit_rmsf_fwhm(&axes.phi2, &abs).unwrap_or(axes.fwhm_rmsf_theory)
    } else {
        axes.fwhm_rmsf_theory
    };
    let freq0 = if lam0 > 0.0 {
        C_M_S / lam0.sqrt()
    } else {
        model.reference_frequency_hz
    };
    let model = if s.i.is_some() && model.fit_status != 9 && lam0 > 0.0 {
        model.renormalized(freq0)
    } else {
        model
    };
    let ifreq0 = if s.i.is_some() && model.fit_status != 9 {
        model.at(freq0)
    } else {
        1.0
    };
    fdf_re.iter_mut().for_each(|x| *x *= ifreq0);
    fdf_im.iter_mut().for_each(|x| *x *= ifreq0);
    let w0: Vec<f64> = weights
        .iter()
        .map(|w| if w.is_nan() { 0.0 } else { *w })
        .collect();
    let sw: f64 = w0.iter().sum();
    let num: f64 = w0
        .iter()
        .zip(&dqu)
        .map(|(w, d)| w * w * if d.is_nan() { 0.0 } else { d * d })
        .sum();
    let dfdf_th = ifreq0.abs() * (num / (sw * sw)).sqrt();
    let peak = measure_fdf(&fdf_re, &fdf_im, &axes.phi, fwhm, dfdf_th, &lsq, lam0);
    let good: Vec<usize> = (0..n)
        .filter(|&k| w0[k] != 0.0 && q[k].is_finite())
        .collect();
    let widths: Vec<f64> = s.freq_hz.windows(2).map(|w| w[1] - w[0]).collect();
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| crate::pyfmt::repr_f32(*x as f32))
            .collect::<Vec<_>>()
            .join(",")
    };
    let frac_pol = peak.ampPeakPIfitEff / ifreq0;
    let complexity = measure_qu_complexity(
        s.freq_hz,
        &q,
        &u,
        &dq,
        &du,
        frac_pol,
        peak.polAngle0Fit_deg,
        peak.phiPeakPIfit_rm2,
    )
    .into();
    let summary = SynthSummary {
        peak,
        Ifreq0: ifreq0,
        polyCoeffs: fmt(&model.params),
        polyCoefferr: fmt(&model.perror),
        polyOrd: model.poly_ord,
        IfitStat: model.fit_status,
        IfitChiSqRed: model.chi_sq_red,
        fit_function: model.fit_function.name().to_string(),
        lam0Sq_m2: lam0,
        freq0_Hz: freq0,
        fwhmRMSF: fwhm,
        dQU: nanmedian(
            &(0..n)
                .map(|k| (s.dq[k] + s.du[k]) / 2.0)
                .collect::<Vec<_>>(),
        ),
        dFDFth: dfdf_th,
        min_freq: good
            .iter()
            .map(|&k| s.freq_hz[k])
            .fold(f64::INFINITY, f64::min),
        max_freq: good
            .iter()
            .map(|&k| s.freq_hz[k])
            .fold(f64::NEG_INFINITY, f64::max),
        N_channels: good.len(),
        median_channel_width: nanmedian(&widths),
        fracPol: frac_pol,
        complexity,
    };
    let arrays = SynthArrays {
        axes,
        fdf_re,
        fdf_im,
        rmsf_re,
        rmsf_im,
        lambda_sq: lsq,
        weights: w0,
        q,
        u,
        model,
    };
    (summary, arrays)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn racs_low_axes_match_the_documented_example() {
        let freq: Vec<f64> = (0..288).map(|k| 743.5e6 + 1e6 * k as f64).collect();
        let l = lambda_sq(&freq);
        let a = PhiAxes::new(&l, None, None, 5.0);
        assert!(
            (a.fwhm_rmsf_theory - 48.75).abs() < 0.01,
            "{}",
            a.fwhm_rmsf_theory
        );
        assert_eq!(a.phi.len(), 815);
        assert_eq!(a.phi2.len(), 1631);
        assert_eq!(a.phi[407], 0.0);
        assert_eq!(a.phi2[408 + 407], a.phi[407]);
    }

    #[test]
    fn a_faraday_thin_source_peaks_at_its_rm_with_its_angle() {
        let freq: Vec<f64> = (0..288).map(|k| 743.5e6 + 1e6 * k as f64).collect();
        let l = lambda_sq(&freq);
        let (rm, psi0, p0) = (37.5_f64, 0.6_f64, 0.05_f64);
        let q: Vec<f64> = l
            .iter()
            .map(|&x| p0 * (2.0 * (psi0 + rm * x)).cos())
            .collect();
        let u: Vec<f64> = l
            .iter()
            .map(|&x| p0 * (2.0 * (psi0 + rm * x)).sin())
            .collect();
        let d = vec![0.001; 288];
        let spec = Spectrum {
            freq_hz: &freq,
            i: None,
            q: &q,
            u: &u,
            di: None,
            dq: &d,
            du: &d,
        };
        let p = SynthParams {
            poly_ord: 2,
            fit_function: FitFunction::Log,
            n_samples: 10.0,
            dphi: None,
            phi_max: None,
            weight_variance: true,
            fit_rmsf: false,
        };
        let (s, _) = run_rmsynth(&spec, &p);
        assert!(
            (s.peak.phiPeakPIfit_rm2 - rm).abs() < 0.5,
            "{}",
            s.peak.phiPeakPIfit_rm2
        );
        assert!(
            (s.peak.ampPeakPIfit - p0).abs() < 0.002,
            "{}",
            s.peak.ampPeakPIfit
        );
        assert!(
            (s.peak.polAngle0Fit_deg - psi0.to_degrees()).abs() < 1.0,
            "{}",
            s.peak.polAngle0Fit_deg
        );
    }

    #[test]
    fn the_recurrence_matches_a_direct_sum() {
        let a: Vec<f64> = (0..50).map(|i| 0.01 * i as f64 - 0.2).collect();
        let c_re: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin()).collect();
        let complex: Vec<f64> = (0..50).map(|i| (i as f64 * 0.11).cos()).collect();
        let zeros = vec![0.0; 50];
        // Complex coefficients (the FDF) and real ones (the RMSF) take different loops; the
        // portable loop is what a CPU without AVX2/FMA runs.
        for c_im in [&complex, &zeros] {
            let (re, im) = dft_uniform(&c_re, c_im, &a, -500.0, 1.7, 600);
            let (pre, pim) = dft(&c_re, c_im, &a, -500.0, 1.7, 600, false);
            for k in [0usize, 255, 256, 599] {
                let phi = -500.0 + 1.7 * k as f64;
                let (mut r, mut i) = (0.0, 0.0);
                for j in 0..50 {
                    let (s, c) = (-2.0 * phi * a[j]).sin_cos();
                    r += c_re[j] * c - c_im[j] * s;
                    i += c_re[j] * s + c_im[j] * c;
                }
                assert!((re[k] - r).abs() < 1e-9 && (im[k] - i).abs() < 1e-9, "{k}");
                assert!(
                    (pre[k] - r).abs() < 1e-9 && (pim[k] - i).abs() < 1e-9,
                    "{k}"
                );
            }
        }
    }
}
