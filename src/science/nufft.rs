//! A type-1 non-uniform FFT in float32, planned once for a set of points and applied to many
//! vectors: f(t) = Σ_c d_c e^{−i t x_c} for integer t = −half..=half. This is RM synthesis on a
//! symmetric Faraday-depth axis (x_c = 2 dφ (λ²_c − λ0²), t = φ/dφ), which RM-Tools also
//! evaluates with a NUFFT (finufft, tolerance 1e-6) for cubes.
//!
//! Method (Dutt–Rokhlin / finufft): spread each d_c onto an oversampled periodic grid of n
//! points with the "exponential of semicircle" kernel ψ(v) = exp(β(√(1 − (2v/w)²) − 1)) of w
//! grid cells, take one length-n FFT, and divide output t by the kernel's Fourier transform
//! ψ̂(t), computed by Gauss–Legendre quadrature. Every vector shares the points, so the kernel
//! values and grid offsets are computed once in the plan. Vectors are transformed `BATCH` at a
//! time with the vector index in the SIMD lanes, from spreading (w multiply-adds of `BATCH`
//! lanes per point for each of re and im; spreading one vector at a time instead stalls on
//! store-to-load forwarding, since neighbouring points overlap) through the FFT
//! ([`super::lane_fft`]) to the outputs, so nothing is ever transposed. The points are moved by
//! π (half the grid) before spreading, which turns the output phase into a sign (−1)^t and puts
//! RM synthesis's points (clustered about x = 0) in the middle of the grid, away from its wrap.
//!
//! Owns: the plan and its accuracy (≈ 1e-6 of the largest |f|, the float32 round-off level;
//! see the tests). Must never: know about pixels, cubes or files.

use super::lane_fft::{self, LaneFft};

/// Largest kernel width w (grid cells).
const MAX_W: usize = 16;
/// Padding of the spreading grid on the low side: a kernel may start w/2 cells below 0.
const OFF: usize = MAX_W / 2;
/// Vectors per transform call (the SIMD lanes).
pub const BATCH: usize = lane_fft::LANES;

/// One grid cell of a batch: the value of each of the `BATCH` vectors.
pub type Lanes = lane_fft::Lanes;
/// Target relative accuracy (finufft's `eps`, as RM-Tools asks for).
const EPS: f64 = 3e-7;
/// Smallest oversampling of the grid (1.5: for 815 depths n = 1250 = 2·5⁴, w = 10; at 1.75,
/// n = 1440 and w = 9, the transform was 15 % slower for the same accuracy; at 1.25 finufft's
/// width formula no longer reaches float32 accuracy).
pub const SIGMA: f64 = 1.5;

/// A planned type-1 NUFFT for fixed points.
pub struct Nufft1 {
    half: usize,
    n: usize,
    w: usize,
    /// Per point: first cell of its kernel on the padded grid (cell index + OFF).
    start: Vec<u32>,
    /// Per point: kernel values at its w cells (`MAX_W` stored).
    kern: Vec<[f32; MAX_W]>,
    /// Padded cells any kernel touches: lo..hi.
    lo: usize,
    hi: usize,
    /// Per output t (index t + half): (−1)^t/ψ̂(t).
    corr: Vec<f32>,
    fft: LaneFft,
}

/// Buffers a caller keeps between [`Nufft1::transform`] calls (one per thread).
#[derive(Default)]
pub struct Work {
    /// Padded spreading grids, re and im: padded cell p is grid cell (p − OFF) mod n.
    re: lane_fft::LaneVec,
    im: lane_fft::LaneVec,
    fft: lane_fft::Buffers,
}

/// Smallest even n ≥ `min` with no prime factor above 5 (the lengths the FFT has passes for).
fn fft_size(min: usize) -> usize {
    (min.max(2)..)
        .find(|&n| {
            if n % 2 == 1 {
                return false;
            }
            let mut m = n;
            for p in [2, 3, 5] {
                while m % p == 0 {
                    m /= p;
                }
            }
            m == 1
        })
        .expect("an unbounded range has a 5-smooth number")
}

/// Gauss–Legendre nodes and weights on [−1, 1] (Newton iteration on P_k).
fn gauss_legendre(k: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut x, mut w) = (vec![0.0; k], vec![0.0; k]);
    for i in 0..k {
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (k as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            // P_k(z) and P_{k−1}(z) by the three-term recurrence.
            let (mut p0, mut p1) = (1.0, z);
            for j in 2..=k {
                let p2 = ((2 * j - 1) as f64 * z * p1 - (j - 1) as f64 * p0) / j as f64;
                p0 = p1;
                p1 = p2;
            }
            dp = k as f64 * (z * p1 - p0) / (z * z - 1.0);
            let dz = p1 / dp;
            z -= dz;
            if dz.abs() < 1e-15 {
                break;
            }
        }
        x[i] = z;
        w[i] = 2.0 / ((1.0 - z * z) * dp * dp);
    }
    (x, w)
}

impl Nufft1 {
    /// Plan for points `x` (radians, any real values: they are taken modulo 2π) and outputs
    /// t = −half..=half, at the accuracy of a float32 direct sum (see the tests).
    pub fn new(x: &[f64], half: usize) -> Nufft1 {
        Nufft1::with(x, half, SIGMA, EPS)
    }

    /// Plan on the smallest 5-smooth grid n ≥ `sigma_min` (2 half + 1), with finufft's kernel
    /// width and shape for tolerance `eps` at that oversampling (widening the grid if the
    /// kernel would be wider than `MAX_W` cells).
    fn with(x: &[f64], half: usize, sigma_min: f64, eps: f64) -> Nufft1 {
        let nt = 2 * half + 1;
        let mut n = fft_size((sigma_min * nt as f64).ceil() as usize);
        let (w, beta) = loop {
            let sigma = n as f64 / nt as f64;
            let w = (-eps.ln() / (std::f64::consts::PI * (1.0 - 1.0 / sigma).sqrt())).ceil()
                as usize
                + 1;
            if w <= MAX_W {
                let beta = 0.97 * std::f64::consts::PI * w as f64 * (1.0 - 0.5 / sigma);
                break (w.max(2), beta);
            }
            n = fft_size(n + 1);
        };
        let half_w = w as f64 / 2.0;
        let psi = |v: f64| -> f64 {
            let z = v / half_w;
            if z.abs() < 1.0 {
                (beta * ((1.0 - z * z).sqrt() - 1.0)).exp()
            } else {
                0.0
            }
        };
        let h = std::f64::consts::TAU / n as f64;
        let mut start = Vec::with_capacity(x.len());
        let mut kern = Vec::with_capacity(x.len());
        for &xc in x {
            // Position in grid cells, in [0, n), after the move by π.
            let mut u = (xc + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU) / h;
            if u >= n as f64 {
                u -= n as f64;
            }
            let l0 = (u - half_w).ceil() as i64;
            start.push((l0 + OFF as i64) as u32);
            let mut k = [0f32; MAX_W];
            for (i, kv) in k.iter_mut().enumerate().take(w) {
                *kv = psi((l0 + i as i64) as f64 - u) as f32;
            }
            kern.push(k);
        }
        let lo = start.iter().copied().min().unwrap_or(0) as usize;
        let hi = start.iter().copied().max().map_or(0, |s| s as usize + w);
        // ψ̂(t) = ∫ ψ(v) e^{i t h v} dv over the kernel's support (ψ even: a cosine transform).
        let (gx, gw) = gauss_legendre(2 * w + 16);
        let corr = (0..nt)
            .map(|j| {
                let t = j as f64 - half as f64;
                let ft: f64 = gx
                    .iter()
                    .zip(&gw)
                    .map(|(&z, &wt)| wt * half_w * psi(z * half_w) * (t * h * z * half_w).cos())
                    .sum();
                let sign = if (j + half).is_multiple_of(2) {
                    1.0
                } else {
                    -1.0
                };
                (sign / ft) as f32
            })
            .collect();
        let fft = LaneFft::new(n);
        Nufft1 {
            half,
            n,
            w,
            start,
            kern,
            lo,
            hi,
            corr,
            fft,
        }
    }

    /// Outputs per vector: 2 half + 1.
    pub fn outputs(&self) -> usize {
        2 * self.half + 1
    }

    /// Transform `BATCH` vectors, given point-major: `re[c][v]`, `im[c][v]` is point c of
    /// vector v (unused lanes zero). Read the results with [`Nufft1::output`].
    pub fn transform(&self, re: &[Lanes], im: &[Lanes], work: &mut Work) {
        let n = self.n;
        assert!(
            re.len() == self.start.len() && im.len() == self.start.len(),
            "nufft: one value per point"
        );
        let cells = n + OFF + MAX_W;
        work.re.resize(cells);
        work.im.resize(cells);
        // Only lo..hi and the cells the padding folds onto are ever written (the FFT reads the
        // grid without writing it), so the rest stays zero from the first resize on.
        let (lo, hi) = (self.lo, self.hi);
        for range in [
            lo..hi,
            (lo + n).min(OFF + n)..OFF + n,
            OFF..hi.saturating_sub(n).max(OFF),
        ] {
            work.re[range.clone()].fill([0.0; BATCH]);
            work.im[range].fill([0.0; BATCH]);
        }
        spread(self, re, im, &mut work.re, &mut work.im);
        // Fold the padding onto the periodic grid OFF..n + OFF.
        for p in (lo..hi).filter(|&p| p < OFF || p >= n + OFF) {
            let q = if p < OFF { p + n } else { p - n };
            let (r, i) = (work.re[p], work.im[p]);
            for l in 0..BATCH {
                work.re[q][l] += r[l];
                work.im[q][l] += i[l];
            }
        }
        self.fft.process(
            &work.re[OFF..n + OFF],
            &work.im[OFF..n + OFF],
            &mut work.fft,
        );
    }

    /// Output t (index j = t + half, 0..outputs()) of every vector after
    /// [`Nufft1::transform`]: (re, im) lanes.
    #[inline(always)]
    pub fn output(&self, work: &Work, j: usize) -> (Lanes, Lanes) {
        let (yr, yi) = work.fft.output(self.cell(j));
        let c = self.corr[j];
        (yr.map(|v| v * c), yi.map(|v| v * c))
    }

    /// The FFT bin of output j: t = j − half modulo n.
    #[inline(always)]
    fn cell(&self, j: usize) -> usize {
        if j >= self.half {
            j - self.half
        } else {
            j + self.n - self.half
        }
    }
}

/// Adds every point's values times its kernel into the padded grids, with the widest vector
/// instructions this CPU has (chosen at run time, as the FFT and GEMM crates do).
fn spread(plan: &Nufft1, re: &[Lanes], im: &[Lanes], gre: &mut [Lanes], gim: &mut [Lanes]) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::science::simd::avx512() {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { spread_avx512(plan, re, im, gre, gim) };
        }
        if crate::science::simd::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { spread_avx2(plan, re, im, gre, gim) };
        }
    }
    spread_body(plan, re, im, gre, gim)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn spread_avx512(
    plan: &Nufft1,
    re: &[Lanes],
    im: &[Lanes],
    gre: &mut [Lanes],
    gim: &mut [Lanes],
) {
    use std::arch::x86_64::*;
    const _: () = assert!(BATCH == 16, "one 512-bit register per cell");
    let w = plan.w;
    for (((&s, k), dr), di) in plan.start.iter().zip(&plan.kern).zip(re).zip(im) {
        let s = s as usize;
        let (cr, ci) = (&mut gre[s..s + w], &mut gim[s..s + w]);
        // SAFETY: every pointer is to a whole [f32; 16] in bounds (slices checked above);
        // unaligned loads and stores have no alignment requirement.
        unsafe {
            let (vr, vi) = (_mm512_loadu_ps(dr.as_ptr()), _mm512_loadu_ps(di.as_ptr()));
            for i in 0..w {
                let kv = _mm512_set1_ps(k[i]);
                let (pr, pi) = (cr[i].as_mut_ptr(), ci[i].as_mut_ptr());
                _mm512_storeu_ps(pr, _mm512_fmadd_ps(kv, vr, _mm512_loadu_ps(pr)));
                _mm512_storeu_ps(pi, _mm512_fmadd_ps(kv, vi, _mm512_loadu_ps(pi)));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn spread_avx2(
    plan: &Nufft1,
    re: &[Lanes],
    im: &[Lanes],
    gre: &mut [Lanes],
    gim: &mut [Lanes],
) {
    use std::arch::x86_64::*;
    const _: () = assert!(BATCH == 16, "two 256-bit registers per cell");
    let w = plan.w;
    for (((&s, k), dr), di) in plan.start.iter().zip(&plan.kern).zip(re).zip(im) {
        let s = s as usize;
        let (cr, ci) = (&mut gre[s..s + w], &mut gim[s..s + w]);
        // SAFETY: as in `spread_avx512`, with two 8-lane halves of each [f32; 16].
        unsafe {
            let d = [
                _mm256_loadu_ps(dr.as_ptr()),
                _mm256_loadu_ps(dr.as_ptr().add(8)),
                _mm256_loadu_ps(di.as_ptr()),
                _mm256_loadu_ps(di.as_ptr().add(8)),
            ];
            for i in 0..w {
                let kv = _mm256_set1_ps(k[i]);
                let p = [
                    cr[i].as_mut_ptr(),
                    cr[i].as_mut_ptr().add(8),
                    ci[i].as_mut_ptr(),
                    ci[i].as_mut_ptr().add(8),
                ];
                for (ptr, dv) in p.into_iter().zip(d) {
                    _mm256_storeu_ps(ptr, _mm256_fmadd_ps(kv, dv, _mm256_loadu_ps(ptr)));
                }
            }
        }
    }
}

/// The portable spread (any CPU without AVX2).
fn spread_body(plan: &Nufft1, re: &[Lanes], im: &[Lanes], gre: &mut [Lanes], gim: &mut [Lanes]) {
    let w = plan.w;
    for (((&s, k), dr), di) in plan.start.iter().zip(&plan.kern).zip(re).zip(im) {
        let s = s as usize;
        for i in 0..w {
            for v in 0..BATCH {
                gre[s + i][v] += k[i] * dr[v];
                gim[s + i][v] += k[i] * di[v];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn direct(x: &[f64], d: &[(f64, f64)], half: usize) -> Vec<(f64, f64)> {
        (0..=2 * half)
            .map(|j| {
                let t = j as f64 - half as f64;
                x.iter()
                    .zip(d)
                    .fold((0.0, 0.0), |(sr, si), (&xc, &(re, im))| {
                        let (s, c) = (t * xc).sin_cos();
                        // (re + i im)(c − i s)
                        (sr + re * c + im * s, si + im * c - re * s)
                    })
            })
            .collect()
    }

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        let (x, w) = gauss_legendre(8);
        let sum: f64 = w.iter().sum();
        assert!((sum - 2.0).abs() < 1e-13);
        // ∫ x^14 = 2/15 (degree 2k − 1 = 15 is exact).
        let i: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(14)).sum();
        assert!((i - 2.0 / 15.0).abs() < 1e-13, "{i}");
    }

    #[test]
    fn fft_sizes_are_5_smooth() {
        assert_eq!(fft_size(1019), 1024);
        assert_eq!(fft_size(1025), 1080);
        assert_eq!(fft_size(7), 8);
    }

    #[test]
    fn agrees_with_the_direct_sum_to_float32_precision() {
        // Points as RM synthesis makes them (clustered in a fraction of the period) and spread
        // over several periods, odd and even counts of outputs.
        let mut rng = crate::simulate::Rng::new(3);
        for (npts, half, span) in [(288, 407, 1.4), (36, 60, 0.8), (100, 33, 20.0), (5, 2, 3.0)] {
            let x: Vec<f64> = (0..npts)
                .map(|k| -0.4 * span + span * (k as f64 / npts as f64).powf(1.3))
                .collect();
            let nvec = 3;
            let mut re = vec![[0f32; BATCH]; npts];
            let mut im = vec![[0f32; BATCH]; npts];
            let d: Vec<Vec<(f64, f64)>> = (0..nvec)
                .map(|_| {
                    (0..npts)
                        .map(|_| (rng.gauss() as f32 as f64, rng.gauss() as f32 as f64))
                        .collect()
                })
                .collect();
            let plan = Nufft1::new(&x, half);
            for (v, dv) in d.iter().enumerate() {
                for (c, &(r, i)) in dv.iter().enumerate() {
                    re[c][v] = r as f32;
                    im[c][v] = i as f32;
                }
            }
            let mut work = Work::default();
            plan.transform(&re, &im, &mut work);
            for (v, dv) in d.iter().enumerate() {
                let want = direct(&x, dv, half);
                let scale = want.iter().map(|(r, i)| r.hypot(*i)).fold(0.0, f64::max);
                let err = (0..plan.outputs())
                    .map(|j| {
                        let (gr, gi) = plan.output(&work, j);
                        (gr[v] as f64 - want[j].0).hypot(gi[v] as f64 - want[j].1)
                    })
                    .fold(0.0, f64::max);
                assert!(
                    err < 3e-6 * scale,
                    "{npts} points, half {half}: error {err:e} of {scale:e}"
                );
            }
        }
    }
}
