//! Högbom RM-CLEAN of one FDF (RM-Tools' `do_rmclean_hogbom` as driven by `run_rmclean`).
//!
//! Each iteration subtracts gain × the peak times the RMSF shifted by an integer number of
//! samples (the RMSF is sampled on the double-length axis, so every shift is exact), and adds a
//! Gaussian of the RMSF's FWHM to the clean model. The residual is added back at the end.

use super::stats::cabs;

/// The result of cleaning one FDF.
#[derive(Clone, Debug)]
pub struct CleanResult {
    /// Clean FDF (model convolved with the restoring Gaussian, plus the residual): real part.
    pub clean_re: Vec<f64>,
    /// Imaginary part.
    pub clean_im: Vec<f64>,
    /// Clean components: real part.
    pub cc_re: Vec<f64>,
    /// Imaginary part.
    pub cc_im: Vec<f64>,
    /// Residual FDF: real part.
    pub resid_re: Vec<f64>,
    /// Imaginary part.
    pub resid_im: Vec<f64>,
    /// Iterations done.
    pub n_iter: usize,
}

/// Clean `fdf` (length N) with `rmsf` sampled on the 2N+1 axis of the same spacing `dphi`.
/// `cutoff` and `window` are absolute thresholds (the caller turns negative = sigma values into
/// absolute ones); `window: None` disables the windowed second pass.
#[allow(clippy::too_many_arguments)]
pub fn hogbom(
    fdf_re: &[f64],
    fdf_im: &[f64],
    rmsf_re: &[f64],
    rmsf_im: &[f64],
    phi: &[f64],
    fwhm_rmsf: f64,
    cutoff: f64,
    max_iter: usize,
    gain: f64,
    window: Option<f64>,
) -> CleanResult {
    let n = fdf_re.len();
    let mut r_re = fdf_re.to_vec();
    let mut r_im = fdf_im.to_vec();
    let mut cc_re = vec![0.0; n];
    let mut cc_im = vec![0.0; n];
    let mut cl_re = vec![0.0; n];
    let mut cl_im = vec![0.0; n];
    let sigma = fwhm_rmsf / (2.0 * (2.0 * 2f64.ln()).sqrt());
    let dphi = if n > 1 { phi[1] - phi[0] } else { 1.0 };
    // The restoring Gaussian on integer offsets, as far as it is not negligible.
    let half = ((8.0 * sigma / dphi).ceil() as usize).min(n);
    let gauss: Vec<f64> = (0..=half)
        .map(|d| (-(d as f64 * dphi).powi(2) / (2.0 * sigma * sigma)).exp())
        .collect();
    let mut n_iter = 0usize;
    let step = |k: usize,
                r_re: &mut [f64],
                r_im: &mut [f64],
                cc_re: &mut [f64],
                cc_im: &mut [f64],
                cl_re: &mut [f64],
                cl_im: &mut [f64]| {
        let (a, b) = (gain * r_re[k], gain * r_im[k]);
        cc_re[k] += a;
        cc_im[k] += b;
        // RMSF sample for offset (j - k) sits at index j - k + n of the 2n+1 axis.
        let (sr, si) = (&rmsf_re[n - k..2 * n - k], &rmsf_im[n - k..2 * n - k]);
        for (((re, im), &sr), &si) in r_re.iter_mut().zip(r_im.iter_mut()).zip(sr).zip(si) {
            *re -= a * sr - b * si;
            *im -= a * si + b * sr;
        }
        let lo = k.saturating_sub(half);
        let hi = (k + half).min(n - 1);
        for j in lo..=hi {
            let g = gauss[j.abs_diff(k)];
            cl_re[j] += a * g;
            cl_im[j] += b * g;
        }
    };
    // The first sample of largest amplitude (squared amplitudes compared: no square root in the
    // hot loop; NaN samples never win), among the allowed ones.
    let peak = |r_re: &[f64], r_im: &[f64], allowed: Option<&[bool]>| -> Option<(usize, f64)> {
        let (mut best_j, mut best_a) = (usize::MAX, f64::NEG_INFINITY);
        match allowed {
            None => {
                for (j, (re, im)) in r_re.iter().zip(r_im).enumerate() {
                    let a = re * re + im * im;
                    if a > best_a {
                        best_a = a;
                        best_j = j;
                    }
                }
            }
            Some(mask) => {
                for j in (0..n).filter(|&j| mask[j]) {
                    let a = r_re[j] * r_re[j] + r_im[j] * r_im[j];
                    if a > best_a {
                        best_a = a;
                        best_j = j;
                    }
                }
            }
        }
        (best_j != usize::MAX).then(|| (best_j, best_a.sqrt()))
    };
    while n_iter < max_iter {
        let Some((k, a)) = peak(&r_re, &r_im, None) else {
            break;
        };
        if a < cutoff {
            break;
        }
        step(
            k, &mut r_re, &mut r_im, &mut cc_re, &mut cc_im, &mut cl_re, &mut cl_im,
        );
        n_iter += 1;
    }
    if let Some(win) = window {
        let f = fwhm_rmsf / dphi;
        let mut mask = vec![false; n];
        for k in 0..n {
            if cc_re[k] != 0.0 || cc_im[k] != 0.0 {
                let lo = (k as f64 - f / 2.0) as i64;
                let hi = (k as f64 + f / 2.0) as i64;
                for j in lo.max(0)..hi.min(n as i64) {
                    mask[j as usize] = true;
                }
            }
        }
        while n_iter < max_iter {
            let Some((k, a)) = peak(&r_re, &r_im, Some(&mask)) else {
                break;
            };
            if a < win {
                break;
            }
            step(
                k, &mut r_re, &mut r_im, &mut cc_re, &mut cc_im, &mut cl_re, &mut cl_im,
            );
            n_iter += 1;
        }
    }
    let clean_re: Vec<f64> = cl_re.iter().zip(&r_re).map(|(c, r)| c + r).collect();
    let clean_im: Vec<f64> = cl_im.iter().zip(&r_im).map(|(c, r)| c + r).collect();
    CleanResult {
        clean_re,
        clean_im,
        cc_re,
        cc_im,
        resid_re: r_re,
        resid_im: r_im,
        n_iter,
    }
}

/// Second moment of the clean components about their |cc|-weighted mean depth.
pub fn mom2_cc(cc_re: &[f64], cc_im: &[f64], phi: &[f64]) -> f64 {
    let w: Vec<f64> = cc_re.iter().zip(cc_im).map(|(r, i)| cabs(*r, *i)).collect();
    let sw: f64 = w.iter().sum();
    let mean = w.iter().zip(phi).map(|(a, p)| a * p).sum::<f64>() / sw;
    (w.iter()
        .zip(phi)
        .map(|(a, p)| a * (p - mean).powi(2))
        .sum::<f64>()
        / sw)
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_a_shifted_rmsf_finds_one_component() {
        let n = 101;
        let dphi = 1.0;
        let phi: Vec<f64> = (0..n).map(|k| (k as f64 - 50.0) * dphi).collect();
        let fwhm = 6.0;
        let s = fwhm / (2.0 * (2.0 * 2f64.ln()).sqrt());
        let rmsf_re: Vec<f64> = (0..2 * n + 1)
            .map(|j| (-((j as f64 - n as f64) * dphi).powi(2) / (2.0 * s * s)).exp())
            .collect();
        let rmsf_im = vec![0.0; 2 * n + 1];
        // A source of amplitude 2 at index 60: FDF = 2 × RMSF shifted by 10.
        let fdf_re: Vec<f64> = (0..n).map(|j| 2.0 * rmsf_re[j + n - 60]).collect();
        let fdf_im = vec![0.0; n];
        let r = hogbom(
            &fdf_re, &fdf_im, &rmsf_re, &rmsf_im, &phi, fwhm, 0.01, 1000, 0.1, None,
        );
        let total: f64 = r.cc_re.iter().sum();
        assert!((total - 2.0).abs() < 0.011, "{total}");
        assert!((r.cc_re[60] - total).abs() < 1e-12, "all flux in one depth");
        assert!(r.resid_re.iter().all(|x| x.abs() < 0.011));
        assert!((r.clean_re[60] - 2.0).abs() < 1e-9);
        assert!(mom2_cc(&r.cc_re, &r.cc_im, &phi) < 1e-9);
    }
}

/// The summary of a 1D RM-CLEAN, with RM-Tools' key names.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[allow(non_snake_case)]
pub struct CleanSummary {
    /// Peak parameters of the clean FDF.
    #[serde(flatten)]
    pub peak: super::rm_synthesis::PeakParams,
    /// Absolute cutoff used.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub cleanCutoff: f64,
    /// Iterations.
    pub nIter: usize,
    /// Second moment of the clean components, rad/m².
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub mom2CCFDF: f64,
    /// Peak depth error scaled by the observed noise.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dPhiObserved_rm2: f64,
    /// Observed amplitude noise (= dFDFcorMAD).
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dAmpObserved: f64,
    /// Angle error scaled by the observed noise.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dPolAngleFitObserved_deg: f64,
    /// De-rotated angle error scaled by the observed noise.
    #[serde(deserialize_with = "crate::science::nan_if_null")]
    pub dPolAngleFit0Observed_deg: f64,
}

/// CLEAN parameters (negative `cutoff`/`window` are multiples of the theoretical FDF noise).
#[derive(Clone, Debug)]
pub struct CleanParams {
    /// CLEAN threshold.
    pub cutoff: f64,
    /// Iteration limit.
    pub max_iter: usize,
    /// Loop gain.
    pub gain: f64,
    /// Windowed second pass threshold, or none.
    pub window: Option<f64>,
}

/// RM-CLEAN after [`super::rm_synthesis::run_rmsynth`], as RM-Tools' `run_rmclean`.
pub fn run_rmclean(
    synth: &super::rm_synthesis::SynthSummary,
    arrays: &super::rm_synthesis::SynthArrays,
    p: &CleanParams,
) -> (CleanSummary, CleanResult) {
    clean_spectrum(
        &CleanInput {
            fdf_re: &arrays.fdf_re,
            fdf_im: &arrays.fdf_im,
            rmsf_re: &arrays.rmsf_re,
            rmsf_im: &arrays.rmsf_im,
            phi: &arrays.axes.phi,
            lambda_sq: &arrays.lambda_sq,
            fwhm_rmsf: synth.fwhmRMSF,
            dfdf_th: synth.dFDFth,
            lam0_sq: synth.lam0Sq_m2,
        },
        p,
    )
}

/// What RM-CLEAN needs from a synthesis (as stored by the rmsynth stage).
pub struct CleanInput<'a> {
    /// Dirty FDF, real part.
    pub fdf_re: &'a [f64],
    /// Dirty FDF, imaginary part.
    pub fdf_im: &'a [f64],
    /// RMSF (2N+1), real part.
    pub rmsf_re: &'a [f64],
    /// RMSF, imaginary part.
    pub rmsf_im: &'a [f64],
    /// Faraday depths of the FDF.
    pub phi: &'a [f64],
    /// λ² of every channel.
    pub lambda_sq: &'a [f64],
    /// RMSF FWHM in use.
    pub fwhm_rmsf: f64,
    /// Theoretical FDF noise.
    pub dfdf_th: f64,
    /// λ0².
    pub lam0_sq: f64,
}

/// CLEAN one FDF and measure the clean peak.
pub fn clean_spectrum(inp: &CleanInput, p: &CleanParams) -> (CleanSummary, CleanResult) {
    let abs_of = |v: f64| if v < 0.0 { -v * inp.dfdf_th } else { v };
    let cutoff = abs_of(p.cutoff);
    let window = p.window.map(abs_of);
    let r = hogbom(
        inp.fdf_re,
        inp.fdf_im,
        inp.rmsf_re,
        inp.rmsf_im,
        inp.phi,
        inp.fwhm_rmsf,
        cutoff,
        p.max_iter,
        p.gain,
        window,
    );
    let peak = super::rm_synthesis::measure_fdf(
        &r.clean_re,
        &r.clean_im,
        inp.phi,
        inp.fwhm_rmsf,
        inp.dfdf_th,
        inp.lambda_sq,
        inp.lam0_sq,
    );
    let scale = peak.dFDFcorMAD / inp.dfdf_th;
    let summary = CleanSummary {
        cleanCutoff: cutoff,
        nIter: r.n_iter,
        mom2CCFDF: mom2_cc(&r.cc_re, &r.cc_im, inp.phi),
        dPhiObserved_rm2: peak.dPhiPeakPIfit_rm2 * scale,
        dAmpObserved: peak.dFDFcorMAD,
        dPolAngleFitObserved_deg: peak.dPolAngleFit_deg * scale,
        dPolAngleFit0Observed_deg: peak.dPolAngle0Fit_deg * scale,
        peak,
    };
    (summary, r)
}
