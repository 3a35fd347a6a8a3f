//! Common resolution (Arrakis's beamcon step, RACS-tools' `beamcon_2D`): the smallest Gaussian
//! beam every channel's restoring beam can be convolved to, and the Fourier-domain convolution
//! of an image from its beam to that one.
//!
//! A beam (FWHM major, minor in degrees, position angle east of north in degrees) is the
//! covariance Σ of its Gaussian; one beam can be convolved to another iff Σ_target − Σ_beam is
//! positive semi-definite (the target's half-power ellipse encloses the beam's). The common beam
//! is the minimum-area ellipse enclosing every beam's half-power ellipse (as radio_beam's
//! `common_beam`: Khachiyan's algorithm on points sampled on every ellipse), grown a little
//! until every beam is strictly inside and rounded up as Arrakis rounds it (BMAJ, BMIN to 0.1″,
//! BPA to 0.01°).
//!
//! Must never: open a file or read a parameter.

use rustfft::{num_complex::Complex32, FftPlanner};

/// FWHM = this × σ.
const FWHM_PER_SIGMA: f64 = 2.354_820_045_030_949_3;

/// A Gaussian restoring beam.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Beam {
    /// FWHM of the major axis, degrees.
    pub bmaj: f64,
    /// FWHM of the minor axis, degrees.
    pub bmin: f64,
    /// Position angle of the major axis, degrees east of north.
    pub bpa: f64,
}

impl Beam {
    /// A usable beam: finite, positive axes.
    pub fn is_valid(&self) -> bool {
        self.bmaj.is_finite()
            && self.bmin.is_finite()
            && self.bpa.is_finite()
            && self.bmaj > 0.0
            && self.bmin > 0.0
    }

    /// The covariance [σ_xx, σ_yy, σ_xy] in degrees², x east and y north.
    pub fn covariance(&self) -> [f64; 3] {
        let (smaj, smin) = (self.bmaj / FWHM_PER_SIGMA, self.bmin / FWHM_PER_SIGMA);
        // The major axis points at PA east of north: direction (sin PA, cos PA).
        let (s, c) = self.bpa.to_radians().sin_cos();
        let (a, b) = (smaj * smaj, smin * smin);
        [
            a * s * s + b * c * c,
            a * c * c + b * s * s,
            (a - b) * s * c,
        ]
    }

    /// The beam of a covariance (the inverse of [`Beam::covariance`]).
    pub fn from_covariance(cov: [f64; 3]) -> Beam {
        let [xx, yy, xy] = cov;
        let mean = 0.5 * (xx + yy);
        let diff = (0.25 * (xx - yy) * (xx - yy) + xy * xy).sqrt();
        let (a, b) = (mean + diff, (mean - diff).max(0.0));
        // The major axis direction (sin PA, cos PA) is the eigenvector of a: (a − yy, xy) or
        // (xy, a − xx), whichever is not (nearly) zero.
        let (v1, v2) = ((a - yy, xy), (xy, a - xx));
        let (vx, vy) = if v1.0.hypot(v1.1) >= v2.0.hypot(v2.1) {
            v1
        } else {
            v2
        };
        let pa = if diff == 0.0 {
            0.0
        } else {
            normalise_pa(vx.atan2(vy).to_degrees())
        };
        Beam {
            bmaj: a.sqrt() * FWHM_PER_SIGMA,
            bmin: b.sqrt() * FWHM_PER_SIGMA,
            bpa: pa,
        }
    }

    /// Area of the beam in degrees² (π/(4 ln 2)·BMAJ·BMIN).
    pub fn area(&self) -> f64 {
        std::f64::consts::PI / (4.0 * 2f64.ln()) * self.bmaj * self.bmin
    }

    /// Whether `self` can be convolved to `target`: Σ_target − Σ_self is positive
    /// semi-definite, up to `tol` (degrees²).
    pub fn fits_inside(&self, target: &Beam, tol: f64) -> bool {
        let (a, b) = (self.covariance(), target.covariance());
        let d = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
        let mean = 0.5 * (d[0] + d[1]);
        let diff = (0.25 * (d[0] - d[1]) * (d[0] - d[1]) + d[2] * d[2]).sqrt();
        mean - diff >= -tol
    }
}

/// A position angle in (−90°, 90°].
fn normalise_pa(pa: f64) -> f64 {
    let mut p = pa % 180.0;
    if p <= -90.0 {
        p += 180.0;
    }
    if p > 90.0 {
        p -= 180.0;
    }
    p
}

/// The smallest beam every beam of `beams` fits inside, rounded up as Arrakis does (BMAJ and
/// BMIN up to the next 0.1″, BPA up to the next 0.01°); `None` when `beams` is empty.
pub fn common_beam(beams: &[Beam]) -> Option<Beam> {
    let first = *beams.first()?;
    // The largest beam may already enclose the others (the usual case: one frequency's beam).
    let largest = beams
        .iter()
        .copied()
        .max_by(|a, b| a.area().total_cmp(&b.area()))
        .unwrap_or(first);
    let tight = if beams.iter().all(|b| b.fits_inside(&largest, 0.0)) {
        largest
    } else {
        enclosing(beams)
    };
    // Round up, then grow until every beam fits (the sampled ellipse may cut a corner).
    let tol = 1e-14;
    let mut out = round_up(tight);
    for _ in 0..1000 {
        if beams.iter().all(|b| b.fits_inside(&out, tol)) {
            return Some(out);
        }
        out.bmaj += 0.1 / 3600.0;
        out.bmin = (out.bmin + 0.1 / 3600.0).min(out.bmaj);
    }
    Some(out)
}

/// BMAJ, BMIN up to the next 0.1″ (Arrakis: round(x + 0.05, 1) in arcsec), BPA up to 0.01°.
fn round_up(b: Beam) -> Beam {
    let up = |deg: f64| ((deg * 3600.0 + 0.05) * 10.0).round() / 10.0 / 3600.0;
    Beam {
        bmaj: up(b.bmaj),
        bmin: up(b.bmin),
        bpa: (b.bpa * 100.0).ceil() / 100.0,
    }
}

/// The minimum-area origin-centred ellipse enclosing 200 points sampled on each beam's
/// half-power ellipse (and their mirror images), by Khachiyan's algorithm, as a beam.
fn enclosing(beams: &[Beam]) -> Beam {
    const SAMPLES: usize = 200;
    let mut pts: Vec<[f64; 2]> = Vec::with_capacity(beams.len() * SAMPLES);
    for b in beams {
        let (s, c) = b.bpa.to_radians().sin_cos();
        let (ha, hb) = (b.bmaj / 2.0, b.bmin / 2.0);
        for k in 0..SAMPLES {
            let t = 2.0 * std::f64::consts::PI * k as f64 / SAMPLES as f64;
            let (u, v) = (ha * t.cos(), hb * t.sin());
            // Major axis along (sin PA, cos PA), minor along (cos PA, -sin PA).
            pts.push([u * s + v * c, u * c - v * s]);
        }
    }
    // Scale to order one for the iteration.
    let scale = pts
        .iter()
        .map(|p| p[0].hypot(p[1]))
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    for p in &mut pts {
        p[0] /= scale;
        p[1] /= scale;
    }
    let n = pts.len();
    let d = 2.0;
    let mut u = vec![1.0 / n as f64; n];
    let mut x = [0.0f64; 3];
    for _ in 0..10_000 {
        x = [0.0; 3];
        for (p, w) in pts.iter().zip(&u) {
            x[0] += w * p[0] * p[0];
            x[1] += w * p[1] * p[1];
            x[2] += w * p[0] * p[1];
        }
        let det = x[0] * x[1] - x[2] * x[2];
        let inv = [x[1] / det, x[0] / det, -x[2] / det];
        let (mut j, mut g) = (0, f64::NEG_INFINITY);
        for (i, p) in pts.iter().enumerate() {
            let gi = inv[0] * p[0] * p[0] + inv[1] * p[1] * p[1] + 2.0 * inv[2] * p[0] * p[1];
            if gi > g {
                g = gi;
                j = i;
            }
        }
        if g <= d * (1.0 + 1e-9) {
            break;
        }
        let step = (g - d) / (d * (g - 1.0));
        for w in &mut u {
            *w *= 1.0 - step;
        }
        u[j] += step;
    }
    // The ellipse {p : pᵀ (d X)⁻¹ p ≤ 1}: its matrix d X is the half-power ellipse's "radius²"
    // matrix, (FWHM/2)² along each axis = σ² (FWHM/2σ)².
    let r2_per_sigma2 = (FWHM_PER_SIGMA / 2.0).powi(2);
    let s2 = scale * scale * d / r2_per_sigma2;
    Beam::from_covariance([x[0] * s2, x[1] * s2, x[2] * s2])
}

/// Convolve one image (x fastest, `nx` × `ny`, pixels `cell_deg` square, x growing west as in a
/// sky image) from beam `from` to beam `to`, keeping Jy/beam: in the Fourier domain, multiplied
/// by (area_to / area_from)·exp(−2π² kᵀ(Σ_to − Σ_from)k). Blank (NaN) pixels count as 0, and a
/// pixel is blank in the output where the blank mask convolved with the same Gaussian
/// (normalised) reaches 0.999 (RACS-tools' rule).
pub fn convolve_to(
    image: &[f32],
    nx: usize,
    ny: usize,
    cell_deg: f64,
    from: Beam,
    to: Beam,
) -> Vec<f32> {
    let a = from.covariance();
    let b = to.covariance();
    // Σ in pixels²; x is flipped (west) but only the sign of the xy term changes.
    let c2 = cell_deg * cell_deg;
    let k = [(b[0] - a[0]) / c2, (b[1] - a[1]) / c2, -(b[2] - a[2]) / c2];
    let ratio = (to.area() / from.area()) as f32;
    let plan = Plan::new(nx, ny);
    // Transfer function per (kx, ky) of the half plane, kx, ky in cycles per pixel; laid out as
    // the transposed spectrum (ky fastest).
    let freq = |i: usize, m: usize| {
        let (i, m) = (i as f64, m as f64);
        if i <= m / 2.0 {
            i / m
        } else {
            (i - m) / m
        }
    };
    let hx = nx / 2 + 1;
    let transfer: Vec<f32> = (0..hx * ny)
        .map(|p| {
            let (u, v) = (freq(p / ny, nx), freq(p % ny, ny));
            let q = k[0] * u * u + k[1] * v * v + 2.0 * k[2] * u * v;
            (-2.0 * std::f64::consts::PI.powi(2) * q).exp() as f32
        })
        .collect();
    let any_blank = image.iter().any(|v| !v.is_finite());
    let clean: Vec<f32> = if any_blank {
        image
            .iter()
            .map(|&v| if v.is_finite() { v } else { 0.0 })
            .collect()
    } else {
        image.to_vec()
    };
    let mut out = plan.convolve(clean, &transfer, ratio);
    if any_blank {
        let mask: Vec<f32> = image
            .iter()
            .map(|v| if v.is_finite() { 0.0 } else { 1.0 })
            .collect();
        let mask = plan.convolve(mask, &transfer, 1.0);
        for (o, m) in out.iter_mut().zip(&mask) {
            if *m >= 0.999 {
                *o = f32::NAN;
            }
        }
    }
    out
}

/// The FFTs of one image shape: real-to-complex along x, complex along y (on the transposed
/// half spectrum, all columns in one call).
struct Plan {
    nx: usize,
    ny: usize,
    rx: std::sync::Arc<dyn realfft::RealToComplex<f32>>,
    irx: std::sync::Arc<dyn realfft::ComplexToReal<f32>>,
    fy: std::sync::Arc<dyn rustfft::Fft<f32>>,
    ify: std::sync::Arc<dyn rustfft::Fft<f32>>,
}

impl Plan {
    fn new(nx: usize, ny: usize) -> Plan {
        let mut real = realfft::RealFftPlanner::<f32>::new();
        let mut cplx = FftPlanner::<f32>::new();
        Plan {
            nx,
            ny,
            rx: real.plan_fft_forward(nx),
            irx: real.plan_fft_inverse(nx),
            fy: cplx.plan_fft_forward(ny),
            ify: cplx.plan_fft_inverse(ny),
        }
    }

    /// `data` convolved: its spectrum times `transfer` (transposed half plane) times `gain`.
    fn convolve(&self, mut data: Vec<f32>, transfer: &[f32], gain: f32) -> Vec<f32> {
        let (nx, ny) = (self.nx, self.ny);
        let hx = nx / 2 + 1;
        let zero = Complex32::new(0.0, 0.0);
        // Rows: real → half spectrum, row by row into `spec` (ny × hx).
        let mut spec = vec![zero; ny * hx];
        for (row, out) in data.chunks_mut(nx).zip(spec.chunks_mut(hx)) {
            // Lengths match the plan: no error possible.
            let _ = self.rx.process(row, out);
        }
        // Columns: transpose (hx × ny), every column's FFT in one call, filter, back.
        let mut cols = vec![zero; hx * ny];
        transpose(&spec, &mut cols, hx, ny);
        self.fy.process(&mut cols);
        let norm = gain / (nx * ny) as f32;
        for (v, t) in cols.iter_mut().zip(transfer) {
            *v *= t * norm;
        }
        self.ify.process(&mut cols);
        transpose(&cols, &mut spec, ny, hx);
        for (out, row) in data.chunks_mut(nx).zip(spec.chunks_mut(hx)) {
            // The transfer is even, so the spectrum stays Hermitian; rounding leaves the DC
            // and Nyquist terms a trace of imaginary part, which the real inverse must not see.
            row[0].im = 0.0;
            if nx % 2 == 0 {
                row[hx - 1].im = 0.0;
            }
            let _ = self.irx.process(row, out);
        }
        data
    }
}

/// `dst` (cols × rows) = transpose of `src` (rows × cols, row-major), in cache-sized blocks.
fn transpose(src: &[Complex32], dst: &mut [Complex32], cols: usize, rows: usize) {
    const B: usize = 32;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arcsec(bmaj: f64, bmin: f64, bpa: f64) -> Beam {
        Beam {
            bmaj: bmaj / 3600.0,
            bmin: bmin / 3600.0,
            bpa,
        }
    }

    #[test]
    fn covariance_round_trips() {
        for b in [
            arcsec(20.0, 10.0, 30.0),
            arcsec(15.0, 15.0, 0.0),
            arcsec(25.0, 12.0, -60.0),
        ] {
            let c = Beam::from_covariance(b.covariance());
            assert!(
                (c.bmaj - b.bmaj).abs() < 1e-12 && (c.bmin - b.bmin).abs() < 1e-12,
                "{b:?} {c:?}"
            );
            if b.bmaj != b.bmin {
                assert!((c.bpa - b.bpa).abs() < 1e-6, "{b:?} {c:?}");
            }
        }
    }

    #[test]
    fn the_common_beam_encloses_every_beam_and_is_rounded_up() {
        // One beam enclosing the rest: that beam, rounded.
        let beams = [arcsec(20.04, 10.0, 30.0), arcsec(15.0, 9.0, 30.0)];
        let c = common_beam(&beams).unwrap();
        assert!(
            (c.bmaj * 3600.0 - 20.1).abs() < 1e-9 && (c.bmin * 3600.0 - 10.1).abs() < 1e-9,
            "{c:?}"
        );
        // Two crossed beams: a near-circular beam about the size of both majors.
        let crossed = [arcsec(20.0, 10.0, 0.0), arcsec(20.0, 10.0, 90.0)];
        let c = common_beam(&crossed).unwrap();
        assert!(crossed.iter().all(|b| b.fits_inside(&c, 0.0)), "{c:?}");
        assert!(c.bmaj * 3600.0 < 21.0 && c.bmin * 3600.0 > 19.5, "{c:?}");
        // Beams over a band (frequency-scaled, position angles wandering): every one fits, and
        // the area is not much above the largest one's.
        let band: Vec<Beam> = (0..36)
            .map(|i| {
                arcsec(
                    18.0 * (1.0 + 0.01 * i as f64),
                    12.0 * (1.0 + 0.008 * i as f64),
                    40.0 + i as f64,
                )
            })
            .collect();
        let c = common_beam(&band).unwrap();
        assert!(band.iter().all(|b| b.fits_inside(&c, 0.0)));
        let largest = band.iter().map(Beam::area).fold(0.0, f64::max);
        assert!(c.area() < 1.25 * largest, "{c:?}");
        assert_eq!(common_beam(&[]), None);
    }

    /// Second moments of a point source image → FWHM major, minor (pixels).
    fn moments(img: &[f32], nx: usize) -> (f64, f64) {
        let (mut s, mut sx, mut sy) = (0.0, 0.0, 0.0);
        for (p, &v) in img.iter().enumerate() {
            let v = v as f64;
            s += v;
            sx += v * (p % nx) as f64;
            sy += v * (p / nx) as f64;
        }
        let (cx, cy) = (sx / s, sy / s);
        let (mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0);
        for (p, &v) in img.iter().enumerate() {
            let (dx, dy) = ((p % nx) as f64 - cx, (p / nx) as f64 - cy);
            xx += v as f64 * dx * dx;
            yy += v as f64 * dy * dy;
            xy += v as f64 * dx * dy;
        }
        let b = Beam::from_covariance([xx / s, yy / s, -xy / s]);
        (b.bmaj, b.bmin)
    }

    #[test]
    fn a_point_source_convolved_has_the_target_beam_and_its_peak() {
        let (nx, ny, cell) = (128usize, 96usize, 2.0 / 3600.0);
        let from = arcsec(12.0, 8.0, 20.0);
        let to = arcsec(20.0, 16.0, -10.0);
        // A 1 Jy point source at (60, 50) in a Jy/beam image of beam `from`.
        let cov = from.covariance();
        let c2 = cell * cell;
        let (a, b, c) = (cov[0] / c2, cov[1] / c2, -cov[2] / c2);
        let det = a * b - c * c;
        let img: Vec<f32> = (0..nx * ny)
            .map(|p| {
                let (x, y) = ((p % nx) as f64 - 60.0, (p / nx) as f64 - 50.0);
                let q = (b * x * x + a * y * y - 2.0 * c * x * y) / det;
                (-0.5 * q).exp() as f32
            })
            .collect();
        let out = convolve_to(&img, nx, ny, cell, from, to);
        let peak = out.iter().fold(0f32, |m, v| m.max(*v));
        assert!((peak - 1.0).abs() < 2e-3, "peak {peak}");
        let (maj, min) = moments(&out, nx);
        assert!(
            (maj * cell * 3600.0 - 20.0).abs() < 0.05,
            "{}",
            maj * cell * 3600.0
        );
        assert!(
            (min * cell * 3600.0 - 16.0).abs() < 0.05,
            "{}",
            min * cell * 3600.0
        );
        // Blanks: a blank plane stays blank; a blank corner stays blank, the source does not.
        let blank = vec![f32::NAN; nx * ny];
        assert!(convolve_to(&blank, nx, ny, cell, from, to)
            .iter()
            .all(|v| v.is_nan()));
        let mut holed = img.clone();
        for y in 0..40 {
            for x in 0..40 {
                holed[y * nx + x] = f32::NAN;
            }
        }
        let out = convolve_to(&holed, nx, ny, cell, from, to);
        assert!(out[20 * nx + 20].is_nan() && out[50 * nx + 60].is_finite());
    }
}
