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
    /// How the FDF is summed.
    pub transform: Transform,
}

/// How a 3D synthesis evaluates the FDF sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// Whichever of the two costs fewer flops for this cube (see [`Transform::resolve`]).
    Auto,
    /// The direct transform: a float32 matrix product, at the float32-rounded depths RM-Tools
    /// stores.
    Direct,
    /// A non-uniform FFT ([`super::nufft`]) at the uniform depths the FITS axis describes, with
    /// errors at the level of the direct transform's float32 round-off.
    Nufft,
}

impl Transform {
    /// `Auto` made concrete for `nphi` depths and `nchan` channels: the direct product executes
    /// 2 N_φ N_chan flops per pixel (the ±φ symmetry halves the 4), the NUFFT about
    /// 3 · 5 n log₂ n for its FFT of n ≈ σ N_φ points (counted three times: the FFT runs at
    /// about a third of the matrix product's rate) plus 4 w N_chan to spread.
    pub fn resolve(self, nphi: usize, nchan: usize) -> Transform {
        match self {
            Transform::Auto => {
                let n = super::nufft::SIGMA * nphi as f64;
                let nufft = 15.0 * n * n.log2() + 40.0 * nchan as f64;
                let direct = 2.0 * nphi as f64 * nchan as f64;
                if direct > nufft {
                    Transform::Nufft
                } else {
                    Transform::Direct
                }
            }
            t => t,
        }
    }
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

/// The Q/U cubes of a synthesis and the channel weights (0 = unused).
struct Cube<'a> {
    q: &'a [f32],
    u: &'a [f32],
    npix: usize,
    w: &'a [f64],
}

impl Cube<'_> {
    /// Weighted data of pixels `s..s + m` into `put(channel, lane, wQ, wU)` (flagged voxels
    /// and unused channels left out); returns K = 1/Σw for each pixel (0 if it has no data).
    fn weighted(
        &self,
        s: usize,
        m: usize,
        mut put: impl FnMut(usize, usize, f32, f32),
    ) -> Vec<f64> {
        let mut ksum = vec![0f64; m];
        for (c, &wc) in self.w.iter().enumerate() {
            if wc == 0.0 {
                continue;
            }
            let row = c * self.npix + s;
            for (j, (&qv, &uv)) in self.q[row..row + m]
                .iter()
                .zip(&self.u[row..row + m])
                .enumerate()
            {
                if qv.is_finite() && uv.is_finite() {
                    put(c, j, (wc * qv as f64) as f32, (wc * uv as f64) as f32);
                    ksum[j] += wc;
                }
            }
        }
        ksum.iter()
            .map(|&x| if x > 0.0 { 1.0 / x } else { 0.0 })
            .collect()
    }

    /// [`Cube::weighted`] for the NUFFT, into lanes: pixel j of `s..s + m` is lane j % BATCH
    /// of `re[(j / BATCH) nchan + c]` (zeroed first), with wQ, wU rounded to float32 after
    /// the product as there. Also says which pixels have any non-zero data (an FDF of zeros
    /// is blank).
    #[inline(always)]
    fn weighted_lanes(
        &self,
        s: usize,
        m: usize,
        re: &mut [super::nufft::Lanes],
        im: &mut [super::nufft::Lanes],
    ) -> (Vec<f64>, Vec<bool>) {
        use super::nufft::{Lanes, BATCH};
        let nchan = self.w.len();
        let batches = m.div_ceil(BATCH);
        re.fill([0.0; BATCH]);
        im.fill([0.0; BATCH]);
        // Per lane: Σw, and Σ(|wQ| + |wU|) (> 0 iff any datum is non-zero).
        let mut ksum = vec![[0f64; BATCH]; batches];
        let mut mag = vec![[0f32; BATCH]; batches];
        for (c, &wc) in self.w.iter().enumerate() {
            if wc == 0.0 {
                continue;
            }
            let row = c * self.npix + s;
            let (q, u) = (&self.q[row..row + m], &self.u[row..row + m]);
            for b in 0..batches {
                // Whole lanes (the last batch padded with zeros, which add nothing), so the
                // lane loop below is a few vector instructions.
                let (mut qb, mut ub): (Lanes, Lanes) = ([0.0; BATCH], [0.0; BATCH]);
                let take = (m - b * BATCH).min(BATCH);
                qb[..take].copy_from_slice(&q[b * BATCH..b * BATCH + take]);
                ub[..take].copy_from_slice(&u[b * BATCH..b * BATCH + take]);
                let (lr, li) = (&mut re[b * nchan + c], &mut im[b * nchan + c]);
                let (ks, mg) = (&mut ksum[b], &mut mag[b]);
                for v in 0..BATCH {
                    let ok = qb[v].is_finite() & ub[v].is_finite();
                    let (wq, wu) = ((wc * qb[v] as f64) as f32, (wc * ub[v] as f64) as f32);
                    lr[v] = if ok { wq } else { 0.0 };
                    li[v] = if ok { wu } else { 0.0 };
                    ks[v] += if ok { wc } else { 0.0 };
                    mg[v] += lr[v].abs() + li[v].abs();
                }
            }
        }
        let k = ksum
            .as_flattened()
            .iter()
            .take(m)
            .map(|&x| if x > 0.0 { 1.0 / x } else { 0.0 })
            .collect();
        let any = mag
            .as_flattened()
            .iter()
            .take(m)
            .map(|&x| x > 0.0)
            .collect();
        (k, any)
    }
}

/// Marks pixels `s..s + m` whose FDF is zero at every depth as blank (RM-Tools writes NaN).
fn blank_empty(out: (&Shared, &Shared), npix: usize, nphi: usize, s: usize, nonzero: &[bool]) {
    if nonzero.iter().all(|&nz| nz) {
        return;
    }
    for r in 0..nphi {
        // SAFETY: the caller's block owns columns s..s + m of every row.
        let (re, im) = unsafe {
            (
                out.0.row(r, npix, s, nonzero.len()),
                out.1.row(r, npix, s, nonzero.len()),
            )
        };
        for x in (0..nonzero.len()).filter(|&x| !nonzero[x]) {
            re[x] = f32::NAN;
            im[x] = f32::NAN;
        }
    }
}

/// The direct transform into `out` ([depth][pixel] re and im), in parallel over pixel blocks.
fn synth_direct(cube: &Cube, a: &[f64], axes: &PhiAxes, out: (&Shared, &Shared)) {
    let (npix, nchan, nphi) = (cube.npix, cube.w.len(), axes.phi.len());
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

    let blocks: Vec<(usize, usize)> = (0..npix)
        .step_by(BLOCK)
        .map(|s| (s, (s + BLOCK).min(npix)))
        .collect();
    blocks.par_iter().for_each_init(
        || (Array2::<f32>::zeros((0, 0)), Array2::<f32>::zeros((0, 0))),
        |(b, p), &(s, e)| {
            let m = e - s;
            if b.dim() != (nchan, 2 * m) {
                *b = Array2::zeros((nchan, 2 * m));
                *p = Array2::zeros((2 * nh, 2 * m));
            }
            b.fill(0.0);
            let k = cube.weighted(s, m, |c, j, wq, wu| {
                b[[c, j]] = wq;
                b[[c, m + j]] = wu;
            });
            sgemm(&kern, b, p);
            // SAFETY: each block writes only columns s..e of every row, and blocks are
            // disjoint; the buffers outlive the parallel loop.
            let row_of = |ptr: &Shared, r: usize| unsafe { ptr.row(r, npix, s, m) };
            let (out_re, out_im) = out;
            let mut nonzero = vec![false; m];
            for j in 0..nh {
                let (c_row, s_row) = (
                    p.row(j).to_slice().expect("standard layout"),
                    p.row(nh + j).to_slice().expect("standard layout"),
                );
                let (cq, cu) = c_row.split_at(m);
                let (sq, su) = s_row.split_at(m);
                let (re_up, im_up) = (row_of(out_re, mid + j), row_of(out_im, mid + j));
                let (re_dn, im_dn) = (row_of(out_re, mid - j), row_of(out_im, mid - j));
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
            blank_empty(out, npix, nphi, s, &nonzero);
        },
    );
}

/// The NUFFT into `out` ([depth][pixel] re and im), in parallel over blocks of `NUFFT_BLOCK`
/// pixels, each transformed `nufft::BATCH` pixels at a time into a buffer laid out as the
/// output rows, then copied out a whole row segment at a time with streaming stores (writing
/// each batch's 16 values straight into the cube's 815 rows costs a TLB miss per row).
fn synth_nufft(cube: &Cube, a: &[f64], axes: &PhiAxes, out: (&Shared, &Shared)) {
    let nphi = axes.phi.len();
    // exp(−2iφa) at φ = t dφ is exp(−i t x) with x = 2 dφ a: a type-1 NUFFT over t.
    let x: Vec<f64> = a.iter().map(|&ac| 2.0 * axes.dphi * ac).collect();
    let plan = super::nufft::Nufft1::new(&x, nphi / 2);
    let job = NufftJob {
        cube,
        plan: &plan,
        out,
    };
    (0..cube.npix)
        .step_by(NUFFT_BLOCK)
        .collect::<Vec<_>>()
        .par_iter()
        .for_each_init(NufftBlock::default, |buf, &s| {
            #[cfg(target_arch = "x86_64")]
            {
                if crate::science::simd::avx512() {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { nufft_block_avx512(&job, s, buf) };
                }
                if crate::science::simd::avx2_fma() {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { nufft_block_avx2(&job, s, buf) };
                }
            }
            nufft_block(&job, s, buf)
        });
}

/// What every block of [`synth_nufft`] shares.
struct NufftJob<'a> {
    cube: &'a Cube<'a>,
    plan: &'a super::nufft::Nufft1,
    out: (&'a Shared, &'a Shared),
}

/// One thread's buffers for [`synth_nufft`].
#[derive(Default)]
struct NufftBlock {
    re: super::lane_fft::LaneVec,
    im: super::lane_fft::LaneVec,
    work: super::nufft::Work,
    fdf_re: super::lane_fft::LaneVec,
    fdf_im: super::lane_fft::LaneVec,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn nufft_block_avx512(job: &NufftJob, s: usize, buf: &mut NufftBlock) {
    nufft_block(job, s, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn nufft_block_avx2(job: &NufftJob, s: usize, buf: &mut NufftBlock) {
    nufft_block(job, s, buf)
}

/// The pixels `s..s + NUFFT_BLOCK` (or to the end) of [`synth_nufft`], compiled once per
/// instruction set (inlined into the callers above).
#[inline(always)]
fn nufft_block(job: &NufftJob, s: usize, buf: &mut NufftBlock) {
    use super::nufft::{Lanes, BATCH};
    let NufftJob { cube, plan, out } = *job;
    let (npix, nchan, nphi) = (cube.npix, cube.w.len(), plan.outputs());
    let m = NUFFT_BLOCK.min(npix - s);
    let batches = NUFFT_BLOCK / BATCH;
    buf.re.resize(batches * nchan);
    buf.im.resize(batches * nchan);
    // The block's FDF as [depth][batch] lanes: row r of the output, pixels s.., is
    // fdf[r batches..(r + 1) batches] flattened.
    buf.fdf_re.resize(nphi * batches);
    buf.fdf_im.resize(nphi * batches);
    // Pixel j of the block is lane j % BATCH of batch j / BATCH.
    let (k, nonzero) = cube.weighted_lanes(s, m, &mut buf.re, &mut buf.im);
    for b in 0..m.div_ceil(BATCH) {
        let lanes = b * nchan..(b + 1) * nchan;
        plan.transform(&buf.re[lanes.clone()], &buf.im[lanes], &mut buf.work);
        let j0 = b * BATCH;
        let kb: Lanes = std::array::from_fn(|v| k.get(j0 + v).map_or(0.0, |&x| x as f32));
        for r in 0..nphi {
            let (fr, fi) = plan.output(&buf.work, r);
            buf.fdf_re[r * batches + b] = std::array::from_fn(|v| fr[v] * kb[v]);
            buf.fdf_im[r * batches + b] = std::array::from_fn(|v| fi[v] * kb[v]);
        }
    }
    for r in 0..nphi {
        // SAFETY: each block writes only columns s..s + m of every row, and blocks are
        // disjoint; the buffers outlive the parallel loop.
        let (row_re, row_im) = unsafe { (out.0.row(r, npix, s, m), out.1.row(r, npix, s, m)) };
        let row = r * batches..(r + 1) * batches;
        copy_streaming(row_re, &buf.fdf_re[row.clone()].as_flattened()[..m]);
        copy_streaming(row_im, &buf.fdf_im[row].as_flattened()[..m]);
    }
    store_fence();
    blank_empty(out, npix, nphi, s, &nonzero);
}

/// `dst = src`, with non-temporal stores (no read of the destination's cache lines first, no
/// eviction of the working set) where the CPU has AVX-512: for output written once and not
/// read again soon. Call [`store_fence`] before anything else reads `dst`.
fn copy_streaming(dst: &mut [f32], src: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::science::simd::avx512() {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { copy_streaming_avx512(dst, src) };
        }
    }
    dst.copy_from_slice(src)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn copy_streaming_avx512(dst: &mut [f32], src: &[f32]) {
    use std::arch::x86_64::{_mm512_loadu_ps, _mm512_stream_ps};
    assert_eq!(dst.len(), src.len(), "copy_streaming: lengths differ");
    let n = dst.len();
    // Plain stores up to the first 64-byte boundary of dst and after the last whole line.
    let head = dst.as_ptr().align_offset(64).min(n);
    dst[..head].copy_from_slice(&src[..head]);
    let mut i = head;
    while i + 16 <= n {
        // SAFETY: i + 16 ≤ n for both slices, and dst + i is 64-byte aligned.
        unsafe {
            _mm512_stream_ps(
                dst.as_mut_ptr().add(i),
                _mm512_loadu_ps(src.as_ptr().add(i)),
            )
        };
        i += 16;
    }
    dst[i..].copy_from_slice(&src[i..]);
}

/// Orders earlier non-temporal stores before later stores (a no-op elsewhere).
fn store_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86_64.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

/// Pixels per block of the matrix product (columns of B).
const BLOCK: usize = 1024;

/// Pixels per block of the NUFFT: 128 keeps the block's FDF buffer (815 depths × 128 pixels ×
/// re, im: 0.8 MB) in L2 beside the FFT's; 1024 was 20 % slower, 64 no faster.
const NUFFT_BLOCK: usize = 128;

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
    // Each pixel's flagged channels as a bit set, built in parallel over pixel chunks and
    // channel by channel within one (whole row segments of the cube in memory order); channels
    // flagged in every pixel carry no weight at all (RM-Tools' mskPlanes).
    let words = nchan.div_ceil(64);
    let mut masks = vec![0u64; npix * words];
    const CHUNK: usize = 4096;
    let channel_used = masks
        .par_chunks_mut(CHUNK * words)
        .enumerate()
        .map(|(b, chunk)| {
            let s = b * CHUNK;
            let m = chunk.len() / words;
            let mut used = vec![false; nchan];
            for (c, used) in used.iter_mut().enumerate() {
                let (word, bit) = (c / 64, 1u64 << (c % 64));
                let row = c * npix + s;
                for (j, (qv, uv)) in q[row..row + m].iter().zip(&u[row..row + m]).enumerate() {
                    if qv.is_finite() && uv.is_finite() {
                        *used = true;
                    } else {
                        chunk[j * words + word] |= bit;
                    }
                }
            }
            used
        })
        .reduce(
            || vec![false; nchan],
            |a, b| a.iter().zip(&b).map(|(x, y)| *x || *y).collect(),
        );
    let w: Vec<f64> = weights
        .iter()
        .zip(&channel_used)
        .map(|(&x, &used)| if x.is_nan() || !used { 0.0 } else { x })
        .collect();
    let lam0 = lam0_sq(&w, &l2);
    let a: Vec<f64> = l2.iter().map(|l| ((l - lam0) as f32) as f64).collect();

    let mut fdf_re = vec![0f32; nphi * npix];
    let mut fdf_im = vec![0f32; nphi * npix];
    let (out_re, out_im) = (Shared(fdf_re.as_mut_ptr()), Shared(fdf_im.as_mut_ptr()));
    let cube = Cube { q, u, npix, w: &w };
    match p.transform.resolve(nphi, nchan) {
        Transform::Nufft => synth_nufft(&cube, &a, &axes, (&out_re, &out_im)),
        _ => synth_direct(&cube, &a, &axes, (&out_re, &out_im)),
    }

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

    /// 21 pixels (a whole NUFFT batch and part of one), each a Faraday-thin source at its own
    /// RM, with a flagged voxel, a channel flagged everywhere and one pixel blank throughout.
    fn test_cube() -> (Vec<f64>, usize, Vec<f32>, Vec<f32>, Vec<f64>) {
        let freqs: Vec<f64> = (0..40).map(|k| 800e6 + 5e6 * k as f64).collect();
        let npix = 21;
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
        q[3 * npix + 2] = f32::NAN;
        for i in 0..npix {
            q[10 * npix + i] = f32::NAN;
        }
        for c in 0..nchan {
            u[c * npix + BLANK] = f32::NAN;
        }
        let w: Vec<f64> = (0..nchan).map(|c| 1.0 + 0.01 * c as f64).collect();
        (freqs, npix, q, u, w)
    }
    const BLANK: usize = 17;

    fn params(transform: Transform) -> Synth3dParams {
        Synth3dParams {
            dphi: None,
            phi_max: None,
            n_samples: 5.0,
            fit_rmsf: false,
            transform,
        }
    }

    #[test]
    fn every_pixel_matches_the_1d_synthesis() {
        let (freqs, npix, q, u, w) = test_cube();
        let (nchan, l2) = (freqs.len(), lambda_sq(&freqs));
        for transform in [Transform::Direct, Transform::Nufft] {
            let s = rmsynth3d(&q, &u, npix, &freqs, &w, &params(transform));
            let nphi = s.axes.phi.len();
            for i in (0..npix).filter(|&i| i != BLANK) {
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
                        (a - re[k]).abs() < 2e-6 && (b - im[k]).abs() < 2e-6,
                        "{transform:?}: pixel {i} depth {k}: ({a}, {b}) vs ({}, {})",
                        re[k],
                        im[k]
                    );
                }
            }
            assert!((0..nphi).all(
                |k| s.fdf_re[k * npix + BLANK].is_nan() && s.fdf_im[k * npix + BLANK].is_nan()
            ));
            let (max_pi, peak) = peak_maps(&s.fdf_re, &s.fdf_im, &s.axes.phi, npix);
            for i in (0..npix).filter(|&i| i != BLANK) {
                let rm = -40.0 + 15.0 * i as f64;
                assert!(
                    (peak[i] as f64 - rm).abs() <= s.axes.dphi,
                    "{transform:?}: pixel {i}: peak {} vs {rm}",
                    peak[i]
                );
                assert!((max_pi[i] - 0.1).abs() < 0.01);
            }
            assert!(max_pi[BLANK].is_nan() && peak[BLANK].is_nan());
        }
    }

    #[test]
    fn auto_picks_the_cheaper_transform() {
        // The benchmark cube (815 depths, 288 channels) and the demo's (72 channels).
        assert_eq!(Transform::Auto.resolve(815, 288), Transform::Nufft);
        assert_eq!(Transform::Auto.resolve(101, 72), Transform::Direct);
        assert_eq!(Transform::Direct.resolve(815, 288), Transform::Direct);
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
            transform: Transform::Auto,
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
