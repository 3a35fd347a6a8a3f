//! The WCS arrakis needs: a SIN (orthographic) celestial projection, its linear transformation as
//! real cubes carry it (CDELT with a PC matrix, a CD matrix, or the old CROTA2), and a linear FREQ
//! axis. Other projections, slant SIN (PV2_1/PV2_2) and a non-default LONPOLE are refused naming
//! the keyword.
//!
//! Pixel coordinates here are 0-based (FITS CRPIX is 1-based). RA increases to the left when
//! CDELT1 < 0, as in radio images.

use std::path::Path;

use crate::fits::{FitsError, Header};

/// Celestial (SIN) plus spectral (FREQ) WCS of a cube.
#[derive(Clone, Debug, PartialEq)]
pub struct Wcs {
    /// Reference RA, degrees.
    pub crval_ra: f64,
    /// Reference Dec, degrees.
    pub crval_dec: f64,
    /// Reference pixel (1-based, FITS convention) along x.
    pub crpix_x: f64,
    /// Reference pixel along y.
    pub crpix_y: f64,
    /// Degrees per pixel along x (negative: RA increases to the left).
    pub cdelt_x: f64,
    /// Degrees per pixel along y.
    pub cdelt_y: f64,
    /// The PC matrix [PC1_1, PC1_2, PC2_1, PC2_2] (identity for an unrotated image): intermediate
    /// coordinates are (CDELT1·(PC1_1·dx + PC1_2·dy), CDELT2·(PC2_1·dx + PC2_2·dy)).
    pub pc: [f64; 4],
    /// Frequency at the reference channel, Hz.
    pub crval_freq: f64,
    /// Reference channel (1-based).
    pub crpix_freq: f64,
    /// Channel width, Hz.
    pub cdelt_freq: f64,
}

/// The identity PC matrix.
pub const IDENTITY: [f64; 4] = [1.0, 0.0, 0.0, 1.0];

impl Wcs {
    /// Read from a header; a missing keyword or another projection is an error naming it.
    pub fn from_header(h: &Header, path: &Path) -> Result<Wcs, FitsError> {
        for (k, want) in [("CTYPE1", "RA---SIN"), ("CTYPE2", "DEC--SIN")] {
            let got = h.get_str(k).unwrap_or_default();
            if got != want {
                return Err(FitsError {
                    path: path.to_path_buf(),
                    message: format!(
                        "{k} is '{got}', expected '{want}' (arrakis reads SIN-projected cubes)"
                    ),
                });
            }
        }
        let freq_axis = h.get_str("CTYPE3").unwrap_or_default();
        if !freq_axis.starts_with("FREQ") {
            return Err(FitsError {
                path: path.to_path_buf(),
                message: format!("CTYPE3 is '{freq_axis}', expected 'FREQ' as the third axis"),
            });
        }
        let bad = |message: String| FitsError {
            path: path.to_path_buf(),
            message,
        };
        for k in ["PV2_1", "PV2_2"] {
            if let Some(v) = h.get_f64(k) {
                if v != 0.0 {
                    return Err(bad(format!(
                        "{k} = {v}: a slant SIN (or NCP) projection, which arrakis does not read; reproject the cube to plain SIN"
                    )));
                }
            }
        }
        if let Some(v) = h.get_f64("LONPOLE") {
            if v != 180.0 {
                return Err(bad(format!(
                    "LONPOLE = {v}: arrakis reads SIN with the default native pole (180)"
                )));
            }
        }
        let (cdelt_x, cdelt_y, pc) = linear_part(h, path)?;
        let det = pc[0] * pc[3] - pc[1] * pc[2];
        if det == 0.0 || !det.is_finite() || cdelt_x == 0.0 || cdelt_y == 0.0 {
            return Err(bad(
                "the celestial axes' CDELT/PC/CD matrix is singular".to_string()
            ));
        }
        Ok(Wcs {
            crval_ra: h.require_f64("CRVAL1", path)?,
            crval_dec: h.require_f64("CRVAL2", path)?,
            crpix_x: h.require_f64("CRPIX1", path)?,
            crpix_y: h.require_f64("CRPIX2", path)?,
            cdelt_x,
            cdelt_y,
            pc,
            crval_freq: h.require_f64("CRVAL3", path)?,
            crpix_freq: h.require_f64("CRPIX3", path)?,
            cdelt_freq: freq_step(h, path)?,
        })
    }

    /// (dx, dy) pixel offsets from the reference pixel → intermediate (x, y) in degrees.
    fn linear(&self, dx: f64, dy: f64) -> (f64, f64) {
        let [a, b, c, d] = self.pc;
        (
            self.cdelt_x * (a * dx + b * dy),
            self.cdelt_y * (c * dx + d * dy),
        )
    }

    /// Intermediate (x, y) in degrees → pixel offsets.
    fn linear_inv(&self, x: f64, y: f64) -> (f64, f64) {
        let [a, b, c, d] = self.pc;
        let (u, v) = (x / self.cdelt_x, y / self.cdelt_y);
        let det = a * d - b * c;
        ((d * u - b * v) / det, (a * v - c * u) / det)
    }

    /// Write the WCS keywords into a header.
    pub fn to_header(&self, h: &mut Header) {
        h.set_str("CTYPE1", "RA---SIN", "");
        h.set_f64("CRVAL1", self.crval_ra, "deg");
        h.set_f64("CRPIX1", self.crpix_x, "");
        h.set_f64("CDELT1", self.cdelt_x, "deg");
        h.set_str("CUNIT1", "deg", "");
        h.set_str("CTYPE2", "DEC--SIN", "");
        h.set_f64("CRVAL2", self.crval_dec, "deg");
        h.set_f64("CRPIX2", self.crpix_y, "");
        h.set_f64("CDELT2", self.cdelt_y, "deg");
        h.set_str("CUNIT2", "deg", "");
        if self.pc != IDENTITY {
            for (k, v) in ["PC1_1", "PC1_2", "PC2_1", "PC2_2"].iter().zip(self.pc) {
                h.set_f64(k, v, "");
            }
        }
        h.set_str("CTYPE3", "FREQ", "");
        h.set_f64("CRVAL3", self.crval_freq, "Hz");
        h.set_f64("CRPIX3", self.crpix_freq, "");
        h.set_f64("CDELT3", self.cdelt_freq, "Hz");
        h.set_str("CUNIT3", "Hz", "");
    }

    /// Sky position (RA, Dec in degrees) of 0-based pixel (x, y).
    pub fn pix_to_world(&self, x: f64, y: f64) -> (f64, f64) {
        let (lx, my) = self.linear(x + 1.0 - self.crpix_x, y + 1.0 - self.crpix_y);
        let (l, m) = (lx.to_radians(), my.to_radians());
        let (s0, c0) = self.crval_dec.to_radians().sin_cos();
        let n = (1.0 - l * l - m * m).max(0.0).sqrt();
        let dec = (m * c0 + n * s0).clamp(-1.0, 1.0).asin();
        let ra = self.crval_ra.to_radians() + l.atan2(n * c0 - m * s0);
        (ra.to_degrees().rem_euclid(360.0), dec.to_degrees())
    }

    /// 0-based pixel (x, y) of a sky position; `None` on the far hemisphere.
    pub fn world_to_pix(&self, ra: f64, dec: f64) -> Option<(f64, f64)> {
        let (sd, cd) = dec.to_radians().sin_cos();
        let (s0, c0) = self.crval_dec.to_radians().sin_cos();
        let da = (ra - self.crval_ra).to_radians();
        let n = sd * s0 + cd * c0 * da.cos();
        if n < 0.0 {
            return None;
        }
        let l = cd * da.sin();
        let m = sd * c0 - cd * s0 * da.cos();
        let (dx, dy) = self.linear_inv(l.to_degrees(), m.to_degrees());
        Some((dx + self.crpix_x - 1.0, dy + self.crpix_y - 1.0))
    }

    /// Frequency of 0-based channel `c`, Hz.
    pub fn freq(&self, c: usize) -> f64 {
        self.crval_freq + self.cdelt_freq * (c as f64 + 1.0 - self.crpix_freq)
    }
}

/// CDELT1, CDELT2 and the PC matrix of the celestial axes, from whichever form the header uses:
/// CDi_j (taken apart into a scale per axis and PC), CDELTi with PCi_j (missing PC elements are
/// the identity's), or CDELTi with CROTA2 (FITS WCS paper II, eq. 189).
fn linear_part(h: &Header, path: &Path) -> Result<(f64, f64, [f64; 4]), FitsError> {
    let cd: Vec<Option<f64>> = ["CD1_1", "CD1_2", "CD2_1", "CD2_2"]
        .iter()
        .map(|k| h.get_f64(k))
        .collect();
    if cd.iter().any(|v| v.is_some()) {
        let [a, b, c, d] = [
            cd[0].unwrap_or(0.0),
            cd[1].unwrap_or(0.0),
            cd[2].unwrap_or(0.0),
            cd[3].unwrap_or(0.0),
        ];
        // The scale of each row, signed like its diagonal element (RA left: negative).
        let s1 = a.hypot(b)
            * if a < 0.0 || (a == 0.0 && b < 0.0) {
                -1.0
            } else {
                1.0
            };
        let s2 = c.hypot(d)
            * if d < 0.0 || (d == 0.0 && c < 0.0) {
                -1.0
            } else {
                1.0
            };
        if s1 == 0.0 || s2 == 0.0 {
            return Err(FitsError {
                path: path.to_path_buf(),
                message: "the CD matrix has a zero row".to_string(),
            });
        }
        return Ok((s1, s2, [a / s1, b / s1, c / s2, d / s2]));
    }
    let c1 = h.require_f64("CDELT1", path)?;
    let c2 = h.require_f64("CDELT2", path)?;
    let pc_keys = ["PC1_1", "PC1_2", "PC2_1", "PC2_2"];
    if pc_keys.iter().any(|k| h.get_f64(k).is_some()) {
        let mut pc = IDENTITY;
        for (v, k) in pc.iter_mut().zip(pc_keys) {
            if let Some(x) = h.get_f64(k) {
                *v = x;
            }
        }
        return Ok((c1, c2, pc));
    }
    let rho = h.get_f64("CROTA2").unwrap_or(0.0).to_radians();
    if rho == 0.0 {
        return Ok((c1, c2, IDENTITY));
    }
    let (sn, cs) = rho.sin_cos();
    Ok((c1, c2, [cs, -(c2 / c1) * sn, (c1 / c2) * sn, cs]))
}

/// The channel width: CDELT3, or CD3_3 where the header has a CD matrix instead.
fn freq_step(h: &Header, path: &Path) -> Result<f64, FitsError> {
    match (h.get_f64("CDELT3"), h.get_f64("CD3_3")) {
        (Some(v), _) => Ok(v * h.get_f64("PC3_3").unwrap_or(1.0)),
        (None, Some(v)) => Ok(v),
        (None, None) => h.require_f64("CDELT3", path),
    }
}

/// Angular separation of two positions, degrees.
pub fn separation_deg(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let (r1, d1, r2, d2) = (
        ra1.to_radians(),
        dec1.to_radians(),
        ra2.to_radians(),
        dec2.to_radians(),
    );
    let s = ((d2 - d1) / 2.0).sin().powi(2) + d1.cos() * d2.cos() * ((r2 - r1) / 2.0).sin().powi(2);
    (2.0 * s.sqrt().min(1.0).asin()).to_degrees()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sin_projection_round_trips_and_points_east_left() {
        let w = Wcs {
            crval_ra: 189.0,
            crval_dec: -25.0,
            crpix_x: 101.0,
            crpix_y: 101.0,
            cdelt_x: -0.01,
            cdelt_y: 0.01,
            pc: IDENTITY,
            crval_freq: 8.875e8,
            crpix_freq: 1.0,
            cdelt_freq: 1e6,
        };
        let (ra, dec) = w.pix_to_world(100.0, 100.0);
        assert!((ra - 189.0).abs() < 1e-12 && (dec + 25.0).abs() < 1e-12);
        let (ra2, _) = w.pix_to_world(90.0, 100.0);
        assert!(ra2 > 189.0, "RA grows to the left");
        for (x, y) in [(0.0, 0.0), (37.5, 160.25), (199.0, 3.0)] {
            let (ra, dec) = w.pix_to_world(x, y);
            let (x2, y2) = w.world_to_pix(ra, dec).unwrap();
            assert!(
                (x - x2).abs() < 1e-8 && (y - y2).abs() < 1e-8,
                "{x} {y} -> {x2} {y2}"
            );
        }
        assert!((separation_deg(10.0, 0.0, 11.0, 0.0) - 1.0).abs() < 1e-12);
        assert!((separation_deg(0.0, 89.0, 180.0, 89.0) - 2.0).abs() < 1e-9);
    }
}
