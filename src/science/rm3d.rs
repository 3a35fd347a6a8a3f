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
use super::stats::cabs;

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
    /// The distinct RMSFs (one per channel mask among the pixels), on the 2 N_φ + 1 axis.
    pub rmsfs: Vec<Rmsf>,
    /// Which of `rmsfs` each pixel has.
    pub rmsf_of: Vec<u32>,
}

/// One RMSF and its FWHM.
#[derive(Clone, Debug)]
pub struct Rmsf {
    /// Real part.
    pub re: Vec<f32>,
    /// Imaginary part.
    pub im: Vec<f32>,
    /// Main-lobe FWHM (rad/m²): fitted with `fit_rmsf`, else 3.8/Δλ².
    pub fwhm: f32,
}

impl Synth3d {
    /// The RMSF cubes ([depth][pixel], real and imaginary) and the FWHM map, as RM-Tools
    /// writes them.
    pub fn rmsf_cubes(&self) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let npix = self.rmsf_of.len();
        let nphi2 = self.axes.phi2.len();
        let mut re = vec![0f32; nphi2 * npix];
        let mut im = vec![0f32; nphi2 * npix];
        re.par_chunks_mut(npix)
            .zip(im.par_chunks_mut(npix))
            .enumerate()
            .for_each(|(k, (row_re, row_im))| {
                for (i, &r) in self.rmsf_of.iter().enumerate() {
                    let rm = &self.rmsfs[r as usize];
                    row_re[i] = rm.re[k];
                    row_im[i] = rm.im[k];
                }
            });
        let fwhm = self
            .rmsf_of
            .iter()
            .map(|&r| self.rmsfs[r as usize].fwhm)
            .collect();
        (re, im, fwhm)
    }
}

/// A pointer into an output cube shared by the parallel blocks, each of which writes only its
/// own columns.
struct Shared(*mut f32);
// SAFETY: the blocks write disjoint elements; see the use in `rmsynth3d`.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// Columns `start..start + len` of row `r` of a [row][column] buffer `width` columns wide.
    ///
    /// # Safety
    /// No two live slices may overlap, and the buffer must outlive them: each parallel block
    /// asks only for its own columns.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row<'a>(&self, r: usize, width: usize, start: usize, len: usize) -> &'a mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(r * width + start), len)
    }
}

/// c = a · b for row-major f32 matrices, on one thread (the caller runs blocks in parallel).
/// The `gemm` crate picks its AVX-512, AVX2 or portable kernel at run time; on a core with full
/// 512-bit FMA units that is twice the 256-bit kernels' rate.
fn sgemm(a: &Array2<f32>, b: &Array2<f32>, c: &mut Array2<f32>) {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    assert!(k == k2 && c.dim() == (m, n), "sgemm: shapes do not agree");
    assert!(a.is_standard_layout() && b.is_standard_layout() && c.is_standard_layout());
    // SAFETY: the three matrices are contiguous row-major with the dimensions checked above, so
    // every element gemm reads or writes (row stride = columns, column stride 1) is in bounds;
    // `c` is borrowed mutably, so nothing else aliases it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
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
    // Each pixel's flagged channels as a bit set, built channel by channel so the cube is read
    // in memory order; channels flagged in every pixel carry no weight at all (RM-Tools'
    // mskPlanes).
    let words = nchan.div_ceil(64);
    let mut masks = vec![0u64; npix * words];
    let mut w: Vec<f64> = weights
        .iter()
        .map(|&x| if x.is_nan() { 0.0 } else { x })
        .collect();
    for c in 0..nchan {
        let (word, bit) = (c / 64, 1u64 << (c % 64));
        let mut any_valid = false;
        for i in 0..npix {
            if q[c * npix + i].is_finite() && u[c * npix + i].is_finite() {
                any_valid = true;
            } else {
                masks[i * words + word] |= bit;
            }
        }
        if !any_valid {
            w[c] = 0.0;
        }
    }
    let lam0 = lam0_sq(&w, &l2);
    let a: Vec<f64> = l2.iter().map(|l| ((l - lam0) as f32) as f64).collect();

    // The axis is symmetric about φ = 0 (centre sample `mid`), and cos is even and sin odd in φ,
    // so one product with the kernel [C; S] over φ ≥ 0 (2 N_h × N_chan, float32) and the data
    // [wQ | wU] gives both halves: Re(±φ) = CQ ± SU, Im(±φ) = CU ∓ SQ. Half the flops of the
    // full [[C, S]; [−S, C]] product.
    let mid = nphi / 2;
    let nh = nphi - mid;
    let mut kern = Array2::<f32>::zeros((2 * nh, nchan));
    for j in 0..nh {
        let phi = axes.phi[mid + j];
        for c in 0..nchan {
            let (s, co) = (2.0 * phi * a[c]).sin_cos();
            kern[[j, c]] = co as f32;
            kern[[nh + j, c]] = s as f32;
        }
    }

    let mut fdf_re = vec![0f32; nphi * npix];
    let mut fdf_im = vec![0f32; nphi * npix];
    let blocks: Vec<(usize, usize)> = (0..npix)
        .step_by(BLOCK)
        .map(|s| (s, (s + BLOCK).min(npix)))
        .collect();
    let (out_re, out_im) = (Shared(fdf_re.as_mut_ptr()), Shared(fdf_im.as_mut_ptr()));
    blocks.par_iter().for_each_init(
        || (Array2::<f32>::zeros((0, 0)), Array2::<f32>::zeros((0, 0))),
        |(b, p), &(s, e)| {
            let m = e - s;
            if b.dim() != (nchan, 2 * m) {
                *b = Array2::zeros((nchan, 2 * m));
                *p = Array2::zeros((2 * nh, 2 * m));
            }
            b.fill(0.0);
            let mut ksum = vec![0f64; m];
            for c in 0..nchan {
                if w[c] == 0.0 {
                    continue;
                }
                let row = b.row_mut(c).into_slice().expect("standard layout");
                let (bq, bu) = row.split_at_mut(m);
                for j in 0..m {
                    let (qv, uv) = (q[c * npix + s + j], u[c * npix + s + j]);
                    if qv.is_finite() && uv.is_finite() {
                        bq[j] = (w[c] * qv as f64) as f32;
                        bu[j] = (w[c] * uv as f64) as f32;
                        ksum[j] += w[c];
                    }
                }
            }
            sgemm(&kern, b, p);
            let k: Vec<f64> = ksum
                .iter()
                .map(|&x| if x > 0.0 { 1.0 / x } else { 0.0 })
                .collect();
            // SAFETY: each block writes only columns s..e of every row, and blocks are
            // disjoint; the buffers outlive the parallel loop.
            let row_of = |ptr: &Shared, r: usize| unsafe { ptr.row(r, npix, s, m) };
            let mut nonzero = vec![false; m];
            for j in 0..nh {
                let (c_row, s_row) = (
                    p.row(j).to_slice().expect("standard layout"),
                    p.row(nh + j).to_slice().expect("standard layout"),
                );
                let (cq, cu) = c_row.split_at(m);
                let (sq, su) = s_row.split_at(m);
                let (re_up, im_up) = (row_of(&out_re, mid + j), row_of(&out_im, mid + j));
                let (re_dn, im_dn) = (row_of(&out_re, mid - j), row_of(&out_im, mid - j));
                for x in 0..m {
                    let kx = k[x];
                    re_up[x] = ((cq[x] + su[x]) as f64 * kx) as f32;
                    im_up[x] = ((cu[x] - sq[x]) as f64 * kx) as f32;
                    re_dn[x] = ((cq[x] - su[x]) as f64 * kx) as f32;
                    im_dn[x] = ((cu[x] + sq[x]) as f64 * kx) as f32;
                    nonzero[x] |=
                        re_up[x] != 0.0 || im_up[x] != 0.0 || re_dn[x] != 0.0 || im_dn[x] != 0.0;
                }
            }
            // A pixel whose FDF is zero at every depth is blank (RM-Tools writes NaN).
            if nonzero.iter().any(|nz| !nz) {
                for r in 0..nphi {
                    let (re, im) = (row_of(&out_re, r), row_of(&out_im, r));
                    for x in (0..m).filter(|&x| !nonzero[x]) {
                        re[x] = f32::NAN;
                        im[x] = f32::NAN;
                    }
                }
            }
        },
    );

    // RMSF per distinct channel mask.
    let nphi2 = axes.phi2.len();
    let mut index: rustc_hash::FxHashMap<&[u64], u32> = Default::default();
    let mut rmsf_of = Vec::with_capacity(npix);
    let mut distinct: Vec<&[u64]> = Vec::new();
    for i in 0..npix {
        let m = &masks[i * words..(i + 1) * words];
        let next = distinct.len() as u32;
        let r = *index.entry(m).or_insert_with(|| {
            distinct.push(m);
            next
        });
        rmsf_of.push(r);
    }
    let rmsfs: Vec<Rmsf> = distinct
        .par_iter()
        .map(|bits| {
            let m: Vec<bool> = (0..nchan)
                .map(|c| bits[c / 64] & (1u64 << (c % 64)) != 0 || w[c] == 0.0)
                .collect();
            if m.iter().all(|&x| x) {
                return Rmsf {
                    re: vec![0.0; nphi2],
                    im: vec![0.0; nphi2],
                    fwhm: axes.fwhm_rmsf_theory as f32,
                };
            }
            let (re, im) = rmsf(&l2, &w, &m, &axes.phi2, axes.dphi, lam0);
            let width = if p.fit_rmsf {
                let abs: Vec<f64> = re.iter().zip(&im).map(|(r, i)| cabs(*r, *i)).collect();
                fit_rmsf_fwhm(&axes.phi2, &abs).unwrap_or(axes.fwhm_rmsf_theory)
            } else {
                axes.fwhm_rmsf_theory
            };
            Rmsf {
                re: re.iter().map(|&x| x as f32).collect(),
                im: im.iter().map(|&x| x as f32).collect(),
                fwhm: width as f32,
            }
        })
        .collect();
    Synth3d {
        axes,
        lam0,
        fdf_re,
        fdf_im,
        rmsfs,
        rmsf_of,
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
    let mut out = Clean3d {
        clean_re: vec![f32::NAN; nphi * npix],
        clean_im: vec![f32::NAN; nphi * npix],
        cc_re: vec![f32::NAN; nphi * npix],
        cc_im: vec![f32::NAN; nphi * npix],
        n_iter: vec![0.0; npix],
    };
    let ptrs = [
        Shared(out.clean_re.as_mut_ptr()),
        Shared(out.clean_im.as_mut_ptr()),
        Shared(out.cc_re.as_mut_ptr()),
        Shared(out.cc_im.as_mut_ptr()),
        Shared(out.n_iter.as_mut_ptr()),
    ];
    // Blocks of pixels side by side in memory: gathering a block reads whole cache lines of
    // each depth row, rather than one float per line per pixel.
    const PIX: usize = 16;
    let blocks: Vec<usize> = (0..npix).step_by(PIX).collect();
    // Each worker keeps its gather buffers from block to block (no fresh pages per block).
    let scratch = || [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    blocks
        .par_iter()
        .for_each_init(scratch, |bufs: &mut [Vec<f64>; 4], &s| {
            let e = (s + PIX).min(npix);
            let m = e - s;
            // Pixel-major copies of the block: column x of the cube is buf[x * depth..][..depth].
            let gather = |buf: &mut Vec<f64>, v: &[f32], depth: usize| {
                buf.resize(m * depth, 0.0);
                for k in 0..depth {
                    let row = &v[k * npix + s..k * npix + e];
                    for (x, &val) in row.iter().enumerate() {
                        buf[x * depth + k] = val as f64;
                    }
                }
            };
            let [fr, fi, rr, ri] = bufs;
            gather(fr, fdf.0, nphi);
            gather(fi, fdf.1, nphi);
            gather(rr, rmsf.0, nphi2);
            gather(ri, rmsf.1, nphi2);
            let results: Vec<Option<CleanResult>> = (0..m)
                .map(|x| {
                    let (f_re, f_im) =
                        (&fr[x * nphi..(x + 1) * nphi], &fi[x * nphi..(x + 1) * nphi]);
                    if f_re.iter().chain(f_im).any(|v| v.is_nan()) {
                        return None;
                    }
                    Some(hogbom(
                        f_re,
                        f_im,
                        &rr[x * nphi2..(x + 1) * nphi2],
                        &ri[x * nphi2..(x + 1) * nphi2],
                        phi,
                        fwhm[s + x] as f64,
                        cutoff,
                        max_iter,
                        gain,
                        None,
                    ))
                })
                .collect();
            // SAFETY: this block writes only its own pixels (columns s..e); blocks are disjoint and
            // the buffers outlive the loop.
            let row_of = |p: &Shared, r: usize, width: usize| unsafe { p.row(r, width, s, m) };
            row_of(&ptrs[4], 0, npix)
                .iter_mut()
                .zip(&results)
                .for_each(|(n, r)| *n = r.as_ref().map_or(0.0, |r| r.n_iter as f32));
            for k in 0..nphi {
                let rows = [
                    row_of(&ptrs[0], k, npix),
                    row_of(&ptrs[1], k, npix),
                    row_of(&ptrs[2], k, npix),
                    row_of(&ptrs[3], k, npix),
                ];
                for (x, r) in results.iter().enumerate() {
                    let Some(r) = r else { continue };
                    rows[0][x] = r.clean_re[k] as f32;
                    rows[1][x] = r.clean_im[k] as f32;
                    rows[2][x] = r.cc_re[k] as f32;
                    rows[3][x] = r.cc_im[k] as f32;
                }
            }
        });
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
        let (rmsf_re, rmsf_im, fwhm) = s.rmsf_cubes();
        let c = rmclean3d(
            (&s.fdf_re, &s.fdf_im),
            (&rmsf_re, &rmsf_im),
            &fwhm,
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
