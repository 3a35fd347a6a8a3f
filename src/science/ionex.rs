//! IONEX (IONosphere map EXchange, version 1.0) global maps of vertical total electron content:
//! reading them, interpolating them as RMextract does, choosing among products, and writing them
//! (for simulated fields).
//!
//! What is read (`../shared/science/leakage-and-imaging.md` c4): the header records
//! `EPOCH OF FIRST MAP`, `INTERVAL`, `# OF MAPS IN FILE`, `EXPONENT`, `LAT1 / LAT2 / DLAT`,
//! `LON1 / LON2 / DLON` (labels in columns 61–80), and every `TEC MAP` (its
//! `EPOCH OF CURRENT MAP`, then per latitude a `LAT/LON1/LON2/DLON/H` record and the values in
//! 16I5 lines); RMS and height maps are skipped. Values are 10^EXPONENT TECU; 9999 means no
//! value and becomes NaN (RMextract keeps it as 999.9 TECU).
//!
//! Interpolation: bilinear in latitude and longitude, linear in time between the two maps around
//! the time, indices clamped at the grid edges, longitude wrapped when the grid spans 360°; no
//! rotation of the maps with the Sun (RMextract's `earth_rot=0`).

use std::fmt::Write as _;

use super::geomag::{civil_from_mjd, mjd_from_civil};

/// A problem in an IONEX text: the line (from 1; 0 when it is about the whole file) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct IonexError {
    /// Line number, from 1 (0: the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A regular axis: first value, step, count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Axis {
    /// First grid value, degrees.
    pub first: f64,
    /// Step, degrees (may be negative: IONEX latitudes run north to south).
    pub step: f64,
    /// Number of grid values.
    pub n: usize,
}

impl Axis {
    fn from_range(a: f64, b: f64, step: f64) -> Option<Axis> {
        if step == 0.0 || !step.is_finite() || (b - a) / step < 0.0 {
            return None;
        }
        let n = ((b - a) / step).round() as usize + 1;
        Some(Axis { first: a, step, n })
    }
    /// The value of grid index `i`.
    pub fn at(&self, i: usize) -> f64 {
        self.first + self.step * i as f64
    }
    fn last(&self) -> f64 {
        self.at(self.n - 1)
    }
}

/// The TEC maps of one IONEX file.
#[derive(Debug, Clone, PartialEq)]
pub struct IonexMaps {
    /// Time of each map, MJD seconds (UTC).
    pub epochs: Vec<f64>,
    /// Latitude grid (geocentric, degrees).
    pub lat: Axis,
    /// Longitude grid (degrees).
    pub lon: Axis,
    /// Vertical TEC in TECU, `[map][lat][lon]`, NaN where the file has no value.
    pub tec: Vec<f64>,
}

/// The record labels of IONEX 1.0 (columns 61-80).
const LABELS: &[&str] = &[
    "IONEX VERSION / TYPE",
    "PGM / RUN BY / DATE",
    "DESCRIPTION",
    "COMMENT",
    "EPOCH OF FIRST MAP",
    "EPOCH OF LAST MAP",
    "INTERVAL",
    "# OF MAPS IN FILE",
    "MAPPING FUNCTION",
    "ELEVATION CUTOFF",
    "OBSERVABLES USED",
    "# OF STATIONS",
    "# OF SATELLITES",
    "BASE RADIUS",
    "MAP DIMENSION",
    "HGT1 / HGT2 / DHGT",
    "LAT1 / LAT2 / DLAT",
    "LON1 / LON2 / DLON",
    "EXPONENT",
    "START OF AUX DATA",
    "END OF AUX DATA",
    "PRN / BIAS / RMS",
    "STATION / BIAS / RMS",
    "END OF HEADER",
    "START OF TEC MAP",
    "END OF TEC MAP",
    "START OF RMS MAP",
    "END OF RMS MAP",
    "START OF HEIGHT MAP",
    "END OF HEIGHT MAP",
    "EPOCH OF CURRENT MAP",
    "LAT/LON1/LON2/DLON/H",
    "END OF FILE",
];

/// Split a record's data part into numbers: whitespace-separated, and also where a minus sign
/// follows a digit or point (fixed-width fields may touch: `87.5-87.5`).
fn numbers(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for word in s.split_whitespace() {
        let b = word.as_bytes();
        let mut start = 0;
        for i in 1..b.len() {
            if b[i] == b'-' && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.') {
                out.push(&word[start..i]);
                start = i;
            }
        }
        out.push(&word[start..]);
    }
    out
}

/// An epoch record (`y m d h m s`) as MJD seconds.
fn epoch(fields: &[&str]) -> Option<f64> {
    if fields.len() < 6 {
        return None;
    }
    let v: Vec<f64> = fields[..6]
        .iter()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let mut y = v[0] as i32;
    if y < 100 {
        y += if y < 80 { 2000 } else { 1900 };
    }
    let (mo, d) = (v[1] as u32, v[2] as u32);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    Some(mjd_from_civil(y, mo, d) as f64 * 86_400.0 + v[3] * 3600.0 + v[4] * 60.0 + v[5])
}

impl IonexMaps {
    /// Parse an IONEX file's text.
    pub fn parse(text: &str) -> Result<IonexMaps, IonexError> {
        let err = |line: usize, message: String| IonexError { line, message };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        // A record is (data, label) when columns 61-80 hold a known label; anything else (the
        // 16I5 value lines, which fill all 80 columns) is data with an empty label.
        let split = |l: &str| -> (String, String) {
            let cut = l.char_indices().nth(60).map(|(i, _)| i).unwrap_or(l.len());
            let label = l[cut..].trim();
            if LABELS.contains(&label) {
                (l[..cut].to_string(), label.to_string())
            } else {
                (l.to_string(), String::new())
            }
        };
        let (mut first, mut interval, mut nmaps) = (None, None, None);
        let (mut lat, mut lon) = (None, None);
        let mut exponent = -1i32;
        let mut saw_version = false;
        let mut header_end = false;
        for (no, l) in lines.by_ref() {
            let (data, label) = split(l);
            let f = numbers(&data);
            let bad = |what: &str| {
                err(
                    no,
                    format!("cannot read the {what} record '{}'", l.trim_end()),
                )
            };
            match label.as_str() {
                "IONEX VERSION / TYPE" => saw_version = true,
                "EPOCH OF FIRST MAP" => first = Some(epoch(&f).ok_or_else(|| bad(&label))?),
                "INTERVAL" => {
                    interval = Some(
                        f.first()
                            .and_then(|v| v.parse::<f64>().ok())
                            .ok_or_else(|| bad(&label))?,
                    )
                }
                "# OF MAPS IN FILE" => {
                    nmaps = Some(
                        f.first()
                            .and_then(|v| v.parse::<usize>().ok())
                            .ok_or_else(|| bad(&label))?,
                    )
                }
                "EXPONENT" => {
                    exponent = f
                        .first()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| bad(&label))?
                }
                "LAT1 / LAT2 / DLAT" | "LON1 / LON2 / DLON" => {
                    let v: Vec<f64> = f.iter().take(3).filter_map(|v| v.parse().ok()).collect();
                    let axis = (v.len() == 3)
                        .then(|| Axis::from_range(v[0], v[1], v[2]))
                        .flatten()
                        .ok_or_else(|| bad(&label))?;
                    if label.starts_with("LAT") {
                        lat = Some(axis);
                    } else {
                        lon = Some(axis);
                    }
                }
                "END OF HEADER" => {
                    header_end = true;
                    break;
                }
                _ => {}
            }
        }
        if !saw_version {
            return Err(err(1, "not an IONEX file: no 'IONEX VERSION / TYPE' record in columns 61-80 of the header".into()));
        }
        if !header_end {
            return Err(err(
                0,
                "the header has no 'END OF HEADER' record: the file is cut short".into(),
            ));
        }
        let missing = |what: &str| err(0, format!("the header has no '{what}' record"));
        let lat = lat.ok_or_else(|| missing("LAT1 / LAT2 / DLAT"))?;
        let lon = lon.ok_or_else(|| missing("LON1 / LON2 / DLON"))?;
        let first = first.ok_or_else(|| missing("EPOCH OF FIRST MAP"))?;
        let nmaps = nmaps.ok_or_else(|| missing("# OF MAPS IN FILE"))?;
        let scale = 10f64.powi(exponent);
        let per_map = lat.n * lon.n;
        let mut tec = vec![f64::NAN; nmaps * per_map];
        let mut epochs = vec![f64::NAN; nmaps];
        let mut in_map: Option<(usize, usize)> = None; // (map index, start line)
        let mut row: Option<(usize, usize)> = None; // (lat index, values read so far)
        let mut skipping = false;
        let mut seen = vec![false; nmaps];
        for (no, l) in lines {
            let (data, label) = split(l);
            match label.as_str() {
                "START OF TEC MAP" => {
                    let k: usize = data.trim().parse().map_err(|_| {
                        err(
                            no,
                            format!("cannot read the map number in '{}'", l.trim_end()),
                        )
                    })?;
                    if k == 0 || k > nmaps {
                        return Err(err(
                            no,
                            format!("TEC map {k}, but the header says the file holds {nmaps} maps"),
                        ));
                    }
                    in_map = Some((k - 1, no));
                    seen[k - 1] = true;
                    epochs[k - 1] = first + interval.unwrap_or(0.0) * (k - 1) as f64;
                }
                "END OF TEC MAP" => {
                    in_map = None;
                    row = None;
                }
                "START OF RMS MAP" | "START OF HEIGHT MAP" => skipping = true,
                "END OF RMS MAP" | "END OF HEIGHT MAP" => skipping = false,
                "EPOCH OF CURRENT MAP" if in_map.is_some() => {
                    let (k, _) = in_map.unwrap_or_default();
                    epochs[k] = epoch(&numbers(&data)).ok_or_else(|| {
                        err(no, format!("cannot read the epoch '{}'", data.trim()))
                    })?;
                }
                "LAT/LON1/LON2/DLON/H" if in_map.is_some() => {
                    let v: Vec<f64> = numbers(&data)
                        .iter()
                        .filter_map(|v| v.parse().ok())
                        .collect();
                    let Some(&la) = v.first() else {
                        return Err(err(
                            no,
                            format!("cannot read the latitude record '{}'", l.trim_end()),
                        ));
                    };
                    let i = ((la - lat.first) / lat.step).round();
                    if i < 0.0 || i as usize >= lat.n || (lat.at(i as usize) - la).abs() > 1e-6 {
                        return Err(err(
                            no,
                            format!(
                                "latitude {la} is not on the header's grid ({} to {} by {})",
                                lat.first,
                                lat.last(),
                                lat.step
                            ),
                        ));
                    }
                    row = Some((i as usize, 0));
                }
                _ if skipping => {}
                "" if in_map.is_some() => {
                    let (Some((k, _)), Some((i, read))) = (in_map, row) else {
                        return Err(err(
                            no,
                            "values before a 'LAT/LON1/LON2/DLON/H' record".into(),
                        ));
                    };
                    let mut n = read;
                    let b = l.as_bytes();
                    for chunk in b.chunks(5) {
                        let s = std::str::from_utf8(chunk).unwrap_or("").trim();
                        if s.is_empty() {
                            continue;
                        }
                        let v: i64 = s
                            .parse()
                            .map_err(|_| err(no, format!("'{s}' is not an integer TEC value")))?;
                        if n >= lon.n {
                            return Err(err(
                                no,
                                format!(
                                    "more than the {} longitudes of the header's grid in this row",
                                    lon.n
                                ),
                            ));
                        }
                        tec[k * per_map + i * lon.n + n] = if v == 9999 {
                            f64::NAN
                        } else {
                            v as f64 * scale
                        };
                        n += 1;
                    }
                    row = Some((i, n));
                }
                _ => {}
            }
        }
        if let Some(k) = seen.iter().position(|s| !s) {
            return Err(err(0, format!("the header says {nmaps} TEC maps but map {} is missing: the file is cut short or damaged", k + 1)));
        }
        if let Some((k, start)) = in_map {
            return Err(err(
                start,
                format!(
                    "TEC map {} has no 'END OF TEC MAP': the file is cut short",
                    k + 1
                ),
            ));
        }
        if epochs.windows(2).any(|w| w[1] <= w[0]) {
            return Err(err(0, "the TEC maps' epochs do not increase".into()));
        }
        Ok(IonexMaps {
            epochs,
            lat,
            lon,
            tec,
        })
    }

    /// First and last map time, MJD seconds.
    pub fn span(&self) -> (f64, f64) {
        (
            self.epochs[0],
            *self.epochs.last().unwrap_or(&self.epochs[0]),
        )
    }

    /// Whether `t` (MJD seconds) lies within the maps' time span.
    pub fn covers(&self, t: f64) -> bool {
        let (a, b) = self.span();
        t >= a && t <= b
    }

    /// Vertical TEC (TECU) at time `t` (MJD seconds, clamped to the span) and geocentric latitude
    /// and longitude (degrees). NaN where the maps have no value.
    pub fn vtec(&self, t: f64, lat: f64, lon: f64) -> f64 {
        let k = self
            .epochs
            .partition_point(|&e| e <= t)
            .clamp(1, self.epochs.len().max(2) - 1);
        if self.epochs.len() == 1 {
            return self.spatial(0, lat, lon);
        }
        let (t0, t1) = (self.epochs[k - 1], self.epochs[k]);
        let w = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0);
        (1.0 - w) * self.spatial(k - 1, lat, lon) + w * self.spatial(k, lat, lon)
    }

    fn spatial(&self, map: usize, lat: f64, lon: f64) -> f64 {
        let (fi, wi) = index(&self.lat, lat, false);
        let (fj, wj) = index(&self.lon, lon, self.wraps());
        let at = |i: usize, j: usize| self.tec[map * self.lat.n * self.lon.n + i * self.lon.n + j];
        let i1 = (fi + 1).min(self.lat.n - 1);
        let j1 = if fj + 1 < self.lon.n {
            fj + 1
        } else if self.wraps() {
            0
        } else {
            fj
        };
        (1.0 - wi) * ((1.0 - wj) * at(fi, fj) + wj * at(fi, j1))
            + wi * ((1.0 - wj) * at(i1, fj) + wj * at(i1, j1))
    }

    /// Whether the longitude grid spans the whole circle.
    fn wraps(&self) -> bool {
        ((self.lon.n as f64) * self.lon.step.abs() - 360.0).abs() < 1e-6
            || ((self.lon.n - 1) as f64 * self.lon.step.abs() - 360.0).abs() < 1e-6
    }
}

/// The grid cell below `x` on `axis` and the weight of the next grid value, clamped at the edges
/// (or wrapped, for a longitude grid around the circle).
fn index(axis: &Axis, x: f64, wrap: bool) -> (usize, f64) {
    let mut u = (x - axis.first) / axis.step;
    if wrap {
        let period = 360.0 / axis.step.abs();
        u = u.rem_euclid(period);
        // A grid that repeats its first longitude at the end (-180 … 180) has n-1 distinct values.
        let distinct = if ((axis.n - 1) as f64 - period).abs() < 1e-6 {
            axis.n - 1
        } else {
            axis.n
        };
        let i = u.floor() as usize % distinct;
        return (i, u - u.floor());
    }
    if u <= 0.0 {
        return (0, 0.0);
    }
    let max = (axis.n - 1) as f64;
    if u >= max {
        return (axis.n - 1, 0.0);
    }
    (u.floor() as usize, u - u.floor())
}

/// CODE's global grid: latitudes 87.5 to -87.5 by 2.5 degrees, longitudes -180 to 180 by 5.
pub const CODE_LAT: Axis = Axis {
    first: 87.5,
    step: -2.5,
    n: 71,
};
/// See [`CODE_LAT`].
pub const CODE_LON: Axis = Axis {
    first: -180.0,
    step: 5.0,
    n: 73,
};

/// The IONEX products Arrakis tries, in order, after the one asked for (`ionex_prefix`): CODE,
/// JPL, CAS, ESA, UPC and IGS final maps.
pub const FALLBACK_PREFIXES: [&str; 6] = ["codg", "jplg", "casg", "esag", "upcg", "igsg"];

/// The legacy file name of a product's map for a UTC day: `{PREFIX}{DOY}0.{YY}I`.
pub fn legacy_name(prefix: &str, mjd_s: f64) -> String {
    let (y, doy, _) = super::geomag::year_doy(mjd_s);
    format!(
        "{}{doy:03}0.{:02}I",
        prefix.to_uppercase(),
        y.rem_euclid(100)
    )
}

/// The product a file name belongs to: its first four letters, lower-cased (`CODG1200.17I` is
/// `codg`; an IGS long name `COD0OPSFIN_…` is `cod0`).
pub fn product_of(name: &str) -> String {
    name.chars().take(4).collect::<String>().to_lowercase()
}

/// The maps to use for `times`: among the files (name, maps), the first product in
/// `preferred` then [`FALLBACK_PREFIXES`] (then any other product) whose files together cover
/// every time. Returns the product and the maps per time, or the times no product covers (for
/// the product that comes closest).
pub fn choose<'a>(
    files: &'a [(String, IonexMaps)],
    preferred: &str,
    times: &[f64],
) -> Result<(String, Vec<&'a IonexMaps>), Vec<f64>> {
    let refs: Vec<(String, &IonexMaps)> = files.iter().map(|(n, m)| (n.clone(), m)).collect();
    choose_refs(&refs, preferred, times)
}

/// [`choose`] over borrowed maps.
pub fn choose_refs<'a>(
    files: &[(String, &'a IonexMaps)],
    preferred: &str,
    times: &[f64],
) -> Result<(String, Vec<&'a IonexMaps>), Vec<f64>> {
    let mut order: Vec<String> = std::iter::once(preferred.to_lowercase())
        .chain(FALLBACK_PREFIXES.iter().map(|s| s.to_string()))
        .collect();
    for (name, _) in files {
        let p = product_of(name);
        if !order.contains(&p) {
            order.push(p);
        }
    }
    let mut best_missing: Option<Vec<f64>> = None;
    for product in &order {
        let of: Vec<&'a IonexMaps> = files
            .iter()
            .filter(|(n, _)| &product_of(n) == product)
            .map(|(_, m)| *m)
            .collect();
        if of.is_empty() {
            continue;
        }
        let mut per_time = Vec::with_capacity(times.len());
        let mut missing = Vec::new();
        for &t in times {
            match of.iter().find(|m| m.covers(t)) {
                Some(m) => per_time.push(*m),
                None => missing.push(t),
            }
        }
        if missing.is_empty() {
            return Ok((product.clone(), per_time));
        }
        if best_missing
            .as_ref()
            .is_none_or(|b| missing.len() < b.len())
        {
            best_missing = Some(missing);
        }
    }
    Err(best_missing.unwrap_or_else(|| times.to_vec()))
}

/// Write maps as an IONEX 1.0 file (one product's day, as CODE distributes them): `tec(t, lat,
/// lon)` in TECU is sampled at every map time and grid point and stored in 0.1 TECU
/// (EXPONENT -1).
pub fn write(epochs: &[f64], lat: Axis, lon: Axis, tec: &dyn Fn(f64, f64, f64) -> f64) -> String {
    let mut s = String::new();
    let rec = |s: &mut String, data: String, label: &str| {
        let _ = writeln!(s, "{data:<60}{label:<20}");
    };
    let ep = |t: f64| {
        let days = (t / 86_400.0).floor();
        let (y, m, d) = civil_from_mjd(days as i64);
        let sec = (t - days * 86_400.0).round() as i64;
        format!(
            "{y:6}{m:6}{d:6}{:6}{:6}{:6}",
            sec / 3600,
            sec % 3600 / 60,
            sec % 60
        )
    };
    let interval = if epochs.len() > 1 {
        (epochs[1] - epochs[0]).round() as i64
    } else {
        0
    };
    rec(
        &mut s,
        format!(
            "{:>8}{:12}{:<20}{:<20}",
            "1.0", "", "IONOSPHERE MAPS", "GNSS"
        ),
        "IONEX VERSION / TYPE",
    );
    rec(
        &mut s,
        format!("{:<20}{:<20}{:<20}", "arrakis simulate", "arrakis", ""),
        "PGM / RUN BY / DATE",
    );
    rec(
        &mut s,
        "Simulated global ionosphere maps (arrakis simulate --ionosphere)".into(),
        "COMMENT",
    );
    rec(&mut s, ep(epochs[0]), "EPOCH OF FIRST MAP");
    rec(
        &mut s,
        ep(*epochs.last().unwrap_or(&epochs[0])),
        "EPOCH OF LAST MAP",
    );
    rec(&mut s, format!("{interval:6}"), "INTERVAL");
    rec(&mut s, format!("{:6}", epochs.len()), "# OF MAPS IN FILE");
    rec(&mut s, "  NONE".into(), "MAPPING FUNCTION");
    rec(&mut s, format!("{:8.1}", 0.0), "ELEVATION CUTOFF");
    rec(&mut s, String::new(), "OBSERVABLES USED");
    rec(&mut s, format!("{:8.1}", 6371.0), "BASE RADIUS");
    rec(&mut s, format!("{:6}", 2), "MAP DIMENSION");
    rec(
        &mut s,
        format!("  {:6.1}{:6.1}{:6.1}", 450.0, 450.0, 0.0),
        "HGT1 / HGT2 / DHGT",
    );
    rec(
        &mut s,
        format!("  {:6.1}{:6.1}{:6.1}", lat.first, lat.last(), lat.step),
        "LAT1 / LAT2 / DLAT",
    );
    rec(
        &mut s,
        format!("  {:6.1}{:6.1}{:6.1}", lon.first, lon.last(), lon.step),
        "LON1 / LON2 / DLON",
    );
    rec(&mut s, format!("{:6}", -1), "EXPONENT");
    rec(&mut s, String::new(), "END OF HEADER");
    for (k, &t) in epochs.iter().enumerate() {
        rec(&mut s, format!("{:6}", k + 1), "START OF TEC MAP");
        rec(&mut s, ep(t), "EPOCH OF CURRENT MAP");
        for i in 0..lat.n {
            let la = lat.at(i);
            rec(
                &mut s,
                format!(
                    "  {la:6.1}{:6.1}{:6.1}{:6.1}{:6.1}",
                    lon.first,
                    lon.last(),
                    lon.step,
                    450.0
                ),
                "LAT/LON1/LON2/DLON/H",
            );
            for chunk in (0..lon.n).collect::<Vec<_>>().chunks(16) {
                for &j in chunk {
                    let v = tec(t, la, lon.at(j));
                    let q = if v.is_finite() {
                        (v * 10.0).round().clamp(-9998.0, 9998.0) as i64
                    } else {
                        9999
                    };
                    let _ = write!(s, "{q:5}");
                }
                s.push('\n');
            }
        }
        rec(&mut s, format!("{:6}", k + 1), "END OF TEC MAP");
    }
    rec(&mut s, String::new(), "END OF FILE");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> (Axis, Axis) {
        (
            Axis {
                first: 87.5,
                step: -2.5,
                n: 71,
            },
            Axis {
                first: -180.0,
                step: 5.0,
                n: 73,
            },
        )
    }

    #[test]
    fn written_maps_read_back_and_interpolate_linearly() {
        let (lat, lon) = grid();
        let t0 = mjd_from_civil(2020, 5, 1) as f64 * 86_400.0;
        let epochs: Vec<f64> = (0..25).map(|k| t0 + 3600.0 * k as f64).collect();
        // Linear in time, latitude and longitude within cells: interpolation is exact there.
        let f = |t: f64, la: f64, lo: f64| 20.0 + (t - t0) / 3600.0 * 0.5 + 0.1 * la + 0.02 * lo;
        let text = write(&epochs, lat, lon, &f);
        let maps = IonexMaps::parse(&text).unwrap();
        assert_eq!(maps.epochs, epochs);
        assert_eq!((maps.lat, maps.lon), (lat, lon));
        for (t, la, lo) in [
            (t0 + 1800.0, -26.3, 117.1),
            (t0 + 7000.0, 10.0, -3.3),
            (t0 + 86_000.0, -60.1, 170.2),
        ] {
            let want = f(t, la, lo);
            let got = maps.vtec(t, la, lo);
            // Stored to 0.1 TECU.
            assert!(
                (got - want).abs() < 0.051,
                "({t}, {la}, {lo}): {got} vs {want}"
            );
        }
        // Longitude wraps: 185 is -175.
        assert!((maps.vtec(t0, -20.0, 185.0) - maps.vtec(t0, -20.0, -175.0)).abs() < 1e-12);
        // Clamped beyond the grid's latitudes and times.
        assert_eq!(maps.vtec(t0 - 500.0, 89.0, 0.0), maps.vtec(t0, 87.5, 0.0));
    }

    #[test]
    fn touching_negative_fields_missing_values_and_damage() {
        assert_eq!(numbers("  87.5-87.5 -2.5"), ["87.5", "-87.5", "-2.5"]);
        let (lat, lon) = grid();
        let t0 = mjd_from_civil(2020, 5, 1) as f64 * 86_400.0;
        let text = write(&[t0, t0 + 7200.0], lat, lon, &|_, la, _| {
            if la > 80.0 {
                f64::NAN
            } else {
                12.0
            }
        });
        let maps = IonexMaps::parse(&text).unwrap();
        assert!(maps.vtec(t0, 87.5, 0.0).is_nan());
        assert_eq!(maps.vtec(t0, 0.0, 0.0), 12.0);
        // Cut short.
        let cut: String = text.lines().take(200).map(|l| format!("{l}\n")).collect();
        let e = IonexMaps::parse(&cut).unwrap_err();
        assert!(e.message.contains("cut short"), "{e:?}");
        // A bad value names its line.
        let bad = text.replacen("  120", "  1x0", 1);
        let e = IonexMaps::parse(&bad).unwrap_err();
        assert!(e.line > 0 && e.message.contains("1x0"), "{e:?}");
        assert!(IonexMaps::parse("hello\n")
            .unwrap_err()
            .message
            .contains("not an IONEX file"));
    }

    #[test]
    fn products_are_chosen_in_arrakis_order_and_gaps_reported() {
        let (lat, lon) = grid();
        let t0 = mjd_from_civil(2020, 5, 1) as f64 * 86_400.0;
        let day = |d: f64| {
            IonexMaps::parse(&write(
                &[t0 + d * 86_400.0, t0 + (d + 1.0) * 86_400.0],
                lat,
                lon,
                &|_, _, _| 10.0,
            ))
            .unwrap()
        };
        assert_eq!(legacy_name("codg", t0 + 100.0), "CODG1220.20I");
        let files = vec![
            ("JPLG1220.20I".to_string(), day(0.0)),
            ("CODG1220.20I".to_string(), day(0.0)),
            ("UPCG1220.20I".to_string(), day(0.0)),
            ("UPCG1230.20I".to_string(), day(1.0)),
        ];
        let (p, _) = choose(&files, "codg", &[t0 + 10.0]).unwrap();
        assert_eq!(p, "codg");
        let (p, _) = choose(&files, "upcg", &[t0 + 10.0]).unwrap();
        assert_eq!(p, "upcg");
        // Across midnight only UPC has both days.
        let (p, m) = choose(&files, "codg", &[t0 + 86_000.0, t0 + 87_000.0]).unwrap();
        assert_eq!((p.as_str(), m.len()), ("upcg", 2));
        let missing = choose(&files, "codg", &[t0 + 5.0 * 86_400.0]).unwrap_err();
        assert_eq!(missing.len(), 1);
    }
}
