//! The ASKAP dish's primary beam as a Gaussian (FWHM 1.09 λ/D, D = 12 m): the attenuation the
//! simulation applies and linmos divides out.

use super::C_M_S;

/// Gaussian primary beam of an ASKAP dish (FWHM 1.09 λ/D, D = 12 m) at `r_deg` from the pointing.
pub fn primary_beam(r_deg: f64, freq_hz: f64) -> f64 {
    let fwhm = (1.09 * C_M_S / freq_hz / 12.0).to_degrees();
    (-4.0 * 2f64.ln() * (r_deg / fwhm).powi(2)).exp()
}
