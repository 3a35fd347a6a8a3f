//! `linmos` (per island and Stokes): the primary-beam-weighted, inverse-variance mosaic of the
//! island's cutouts (yandasoft linmos's weighting) on the grid of the largest cutout, with its
//! weight cube.
//!
//! Must never: write anywhere but its temporary outputs.

use std::path::Path;

use super::io::{memo_by_file, read_weights};
use super::{ActionCtx, Builtin};
use crate::fits::{Cube, Image};
use crate::science::primary_beam::{
    offset_lm_deg, primary_beam_fwhm_deg, primary_beam_with_fwhm, BeamModel,
};
use crate::wcs::Wcs;

/// The beam number in a cutout's name (`....beamNN.conv.fits`).
fn beam_number(path: &Path) -> Option<usize> {
    let name = path.file_name()?.to_str()?;
    let rest = &name[name.rfind(".beam")? + 5..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Read a holography primary-beam model: a float FITS image with axes (l, m, FREQ[, BEAM]):
/// axes 1 and 2 are offsets from the beam pointing in degrees (CTYPE `L-OFFSET`, `M-OFFSET`;
/// l towards the east), axis 3 is frequency in Hz, and the optional axis 4 (CTYPE `BEAM`) numbers
/// the beams (CRVAL4 at CRPIX4, step 1). Without axis 4 one pattern serves every beam.
pub fn read_beam_model(path: &Path) -> Result<BeamModel, String> {
    let img = Image::read(path).map_err(|e| e.to_string())?;
    let h = &img.header;
    let bad = |what: String| {
        format!(
            "{}: {what}; a holography model has axes (L-OFFSET deg, M-OFFSET deg, FREQ Hz[, BEAM])",
            path.display()
        )
    };
    if !(img.shape.len() == 3 || img.shape.len() == 4) {
        return Err(bad(format!("{} axes", img.shape.len())));
    }
    let axis = |i: usize| -> Result<(f64, f64), String> {
        let key = |k: &str| format!("{k}{i}");
        let crval = h.get_f64(&key("CRVAL")).unwrap_or(0.0);
        let crpix = h.get_f64(&key("CRPIX")).unwrap_or(1.0);
        let cdelt = h
            .get_f64(&key("CDELT"))
            .filter(|d| *d != 0.0)
            .ok_or_else(|| bad(format!("{} is missing or zero", key("CDELT"))))?;
        // Value of the first sample (pixel 1) and the step.
        Ok((crval + (1.0 - crpix) * cdelt, cdelt))
    };
    for (i, want) in [(1, "L-OFFSET"), (2, "M-OFFSET"), (3, "FREQ"), (4, "BEAM")] {
        if i > img.shape.len() {
            break;
        }
        let got = h.get_str(&format!("CTYPE{i}")).unwrap_or_default();
        if got.trim() != want {
            return Err(bad(format!(
                "CTYPE{i} is '{}', expected '{want}'",
                got.trim()
            )));
        }
    }
    let (l0, dl) = axis(1)?;
    let (m0, dm) = axis(2)?;
    let (f0, df) = if img.shape[2] > 1 {
        axis(3)?
    } else {
        (h.get_f64("CRVAL3").unwrap_or(0.0), 1.0)
    };
    let (shared, beam0, nb) = if img.shape.len() == 4 {
        let (b0, db) = axis(4)?;
        if db != 1.0 || b0 < 0.0 || b0.fract() != 0.0 {
            return Err(bad(
                "the BEAM axis must count beams from a whole number in steps of 1".into(),
            ));
        }
        (false, b0 as usize, img.shape[3])
    } else {
        (true, 0, 1)
    };
    Ok(BeamModel {
        shape: [img.shape[0], img.shape[1], img.shape[2], nb],
        data: img.data,
        l0_deg: l0,
        dl_deg: dl,
        m0_deg: m0,
        dm_deg: dm,
        f0_hz: f0,
        df_hz: df,
        beam0,
        shared,
    })
}

/// Keys' cubic convolution kernel (a = -0.5): interpolates exactly at the samples, reproduces
/// quadratics, and loses far less of a beam-sized peak between pixels than bilinear does (a
/// Gaussian of FWHM 3 pixels sampled half a pixel off in x and y: bilinear gives 0.86 of the
/// peak, this 0.96).
fn keys(t: f64) -> f64 {
    let t = t.abs();
    if t <= 1.0 {
        (1.5 * t - 2.5) * t * t + 1.0
    } else if t < 2.0 {
        ((-0.5 * t + 2.5) * t - 4.0) * t + 2.0
    } else {
        0.0
    }
}

/// Where a fractional pixel falls in a cutout and its interpolation weights, which are the same
/// for every channel (so they are worked out once per pixel and beam, not once per channel).
struct Stencil {
    /// Bicubic: the 4×4 neighbourhood's corner and Keys weights along x and y, when the
    /// neighbourhood is inside the image.
    cubic: Option<(usize, usize, [f64; 4], [f64; 4])>,
    /// Bilinear: corners (x0, y0), (x1, y1) and fractions, the fallback.
    lin: (usize, usize, usize, usize, f64, f64),
}

/// The stencil of fractional pixel (x, y); `None` outside the image.
fn stencil(c: &Cube, x: f64, y: f64) -> Option<Stencil> {
    if x < 0.0 || y < 0.0 || x > (c.nx - 1) as f64 || y > (c.ny - 1) as f64 {
        return None;
    }
    let (xf, yf) = (x.floor(), y.floor());
    let (x0, y0) = (xf as isize - 1, yf as isize - 1);
    let cubic =
        (x0 >= 0 && y0 >= 0 && x0 + 3 < c.nx as isize && y0 + 3 < c.ny as isize).then(|| {
            let (fx, fy) = (x - xf, y - yf);
            let wx = [keys(1.0 + fx), keys(fx), keys(1.0 - fx), keys(2.0 - fx)];
            let wy = [keys(1.0 + fy), keys(fy), keys(1.0 - fy), keys(2.0 - fy)];
            (x0 as usize, y0 as usize, wx, wy)
        });
    let (bx0, by0) = (x.floor() as usize, y.floor() as usize);
    let (bx1, by1) = ((bx0 + 1).min(c.nx - 1), (by0 + 1).min(c.ny - 1));
    Some(Stencil {
        cubic,
        lin: (bx0, by0, bx1, by1, x - bx0 as f64, y - by0 as f64),
    })
}

/// Channel `ch` through a stencil: bicubic where the neighbourhood is inside the image and free
/// of blanks, else bilinear.
fn sample(c: &Cube, ch: usize, s: &Stencil) -> f64 {
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

/// The value of channel `ch` at fractional pixel (x, y): bicubic where the 4×4 neighbourhood
/// is inside the image and free of blanks, else bilinear, else NaN outside the image.
#[cfg(test)]
fn interpolate(c: &Cube, ch: usize, x: f64, y: f64) -> f64 {
    stencil(c, x, y).map_or(f64::NAN, |s| sample(c, ch, &s))
}

#[cfg(test)]
fn bilinear(c: &Cube, ch: usize, x: f64, y: f64) -> f64 {
    stencil(c, x, y).map_or(f64::NAN, |s| sample(c, ch, &Stencil { cubic: None, ..s }))
}

/// `linmos`: out = Σ w_b B_b I_b / Σ w_b B_b² per pixel and channel on the grid of the largest
/// cutout, w_b the beam's channel weight (inverse variance), B_b the Gaussian primary beam about
/// the beam's pointing (the cutout's CRVAL); beams whose B_b is below `linmos_cutoff` are left
/// out, and pixels with no beam left are blank. Also writes Σ w_b B_b² as the weight cube.
pub struct Linmos;

impl Builtin for Linmos {
    fn name(&self) -> &'static str {
        "linmos"
    }
    fn version(&self) -> u32 {
        3
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), String> {
        let cutoff = ctx
            .param("linmos_cutoff")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.01);
        let images = ctx.input("cutouts");
        let weights = ctx.input("weights");
        if images.is_empty() || images.len() != weights.len() {
            return Err(format!(
                "{}: {} cutouts but {} weight files",
                ctx.target,
                images.len(),
                weights.len()
            ));
        }
        // One model serves every island: parsed once per process, not once per target.
        let holography = match ctx.input("holography").first() {
            Some(p) => Some(memo_by_file(p, || read_beam_model(p))?),
            None => None,
        };
        let mut cubes = Vec::new();
        let mut beam_numbers = Vec::new();
        for p in images {
            beam_numbers.push(beam_number(p).ok_or_else(|| {
                format!(
                    "{}: cannot tell the beam of {} (expected '.beamNN.' in its name)",
                    ctx.target,
                    p.display()
                )
            })?);
            let c = Cube::read(p).map_err(|e| e.to_string())?;
            let w = Wcs::from_header(&c.header, p).map_err(|e| e.to_string())?;
            cubes.push((c, w));
        }
        let nchan = cubes[0].0.nchan;
        if let Some(k) = cubes.iter().position(|(c, _)| c.nchan != nchan) {
            return Err(format!(
                "{}: cutout {} has {} channels but {} has {nchan}; every beam must have the same channels (check NAXIS3 of the beam cubes)",
                ctx.target,
                images[k].display(),
                cubes[k].0.nchan,
                images[0].display()
            ));
        }
        let ws: Vec<Vec<f64>> = weights
            .iter()
            .map(|p| read_weights(p, nchan))
            .collect::<Result<_, _>>()?;
        let (ref_i, _) = cubes
            .iter()
            .enumerate()
            .max_by_key(|(_, (c, _))| c.nx * c.ny)
            .ok_or("no cutouts")?;
        let (out_nx, out_ny) = (cubes[ref_i].0.nx, cubes[ref_i].0.ny);
        let out_wcs = cubes[ref_i].1.clone();
        let mut out = vec![f32::NAN; out_nx * out_ny * nchan];
        let mut wout = vec![0f32; out_nx * out_ny * nchan];
        let freqs: Vec<f64> = (0..nchan).map(|ch| out_wcs.freq(ch)).collect();
        let fwhms: Vec<f64> = freqs.iter().map(|&f| primary_beam_fwhm_deg(f)).collect();
        let mut places: Vec<Option<(Stencil, f64, f64)>> = Vec::with_capacity(cubes.len());
        for y in 0..out_ny {
            for x in 0..out_nx {
                let (ra, dec) = out_wcs.pix_to_world(x as f64, y as f64);
                // Where this sky position falls in each beam's cutout (as an interpolation
                // stencil), and how far from its pointing.
                places.clear();
                places.extend(cubes.iter().map(|(c, w)| {
                    let (px, py) = w.world_to_pix(ra, dec)?;
                    let (l, m) = offset_lm_deg(ra, dec, w.crval_ra, w.crval_dec);
                    Some((stencil(c, px, py)?, l, m))
                }));
                // `ch` indexes the weights, the cubes and the output alike.
                #[allow(clippy::needless_range_loop)]
                for ch in 0..nchan {
                    let freq = freqs[ch];
                    let (mut num, mut den) = (0.0, 0.0);
                    for (b, place) in places.iter().enumerate() {
                        let Some((st, l, m)) = place else {
                            continue;
                        };
                        let (l, m) = (*l, *m);
                        let pb = match &holography {
                            Some(model) => model
                                .response(beam_numbers[b], l, m, freq)
                                .ok_or_else(|| {
                                    format!(
                                        "{}: the holography model has no beam {}; give a model that covers every beam, or drop holofile to use the Gaussian beam",
                                        ctx.target, beam_numbers[b]
                                    )
                                })?,
                            None => primary_beam_with_fwhm((l * l + m * m).sqrt(), fwhms[ch]),
                        };
                        let w = ws[b][ch];
                        if pb < cutoff || w <= 0.0 || !w.is_finite() {
                            continue;
                        }
                        let v = sample(&cubes[b].0, ch, st);
                        if !v.is_finite() {
                            continue;
                        }
                        num += w * pb * v;
                        den += w * pb * pb;
                    }
                    let k = (ch * out_ny + y) * out_nx + x;
                    if den > 0.0 {
                        out[k] = (num / den) as f32;
                        wout[k] = den as f32;
                    }
                }
            }
        }
        let mut header = cubes[ref_i].0.header.clone();
        header.history(if holography.is_some() {
            "arrakis linmos: sum w B I / sum w B^2 (holography primary beams)"
        } else {
            "arrakis linmos: sum w B I / sum w B^2 (Gaussian primary beam, FWHM 1.09 lambda/D)"
        });
        for (name, path, _) in &ctx.outputs {
            let data = if *name == "mosaic" {
                out.clone()
            } else {
                wout.clone()
            };
            let mut h = header.clone();
            if *name != "mosaic" {
                h.set_str("BUNIT", "", "sum of w B^2");
            }
            Cube {
                nx: out_nx,
                ny: out_ny,
                nchan,
                data,
                header: h,
            }
            .write(path)
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fits::Header;

    fn cube(nx: usize, ny: usize, f: impl Fn(f64, f64) -> f64) -> Cube {
        let data = (0..ny)
            .flat_map(|y| (0..nx).map(move |x| (x, y)))
            .map(|(x, y)| f(x as f64, y as f64) as f32)
            .collect();
        Cube {
            nx,
            ny,
            nchan: 1,
            data,
            header: Header::default(),
        }
    }

    #[test]
    fn interpolation_is_exact_at_samples_and_on_quadratics() {
        let q = |x: f64, y: f64| 0.5 * x * x - 0.25 * x * y + 2.0 * y + 1.0;
        let c = cube(9, 8, q);
        for (x, y) in [(3.0, 4.0), (2.5, 3.25), (4.75, 2.1), (1.0, 1.0)] {
            let v = interpolate(&c, 0, x, y);
            assert!((v - q(x, y)).abs() < 1e-4, "({x}, {y}): {v} vs {}", q(x, y));
        }
        // Near the edge: bilinear, still exact at samples and on planes; outside: NaN.
        assert!((interpolate(&c, 0, 0.0, 7.0) - q(0.0, 7.0)).abs() < 1e-5);
        assert!(interpolate(&c, 0, -0.1, 3.0).is_nan());
        assert!(interpolate(&c, 0, 3.0, 7.5).is_nan());
    }

    #[test]
    fn a_beam_sized_peak_survives_regridding() {
        // FWHM 3 pixels, sampled half a pixel off in both axes.
        let k = 4.0 * std::f64::consts::LN_2 / 9.0;
        let c = cube(12, 12, |x, y| {
            (-k * ((x - 5.5).powi(2) + (y - 5.5).powi(2))).exp()
        });
        let v = interpolate(&c, 0, 5.5, 5.5);
        assert!(v > 0.95 && v < 1.0, "{v}");
        assert!(bilinear(&c, 0, 5.5, 5.5) < 0.87);
    }

    #[test]
    fn a_blank_neighbour_falls_back_to_bilinear() {
        let mut c = cube(8, 8, |x, _| x);
        c.data[2 * 8 + 2] = f32::NAN; // (x 2, y 2) is in the 4×4 of (3.5, 3.5) but not its 2×2
        assert!((interpolate(&c, 0, 3.5, 3.5) - 3.5).abs() < 1e-6);
        assert!(interpolate(&c, 0, 2.5, 2.5).is_nan());
    }
}
