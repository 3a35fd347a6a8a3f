//! Ionospheric Faraday rotation predicted from global TEC maps, as RMextract's `getRM` does it for
//! FRion (`../shared/science/leakage-and-imaging.md` c2–c3), without network or casacore:
//!
//! 1. the source direction (J2000) in the terrestrial frame at each time: IAU 1976 precession and
//!    Greenwich mean sidereal time (IAU 1982) with UT1 = UTC; nutation, polar motion and
//!    aberration are left out (each moves the direction by less than 25″, which moves the pierce
//!    point by less than 60 m at 450 km);
//! 2. the pierce point of the line of sight through a thin shell 450 km above the WGS84 ellipsoid
//!    (solved exactly for the geodetic height), and the slant factor F = 1 / cos z′, z′ the
//!    zenith angle of the ray at the pierce point;
//! 3. vertical TEC from the IONEX maps at the pierce point's geocentric latitude and longitude
//!    (IONEX grids are geocentric);
//! 4. the WMM2020 field at the pierce point (geodetic latitude, 450 km), and its component along
//!    the propagation direction, B∥ = −B·d (d points from the station to the source);
//! 5. RM_ion = 2.62×10⁻⁶ · B∥[nT] · VTEC[TECU] · F, in rad/m².
//!
//! Where this differs from RMextract on purpose: the station is ASKAP at its true latitude
//! (FRion's table puts it at −25.2958°, 157 km north), and the geomagnetic model gets the pierce
//! point's geodetic latitude (RMextract passes the geocentric one); both are documented in
//! README.md. Time sampling follows RMextract: every `step` seconds from one step before the
//! start to one step after the end.

use super::geomag::{self, WGS84_A, WGS84_F};
use super::ionex::IonexMaps;

/// Height of the ionospheric shell, metres (RMextract's default).
pub const SHELL_HEIGHT_M: f64 = 450_000.0;
/// RM per (nT · TECU · slant factor), rad/m² (RMextract's constant).
pub const RM_PER_NT_TECU: f64 = 2.62e-6;

/// A station on the WGS84 ellipsoid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Station {
    /// Geodetic latitude, degrees.
    pub lat_deg: f64,
    /// Longitude, degrees east.
    pub lon_deg: f64,
    /// Height above the ellipsoid, metres.
    pub height_m: f64,
}

/// ASKAP (the Murchison Radio-astronomy Observatory): 26°42′15″ S, 116.6589° E, 381 m.
pub const ASKAP: Station = Station {
    lat_deg: -(26.0 + 42.0 / 60.0 + 15.0 / 3600.0),
    lon_deg: 116.6589,
    height_m: 381.0,
};

/// Earth-centred, Earth-fixed coordinates (metres) of a geodetic position.
pub fn geodetic_to_ecef(lat_deg: f64, lon_deg: f64, h: f64) -> [f64; 3] {
    let e2 = WGS84_F * (2.0 - WGS84_F);
    let (sp, cp) = lat_deg.to_radians().sin_cos();
    let (sl, cl) = lon_deg.to_radians().sin_cos();
    let n = WGS84_A / (1.0 - e2 * sp * sp).sqrt();
    [
        (n + h) * cp * cl,
        (n + h) * cp * sl,
        (n * (1.0 - e2) + h) * sp,
    ]
}

/// Geodetic latitude, longitude (degrees) and height (metres) of an ECEF position.
pub fn ecef_to_geodetic(p: [f64; 3]) -> (f64, f64, f64) {
    let e2 = WGS84_F * (2.0 - WGS84_F);
    let r = p[0].hypot(p[1]);
    let lon = p[1].atan2(p[0]);
    let mut lat = p[2].atan2(r * (1.0 - e2));
    let mut h = 0.0;
    for _ in 0..6 {
        let s = lat.sin();
        let n = WGS84_A / (1.0 - e2 * s * s).sqrt();
        h = r / lat.cos() - n;
        lat = p[2].atan2(r * (1.0 - e2 * n / (n + h)));
    }
    (lat.to_degrees(), lon.to_degrees(), h)
}

/// The geodetic "up" unit vector at a geodetic latitude and longitude.
fn up(lat_deg: f64, lon_deg: f64) -> [f64; 3] {
    let (sp, cp) = lat_deg.to_radians().sin_cos();
    let (sl, cl) = lon_deg.to_radians().sin_cos();
    [cp * cl, cp * sl, sp]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn mat_vec(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [dot(m[0], v), dot(m[1], v), dot(m[2], v)]
}

fn mat_mul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut c = [[0.0; 3]; 3];
    for (i, row) in c.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

/// Rotation of the coordinate frame about z by `a` radians.
fn r3(a: f64) -> [[f64; 3]; 3] {
    let (s, c) = a.sin_cos();
    [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]
}

/// Rotation of the coordinate frame about y by `a` radians.
fn r2(a: f64) -> [[f64; 3]; 3] {
    let (s, c) = a.sin_cos();
    [[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]]
}

/// The unit vector towards a J2000 direction in the Earth-fixed frame at `mjd_s` (UTC seconds).
pub fn j2000_to_itrf(ra_deg: f64, dec_deg: f64, mjd_s: f64) -> [f64; 3] {
    let jd = mjd_s / 86_400.0 + 2_400_000.5;
    let t = (jd - 2_451_545.0) / 36_525.0;
    let as2r = |a: f64| (a / 3600.0).to_radians();
    // IAU 1976 precession angles (Lieske et al. 1977).
    let zeta = as2r(2306.2181 * t + 0.30188 * t * t + 0.017998 * t * t * t);
    let z = as2r(2306.2181 * t + 1.09468 * t * t + 0.018203 * t * t * t);
    let theta = as2r(2004.3109 * t - 0.42665 * t * t - 0.041833 * t * t * t);
    let precession = mat_mul(&r3(-z), &mat_mul(&r2(theta), &r3(-zeta)));
    // GMST (IAU 1982), seconds of time.
    let gmst_s = 67_310.548_41 + (876_600.0 * 3600.0 + 8_640_184.812_866) * t + 0.093_104 * t * t
        - 6.2e-6 * t * t * t;
    let gmst = (gmst_s.rem_euclid(86_400.0) / 86_400.0) * std::f64::consts::TAU;
    let (sd, cd) = dec_deg.to_radians().sin_cos();
    let (sa, ca) = ra_deg.to_radians().sin_cos();
    let v = [cd * ca, cd * sa, sd];
    mat_vec(&r3(gmst), mat_vec(&precession, v))
}

/// Azimuth (east of north) and elevation, degrees, of an Earth-fixed direction seen from a
/// station.
pub fn az_el(station: &Station, d: [f64; 3]) -> (f64, f64) {
    let (sp, cp) = station.lat_deg.to_radians().sin_cos();
    let (sl, cl) = station.lon_deg.to_radians().sin_cos();
    let east = [-sl, cl, 0.0];
    let north = [-sp * cl, -sp * sl, cp];
    let upv = [cp * cl, cp * sl, sp];
    let (e, n, u) = (dot(d, east), dot(d, north), dot(d, upv));
    (
        e.atan2(n).to_degrees().rem_euclid(360.0),
        u.atan2(e.hypot(n)).to_degrees(),
    )
}

/// Where a line of sight crosses the shell `height` metres above the ellipsoid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pierce {
    /// Geodetic latitude, degrees.
    pub lat_deg: f64,
    /// Geocentric latitude, degrees (what IONEX grids use).
    pub geocentric_lat_deg: f64,
    /// Longitude, degrees.
    pub lon_deg: f64,
    /// Slant factor 1 / cos z′.
    pub slant: f64,
}

/// The pierce point of the ray from `station` along unit vector `d` through the shell at
/// `height` metres above the ellipsoid.
pub fn pierce(station: &Station, d: [f64; 3], height: f64) -> Pierce {
    let s0 = geodetic_to_ecef(station.lat_deg, station.lon_deg, station.height_m);
    let at = |s: f64| [s0[0] + s * d[0], s0[1] + s * d[1], s0[2] + s * d[2]];
    // Start from the sphere through the station's radius plus the shell height, then Newton on
    // the geodetic height along the ray (dh/ds = d · up).
    let r0 = dot(s0, s0).sqrt();
    let rs = r0 - station.height_m + height;
    let b = dot(s0, d);
    let mut s = -b + (b * b - (r0 * r0 - rs * rs)).max(0.0).sqrt();
    for _ in 0..8 {
        let (la, lo, h) = ecef_to_geodetic(at(s));
        let slope = dot(d, up(la, lo)).max(1e-3);
        let step = (height - h) / slope;
        s += step;
        if step.abs() < 1e-4 {
            break;
        }
    }
    let p = at(s);
    let (la, lo, _) = ecef_to_geodetic(p);
    let cosz = dot(d, up(la, lo));
    Pierce {
        lat_deg: la,
        geocentric_lat_deg: p[2].atan2(p[0].hypot(p[1])).to_degrees(),
        lon_deg: lo,
        slant: 1.0 / cosz.max(1e-3),
    }
}

/// The WMM2020 field at a geodetic position as an Earth-fixed vector (nT).
pub fn field_ecef(lat_deg: f64, lon_deg: f64, height: f64, mjd_s: f64) -> [f64; 3] {
    let [x, y, z] = geomag::field_ned(lat_deg, lon_deg, height, geomag::decimal_year(mjd_s));
    let (sp, cp) = lat_deg.to_radians().sin_cos();
    let (sl, cl) = lon_deg.to_radians().sin_cos();
    let north = [-sp * cl, -sp * sl, cp];
    let east = [-sl, cl, 0.0];
    let down = [-cp * cl, -cp * sl, -sp];
    [0, 1, 2].map(|k| x * north[k] + y * east[k] + z * down[k])
}

/// The geometry of one sample: the pierce point, the slant factor and B∥ (nT).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// The pierce point.
    pub pierce: Pierce,
    /// Elevation at the station, degrees.
    pub elevation_deg: f64,
    /// Field along the propagation direction, nT.
    pub b_parallel: f64,
}

/// The geometry of the line of sight to a J2000 direction at `mjd_s`.
pub fn geometry(station: &Station, ra_deg: f64, dec_deg: f64, mjd_s: f64) -> Geometry {
    geometry_at(station, ra_deg, dec_deg, mjd_s, false)
}

/// [`geometry`] as RMextract computes it: the geomagnetic model evaluated at the pierce point's
/// geocentric latitude taken as geodetic (its quirk, about 1 % in B∥ at ASKAP). For comparisons
/// with RMextract only.
pub fn geometry_as_rmextract(station: &Station, ra_deg: f64, dec_deg: f64, mjd_s: f64) -> Geometry {
    geometry_at(station, ra_deg, dec_deg, mjd_s, true)
}

fn geometry_at(
    station: &Station,
    ra_deg: f64,
    dec_deg: f64,
    mjd_s: f64,
    geocentric_wmm: bool,
) -> Geometry {
    let d = j2000_to_itrf(ra_deg, dec_deg, mjd_s);
    let p = pierce(station, d, SHELL_HEIGHT_M);
    let wmm_lat = if geocentric_wmm {
        p.geocentric_lat_deg
    } else {
        p.lat_deg
    };
    let b = field_ecef(wmm_lat, p.lon_deg, SHELL_HEIGHT_M, mjd_s);
    Geometry {
        pierce: p,
        elevation_deg: az_el(station, d).1,
        b_parallel: -dot(b, d),
    }
}

/// RM_ion (rad/m²) for a geometry and a vertical TEC (TECU).
pub fn rm_ion(g: &Geometry, vtec: f64) -> f64 {
    RM_PER_NT_TECU * g.b_parallel * vtec * g.pierce.slant
}

/// RMextract's time samples for a scan from `start` to `end` (MJD seconds): every `step` from one
/// step before the start while below one step after the end plus a step (numpy's
/// `arange(start - step, end + 2 step, step)`), so a 900 s scan at 300 s has 6 samples.
pub fn time_grid(start: f64, end: f64, step: f64) -> Vec<f64> {
    let (t0, stop) = (start - step, end + 2.0 * step);
    let n = ((stop - t0) / step).ceil().max(1.0) as usize;
    (0..n).map(|k| t0 + step * k as f64).collect()
}

/// RM_ion at each time for a direction, with the maps chosen per time (`maps[k]` for
/// `times[k]`). Errors name the first time and pierce point where the maps have no value.
pub fn predict(
    station: &Station,
    ra_deg: f64,
    dec_deg: f64,
    times: &[f64],
    maps: &[&IonexMaps],
) -> Result<Vec<f64>, String> {
    times
        .iter()
        .zip(maps)
        .map(|(&t, m)| {
            let g = geometry(station, ra_deg, dec_deg, t);
            let v = m.vtec(t, g.pierce.geocentric_lat_deg, g.pierce.lon_deg);
            if !v.is_finite() {
                return Err(format!(
                    "the IONEX map has no value (9999) at the pierce point ({:.2}, {:.2}) at MJD {:.5}",
                    g.pierce.geocentric_lat_deg,
                    g.pierce.lon_deg,
                    t / 86_400.0
                ));
            }
            Ok(rm_ion(&g, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geodetic_round_trip() {
        for (la, lo, h) in [
            (-26.7, 116.66, 381.0),
            (45.0, -120.0, 450_000.0),
            (89.0, 10.0, 0.0),
        ] {
            let (a, b, c) = ecef_to_geodetic(geodetic_to_ecef(la, lo, h));
            assert!((a - la).abs() < 1e-9 && (b - lo).abs() < 1e-9 && (c - h).abs() < 1e-5);
        }
    }

    #[test]
    fn zenith_pierce_point_is_overhead_with_unit_slant() {
        let s = ASKAP;
        let d = up(s.lat_deg, s.lon_deg);
        let p = pierce(&s, d, SHELL_HEIGHT_M);
        assert!((p.lat_deg - s.lat_deg).abs() < 1e-6 && (p.lon_deg - s.lon_deg).abs() < 1e-6);
        assert!((p.slant - 1.0).abs() < 1e-9);
        // Geocentric latitude is nearer the equator than geodetic in the south... by ~0.17 deg.
        assert!(p.geocentric_lat_deg > p.lat_deg && p.geocentric_lat_deg - p.lat_deg < 0.2);
    }

    #[test]
    fn slant_factor_matches_the_thin_shell_formula() {
        // On a sphere of radius R the slant factor at elevation e is 1/sqrt(1 - (R cos e / (R+H))^2);
        // the ellipsoid changes it by well under a percent.
        let s = ASKAP;
        for el in [20.0f64, 45.0, 70.0] {
            let (se, ce) = el.to_radians().sin_cos();
            let (sp, cp) = s.lat_deg.to_radians().sin_cos();
            let (sl, cl) = s.lon_deg.to_radians().sin_cos();
            // Due north at elevation el.
            let north = [-sp * cl, -sp * sl, cp];
            let upv = [cp * cl, cp * sl, sp];
            let d = [0, 1, 2].map(|k| ce * north[k] + se * upv[k]);
            let p = pierce(&s, d, SHELL_HEIGHT_M);
            let r = 6_371_000.0;
            let want = 1.0 / (1.0 - (r * ce / (r + SHELL_HEIGHT_M)).powi(2)).sqrt();
            assert!(
                (p.slant / want - 1.0).abs() < 0.01,
                "el {el}: {} vs {want}",
                p.slant
            );
            assert!((az_el(&s, d).1 - el).abs() < 1e-9);
        }
    }

    #[test]
    fn time_grid_is_rmextracts() {
        let g = time_grid(1000.0, 1900.0, 300.0);
        assert_eq!(g, [700.0, 1000.0, 1300.0, 1600.0, 1900.0, 2200.0]);
        assert_eq!(time_grid(0.0, 1000.0, 300.0).len(), 7);
    }
}
