//! The ASKAP dish's primary beam as a Gaussian (FWHM 1.09 λ/D, D = 12 m): the attenuation the
//! simulation applies and linmos divides out.

use super::C_M_S;

/// Gaussian primary beam of an ASKAP dish (FWHM 1.09 λ/D, D = 12 m) at `r_deg` from the pointing.
pub fn primary_beam(r_deg: f64, freq_hz: f64) -> f64 {
    primary_beam_with_fwhm(r_deg, primary_beam_fwhm_deg(freq_hz))
}

/// The beam's FWHM in degrees at `freq_hz` (linmos works it out once per channel).
pub fn primary_beam_fwhm_deg(freq_hz: f64) -> f64 {
    (1.09 * C_M_S / freq_hz / 12.0).to_degrees()
}

/// [`primary_beam`] given the FWHM in degrees.
#[inline]
pub fn primary_beam_with_fwhm(r_deg: f64, fwhm_deg: f64) -> f64 {
    (-4.0 * 2f64.ln() * (r_deg / fwhm_deg).powi(2)).exp()
}

/// A measured (holography) primary-beam model: the response of each beam on a grid of offsets
/// from the beam's pointing, per frequency, in Stokes I and, for an ASKAP holography cube, in
/// Q, U and V too (the response to unpolarised sky emission: its leakage into Q, U and V).
///
/// Offsets are direction cosines about the pointing in degrees: `l` grows towards the east
/// (increasing RA), `m` towards the north. Between grid points the response is bilinear in
/// (l, m) and linear in frequency (clamped to the first and last plane); outside the grid it is
/// 0 (the beam is not used there).
#[derive(Clone, Debug)]
pub struct BeamModel {
    /// Samples along l, m, frequency, beam.
    pub shape: [usize; 4],
    /// Stokes planes per beam: 1 (I only) or 4 (I, Q, U, V).
    pub nstokes: usize,
    /// Responses, l varying fastest, then m, frequency, Stokes, beam.
    pub data: Vec<f32>,
    /// l of sample 0 and the step (deg).
    pub l0_deg: f64,
    /// Step along l (deg; may be negative).
    pub dl_deg: f64,
    /// m of sample 0 (deg).
    pub m0_deg: f64,
    /// Step along m (deg).
    pub dm_deg: f64,
    /// Frequency of sample 0 (Hz).
    pub f0_hz: f64,
    /// Frequency step (Hz; anything non-zero when there is one plane).
    pub df_hz: f64,
    /// Beam number of plane 0 along the beam axis (planes are consecutive beams).
    pub beam0: usize,
    /// One pattern for every beam (a model without a beam axis).
    pub shared: bool,
}

/// Stokes Q's plane in a model with four (I, Q, U, V).
pub const PLANE_Q: usize = 1;
/// Stokes U's plane.
pub const PLANE_U: usize = 2;

/// Where one (beam, l, m, frequency) falls in a model. (A run of channels at one position
/// takes its [`Spatial`] part once and a [`FreqIndex`] per channel.)
#[derive(Clone, Copy, Debug)]
pub struct ModelPoint {
    sp: Spatial,
    fi: FreqIndex,
}

/// Where one (beam, l, m) falls in a model's planes, whatever the frequency.
#[derive(Clone, Copy, Debug)]
pub struct Spatial {
    b: usize,
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
    fx: f64,
    fy: f64,
    /// Outside the grid: every plane is 0 there.
    outside: bool,
}

/// Where one frequency falls between a model's planes: `(1 - t)·plane f0 + t·plane f1`.
#[derive(Clone, Copy, Debug)]
pub struct FreqIndex {
    /// The lower plane.
    pub f0: usize,
    /// The upper plane.
    pub f1: usize,
    /// The weight of the upper plane.
    pub t: f64,
}

impl BeamModel {
    /// Where `beam` at offset (l, m) degrees falls; `None` if the model has no such beam.
    pub fn spatial(&self, beam: usize, l_deg: f64, m_deg: f64) -> Option<Spatial> {
        let [nl, nm, _, nb] = self.shape;
        let b = if self.shared {
            0
        } else {
            beam.checked_sub(self.beam0).filter(|&b| b < nb)?
        };
        let x = (l_deg - self.l0_deg) / self.dl_deg;
        let y = (m_deg - self.m0_deg) / self.dm_deg;
        let outside = !(x >= 0.0 && y >= 0.0 && x <= (nl - 1) as f64 && y <= (nm - 1) as f64);
        let (x, y) = if outside { (0.0, 0.0) } else { (x, y) };
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        Some(Spatial {
            b,
            x0,
            y0,
            x1: (x0 + 1).min(nl - 1),
            y1: (y0 + 1).min(nm - 1),
            fx: x - x0 as f64,
            fy: y - y0 as f64,
            outside,
        })
    }

    /// Where `freq_hz` falls between the planes (clamped to the first and last).
    pub fn freq_index(&self, freq_hz: f64) -> FreqIndex {
        let nf = self.shape[2];
        let f = ((freq_hz - self.f0_hz) / self.df_hz).clamp(0.0, (nf - 1) as f64);
        let f0 = f.floor() as usize;
        FreqIndex {
            f0,
            f1: (f0 + 1).min(nf - 1),
            t: f - f0 as f64,
        }
    }

    /// Stokes plane `s` at a spatial point, bilinear, for frequency planes `lo..=hi` into `out`
    /// (0 outside the grid): what a run of channels between those planes blends.
    pub fn planes_at(&self, sp: &Spatial, s: usize, lo: usize, hi: usize, out: &mut Vec<f64>) {
        out.clear();
        let [nl, nm, nf, _] = self.shape;
        if sp.outside || s >= self.nstokes {
            out.resize(hi + 1 - lo, 0.0);
            return;
        }
        for k in lo..=hi.min(nf - 1) {
            let base = ((sp.b * self.nstokes + s) * nf + k) * nm;
            let at = |ix: usize, iy: usize| self.data[(base + iy) * nl + ix] as f64;
            out.push(
                (1.0 - sp.fy) * ((1.0 - sp.fx) * at(sp.x0, sp.y0) + sp.fx * at(sp.x1, sp.y0))
                    + sp.fy * ((1.0 - sp.fx) * at(sp.x0, sp.y1) + sp.fx * at(sp.x1, sp.y1)),
            );
        }
    }

    /// Where `beam` at offset (l, m) degrees and `freq_hz` falls; `None` if the model has no
    /// such beam.
    pub fn locate(&self, beam: usize, l_deg: f64, m_deg: f64, freq_hz: f64) -> Option<ModelPoint> {
        Some(ModelPoint {
            sp: self.spatial(beam, l_deg, m_deg)?,
            fi: self.freq_index(freq_hz),
        })
    }

    /// The model's value in Stokes plane `s` at a located point (0 outside the grid).
    pub fn value(&self, p: &ModelPoint, s: usize) -> f64 {
        let mut planes = Vec::with_capacity(2);
        self.planes_at(&p.sp, s, p.fi.f0, p.fi.f1, &mut planes);
        blend(&planes, p.fi.f0, p.fi)
    }

    /// Stokes I response of `beam` at offset (l, m) degrees and `freq_hz` (the primary beam;
    /// never negative); `None` if the model has no such beam.
    pub fn response(&self, beam: usize, l_deg: f64, m_deg: f64, freq_hz: f64) -> Option<f64> {
        let p = self.locate(beam, l_deg, m_deg, freq_hz)?;
        Some(self.value(&p, 0).max(0.0))
    }

    /// Whether the model holds Q and U planes (leakage can be removed with it).
    pub fn has_leakage(&self) -> bool {
        self.nstokes >= 3
    }

    /// The fractional leakage of Stokes I into Stokes plane `s` (Q = 1, U = 2) at a located
    /// point: L = H_s / H_I, the apparent S/I an unpolarised source shows there; 0 where the
    /// beam has no response (below 1e-6 of its peak: nothing is measured there).
    pub fn leakage(&self, p: &ModelPoint, s: usize) -> f64 {
        let i = self.value(p, 0);
        if i > 1e-6 {
            self.value(p, s) / i
        } else {
            0.0
        }
    }
}

/// The value at `fi` of planes `lo..` given by [`BeamModel::planes_at`] (0 if not finite).
#[inline]
pub fn blend(planes: &[f64], lo: usize, fi: FreqIndex) -> f64 {
    let v = (1.0 - fi.t) * planes[fi.f0 - lo] + fi.t * planes[fi.f1 - lo];
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// (l, m) rotated by `alpha` radians (counter-clockwise, east towards north): how a holography
/// model measured with the feeds at one angle is applied to an observation at another.
pub fn rotate_lm(l: f64, m: f64, alpha: f64) -> (f64, f64) {
    if alpha == 0.0 {
        return (l, m);
    }
    let (s, c) = alpha.sin_cos();
    (c * l - s * m, s * l + c * m)
}

/// Direction cosines (l east, m north), in degrees, of (ra, dec) about the pointing
/// (ra0, dec0): the SIN projection's offsets.
pub fn offset_lm_deg(ra_deg: f64, dec_deg: f64, ra0_deg: f64, dec0_deg: f64) -> (f64, f64) {
    let (ra, dec, ra0, dec0) = (
        ra_deg.to_radians(),
        dec_deg.to_radians(),
        ra0_deg.to_radians(),
        dec0_deg.to_radians(),
    );
    let da = ra - ra0;
    let l = dec.cos() * da.sin();
    let m = dec.sin() * dec0.cos() - dec.cos() * dec0.sin() * da.cos();
    (l.to_degrees(), m.to_degrees())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian_model(fwhm_scale: f64) -> BeamModel {
        let (nl, nf) = (41, 3);
        let (l0, dl) = (-2.0, 0.1);
        let freqs = [800e6, 900e6, 1000e6];
        let mut data = Vec::new();
        for f in freqs {
            for iy in 0..nl {
                for ix in 0..nl {
                    let (l, m) = (l0 + dl * ix as f64, l0 + dl * iy as f64);
                    let r = (l * l + m * m).sqrt();
                    let fwhm = (1.09 * C_M_S / f / 12.0).to_degrees() * fwhm_scale;
                    data.push((-4.0 * 2f64.ln() * (r / fwhm).powi(2)).exp() as f32);
                }
            }
        }
        BeamModel {
            shape: [nl, nl, nf, 1],
            nstokes: 1,
            data,
            l0_deg: l0,
            dl_deg: dl,
            m0_deg: l0,
            dm_deg: dl,
            f0_hz: 800e6,
            df_hz: 100e6,
            beam0: 5,
            shared: false,
        }
    }

    #[test]
    fn a_gaussian_holography_model_gives_the_gaussian_beam() {
        let m = gaussian_model(1.0);
        for (l, mm, f) in [
            (0.0f64, 0.0f64, 800e6),
            (0.3, -0.2, 900e6),
            (0.55, 0.45, 1000e6),
        ] {
            let r = (l * l + mm * mm).sqrt();
            let want = primary_beam(r, f);
            let got = m.response(5, l, mm, f).unwrap();
            assert!(
                (got - want).abs() < 2e-3,
                "({l}, {mm}, {f}): {got} vs {want}"
            );
        }
        // Between frequency planes: between the two responses.
        let (a, b) = (primary_beam(0.5, 800e6), primary_beam(0.5, 900e6));
        let v = m.response(5, 0.5, 0.0, 850e6).unwrap();
        assert!(v > a.min(b) && v < a.max(b));
        assert_eq!(m.response(4, 0.0, 0.0, 800e6), None);
        assert_eq!(m.response(5, 2.5, 0.0, 800e6), Some(0.0));
    }

    #[test]
    fn leakage_is_the_ratio_of_the_q_and_u_planes_to_i() {
        // Two beams, 3 × 3 offsets, one frequency, I, Q, U, V: I = 0.5, Q = 0.01 + 0.001 x,
        // U = -0.02; beam 1 has twice the leakage.
        let (n, ns) = (3usize, 4usize);
        let mut data = Vec::new();
        for b in 0..2 {
            for s in 0..ns {
                for _y in 0..n {
                    for x in 0..n {
                        let k = (b + 1) as f32;
                        data.push(match s {
                            0 => 0.5,
                            1 => k * (0.01 + 0.001 * x as f32),
                            2 => k * -0.02,
                            _ => 0.0,
                        });
                    }
                }
            }
        }
        let m = BeamModel {
            shape: [n, n, 1, 2],
            nstokes: ns,
            data,
            l0_deg: 1.0,
            dl_deg: -1.0,
            m0_deg: -1.0,
            dm_deg: 1.0,
            f0_hz: 900e6,
            df_hz: 1.0,
            beam0: 0,
            shared: false,
        };
        assert!(m.has_leakage());
        // l = 0.5 is between x = 0 (l = 1) and x = 1 (l = 0): x = 0.5.
        let p = m.locate(0, 0.5, 0.0, 900e6).unwrap();
        assert!((m.leakage(&p, PLANE_Q) - (0.0105 / 0.5)).abs() < 1e-7);
        assert!((m.leakage(&p, PLANE_U) - (-0.04)).abs() < 1e-7);
        let p1 = m.locate(1, 0.5, 0.0, 900e6).unwrap();
        assert!((m.leakage(&p1, PLANE_Q) - 2.0 * 0.0105 / 0.5).abs() < 1e-6);
        assert_eq!(m.response(1, 0.5, 0.0, 900e6), Some(0.5));
        // Outside the grid: no response and no leakage.
        let out = m.locate(0, 1.5, 0.0, 900e6).unwrap();
        assert_eq!((m.value(&out, 0), m.leakage(&out, PLANE_Q)), (0.0, 0.0));
        assert!(m.locate(2, 0.0, 0.0, 900e6).is_none());
    }

    #[test]
    fn rotation_turns_east_to_north() {
        let (l, m) = rotate_lm(1.0, 0.0, std::f64::consts::FRAC_PI_2);
        assert!(l.abs() < 1e-12 && (m - 1.0).abs() < 1e-12);
        assert_eq!(rotate_lm(0.3, -0.2, 0.0), (0.3, -0.2));
    }

    #[test]
    fn offsets_are_direction_cosines() {
        let (l, m) = offset_lm_deg(10.0, -30.0, 10.0, -30.0);
        assert!(l.abs() < 1e-12 && m.abs() < 1e-12);
        let (l, m) = offset_lm_deg(10.0, -29.0, 10.0, -30.0);
        assert!(l.abs() < 1e-12 && (m - 1.0).abs() < 1e-3);
        let (l, _) = offset_lm_deg(11.0, -30.0, 10.0, -30.0);
        assert!((l - 30f64.to_radians().cos()).abs() < 1e-3, "{l}");
    }
}
