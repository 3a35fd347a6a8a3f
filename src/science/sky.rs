//! Sky coordinates the catalogue and plots need beyond the image WCS.
//!
//! Must never: open a file.

/// Galactic (l, b) in degrees of J2000 (RA, Dec) in degrees (IAU 1958 pole, FK5).
pub fn galactic(ra: f64, dec: f64) -> (f64, f64) {
    let (ra_p, dec_p, l_ncp) = (
        192.859_48f64.to_radians(),
        27.128_25f64.to_radians(),
        122.931_92,
    );
    let (a, d) = (ra.to_radians(), dec.to_radians());
    let sb = d.sin() * dec_p.sin() + d.cos() * dec_p.cos() * (a - ra_p).cos();
    let b = sb.clamp(-1.0, 1.0).asin();
    let y = d.cos() * (a - ra_p).sin();
    let x = d.sin() * dec_p.cos() - d.cos() * dec_p.sin() * (a - ra_p).cos();
    let l = (l_ncp - y.atan2(x).to_degrees()).rem_euclid(360.0);
    (l, b.to_degrees())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn galactic_coordinates_of_known_points() {
        // The Galactic centre and the north Galactic pole.
        let (l, b) = galactic(266.404_99, -28.936_17);
        assert!(l < 0.01 || (l - 360.0).abs() < 0.1, "l {l}");
        assert!(b.abs() < 0.05, "b {b}");
        let (_, b) = galactic(192.859_48, 27.128_25);
        assert!((b - 90.0).abs() < 1e-6);
        // A point on the Galactic equator 90 degrees round: l = 90.
        let (l, b) = galactic(318.004_4, 48.329_6);
        assert!((l - 90.0).abs() < 0.01 && b.abs() < 0.01, "{l} {b}");
    }
}
