//! `field.yaml`: the description of a field, every key typed and checked when it is read, with
//! the file and line of what is wrong.
//!
//! Owns: the schema (the README's "field.yaml" table lists the same keys) and its checks.
//! Must never: read anything but the one file.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One beam centre.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeamCentre {
    /// Beam number (0..35 for ASKAP).
    pub beam: u32,
    /// Right ascension of the beam centre, degrees.
    pub ra_deg: f64,
    /// Declination of the beam centre, degrees.
    pub dec_deg: f64,
}

/// A sky position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkyPosition {
    /// Right ascension, degrees.
    pub ra_deg: f64,
    /// Declination, degrees.
    pub dec_deg: f64,
}

/// One field of a region (`tiles` in a region's `field.yaml`, written by `arrakis region`): what
/// the catalogue needs of the tile a component was source-found in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tile {
    /// The field's name (a component's `Tile_ID`).
    pub name: String,
    /// Its tile centre.
    pub centre: SkyPosition,
    /// Its scheduling block ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbid: Option<serde_yaml::Value>,
    /// Start of its scan, MJD in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_start_mjd_s: Option<f64>,
    /// Length of its scan, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_length_s: Option<f64>,
    /// Its footprint's polarisation axis angle, degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pol_axis_deg: Option<f64>,
}

/// `field.yaml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldFile {
    /// Field name; must equal the directory name.
    pub field: String,
    /// Beam centres (beam numbers unique; a field with islands needs at least one).
    #[serde(default)]
    pub beams: Vec<BeamCentre>,
    /// Tile (field) centre; the catalogue's separations and l/m offsets are measured from it.
    /// Default: the mean direction of the beam centres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub centre: Option<SkyPosition>,
    /// ASKAP scheduling block ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbid: Option<serde_yaml::Value>,
    /// Band: `low` (RACS-low, 744-1032 MHz), `mid` (1296-1440 MHz) or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    /// Channels of the beam cubes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nchan: Option<u32>,
    /// Channels flagged in every beam (0-based, below `nchan`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flagged_channels: Vec<u32>,
    /// Start of the scan, MJD in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_start_mjd_s: Option<f64>,
    /// Length of the scan, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_length_s: Option<f64>,
    /// Polarisation axis angle of the footprint (ASKAP's POL_AXIS), degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pol_axis_deg: Option<f64>,
    /// A region's fields (`arrakis region` writes them): each component's tile centre, scan and
    /// polarisation axis come from the tile its `Tile_ID` names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiles: Vec<Tile>,
}

/// Every key, for did-you-mean.
pub const KEYS: &[&str] = &[
    "field",
    "beams",
    "centre",
    "sbid",
    "band",
    "nchan",
    "flagged_channels",
    "scan_start_mjd_s",
    "scan_length_s",
    "pol_axis_deg",
    "tiles",
];

/// What is wrong with a `field.yaml`, and where: the units' error (a field's files).
pub use crate::units::UnitsError as FieldFileError;

/// 1-based lines of the list items under the top-level key `key`.
fn item_lines(text: &str, key: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let indent = line.len() - t.len();
        if indent == 0 && !t.starts_with("- ") {
            inside = t.starts_with(&format!("{key}:"));
            continue;
        }
        if inside && t.starts_with("- ") {
            out.push(i + 1);
        }
    }
    out
}

impl FieldFile {
    /// Read and check `path`.
    pub fn read(path: &Path) -> Result<FieldFile, FieldFileError> {
        let text = crate::hash::read_regular_string(path).map_err(|e| FieldFileError::Read {
            path: path.to_path_buf(),
            why: format!("cannot read the field description ({e}); `arrakis init` writes one for real data, `arrakis simulate` for a simulated field"),
        })?;
        Self::parse(&text, path)
    }

    /// Parse and check `text` (read from `path`).
    pub fn parse(text: &str, path: &Path) -> Result<FieldFile, FieldFileError> {
        let at = |line: Option<usize>| crate::diag::location(path, line);
        let bad = |line: Option<usize>, why: String| FieldFileError::Bad {
            location: at(line),
            why,
        };
        // Unknown top-level keys first, with the nearest known one.
        if let Ok(serde_yaml::Value::Mapping(m)) = serde_yaml::from_str::<serde_yaml::Value>(text) {
            for k in m.keys() {
                if let Some(k) = k.as_str() {
                    if !KEYS.contains(&k) {
                        return Err(bad(
                            crate::diag::line_of(text, &[k]),
                            format!(
                                "unknown key '{k}'{}; the keys are {}",
                                crate::diag::did_you_mean(k, KEYS.iter().copied()),
                                KEYS.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        let ff: FieldFile = serde_yaml::from_str(text).map_err(|e| {
            bad(
                e.location().map(|l| l.line()),
                format!("invalid field description: {e}"),
            )
        })?;
        let line = |k: &str| crate::diag::line_of(text, &[k]);
        if ff.beams.is_empty() && line("beams").is_some() {
            return Err(bad(
                line("beams"),
                "no beams: list every beam's centre under 'beams' ({beam: N, ra_deg: .., dec_deg: ..})"
                    .into(),
            ));
        }
        let lines = item_lines(text, "beams");
        let mut seen = std::collections::HashMap::new();
        for (k, b) in ff.beams.iter().enumerate() {
            let l = lines.get(k).copied().or(line("beams"));
            if let Some(why) = off_sky(b.ra_deg, b.dec_deg) {
                return Err(bad(l, format!("beam {}: {why}", b.beam)));
            }
            if let Some(first) = seen.insert(b.beam, l) {
                return Err(bad(
                    l,
                    format!(
                        "beam {} is listed twice (first at line {})",
                        b.beam,
                        first.map_or("?".into(), |v| v.to_string())
                    ),
                ));
            }
        }
        if let Some(c) = &ff.centre {
            if let Some(why) = off_sky(c.ra_deg, c.dec_deg) {
                return Err(bad(line("centre"), format!("centre: {why}")));
            }
        }
        if let Some(b) = &ff.band {
            if !["low", "mid", "high"].contains(&b.as_str()) {
                return Err(bad(
                    line("band"),
                    format!("band '{b}' is not low, mid or high"),
                ));
            }
        }
        if let Some(n) = ff.nchan {
            if n == 0 {
                return Err(bad(line("nchan"), "nchan is 0".into()));
            }
            if let Some(c) = ff.flagged_channels.iter().find(|&&c| c >= n) {
                return Err(bad(
                    line("flagged_channels"),
                    format!("flagged channel {c} is not below nchan ({n}); channels count from 0"),
                ));
            }
        }
        for (k, v, positive) in [
            ("scan_start_mjd_s", ff.scan_start_mjd_s, false),
            ("scan_length_s", ff.scan_length_s, true),
            ("pol_axis_deg", ff.pol_axis_deg, false),
        ] {
            if let Some(v) = v {
                if !v.is_finite() || (positive && v <= 0.0) {
                    return Err(bad(
                        line(k),
                        format!(
                            "{k} is {v}; it must be a finite number{}",
                            if positive { " above 0" } else { "" }
                        ),
                    ));
                }
            }
        }
        Ok(ff)
    }

    /// The tile centre: `centre`, else the mean direction of the beam centres.
    pub fn tile_centre(&self) -> (f64, f64) {
        if let Some(c) = &self.centre {
            return (c.ra_deg, c.dec_deg);
        }
        let (mut x, mut y, mut z) = (0.0, 0.0, 0.0);
        for b in &self.beams {
            let (a, d) = (b.ra_deg.to_radians(), b.dec_deg.to_radians());
            x += d.cos() * a.cos();
            y += d.cos() * a.sin();
            z += d.sin();
        }
        (
            y.atan2(x).to_degrees().rem_euclid(360.0),
            z.atan2(x.hypot(y)).to_degrees(),
        )
    }

    /// The SBID as text (empty when not given).
    pub fn sbid_text(&self) -> String {
        sbid_text(&self.sbid)
    }

    /// The region tile named `name`, if this is a region's field file and it has one.
    pub fn tile(&self, name: &str) -> Option<&Tile> {
        self.tiles.iter().find(|t| t.name == name)
    }
}

/// An SBID as text (empty when absent).
pub fn sbid_text(sbid: &Option<serde_yaml::Value>) -> String {
    match sbid {
        Some(serde_yaml::Value::Number(n)) => n.to_string(),
        Some(serde_yaml::Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Why (ra, dec) is not a position on the sky, if it is not.
fn off_sky(ra: f64, dec: f64) -> Option<String> {
    if !ra.is_finite() || !(0.0..360.0).contains(&ra) {
        return Some(format!("ra_deg {ra} is not in [0, 360)"));
    }
    if !dec.is_finite() || !(-90.0..=90.0).contains(&dec) {
        return Some(format!("dec_deg {dec} is not in [-90, 90]"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        FieldFile::parse(text, Path::new("F/field.yaml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_good_file_reads_and_bad_ones_name_the_line() {
        let good = "field: F\nsbid: 61234\nband: low\nnchan: 288\nflagged_channels: [3, 4]\nbeams:\n  - {beam: 0, ra_deg: 10.0, dec_deg: -20.0}\n  - {beam: 1, ra_deg: 11.0, dec_deg: -20.0}\n";
        let f = FieldFile::parse(good, Path::new("F/field.yaml")).unwrap();
        assert_eq!(f.beams.len(), 2);
        assert_eq!(f.sbid_text(), "61234");
        let (ra, dec) = f.tile_centre();
        assert!((ra - 10.5).abs() < 1e-3 && (dec + 20.0).abs() < 1e-2);

        let e = err("field: F\nbeams:\n  - {beam: 0, ra_deg: 10.0, dec_deg: -20.0}\n  - {beam: 1, ra_deg: 11.0, dec_deg: -95.0}\n");
        assert!(
            e.starts_with("F/field.yaml:4:") && e.contains("dec_deg -95"),
            "{e}"
        );
        let e = err("field: F\nbeams:\n  - {beam: 0, ra_deg: 10.0, dec_deg: -20.0}\n  - {beam: 0, ra_deg: 11.0, dec_deg: -20.0}\n");
        assert!(
            e.starts_with("F/field.yaml:4:") && e.contains("twice (first at line 3)"),
            "{e}"
        );
        let e = err("field: F\nbeams: []\n");
        assert!(
            e.starts_with("F/field.yaml:2:") && e.contains("no beams"),
            "{e}"
        );
        let e =
            err("field: F\nbeams:\n  - {beam: 0, ra_deg: 10.0, dec_deg: -20.0}\npol_axs_deg: 3\n");
        assert!(
            e.starts_with("F/field.yaml:4:") && e.contains("did you mean 'pol_axis_deg'"),
            "{e}"
        );
        let e = err("field: F\nnchan: 10\nflagged_channels: [3, 10]\nbeams:\n  - {beam: 0, ra_deg: 10.0, dec_deg: -20.0}\n");
        assert!(
            e.starts_with("F/field.yaml:3:") && e.contains("not below nchan"),
            "{e}"
        );
        let e = err(
            "field: F\nscan_length_s: -3\nbeams:\n  - {beam: 0, ra_deg: 10.0, dec_deg: -20.0}\n",
        );
        assert!(e.starts_with("F/field.yaml:2:"), "{e}");
        let e = err("field: F\nbeams:\n  - {beam: 0, ra_deg: 400.0, dec_deg: -20.0}\n");
        assert!(e.contains("ra_deg 400"), "{e}");
        // No `beams` key: a field without islands (the engine's own tests) is fine.
        assert!(FieldFile::parse("field: F\n", Path::new("F/field.yaml")).is_ok());
    }
}
