//! Interpolation of a channel plane at a fractional pixel, as linmos regrids each beam's cutout
//! onto the mosaic grid, by one of the [`Method`]s yandasoft's `linmos.regrid.method` names:
//! bicubic (Keys' kernel, a = −0.5; linmos's default here) where the 4×4 neighbourhood is inside
//! the image and free of blanks and bilinear otherwise, bilinear (yandasoft's default, and so
//! what Arrakis's linmos runs get), or nearest; NaN outside.
//!
//! Must never: open a file. The weights of a position are the same for every channel, so they are
//! worked out once ([`stencil`]) and applied per channel ([`sample`]).

use super::layout::{ChannelGroups, CubeView, CHANNEL_GROUP};

/// Keys' cubic convolution kernel (a = −0.5): interpolates exactly at the samples, reproduces
/// quadratics, and loses far less of a beam-sized peak between pixels than bilinear does (a
/// Gaussian of FWHM 3 pixels sampled half a pixel off in x and y: bilinear gives 0.86 of the
/// peak, this 0.96).
pub fn keys(t: f64) -> f64 {
    let t = t.abs();
    if t <= 1.0 {
        (1.5 * t - 2.5) * t * t + 1.0
    } else if t < 2.0 {
        ((-0.5 * t + 2.5) * t - 4.0) * t + 2.0
    } else {
        0.0
    }
}

/// How a plane is interpolated between its pixels (yandasoft's `linmos.regrid.method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// The nearest pixel.
    Nearest,
    /// Bilinear between the four pixels around: yandasoft's default, which Arrakis's linmos
    /// parsets leave in place.
    Linear,
    /// Bicubic (Keys, a = −0.5) where the 4×4 neighbourhood is inside the plane and free of
    /// blanks, bilinear otherwise.
    Cubic,
}

impl Method {
    /// The method of a `linmos_regrid` value (`cubic`, `linear`, `nearest`); otherwise what
    /// is wrong, to report (the parameter's declared choices refuse other values before a
    /// stage runs, so only a caller that skips them meets it).
    pub fn from_name(name: &str) -> Result<Method, String> {
        match name {
            "nearest" => Ok(Method::Nearest),
            "linear" => Ok(Method::Linear),
            "cubic" => Ok(Method::Cubic),
            _ => Err(format!(
                "linmos_regrid '{name}' is not one of cubic, linear, nearest"
            )),
        }
    }
}

/// Where a fractional pixel falls in a plane and its interpolation weights.
#[derive(Clone, Debug)]
pub struct Stencil {
    /// Bicubic: the 4×4 neighbourhood's corner and Keys weights along x and y, when the
    /// neighbourhood is inside the image.
    cubic: Option<(usize, usize, [f64; 4], [f64; 4])>,
    /// Bilinear: corners (x0, y0), (x1, y1) and fractions, the fallback.
    lin: (usize, usize, usize, usize, f64, f64),
}

impl Stencil {
    /// The same position, bilinear only.
    pub fn bilinear(&self) -> Stencil {
        Stencil {
            cubic: None,
            ..self.clone()
        }
    }
}

/// How near a pixel's centre (in pixels) a position counts as on it: a round trip through the
/// sky (pixel → RA, Dec → pixel) lands within ~1e-12 of where it began.
pub const ON_SAMPLE: f64 = 1e-9;

/// The stencil of fractional pixel (x, y) in an `nx × ny` plane by `method`; `None` outside
/// it (the same positions whatever the method). A coordinate within [`ON_SAMPLE`] of a whole
/// pixel is that pixel (a round trip can land a hair outside the last column); on a sample in
/// both, the stencil is that pixel alone: what every kernel gives there, without reading (or a
/// blank among) its neighbours. Nearest is the stencil of the nearest sample.
pub fn stencil(nx: usize, ny: usize, x: f64, y: f64, method: Method) -> Option<Stencil> {
    let snap = |v: f64| {
        let r = v.round();
        ((v - r).abs() < ON_SAMPLE).then_some(r)
    };
    let (sx, sy) = (snap(x), snap(y));
    let (x, y) = (sx.unwrap_or(x), sy.unwrap_or(y));
    if x < 0.0 || y < 0.0 || x > (nx - 1) as f64 || y > (ny - 1) as f64 {
        return None;
    }
    if (sx.is_some() && sy.is_some()) || method == Method::Nearest {
        let (x, y) = (x.round() as usize, y.round() as usize);
        return Some(Stencil {
            cubic: None,
            lin: (x, y, x, y, 0.0, 0.0),
        });
    }
    let (xf, yf) = (x.floor(), y.floor());
    let (x0, y0) = (xf as isize - 1, yf as isize - 1);
    let inside = x0 >= 0 && y0 >= 0 && x0 + 3 < nx as isize && y0 + 3 < ny as isize;
    let cubic = (method == Method::Cubic && inside).then(|| {
        let (fx, fy) = (x - xf, y - yf);
        let wx = [keys(1.0 + fx), keys(fx), keys(1.0 - fx), keys(2.0 - fx)];
        let wy = [keys(1.0 + fy), keys(fy), keys(1.0 - fy), keys(2.0 - fy)];
        (x0 as usize, y0 as usize, wx, wy)
    });
    let (bx0, by0) = (x.floor() as usize, y.floor() as usize);
    let (bx1, by1) = ((bx0 + 1).min(nx - 1), (by0 + 1).min(ny - 1));
    Some(Stencil {
        cubic,
        lin: (bx0, by0, bx1, by1, x - bx0 as f64, y - by0 as f64),
    })
}

/// Channel `ch` of `c` through a stencil: bicubic where the neighbourhood is inside the image
/// and free of blanks, else bilinear.
pub fn sample(c: CubeView, ch: usize, s: &Stencil) -> f64 {
    if let Some((x0, y0, wx, wy)) = &s.cubic {
        let mut sum = 0.0;
        for (j, wyj) in wy.iter().enumerate() {
            let mut row = 0.0;
            for (i, wxi) in wx.iter().enumerate() {
                row += wxi * c.at(ch, y0 + j, x0 + i) as f64;
            }
            sum += wyj * row;
        }
        if sum.is_finite() {
            return sum;
        }
    }
    let (x0, y0, x1, y1, fx, fy) = s.lin;
    let v = |xx, yy| c.at(ch, yy, xx) as f64;
    (1.0 - fy) * ((1.0 - fx) * v(x0, y0) + fx * v(x1, y0))
        + fy * ((1.0 - fx) * v(x0, y1) + fx * v(x1, y1))
}

/// A [`Stencil`] ready for a channel plane of a known width, in single precision: offsets into
/// the plane (validated once, so sampling needs no bounds arithmetic) and `f32` weights. linmos
/// samples every channel of a cutout through the same taps.
#[derive(Clone, Debug)]
pub struct Tap {
    /// Bicubic: the offset of the 4×4 neighbourhood's corner and the Keys weights along x, y.
    cubic: Option<(u32, [f32; 4], [f32; 4])>,
    /// Bilinear: offsets of (x0, y0), (x1, y0), (x0, y1), (x1, y1) and the fractions.
    lin: [u32; 4],
    frac: [f32; 2],
}

impl Stencil {
    /// These weights as taps into a plane `nx` pixels wide.
    pub fn tap(&self, nx: usize) -> Tap {
        let at = |x: usize, y: usize| (y * nx + x) as u32;
        let f4 = |w: &[f64; 4]| w.map(|v| v as f32);
        let (x0, y0, x1, y1, fx, fy) = self.lin;
        Tap {
            cubic: self
                .cubic
                .as_ref()
                .map(|(cx, cy, wx, wy)| (at(*cx, *cy), f4(wx), f4(wy))),
            lin: [at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1)],
            frac: [fx as f32, fy as f32],
        }
    }
}

impl Tap {
    /// The plane (`nx` wide) through these taps: bicubic where the neighbourhood is free of
    /// blanks, else bilinear (as [`sample`], in single precision, the bicubic with `row4`'s
    /// fused multiply-adds). The reference the mosaic's [`TapSpectra::sample`] is tested against.
    #[inline]
    pub fn sample(&self, plane: &[f32], nx: usize) -> f32 {
        if let Some((base, wx, wy)) = &self.cubic {
            let base = *base as usize;
            let block = &plane[base..base + 3 * nx + 4];
            let mut sum = 0f32;
            for (j, wyj) in wy.iter().enumerate() {
                let r = &block[j * nx..j * nx + 4];
                sum = wyj.mul_add(row4(wx, r[0], r[1], r[2], r[3]), sum);
            }
            if sum.is_finite() {
                return sum;
            }
        }
        let [a, b, c, d] = self.lin.map(|k| plane[k as usize]);
        let [fx, fy] = self.frac;
        (1.0 - fy) * ((1.0 - fx) * a + fx * b) + fy * ((1.0 - fx) * c + fx * d)
    }
}

impl Tap {
    /// The spectra these taps read in `tile`, a block of a cutout's channels laid out as
    /// `layout` (channels of a cutout `nx` wide), found once for every run of channels
    /// ([`TapSpectra::sample`]). Written out without closures, so it is inlined whole
    /// (returned through memory, the weights were read back before their stores had landed).
    #[inline(always)]
    pub fn spectra<'a>(
        &'a self,
        tile: &'a [f32],
        nx: usize,
        layout: ChannelGroups,
    ) -> TapSpectra<'a> {
        // The layout given, not derived (a division per tap and pixel in the mix).
        assert_eq!(
            layout.npix * layout.w,
            tile.len(),
            "the tile is the layout's"
        );
        let cubic = self.cubic.map(|(base, wx, wy)| {
            // The sampling reads pixels base..base + 3·nx + 4 unchecked: checked here, once.
            assert!(
                base as usize + 3 * nx + 4 <= layout.npix,
                "the neighbourhood is in the tile"
            );
            (base as usize, wx, wy)
        });
        // A stencil on a sample (see [`stencil`]) reads that one spectrum as it is.
        let on_sample = self.cubic.is_none() && self.lin.iter().all(|&k| k == self.lin[0]);
        TapSpectra {
            tap: self,
            tile,
            layout,
            nx,
            on_sample,
            cubic,
        }
    }
}

/// A [`Tap`] on one block of a cutout's channels ([`ChannelGroups`]): the bicubic's
/// neighbourhood and weights found; the bilinear's read only where needed.
pub struct TapSpectra<'a> {
    tap: &'a Tap,
    tile: &'a [f32],
    layout: ChannelGroups,
    nx: usize,
    /// On a sample: the pixel's own spectrum, taken as it is.
    on_sample: bool,
    /// The 4×4 neighbourhood's first pixel and the weights along x and y (copied: held in
    /// registers across a tap's runs, where through a reference they were loaded again for
    /// every run, as the sums' stores might have changed them).
    cubic: Option<(usize, [f32; 4], [f32; 4])>,
}

impl TapSpectra<'_> {
    /// Channels `ch0..ch0 + L` (in one group of the [`ChannelGroups`]): `L` lanes side by side (the
    /// compiler keeps them in vector registers, so a caller can use them before they go to
    /// memory), bicubic where every lane's bicubic value is finite, else bilinear in the lanes
    /// whose bicubic value is not. Per channel the arithmetic of [`Tap::sample`].
    #[inline(always)]
    pub fn sample<const L: usize>(&self, ch0: usize) -> [f32; L] {
        let (c, l) = self.layout.group(ch0);
        // One check for the sixteen reads of [`TapSpectra::sample_at`] (a bounds check each
        // was two fifths of the mix's instructions).
        assert!(
            ch0 + L <= c + l,
            "channels {ch0}..{} across a group",
            ch0 + L
        );
        self.sample_at::<L>(c * self.layout.npix + (ch0 - c), l)
    }

    /// As [`TapSpectra::sample`], for lanes in a whole group: a neighbourhood's sixteen loads
    /// are then fixed offsets from one address.
    #[inline(always)]
    pub fn sample_whole<const L: usize>(&self, ch0: usize) -> [f32; L] {
        let (c, off) = (ch0 / CHANNEL_GROUP * CHANNEL_GROUP, ch0 % CHANNEL_GROUP);
        assert!(
            ch0 + L <= self.layout.whole() && off + L <= CHANNEL_GROUP,
            "channels {ch0}..{} not in a whole group",
            ch0 + L
        );
        self.sample_at::<L>(c * self.layout.npix + off, CHANNEL_GROUP)
    }

    /// The lanes starting at `from` (pixel 0's first), pixel p's at `from + p·ps`, where every
    /// pixel's `L` lanes lie in the tile (the callers check it).
    #[inline(always)]
    fn sample_at<const L: usize>(&self, from: usize, ps: usize) -> [f32; L] {
        let run = |k: u32| -> [f32; L] {
            let at = from + k as usize * ps;
            self.tile[at..at + L].try_into().unwrap()
        };
        if self.on_sample {
            return run(self.tap.lin[0]);
        }
        let mut o = [0f32; L];
        if let Some((base, wx, wy)) = &self.cubic {
            let corner = from + base * ps;
            for (j, &wyj) in wy.iter().enumerate() {
                // SAFETY: the neighbourhood's pixels are base + j·nx + k < npix (j, k ≤ 3:
                // checked in [`Tap::spectra`]) and each pixel's lanes lie in its group of the
                // tile (checked by the callers), so every read is inside the tile.
                let at = |k: usize| -> [f32; L] {
                    unsafe {
                        self.tile
                            .as_ptr()
                            .add(corner + (j * self.nx + k) * ps)
                            .cast::<[f32; L]>()
                            .read_unaligned()
                    }
                };
                let (a, b, c, d) = (at(0), at(1), at(2), at(3));
                for lane in 0..L {
                    o[lane] = wyj.mul_add(row4(wx, a[lane], b[lane], c[lane], d[lane]), o[lane]);
                }
            }
            // Without an early exit per lane, so it vectorises.
            if o.iter().fold(true, |all, v| all & v.is_finite()) {
                return o;
            }
        }
        let lin = &self.tap.lin;
        let (a, b, c, d) = (run(lin[0]), run(lin[1]), run(lin[2]), run(lin[3]));
        let [fx, fy] = self.tap.frac;
        let cubic = self.cubic.is_some();
        // Every lane's bilinear value, kept where the bicubic one is missing (a select, not a
        // branch: the loop vectorises).
        for lane in 0..L {
            let lin = (1.0 - fy) * ((1.0 - fx) * a[lane] + fx * b[lane])
                + fy * ((1.0 - fx) * c[lane] + fx * d[lane]);
            o[lane] = if !cubic || !o[lane].is_finite() {
                lin
            } else {
                o[lane]
            };
        }
        o
    }
}

/// A row of the 4×4 neighbourhood weighted along x: `wx·(a, b, c, d)` as one product and three
/// fused multiply-adds (each rounded once: the same bits on every CPU, which has the fused
/// instruction or computes it exactly in software). The column's sum adds the rows the same way.
#[inline(always)]
fn row4(wx: &[f32; 4], a: f32, b: f32, c: f32, d: f32) -> f32 {
    wx[3].mul_add(d, wx[2].mul_add(c, wx[1].mul_add(b, wx[0] * a)))
}

/// The value of channel `ch` at fractional pixel (x, y) by `method`, NaN outside the plane.
pub fn interpolate(c: CubeView, ch: usize, x: f64, y: f64, method: Method) -> f64 {
    stencil(c.nx, c.ny, x, y, method).map_or(f64::NAN, |s| sample(c, ch, &s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::science::layout::{to_spectra, CHANNEL_RUN};

    /// The inverse of [`to_spectra`].
    fn to_planes(spectra: &[f32], npix: usize, nchan: usize) -> Vec<f32> {
        let mut out = vec![0f32; spectra.len()];
        for p0 in (0..npix).step_by(64) {
            let p1 = (p0 + 64).min(npix);
            for ch in 0..nchan {
                let row = &mut out[ch * npix + p0..ch * npix + p1];
                for (k, v) in row.iter_mut().enumerate() {
                    *v = spectra[(p0 + k) * nchan + ch];
                }
            }
        }
        out
    }

    fn plane(nx: usize, ny: usize, f: impl Fn(f64, f64) -> f64) -> Vec<f32> {
        (0..ny)
            .flat_map(|y| (0..nx).map(move |x| (x, y)))
            .map(|(x, y)| f(x as f64, y as f64) as f32)
            .collect()
    }

    fn view(data: &[f32], nx: usize, ny: usize) -> CubeView<'_> {
        CubeView {
            data,
            nx,
            ny,
            nchan: 1,
        }
    }

    fn bilinear(c: CubeView, x: f64, y: f64) -> f64 {
        stencil(c.nx, c.ny, x, y, Method::Cubic).map_or(f64::NAN, |s| sample(c, 0, &s.bilinear()))
    }

    #[test]
    fn interpolation_is_exact_at_samples_and_on_quadratics() {
        let q = |x: f64, y: f64| 0.5 * x * x - 0.25 * x * y + 2.0 * y + 1.0;
        let d = plane(9, 8, q);
        let c = view(&d, 9, 8);
        for (x, y) in [(3.0, 4.0), (2.5, 3.25), (4.75, 2.1), (1.0, 1.0)] {
            let v = interpolate(c, 0, x, y, Method::Cubic);
            assert!((v - q(x, y)).abs() < 1e-4, "({x}, {y}): {v} vs {}", q(x, y));
        }
        // Near the edge: bilinear, still exact at samples and on planes; outside: NaN.
        assert!((interpolate(c, 0, 0.0, 7.0, Method::Cubic) - q(0.0, 7.0)).abs() < 1e-5);
        assert!(interpolate(c, 0, -0.1, 3.0, Method::Cubic).is_nan());
        assert!(interpolate(c, 0, 3.0, 7.5, Method::Cubic).is_nan());
    }

    #[test]
    fn on_a_sample_the_pixel_is_taken_as_it_is() {
        let mut d = plane(6, 5, |x, y| 1.0 + x + 10.0 * y);
        d[2 * 6 + 3] = f32::NAN; // (3, 2) blank
        let c = view(&d, 6, 5);
        // Next to the blank, a hair (a round trip through the sky) off the sample: the pixel
        // itself, where the kernels' zero weights on the blank would have made it NaN.
        for (x, y) in [
            (2.0 + 1e-12, 2.0 - 1e-12),
            (4.0, 2.0),
            (3.0f64 - 3e-11, 1.0f64),
        ] {
            let want = d[(y.round() as usize) * 6 + x.round() as usize];
            let s = stencil(6, 5, x, y, Method::Cubic).unwrap();
            assert_eq!(sample(c, 0, &s), want as f64, "({x}, {y})");
            assert_eq!(s.tap(6).sample(&d, 6), want, "({x}, {y})");
            let spectra = to_spectra(&d, 30, 1);
            let layout = ChannelGroups { npix: 30, w: 1 };
            assert_eq!(s.tap(6).spectra(&spectra, 6, layout).sample::<1>(0), [want]);
        }
        // A hair outside the last column is on it; further out is outside.
        assert_eq!(
            interpolate(c, 0, 5.0 + 1e-12, 4.0, Method::Cubic),
            d[4 * 6 + 5] as f64
        );
        assert!(stencil(6, 5, 5.0 + 1e-6, 4.0, Method::Cubic).is_none());
        // Off the sample the blank is read (bicubic, then bilinear): NaN.
        assert!(interpolate(c, 0, 2.5, 2.0, Method::Cubic).is_nan());
    }

    #[test]
    fn a_beam_sized_peak_survives_regridding() {
        // FWHM 3 pixels, sampled half a pixel off in both axes.
        let k = 4.0 * std::f64::consts::LN_2 / 9.0;
        let d = plane(12, 12, |x, y| {
            (-k * ((x - 5.5).powi(2) + (y - 5.5).powi(2))).exp()
        });
        let c = view(&d, 12, 12);
        let v = interpolate(c, 0, 5.5, 5.5, Method::Cubic);
        assert!(v > 0.95 && v < 1.0, "{v}");
        assert!(bilinear(c, 5.5, 5.5) < 0.87);
    }

    #[test]
    fn taps_agree_with_the_double_precision_stencil() {
        let d = plane(11, 9, |x, y| (0.3 * x).sin() + 0.1 * y * y - 0.02 * x * y);
        let c = view(&d, 11, 9);
        let methods = [Method::Cubic, Method::Linear, Method::Nearest];
        for (x, y, method) in [(3.3, 4.7), (0.2, 0.9), (9.6, 7.5), (5.0, 5.0), (10.0, 8.0)]
            .into_iter()
            .flat_map(|(x, y)| methods.map(|m| (x, y, m)))
        {
            let s = stencil(11, 9, x, y, method).unwrap();
            let want = sample(c, 0, &s);
            let got = s.tap(11).sample(&d, 11) as f64;
            assert!(
                (got - want).abs() < 2e-6 * (1.0 + want.abs()),
                "({x}, {y}) {method:?}: {got} vs {want}"
            );
        }
        // Every channel at once, from the transposed cube: the same bits (a whole group of
        // CHANNEL_GROUP channels, a run of CHANNEL_RUN after it and three after that).
        let nchan = CHANNEL_GROUP + CHANNEL_RUN + 3;
        let cube: Vec<f32> = (0..nchan)
            .flat_map(|ch| d.iter().map(move |v| v * (ch as f32 + 1.0)))
            .collect();
        let mut cube_nan = cube.clone();
        cube_nan[99 + 3 * 11 + 3] = f32::NAN; // channel 1 only
        let mut cube_nan_late = cube.clone();
        // In the channels after the last run.
        cube_nan_late[(CHANNEL_GROUP + CHANNEL_RUN + 1) * 99 + 3 * 11 + 3] = f32::NAN;
        for cube in [&cube, &cube_nan, &cube_nan_late] {
            let spectra = to_spectra(cube, 99, nchan);
            let back: Vec<u32> = to_planes(&spectra, 99, nchan)
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert_eq!(back, cube.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            let mut tile = Vec::new();
            ChannelGroups::from_spectra(&spectra, nchan, 0..nchan, &mut tile);
            let layout = ChannelGroups { npix: 99, w: nchan };
            assert_eq!(layout.whole(), CHANNEL_GROUP);
            for (p, ch) in [(0, 0), (7, 3), (98, 15), (5, 16), (98, nchan - 1)] {
                assert_eq!(
                    tile[layout.at(p, ch)],
                    spectra[p * nchan + ch],
                    "({p}, {ch})"
                );
            }
            for (x, y, method) in [(4.5, 4.5), (0.2, 0.9), (3.3, 4.7)]
                .into_iter()
                .flat_map(|(x, y)| methods.map(|m| (x, y, m)))
            {
                let tap = stencil(11, 9, x, y, method).unwrap().tap(11);
                // As the mosaic takes them: a whole group in one vector (AVX-512) or two runs
                // (AVX2), then the runs after it, then one by one.
                let t = tap.spectra(&tile, 11, layout);
                let tail_runs = CHANNEL_GROUP + CHANNEL_RUN;
                let after = |mut got: Vec<f32>| {
                    got.extend(t.sample::<CHANNEL_RUN>(CHANNEL_GROUP));
                    got.extend((tail_runs..nchan).map(|ch| t.sample::<1>(ch)[0]));
                    got
                };
                let by_group = after(t.sample_whole::<CHANNEL_GROUP>(0).to_vec());
                let by_run = after(
                    (0..CHANNEL_GROUP)
                        .step_by(CHANNEL_RUN)
                        .flat_map(|c0| t.sample_whole::<CHANNEL_RUN>(c0))
                        .collect(),
                );
                for got in [by_group, by_run] {
                    assert_eq!(got.len(), nchan);
                    for (ch, g) in got.iter().enumerate() {
                        let want = tap.sample(&cube[ch * 99..(ch + 1) * 99], 11);
                        assert_eq!(
                            g.to_bits(),
                            want.to_bits(),
                            "({x}, {y}) {method:?} channel {ch}"
                        );
                    }
                }
            }
        }
        let mut blank = d.clone();
        blank[3 * 11 + 3] = f32::NAN;
        let s = stencil(11, 9, 4.5, 4.5, Method::Cubic).unwrap();
        let want = sample(view(&blank, 11, 9), 0, &s);
        let got = s.tap(11).sample(&blank, 11) as f64;
        assert!((got - want).abs() < 2e-6, "{got} vs {want}");
    }

    #[test]
    fn a_blank_neighbour_falls_back_to_bilinear() {
        let mut d = plane(8, 8, |x, _| x);
        d[2 * 8 + 2] = f32::NAN; // (x 2, y 2) is in the 4×4 of (3.5, 3.5) but not its 2×2
        let c = view(&d, 8, 8);
        assert!((interpolate(c, 0, 3.5, 3.5, Method::Cubic) - 3.5).abs() < 1e-6);
        assert!(interpolate(c, 0, 2.5, 2.5, Method::Cubic).is_nan());
    }

    #[test]
    fn linear_and_nearest_are_yandasofts_other_methods() {
        // Bilinear is exact on a + b x + c y + d x y; the bicubic is not needed for it.
        let f = |x: f64, y: f64| 1.0 + 0.5 * x - 0.25 * y + 0.125 * x * y;
        let mut d = plane(8, 8, f);
        let c = view(&d, 8, 8);
        for (x, y) in [(2.5, 3.25), (0.1, 6.9), (7.0, 0.4), (3.0, 3.0)] {
            let v = interpolate(c, 0, x, y, Method::Linear);
            assert!((v - f(x, y)).abs() < 1e-5, "({x}, {y}): {v} vs {}", f(x, y));
            // Nearest: the value of the nearest pixel.
            let n = interpolate(c, 0, x, y, Method::Nearest);
            assert_eq!(n, f(x.round(), y.round()) as f32 as f64, "({x}, {y})");
        }
        // The same positions are inside the plane whatever the method.
        for m in [Method::Nearest, Method::Linear, Method::Cubic] {
            assert!(interpolate(c, 0, -0.1, 3.0, m).is_nan());
            assert!(interpolate(c, 0, 3.0, 7.2, m).is_nan());
        }
        // A blank in the 4×4 but not the 2×2: bilinear never reads it; a blank among the four
        // pixels around: NaN, as yandasoft masks it.
        d[2 * 8 + 2] = f32::NAN;
        let c = view(&d, 8, 8);
        assert!((interpolate(c, 0, 3.5, 3.5, Method::Linear) - f(3.5, 3.5)).abs() < 1e-5);
        assert!(interpolate(c, 0, 2.5, 2.5, Method::Linear).is_nan());
        assert!(interpolate(c, 0, 2.4, 2.4, Method::Nearest).is_nan());
        assert!(!interpolate(c, 0, 2.6, 2.6, Method::Nearest).is_nan());
        assert_eq!(Method::from_name("linear"), Ok(Method::Linear));
        assert!(Method::from_name("bilinear")
            .unwrap_err()
            .contains("'bilinear'"));
    }
}
