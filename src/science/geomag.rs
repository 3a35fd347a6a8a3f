//! The World Magnetic Model 2020 (WMM2020), the geomagnetic field RMextract (and so FRion and
//! Arrakis) uses for the ionospheric Faraday rotation: a degree-12 spherical-harmonic expansion of
//! the main field with linear secular variation from epoch 2020.0.
//!
//! The Gauss coefficients are NOAA's published `WMM.COF` for WMM2020 (public domain, shipped as
//! `data/WMM2020.COF`); the synthesis follows the WMM2020 technical report (Chulliat et al. 2020,
//! section 1.2): geodetic → geocentric spherical coordinates on WGS84, Schmidt semi-normalised
//! associated Legendre functions, the field in spherical components, rotated back to the geodetic
//! north/east/down frame. Dates outside 2020–2025 are extrapolated, as RMextract does.

use std::sync::OnceLock;

/// Degree (and order) of the expansion.
const N_MAX: usize = 12;
/// Reference radius of the expansion, metres.
const R_REF: f64 = 6_371_200.0;
/// WGS84 semi-major axis, metres.
pub const WGS84_A: f64 = 6_378_137.0;
/// WGS84 flattening.
pub const WGS84_F: f64 = 1.0 / 298.257_223_563;

/// The model: main-field and secular-variation coefficients, indexed `[n][m]`.
struct Model {
    epoch: f64,
    g: [[f64; N_MAX + 1]; N_MAX + 1],
    h: [[f64; N_MAX + 1]; N_MAX + 1],
    gdot: [[f64; N_MAX + 1]; N_MAX + 1],
    hdot: [[f64; N_MAX + 1]; N_MAX + 1],
}

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let text = include_str!("data/WMM2020.COF");
        let mut lines = text.lines();
        let epoch: f64 = lines
            .next()
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("WMM2020.COF: epoch on the first line");
        let z = [[0.0; N_MAX + 1]; N_MAX + 1];
        let mut m = Model {
            epoch,
            g: z,
            h: z,
            gdot: z,
            hdot: z,
        };
        for line in lines {
            if line.starts_with("9999") {
                break;
            }
            let v: Vec<f64> = line
                .split_whitespace()
                .map(|x| x.parse().expect("WMM2020.COF: a number"))
                .collect();
            let (n, o) = (v[0] as usize, v[1] as usize);
            m.g[n][o] = v[2];
            m.h[n][o] = v[3];
            m.gdot[n][o] = v[4];
            m.hdot[n][o] = v[5];
        }
        m
    })
}

/// The epoch of the coefficients (2020.0).
pub fn epoch() -> f64 {
    model().epoch
}

/// The main field at a geodetic position: (north X, east Y, down Z) in nT.
/// `lat_deg` is geodetic latitude, `height_m` height above the WGS84 ellipsoid, `year` a decimal
/// year.
pub fn field_ned(lat_deg: f64, lon_deg: f64, height_m: f64, year: f64) -> [f64; 3] {
    let md = model();
    let dt = year - md.epoch;
    let (phi, lambda) = (lat_deg.to_radians(), lon_deg.to_radians());
    // Geodetic → geocentric spherical (report eq. 7–8).
    let e2 = WGS84_F * (2.0 - WGS84_F);
    let (sphi, cphi) = phi.sin_cos();
    let rc = WGS84_A / (1.0 - e2 * sphi * sphi).sqrt();
    let p = (rc + height_m) * cphi;
    let z = (rc * (1.0 - e2) + height_m) * sphi;
    let r = p.hypot(z);
    let phi_c = z.atan2(p);
    // Schmidt semi-normalised P_n^m(sin φ') and dP/dφ', by the standard recursions.
    let (s, c) = phi_c.sin_cos(); // s = sin φ' (the Legendre argument), c = cos φ'
    let mut pnm = [[0.0f64; N_MAX + 1]; N_MAX + 1];
    let mut dpnm = [[0.0f64; N_MAX + 1]; N_MAX + 1];
    pnm[0][0] = 1.0;
    for n in 1..=N_MAX {
        for m in 0..=n {
            if n == m {
                // P_n^n = sqrt((2n-1)/(2n)) c P_{n-1}^{n-1} (with the n=1 factor 1).
                let k = if n == 1 {
                    1.0
                } else {
                    ((2 * n - 1) as f64 / (2 * n) as f64).sqrt()
                };
                pnm[n][n] = k * c * pnm[n - 1][n - 1];
                dpnm[n][n] = k * (c * dpnm[n - 1][n - 1] - s * pnm[n - 1][n - 1]);
            } else {
                // P_n^m = [(2n-1) s P_{n-1}^m - sqrt((n-1)^2 - m^2) P_{n-2}^m] / sqrt(n^2 - m^2)
                let a = (2 * n - 1) as f64;
                let b = (((n - 1) * (n - 1)) as f64 - (m * m) as f64)
                    .max(0.0)
                    .sqrt();
                let d = ((n * n - m * m) as f64).sqrt();
                let p2 = if n >= 2 { pnm[n - 2][m] } else { 0.0 };
                let dp2 = if n >= 2 { dpnm[n - 2][m] } else { 0.0 };
                pnm[n][m] = (a * s * pnm[n - 1][m] - b * p2) / d;
                dpnm[n][m] = (a * (s * dpnm[n - 1][m] + c * pnm[n - 1][m]) - b * dp2) / d;
            }
        }
    }
    // Field in geocentric spherical components (report eq. 10–12).
    let (mut bx, mut by, mut bz) = (0.0, 0.0, 0.0);
    let ratio = R_REF / r;
    let mut rn = ratio * ratio; // (a/r)^(n+2) starts at n=1 below
    for n in 1..=N_MAX {
        rn *= ratio;
        for m in 0..=n {
            let g = md.g[n][m] + dt * md.gdot[n][m];
            let h = md.h[n][m] + dt * md.hdot[n][m];
            let (sm, cm) = (m as f64 * lambda).sin_cos();
            let gc = g * cm + h * sm;
            bx -= rn * gc * dpnm[n][m];
            by += rn * m as f64 * (g * sm - h * cm) * pnm[n][m];
            bz -= rn * (n + 1) as f64 * gc * pnm[n][m];
        }
    }
    by = if c.abs() > 1e-12 { by / c } else { 0.0 };
    // Rotate from geocentric to geodetic north/down.
    let psi = phi_c - phi;
    let (sp, cp) = psi.sin_cos();
    [bx * cp - bz * sp, by, bx * sp + bz * cp]
}

/// A date as the decimal year RMextract gives the geomagnetic model: year + day-of-year/365
/// (day of year counted from 1, fraction of the day included).
pub fn decimal_year(mjd_s: f64) -> f64 {
    let (year, doy, frac) = year_doy(mjd_s);
    year as f64 + (doy as f64 + frac) / 365.0
}

/// The UTC calendar year, day of year (from 1) and fraction of the day of an MJD in seconds.
pub fn year_doy(mjd_s: f64) -> (i32, u32, f64) {
    let days = (mjd_s / 86_400.0).floor();
    let frac = mjd_s / 86_400.0 - days;
    let (y, _, _) = civil_from_mjd(days as i64);
    let doy = (days as i64 - mjd_from_civil(y, 1, 1)) as u32 + 1;
    (y, doy, frac)
}

/// Calendar date (proleptic Gregorian) of an integer MJD.
pub fn civil_from_mjd(mjd: i64) -> (i32, u32, u32) {
    // Days since 1970-01-01, then Howard Hinnant's civil-from-days algorithm.
    let z = mjd - 40_587 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

/// Integer MJD of a calendar date (proleptic Gregorian).
pub fn mjd_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y as i64 - 1 } else { y as i64 };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468 + 40_587
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NOAA's published WMM2020 test values (WMM2020 report, table of test values): date, height
    /// above the ellipsoid (km), geodetic latitude and longitude (deg), X, Y, Z (nT).
    const TEST_VALUES: [(f64, f64, f64, f64, f64, f64, f64); 12] = [
        (2020.0, 0.0, 80.0, 0.0, 6570.4, -146.3, 54606.0),
        (2020.0, 0.0, 0.0, 120.0, 39624.3, 109.9, -10932.5),
        (2020.0, 0.0, -80.0, 240.0, 5940.6, 15772.1, -52480.8),
        (2020.0, 100.0, 80.0, 0.0, 6261.8, -185.5, 52429.1),
        (2020.0, 100.0, 0.0, 120.0, 37636.7, 104.9, -10474.8),
        (2020.0, 100.0, -80.0, 240.0, 5744.9, 14799.5, -49969.4),
        (2022.5, 0.0, 80.0, 0.0, 6529.9, 1.1, 54713.4),
        (2022.5, 0.0, 0.0, 120.0, 39684.7, -42.2, -10809.5),
        (2022.5, 0.0, -80.0, 240.0, 6016.5, 15776.7, -52251.6),
        (2022.5, 100.0, 80.0, 0.0, 6224.0, -44.5, 52527.0),
        (2022.5, 100.0, 0.0, 120.0, 37694.0, -35.3, -10362.0),
        (2022.5, 100.0, -80.0, 240.0, 5815.0, 14803.0, -49755.3),
    ];

    #[test]
    fn wmm2020_reproduces_the_published_test_values() {
        for (year, h_km, lat, lon, x, y, z) in TEST_VALUES {
            let [bx, by, bz] = field_ned(lat, lon, h_km * 1e3, year);
            // Published to 0.1 nT: agree to rounding.
            for (got, want, what) in [(bx, x, "X"), (by, y, "Y"), (bz, z, "Z")] {
                assert!(
                    (got - want).abs() <= 0.06,
                    "{year} {h_km} km ({lat}, {lon}) {what}: {got:.2} nT, published {want}"
                );
            }
            // Declination as published too (to 0.01 deg).
            let dec = by.atan2(bx).to_degrees();
            assert!((dec - y.atan2(x).to_degrees()).abs() < 0.01);
        }
    }

    #[test]
    fn calendar_conversions_round_trip() {
        assert_eq!(civil_from_mjd(51_544), (2000, 1, 1));
        assert_eq!(mjd_from_civil(2000, 1, 1), 51_544);
        assert_eq!(civil_from_mjd(58_849), (2020, 1, 1));
        for mjd in (40_000..70_000).step_by(37) {
            let (y, m, d) = civil_from_mjd(mjd);
            assert_eq!(mjd_from_civil(y, m, d), mjd);
        }
        // 2020-07-01 is day 183 of a leap year.
        let (y, doy, frac) = year_doy(mjd_from_civil(2020, 7, 1) as f64 * 86_400.0 + 43_200.0);
        assert_eq!((y, doy), (2020, 183));
        assert!((frac - 0.5).abs() < 1e-12);
        assert!(
            (decimal_year(mjd_from_civil(2022, 1, 1) as f64 * 86_400.0) - (2022.0 + 1.0 / 365.0))
                .abs()
                < 1e-12
        );
    }
}
