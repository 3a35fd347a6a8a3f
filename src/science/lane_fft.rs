//! Forward FFTs of `LANES` complex vectors at once, vectorised across the vectors: element k of
//! every vector sits in one `[f32; LANES]` (real and imaginary parts apart), so each butterfly
//! is a handful of whole-register adds and multiply-adds and the data never needs transposing
//! for the NUFFT's spreading (which fills such lanes) or for reading the outputs out per depth.
//!
//! A Stockham autosort transform (no bit reversal): one pass per factor of n, radix 4, 2, 3 and
//! 5, reading one buffer and writing another. The first pass reads the caller's input and
//! leaves it untouched.
//!
//! Owns: the plan (factors, twiddles) and the passes. Must never: allocate per call beyond
//! growing the caller's buffers.

/// Vectors per transform.
pub const LANES: usize = 16;

/// One element of every vector.
pub type Lanes = [f32; LANES];

/// One [`Lanes`] on a cache line of its own: the storage of [`LaneVec`].
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line(Lanes);

/// A growable array of [`Lanes`] whose elements each fill one 64-byte cache line exactly, so
/// that a whole-vector load or store never splits across two lines (which costs Intel cores
/// about twice a plain access; `Vec<Lanes>` is only 4-byte aligned).
#[derive(Default, Clone)]
pub struct LaneVec(Vec<Line>);

impl LaneVec {
    /// Grow or shrink to `n` elements; new elements are zero.
    pub fn resize(&mut self, n: usize) {
        self.0.resize(n, Line([0.0; LANES]));
    }
}

impl std::ops::Deref for LaneVec {
    type Target = [Lanes];
    fn deref(&self) -> &[Lanes] {
        // SAFETY: Line is repr(C) around one Lanes with no padding (64 bytes, align 64), so a
        // slice of Lines is a slice of Lanes of the same length.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast(), self.0.len()) }
    }
}

impl std::ops::DerefMut for LaneVec {
    fn deref_mut(&mut self) -> &mut [Lanes] {
        // SAFETY: as in deref; the borrow of self is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), self.0.len()) }
    }
}

/// One pass: radix, the product of the earlier radices, and its twiddles e^{−2πi r j/(ns R)}
/// for j < ns, r < R (index j R + r).
struct Pass {
    radix: usize,
    ns: usize,
    tw: Vec<(f32, f32)>,
}

/// A planned length-n transform, n with no prime factor above 5.
pub struct LaneFft {
    n: usize,
    passes: Vec<Pass>,
}

/// Scratch for [`LaneFft::process`]: two ping-pong buffers of n elements each for re and im.
#[derive(Default)]
pub struct Buffers {
    re: [LaneVec; 2],
    im: [LaneVec; 2],
    /// Which of the two holds the last result.
    out: usize,
}

impl Buffers {
    /// The transform's output, element k of every vector: (re, im).
    #[inline]
    pub fn output(&self, k: usize) -> (&Lanes, &Lanes) {
        (&self.re[self.out][k], &self.im[self.out][k])
    }
}

impl LaneFft {
    /// Plan a forward transform of length `n` (y_k = Σ_j x_j e^{−2πi jk/n}).
    ///
    /// # Panics
    /// If n has a prime factor above 5 or is 0.
    pub fn new(n: usize) -> LaneFft {
        assert!(n > 0, "lane FFT of length 0");
        let mut radices = Vec::new();
        let mut m = n;
        for p in [4, 2, 3, 5] {
            while m.is_multiple_of(p) {
                radices.push(p);
                m /= p;
            }
        }
        assert_eq!(m, 1, "lane FFT length {n} has a prime factor above 5");
        let mut ns = 1;
        let mut passes = Vec::new();
        for radix in radices {
            let tw = (0..ns)
                .flat_map(|j| {
                    (0..radix).map(move |r| {
                        let a = -std::f64::consts::TAU * (r * j) as f64 / (ns * radix) as f64;
                        (a.cos() as f32, a.sin() as f32)
                    })
                })
                .collect();
            passes.push(Pass { radix, ns, tw });
            ns *= radix;
        }
        LaneFft { n, passes }
    }

    /// Transform `LANES` vectors given as `re`, `im` (n elements each); the result is read with
    /// [`Buffers::output`].
    pub fn process(&self, re: &[Lanes], im: &[Lanes], buf: &mut Buffers) {
        assert!(
            re.len() == self.n && im.len() == self.n,
            "lane FFT: wrong length"
        );
        for b in buf.re.iter_mut().chain(buf.im.iter_mut()) {
            b.resize(self.n);
        }
        #[cfg(target_arch = "x86_64")]
        {
            if crate::science::simd::avx512() {
                // SAFETY: the CPU has AVX-512F (checked just above).
                return unsafe { process_avx512(self, re, im, buf) };
            }
            if crate::science::simd::avx2_fma() {
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                return unsafe { process_avx2(self, re, im, buf) };
            }
        }
        process_body(self, re, im, buf)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn process_avx512(plan: &LaneFft, re: &[Lanes], im: &[Lanes], buf: &mut Buffers) {
    process_body(plan, re, im, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn process_avx2(plan: &LaneFft, re: &[Lanes], im: &[Lanes], buf: &mut Buffers) {
    process_body(plan, re, im, buf)
}

/// The passes, compiled once per instruction set (inlined into the callers above).
#[inline(always)]
fn process_body(plan: &LaneFft, re: &[Lanes], im: &[Lanes], buf: &mut Buffers) {
    let [r0, r1] = &mut buf.re;
    let [i0, i1] = &mut buf.im;
    let mut out = 0;
    for (k, pass) in plan.passes.iter().enumerate() {
        // Pass 0 reads the input; later passes read what the previous one wrote.
        let (xr, xi, yr, yi): (&[Lanes], &[Lanes], &mut [Lanes], &mut [Lanes]) = match (k, out) {
            (0, _) => (re, im, &mut r0[..], &mut i0[..]),
            (_, 0) => (&r0[..], &i0[..], &mut r1[..], &mut i1[..]),
            _ => (&r1[..], &i1[..], &mut r0[..], &mut i0[..]),
        };
        match pass.radix {
            2 => run_pass::<2>(plan.n, pass, xr, xi, yr, yi),
            3 => run_pass::<3>(plan.n, pass, xr, xi, yr, yi),
            4 => run_pass::<4>(plan.n, pass, xr, xi, yr, yi),
            _ => run_pass::<5>(plan.n, pass, xr, xi, yr, yi),
        }
        out = if k == 0 { 0 } else { 1 - out };
    }
    if plan.passes.is_empty() {
        r0.copy_from_slice(re);
        i0.copy_from_slice(im);
    }
    buf.out = out;
}

/// One Stockham pass of radix R: for each j < n/R, the R elements j + r n/R, twiddled, go
/// through an R-point DFT to (j / ns) ns R + j % ns + r ns.
#[inline(always)]
fn run_pass<const R: usize>(
    n: usize,
    pass: &Pass,
    xr: &[Lanes],
    xi: &[Lanes],
    yr: &mut [Lanes],
    yi: &mut [Lanes],
) {
    let (m, ns) = (n / R, pass.ns);
    for block in 0..m / ns {
        for jj in 0..ns {
            let j = block * ns + jj;
            let mut vr = [[0f32; LANES]; R];
            let mut vi = [[0f32; LANES]; R];
            vr[0] = xr[j];
            vi[0] = xi[j];
            for r in 1..R {
                let (a, b) = (&xr[j + r * m], &xi[j + r * m]);
                if ns == 1 {
                    // The first pass: every twiddle is 1.
                    vr[r] = *a;
                    vi[r] = *b;
                    continue;
                }
                let (c, s) = pass.tw[jj * R + r];
                for l in 0..LANES {
                    vr[r][l] = a[l] * c - b[l] * s;
                    vi[r][l] = a[l] * s + b[l] * c;
                }
            }
            butterfly::<R>(&mut vr, &mut vi);
            let d = block * ns * R + jj;
            for r in 0..R {
                yr[d + r * ns] = vr[r];
                yi[d + r * ns] = vi[r];
            }
        }
    }
}

/// The R-point forward DFT of R lane vectors, in place.
#[inline(always)]
fn butterfly<const R: usize>(vr: &mut [Lanes; R], vi: &mut [Lanes; R]) {
    match R {
        2 => {
            for l in 0..LANES {
                let (ar, ai, br, bi) = (vr[0][l], vi[0][l], vr[1][l], vi[1][l]);
                vr[0][l] = ar + br;
                vi[0][l] = ai + bi;
                vr[1][l] = ar - br;
                vi[1][l] = ai - bi;
            }
        }
        3 => {
            // ω = e^{−2πi/3}: y1,2 = a0 − (a1 + a2)/2 ∓ i (√3/2)(a1 − a2).
            let h = (3f32).sqrt() / 2.0;
            for l in 0..LANES {
                let (sr, si) = (vr[1][l] + vr[2][l], vi[1][l] + vi[2][l]);
                let (dr, di) = (vr[1][l] - vr[2][l], vi[1][l] - vi[2][l]);
                let (mr, mi) = (vr[0][l] - 0.5 * sr, vi[0][l] - 0.5 * si);
                vr[0][l] += sr;
                vi[0][l] += si;
                vr[1][l] = mr + h * di;
                vi[1][l] = mi - h * dr;
                vr[2][l] = mr - h * di;
                vi[2][l] = mi + h * dr;
            }
        }
        4 => {
            // ω = −i: y0,2 = (a0 + a2) ± (a1 + a3), y1,3 = (a0 − a2) ∓ i (a1 − a3).
            for l in 0..LANES {
                let (t0r, t0i) = (vr[0][l] + vr[2][l], vi[0][l] + vi[2][l]);
                let (t1r, t1i) = (vr[0][l] - vr[2][l], vi[0][l] - vi[2][l]);
                let (t2r, t2i) = (vr[1][l] + vr[3][l], vi[1][l] + vi[3][l]);
                let (t3r, t3i) = (vr[1][l] - vr[3][l], vi[1][l] - vi[3][l]);
                vr[0][l] = t0r + t2r;
                vi[0][l] = t0i + t2i;
                vr[2][l] = t0r - t2r;
                vi[2][l] = t0i - t2i;
                vr[1][l] = t1r + t3i;
                vi[1][l] = t1i - t3r;
                vr[3][l] = t1r - t3i;
                vi[3][l] = t1i + t3r;
            }
        }
        5 => {
            // ω^k = cos(2πk/5) − i sin(2πk/5); pairs (1, 4) and (2, 3) are conjugate.
            let (c1, c2) = (
                (std::f32::consts::TAU / 5.0).cos(),
                (2.0 * std::f32::consts::TAU / 5.0).cos(),
            );
            let (s1, s2) = (
                (std::f32::consts::TAU / 5.0).sin(),
                (2.0 * std::f32::consts::TAU / 5.0).sin(),
            );
            for l in 0..LANES {
                let (s14r, s14i) = (vr[1][l] + vr[4][l], vi[1][l] + vi[4][l]);
                let (d14r, d14i) = (vr[1][l] - vr[4][l], vi[1][l] - vi[4][l]);
                let (s23r, s23i) = (vr[2][l] + vr[3][l], vi[2][l] + vi[3][l]);
                let (d23r, d23i) = (vr[2][l] - vr[3][l], vi[2][l] - vi[3][l]);
                let (a0r, a0i) = (vr[0][l], vi[0][l]);
                // y1,4 = A1 ∓ i B1, y2,3 = A2 ∓ i B2.
                let (a1r, a1i) = (a0r + c1 * s14r + c2 * s23r, a0i + c1 * s14i + c2 * s23i);
                let (b1r, b1i) = (s1 * d14r + s2 * d23r, s1 * d14i + s2 * d23i);
                let (a2r, a2i) = (a0r + c2 * s14r + c1 * s23r, a0i + c2 * s14i + c1 * s23i);
                let (b2r, b2i) = (s2 * d14r - s1 * d23r, s2 * d14i - s1 * d23i);
                vr[0][l] = a0r + s14r + s23r;
                vi[0][l] = a0i + s14i + s23i;
                vr[1][l] = a1r + b1i;
                vi[1][l] = a1i - b1r;
                vr[4][l] = a1r - b1i;
                vi[4][l] = a1i + b1r;
                vr[2][l] = a2r + b2i;
                vi[2][l] = a2i - b2r;
                vr[3][l] = a2r - b2i;
                vi[3][l] = a2i + b2r;
            }
        }
        _ => unreachable!("radices are 2, 3, 4 and 5"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_direct_dft_for_every_radix_mix() {
        let mut rng = crate::simulate::Rng::new(9);
        for n in [1, 2, 3, 4, 5, 8, 12, 30, 45, 60, 96, 100, 1440] {
            let re: Vec<Lanes> = (0..n)
                .map(|_| std::array::from_fn(|_| rng.gauss() as f32))
                .collect();
            let im: Vec<Lanes> = (0..n)
                .map(|_| std::array::from_fn(|_| rng.gauss() as f32))
                .collect();
            let plan = LaneFft::new(n);
            let mut buf = Buffers::default();
            plan.process(&re, &im, &mut buf);
            for l in [0, 7, LANES - 1] {
                let mut worst = 0f64;
                for k in 0..n {
                    let (mut sr, mut si) = (0f64, 0f64);
                    for j in 0..n {
                        let a = -std::f64::consts::TAU * ((j * k) % n) as f64 / n as f64;
                        let (s, c) = a.sin_cos();
                        let (xr, xi) = (re[j][l] as f64, im[j][l] as f64);
                        sr += xr * c - xi * s;
                        si += xr * s + xi * c;
                    }
                    let (yr, yi) = buf.output(k);
                    worst = worst.max((yr[l] as f64 - sr).hypot(yi[l] as f64 - si));
                }
                // float32 round-off grows as √n log n for unit-variance inputs.
                let tol = 2e-6 * (n as f64).sqrt() * (n as f64).log2().max(1.0);
                assert!(worst < tol, "n {n} lane {l}: error {worst:e}");
            }
        }
    }
}
