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

/// Great-circle separation in degrees between two (RA, Dec) positions in degrees (Vincenty's
/// formula, as astropy's `separation`: exact at every distance).
pub fn separation_deg(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let (l1, b1, l2, b2) = (
        ra1.to_radians(),
        dec1.to_radians(),
        ra2.to_radians(),
        dec2.to_radians(),
    );
    let dl = l2 - l1;
    let (sb1, cb1, sb2, cb2) = (b1.sin(), b1.cos(), b2.sin(), b2.cos());
    let num1 = cb2 * dl.sin();
    let num2 = cb1 * sb2 - sb1 * cb2 * dl.cos();
    let den = sb1 * sb2 + cb1 * cb2 * dl.cos();
    num1.hypot(num2).atan2(den).to_degrees()
}

/// Position angle in degrees, east of north, of (ra2, dec2) seen from (ra1, dec1) (astropy's
/// `position_angle`), in (−180, 180].
pub fn position_angle_deg(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let (b1, b2) = (dec1.to_radians(), dec2.to_radians());
    let dl = (ra2 - ra1).to_radians();
    let x = b1.cos() * b2.sin() - b1.sin() * b2.cos() * dl.cos();
    let y = dl.sin() * b2.cos();
    y.atan2(x).to_degrees()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separations_and_position_angles() {
        assert!((separation_deg(10.0, 0.0, 11.0, 0.0) - 1.0).abs() < 1e-12);
        assert!((separation_deg(0.0, 89.0, 180.0, 89.0) - 2.0).abs() < 1e-9);
        assert!((separation_deg(0.0, -30.0, 180.0, 30.0) - 180.0).abs() < 1e-9);
        // North is 0, east (increasing RA) is 90.
        assert!(position_angle_deg(10.0, 0.0, 10.0, 1.0).abs() < 1e-9);
        assert!((position_angle_deg(10.0, 0.0, 10.1, 0.0) - 90.0).abs() < 1e-9);
        assert!((position_angle_deg(10.0, 0.0, 9.9, 0.0) + 90.0).abs() < 1e-9);
    }

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
