//! RM synthesis and RM-CLEAN on every pixel of a cube (RM-Tools' `rmsynth3d` / `rmclean3d`).
//!
//! Synthesis is one real matrix product per block of pixels: with a_c = λ²_c − λ0² and
//! C = cos(2φ a), S = sin(2φ a), the FDF is K_p Σ_c w_c (Q + iU)(C − iS), so
//! [Re; Im] = [[C, S]; [−S, C]] · [wQ; wU], computed in float32 (as RM-Tools does) by a blocked
//! SGEMM, in parallel over pixel blocks. K_p = 1/Σ w over the pixel's unflagged channels, as
//! RM-Tools' per-pixel normalisation. The RMSF depends only on which channels a pixel has, so
//! it is computed once per distinct channel mask and shared.
//! CLEAN runs the 1D Högbom kernel on every pixel, in parallel.

use ndarray::Array2;
use rayon::prelude::*;

use super::rm_clean::{hogbom, CleanResult};
use super::rm_synthesis::{fit_rmsf_fwhm, lam0_sq, lambda_sq, rmsf, PhiAxes};

/// Settings of a 3D synthesis.
#[derive(Clone, Debug)]
pub struct Synth3dParams {
    /// Faraday-depth spacing (rad/m²); default FWHM / n_samples.
    pub dphi: Option<f64>,
    /// Largest |φ| (rad/m²); default max(√3/δλ²_max, 10 FWHM).
    pub phi_max: Option<f64>,
    /// Samples across the RMSF FWHM.
    pub n_samples: f64,
    /// Fit the RMSF main lobe for its FWHM (else the theoretical 3.8/Δλ²).
    pub fit_rmsf: bool,
}

/// The products of a 3D synthesis; cubes are [depth][pixel] (FITS order for a y-x image).
pub struct Synth3d {
    /// Faraday-depth axes.
    pub axes: PhiAxes,
    /// λ0² (m²).
    pub lam0: f64,
    /// Dirty FDF, real part, N_φ × N_pix.
    pub fdf_re: Vec<f32>,
    /// Dirty FDF, imaginary part.
    pub fdf_im: Vec<f32>,
    /// RMSF, real part, (2 N_φ + 1) × N_pix.
    pub rmsf_re: Vec<f32>,
    /// RMSF, imaginary part.
    pub rmsf_im: Vec<f32>,
    /// RMSF FWHM per pixel (rad/m²).
    pub fwhm: Vec<f32>,
}

/// Pixels per block of the matrix product (columns of B).
const BLOCK: usize = 1024;

/// RM synthesis of every pixel of the Q/U cubes ([channel][pixel], NaN = flagged) with
/// per-channel `weights` (NaN counts as 0).
pub fn rmsynth3d(
    q: &[f32],
    u: &[f32],
    npix: usize,
    freqs: &[f64],
    weights: &[f64],
    p: &Synth3dParams,
) -> Synth3d {
    let nchan = freqs.len();
    assert_eq!(q.len(), nchan * npix);
    assert_eq!(u.len(), nchan * npix);
    let l2 = lambda_sq(freqs);
    let axes = PhiAxes::new(&l2, p.dphi, p.phi_max, p.n_samples);
    let nphi = axes.phi.len();
    let valid = |c: usize, i: usize| q[c * npix + i].is_finite() && u[c * npix + i].is_finite();
    // Channels flagged in every pixel carry no weight at all (RM-Tools' mskPlanes).
    let w: Vec<f64> = (0..nchan)
        .map(|c| {
            let wc = if weights[c].is_nan() { 0.0 } else { weights[c] };
            if (0..npix).any(|i| valid(c, i)) {
                wc
            } else {
                0.0
            }
        })
        .collect();
    let lam0 = lam0_sq(&w, &l2);
    let a: Vec<f64> = l2.iter().map(|l| ((l - lam0) as f32) as f64).collect();

    // The kernel [[C, S]; [−S, C]], 2N_φ × 2N_chan, float32.
    let mut kern = Array2::<f32>::zeros((2 * nphi, 2 * nchan));
    for (k, &phi) in axes.phi.iter().enumerate() {
        for c in 0..nchan {
            let (s, co) = (2.0 * phi * a[c]).sin_cos();
            kern[[k, c]] = co as f32;
            kern[[k, nchan + c]] = s as f32;
            kern[[nphi + k, c]] = -s as f32;
            kern[[nphi + k, nchan + c]] = co as f32;
        }
    }

    let mut fdf_re = vec![0f32; nphi * npix];
    let mut fdf_im = vec![0f32; nphi * npix];
    let blocks: Vec<(usize, usize)> = (0..npix)
        .step_by(BLOCK)
        .map(|s| (s, (s + BLOCK).min(npix)))
        .collect();
    let results: Vec<Array2<f32>> = blocks
        .par_iter()
        .map(|&(s, e)| {
            let m = e - s;
            let mut b = Array2::<f32>::zeros((2 * nchan, m));
            let mut ksum = vec![0f64; m];
            for c in 0..nchan {
                for j in 0..m {
                    let i = s + j;
                    if w[c] != 0.0 && valid(c, i) {
                        b[[c, j]] = (w[c] * q[c * npix + i] as f64) as f32;
                        b[[nchan + c, j]] = (w[c] * u[c * npix + i] as f64) as f32;
                        ksum[j] += w[c];
                    }
                }
            }
            let mut out = Array2::<f32>::zeros((2 * nphi, m));
            ndarray::linalg::general_mat_mul(1.0, &kern, &b, 0.0, &mut out);
            for j in 0..m {
                let k = if ksum[j] > 0.0 { 1.0 / ksum[j] } else { 0.0 };
                let col_zero = (0..2 * nphi).all(|r| out[[r, j]] * k as f32 == 0.0);
                for r in 0..2 * nphi {
                    out[[r, j]] = if col_zero {
                        f32::NAN
                    } else {
                        (out[[r, j]] as f64 * k) as f32
                    };
                }
            }
            out
        })
        .collect();
    for (&(s, e), out) in blocks.iter().zip(&results) {
        let m = e - s;
        for k in 0..nphi {
            fdf_re[k * npix + s..k * npix + e]
                .copy_from_slice(&out.row(k).as_slice().unwrap()[..m]);
            fdf_im[k * npix + s..k * npix + e]
                .copy_from_slice(&out.row(nphi + k).as_slice().unwrap()[..m]);
        }
    }

    // RMSF per distinct channel mask.
    let nphi2 = axes.phi2.len();
    let mut rmsf_re = vec![0f32; nphi2 * npix];
    let mut rmsf_im = vec![0f32; nphi2 * npix];
    let mut fwhm = vec![axes.fwhm_rmsf_theory as f32; npix];
    let mut patterns: std::collections::HashMap<Vec<bool>, Vec<usize>> = Default::default();
    for i in 0..npix {
        let mask: Vec<bool> = (0..nchan).map(|c| !valid(c, i)).collect();
        patterns.entry(mask).or_default().push(i);
    }
    let plane_mask: Vec<bool> = w.iter().map(|&x| x == 0.0).collect();
    for (mask, pixels) in &patterns {
        let m: Vec<bool> = mask
            .iter()
            .zip(&plane_mask)
            .map(|(a, b)| *a || *b)
            .collect();
        let (re, im, width) = if m.iter().all(|&x| x) {
            (vec![0.0; nphi2], vec![0.0; nphi2], axes.fwhm_rmsf_theory)
        } else {
            let (re, im) = rmsf(&l2, &w, &m, &axes.phi2, axes.dphi, lam0);
            let width = if p.fit_rmsf {
                let abs: Vec<f64> = re.iter().zip(&im).map(|(r, i)| r.hypot(*i)).collect();
                fit_rmsf_fwhm(&axes.phi2, &abs).unwrap_or(axes.fwhm_rmsf_theory)
            } else {
                axes.fwhm_rmsf_theory
            };
            (re, im, width)
        };
        for &i in pixels {
            for k in 0..nphi2 {
                rmsf_re[k * npix + i] = re[k] as f32;
                rmsf_im[k * npix + i] = im[k] as f32;
            }
            fwhm[i] = width as f32;
        }
    }
    Synth3d {
        axes,
        lam0,
        fdf_re,
        fdf_im,
        rmsf_re,
        rmsf_im,
        fwhm,
    }
}

/// Peak maps: max |FDF| per pixel and the Faraday depth of that sample (the first, on ties);
/// both NaN where the pixel's FDF is NaN throughout (RM-Tools' `create_peak_maps`).
pub fn peak_maps(fdf_re: &[f32], fdf_im: &[f32], phi: &[f64], npix: usize) -> (Vec<f32>, Vec<f32>) {
    let nphi = phi.len();
    let mut max_pi = vec![f32::NAN; npix];
    let mut peak_rm = vec![f32::NAN; npix];
    for i in 0..npix {
        let mut best: Option<(usize, f32)> = None;
        let mut any_nan = false;
        for k in 0..nphi {
            let v = fdf_re[k * npix + i].hypot(fdf_im[k * npix + i]);
            if v.is_nan() {
                any_nan = true;
                continue;
            }
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((k, v));
            }
        }
        if let Some((k, v)) = best {
            // numpy's max propagates NaN; argmax stops at the first NaN.
            if !any_nan {
                max_pi[i] = v;
                peak_rm[i] = phi[k] as f32;
            }
        }
    }
    (max_pi, peak_rm)
}

/// Products of a 3D RM-CLEAN, [depth][pixel].
pub struct Clean3d {
    /// Clean FDF, real part.
    pub clean_re: Vec<f32>,
    /// Clean FDF, imaginary part.
    pub clean_im: Vec<f32>,
    /// Clean components, real part.
    pub cc_re: Vec<f32>,
    /// Clean components, imaginary part.
    pub cc_im: Vec<f32>,
    /// Iterations per pixel.
    pub n_iter: Vec<f32>,
}

/// Högbom RM-CLEAN of every pixel. `cutoff` is absolute (flux units); NaN pixels stay NaN.
#[allow(clippy::too_many_arguments)]
pub fn rmclean3d(
    fdf: (&[f32], &[f32]),
    rmsf: (&[f32], &[f32]),
    fwhm: &[f32],
    phi: &[f64],
    npix: usize,
    cutoff: f64,
    max_iter: usize,
    gain: f64,
) -> Clean3d {
    let nphi = phi.len();
    let nphi2 = rmsf.0.len() / npix.max(1);
    let per_pixel: Vec<Option<CleanResult>> = (0..npix)
        .into_par_iter()
        .map(|i| {
            let col = |v: &[f32], n: usize| -> Vec<f64> {
                (0..n).map(|k| v[k * npix + i] as f64).collect()
            };
            let (fr, fi) = (col(fdf.0, nphi), col(fdf.1, nphi));
            if fr.iter().chain(&fi).any(|x| x.is_nan()) {
                return None;
            }
            let (rr, ri) = (col(rmsf.0, nphi2), col(rmsf.1, nphi2));
            Some(hogbom(
                &fr,
                &fi,
                &rr,
                &ri,
                phi,
                fwhm[i] as f64,
                cutoff,
                max_iter,
                gain,
                None,
            ))
        })
        .collect();
    let mut out = Clean3d {
        clean_re: vec![f32::NAN; nphi * npix],
        clean_im: vec![f32::NAN; nphi * npix],
        cc_re: vec![f32::NAN; nphi * npix],
        cc_im: vec![f32::NAN; nphi * npix],
        n_iter: vec![0.0; npix],
    };
    for (i, r) in per_pixel.into_iter().enumerate() {
        let Some(r) = r else { continue };
        for k in 0..nphi {
            out.clean_re[k * npix + i] = r.clean_re[k] as f32;
            out.clean_im[k * npix + i] = r.clean_im[k] as f32;
            out.cc_re[k * npix + i] = r.cc_re[k] as f32;
            out.cc_im[k * npix + i] = r.cc_im[k] as f32;
        }
        out.n_iter[i] = r.n_iter as f32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::science::rm_synthesis::rmsynth as rmsynth1d;

    #[test]
    fn every_pixel_matches_the_1d_synthesis() {
        let freqs: Vec<f64> = (0..40).map(|k| 800e6 + 5e6 * k as f64).collect();
        let npix = 7;
        let nchan = freqs.len();
        let l2 = lambda_sq(&freqs);
        let mut q = vec![0f32; nchan * npix];
        let mut u = vec![0f32; nchan * npix];
        for i in 0..npix {
            let rm = -40.0 + 15.0 * i as f64;
            for c in 0..nchan {
                q[c * npix + i] = (0.1 * (2.0 * rm * l2[c]).cos()) as f32;
                u[c * npix + i] = (0.1 * (2.0 * rm * l2[c]).sin()) as f32;
            }
        }
        // A flagged voxel and a flagged channel everywhere.
        q[3 * npix + 2] = f32::NAN;
        for i in 0..npix {
            q[10 * npix + i] = f32::NAN;
        }
        let w: Vec<f64> = (0..nchan).map(|c| 1.0 + 0.01 * c as f64).collect();
        let p = Synth3dParams {
            dphi: None,
            phi_max: None,
            n_samples: 5.0,
            fit_rmsf: false,
        };
        let s = rmsynth3d(&q, &u, npix, &freqs, &w, &p);
        let nphi = s.axes.phi.len();
        for i in 0..npix {
            let qi: Vec<f64> = (0..nchan).map(|c| q[c * npix + i] as f64).collect();
            let ui: Vec<f64> = (0..nchan).map(|c| u[c * npix + i] as f64).collect();
            let wl: Vec<f64> = (0..nchan)
                .map(|c| if c == 10 { 0.0 } else { w[c] })
                .collect();
            let l0 = lam0_sq(&wl, &l2);
            let (re, im, _) = rmsynth1d(&qi, &ui, &l2, &wl, &s.axes.phi, s.axes.dphi, Some(l0));
            for k in 0..nphi {
                let (a, b) = (s.fdf_re[k * npix + i] as f64, s.fdf_im[k * npix + i] as f64);
                assert!(
                    (a - re[k]).abs() < 2e-5 && (b - im[k]).abs() < 2e-5,
                    "pixel {i} depth {k}: ({a}, {b}) vs ({}, {})",
                    re[k],
                    im[k]
                );
            }
        }
        let (max_pi, peak) = peak_maps(&s.fdf_re, &s.fdf_im, &s.axes.phi, npix);
        for i in 0..npix {
            let rm = -40.0 + 15.0 * i as f64;
            assert!(
                (peak[i] as f64 - rm).abs() <= s.axes.dphi,
                "pixel {i}: peak {} vs {rm}",
                peak[i]
            );
            assert!((max_pi[i] - 0.1).abs() < 0.01);
        }
    }

    #[test]
    fn clean_finds_a_point_source_in_every_pixel() {
        let freqs: Vec<f64> = (0..64).map(|k| 750e6 + 4e6 * k as f64).collect();
        let npix = 3;
        let nchan = freqs.len();
        let l2 = lambda_sq(&freqs);
        let mut q = vec![0f32; nchan * npix];
        let mut u = vec![0f32; nchan * npix];
        for i in 0..npix {
            for c in 0..nchan {
                q[c * npix + i] = (0.2 * (2.0 * 30.0 * l2[c]).cos()) as f32;
                u[c * npix + i] = (0.2 * (2.0 * 30.0 * l2[c]).sin()) as f32;
            }
        }
        let p = Synth3dParams {
            dphi: None,
            phi_max: None,
            n_samples: 5.0,
            fit_rmsf: false,
        };
        let s = rmsynth3d(&q, &u, npix, &freqs, &vec![1.0; nchan], &p);
        let c = rmclean3d(
            (&s.fdf_re, &s.fdf_im),
            (&s.rmsf_re, &s.rmsf_im),
            &s.fwhm,
            &s.axes.phi,
            npix,
            0.01,
            1000,
            0.1,
        );
        for i in 0..npix {
            assert!(c.n_iter[i] > 10.0);
            let total: f32 = (0..s.axes.phi.len())
                .map(|k| c.cc_re[k * npix + i].hypot(c.cc_im[k * npix + i]))
                .sum();
            assert!((total - 0.2).abs() < 0.02, "pixel {i}: clean flux {total}");
        }
    }
}
