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

/// A measured (holography) primary-beam model: the power response of each beam on a grid of
/// offsets from the beam's pointing, per frequency.
///
/// Offsets are direction cosines about the pointing in degrees: `l` grows towards the east
/// (increasing RA), `m` towards the north. Between grid points the response is bilinear in
/// (l, m) and linear in frequency; outside the grid it is 0 (the beam is not used there).
#[derive(Clone, Debug)]
pub struct BeamModel {
    /// Samples along l, m, frequency, beam.
    pub shape: [usize; 4],
    /// Responses, l varying fastest, then m, frequency, beam.
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

impl BeamModel {
    /// Response of `beam` at offset (l, m) degrees and `freq_hz`; `None` if the model has no
    /// such beam.
    pub fn response(&self, beam: usize, l_deg: f64, m_deg: f64, freq_hz: f64) -> Option<f64> {
        let [nl, nm, nf, nb] = self.shape;
        let b = if self.shared {
            0
        } else {
            beam.checked_sub(self.beam0).filter(|&b| b < nb)?
        };
        let x = (l_deg - self.l0_deg) / self.dl_deg;
        let y = (m_deg - self.m0_deg) / self.dm_deg;
        if !(x >= 0.0 && y >= 0.0 && x <= (nl - 1) as f64 && y <= (nm - 1) as f64) {
            return Some(0.0);
        }
        let f = ((freq_hz - self.f0_hz) / self.df_hz).clamp(0.0, (nf - 1) as f64);
        let at = |ix: usize, iy: usize, iff: usize| {
            self.data[((b * nf + iff) * nm + iy) * nl + ix] as f64
        };
        let plane = |iff: usize| {
            let (x0, y0) = (x.floor() as usize, y.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(nl - 1), (y0 + 1).min(nm - 1));
            let (fx, fy) = (x - x0 as f64, y - y0 as f64);
            (1.0 - fy) * ((1.0 - fx) * at(x0, y0, iff) + fx * at(x1, y0, iff))
                + fy * ((1.0 - fx) * at(x0, y1, iff) + fx * at(x1, y1, iff))
        };
        let f0 = f.floor() as usize;
        let f1 = (f0 + 1).min(nf - 1);
        let t = f - f0 as f64;
        let v = (1.0 - t) * plane(f0) + t * plane(f1);
        Some(if v.is_finite() { v.max(0.0) } else { 0.0 })
    }
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
    fn offsets_are_direction_cosines() {
        let (l, m) = offset_lm_deg(10.0, -30.0, 10.0, -30.0);
        assert!(l.abs() < 1e-12 && m.abs() < 1e-12);
        let (l, m) = offset_lm_deg(10.0, -29.0, 10.0, -30.0);
        assert!(l.abs() < 1e-12 && (m - 1.0).abs() < 1e-3);
        let (l, _) = offset_lm_deg(11.0, -30.0, 10.0, -30.0);
        assert!((l - 30f64.to_radians().cos()).abs() < 1e-3, "{l}");
    }
}
