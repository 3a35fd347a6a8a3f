//! The units of a field: its beams, islands (sources) and components, and which islands each
//! beam holds.
//!
//! Owns: reading `field.yaml` (beam centres) and `catalogue/islands.csv`, `components.csv`
//! (RACS-low DR1 column names: `Source_ID`, `Gaussian_ID`, `RA`, `Dec`), and the beam assignment
//! rule of Arrakis (an island belongs to every beam whose centre is within `beam_radius_deg` of
//! the island centre).
//! Must never: run anything or touch the cache.
//! Invariants: unit names are safe single path components (no `/`, no `..`, no control
//! characters), unique within their kind; orders are the catalogue's row order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Errors reading a field's unit files.
#[derive(Debug, thiserror::Error)]
pub enum UnitsError {
    /// A file could not be read.
    #[error("{path}: {why}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong and what to do.
        why: String,
    },
    /// A file's content is wrong at a place.
    #[error("{location}: {why}")]
    Bad {
        /// FILE:LINE.
        location: String,
        /// What is wrong and how to fix it.
        why: String,
    },
}

pub use crate::field_file::{BeamCentre, FieldFile};

/// The units of one field.
#[derive(Clone, Debug, Default)]
pub struct Units {
    /// Field name.
    pub field: String,
    /// Beam labels, two digits (`"00"`), as Arrakis file names use them.
    pub beams: Vec<String>,
    /// Island names (`Source_ID`).
    pub sources: Vec<String>,
    /// Component names (`Gaussian_ID`) with the index of their island.
    pub components: Vec<(String, u32)>,
    /// For each beam, the islands it holds (indices into `sources`).
    pub beam_sources: Vec<Vec<u32>>,
    /// For each island, its components (indices into `components`).
    pub source_components: Vec<Vec<u32>>,
    /// Islands that no beam holds (reported, not built).
    pub orphans: Vec<String>,
    /// For each island, whether it is an orphan.
    pub orphan_mask: Vec<bool>,
}

/// Why a name cannot be a path component (and so cannot name a unit).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NameError {
    /// Empty.
    #[error("the name is empty")]
    Empty,
    /// `.` or `..`.
    #[error("'{0}' is not a usable name")]
    Dots(String),
    /// Holds `/` or `\`.
    #[error("'{0}' contains a path separator")]
    Separator(String),
    /// Holds a control character.
    #[error("'{0}' contains a control character")]
    Control(String),
    /// Starts with `.`.
    #[error("'{0}' starts with '.', which would hide its files")]
    Hidden(String),
}

/// Check that `name` can be used as one path component.
pub fn check_unit_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(NameError::Dots(name.to_string()));
    }
    if name.contains('/') || name.contains('\\') {
        return Err(NameError::Separator(name.to_string()));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(NameError::Control(name.escape_debug().to_string()));
    }
    if name.starts_with('.') {
        return Err(NameError::Hidden(name.to_string()));
    }
    Ok(())
}

/// A catalogue CSV as read for units and stages: trimmed cells, `#` comments, rows with their
/// line numbers, and errors that name FILE:LINE and the column.
pub(crate) struct Table {
    pub(crate) path: PathBuf,
    pub(crate) headers: Vec<String>,
    pub(crate) rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    /// Read a catalogue CSV.
    pub(crate) fn read(path: &Path) -> Result<Table, UnitsError> {
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_path(path)
            .map_err(|e| UnitsError::Read {
                path: path.to_path_buf(),
                why: format!("cannot read the catalogue: {e}"),
            })?;
        let headers: Vec<String> = rdr
            .headers()
            .map_err(|e| UnitsError::Read {
                path: path.to_path_buf(),
                why: format!("cannot read the header line: {e}"),
            })?
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut rows = Vec::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| UnitsError::Bad {
                location: format!(
                    "{}:{}",
                    path.display(),
                    e.position().map(|p| p.line()).unwrap_or(0)
                ),
                why: format!("malformed CSV row: {e}"),
            })?;
            let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
            rows.push((line, rec.iter().map(|s| s.to_string()).collect()));
        }
        Ok(Table {
            path: path.to_path_buf(),
            headers,
            rows,
        })
    }

    /// Index of column `name` (an error suggesting the nearest header if there is none).
    pub(crate) fn col(&self, name: &str) -> Result<usize, UnitsError> {
        self.headers.iter().position(|h| h == name).ok_or_else(|| UnitsError::Bad {
            location: format!("{}:1", self.path.display()),
            why: format!(
                "missing column '{name}'{}; the catalogue needs the RACS-low column names (Source_ID, Gaussian_ID, RA, Dec, ...)",
                crate::diag::did_you_mean(name, self.headers.iter().map(|s| s.as_str()))
            ),
        })
    }

    /// An error at `line` of this file.
    pub(crate) fn bad(&self, line: usize, why: String) -> UnitsError {
        UnitsError::Bad {
            location: format!("{}:{line}", self.path.display()),
            why,
        }
    }

    /// The finite number in `row` at `col`.
    pub(crate) fn number(
        &self,
        line: usize,
        row: &[String],
        col: usize,
    ) -> Result<f64, UnitsError> {
        let v = row.get(col).map(|s| s.as_str()).unwrap_or("");
        v.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| {
                self.bad(
                    line,
                    format!(
                        "column '{}' holds '{v}', which is not a finite number",
                        self.headers[col]
                    ),
                )
            })
    }
}

impl Units {
    /// Read the units of the field in `field_dir`. `beam_radius_deg` is the assignment radius;
    /// `limit` keeps only the first N islands (and their components).
    pub fn load(
        field_dir: &Path,
        beam_radius_deg: f64,
        limit: Option<usize>,
    ) -> Result<Units, UnitsError> {
        let field_yaml = field_dir.join("field.yaml");
        let ff = FieldFile::read(&field_yaml)?;
        let text = std::fs::read_to_string(&field_yaml).unwrap_or_default();
        let dir_name = field_dir
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        if ff.field != dir_name {
            return Err(UnitsError::Bad {
                location: crate::diag::location(&field_yaml, crate::diag::line_of(&text, &["field"])),
                why: format!("field name '{}' does not match the directory name '{dir_name}'; rename one of them", ff.field),
            });
        }
        check_unit_name(&ff.field).map_err(|why| UnitsError::Bad {
            location: field_yaml.display().to_string(),
            why: format!("field name: {why}"),
        })?;
        let mut units = Units {
            field: ff.field.clone(),
            beams: ff.beams.iter().map(|b| format!("{:02}", b.beam)).collect(),
            ..Units::default()
        };
        let mut seen_beams = HashMap::new();
        for b in &units.beams {
            if seen_beams.insert(b.clone(), ()).is_some() {
                return Err(UnitsError::Bad {
                    location: field_yaml.display().to_string(),
                    why: format!("beam {b} is listed twice under 'beams'"),
                });
            }
        }

        let islands_path = field_dir.join("catalogue/islands.csv");
        if !islands_path.exists() {
            units.beam_sources = vec![Vec::new(); units.beams.len()];
            return Ok(units);
        }
        let islands = Table::read(&islands_path)?;
        if ff.beams.is_empty() && !islands.rows.is_empty() {
            return Err(UnitsError::Bad {
                location: crate::diag::location(&field_yaml, crate::diag::line_of(&text, &["field"])),
                why: format!(
                    "no beams, but {} lists {} islands: give every beam's centre under 'beams' ({{beam: N, ra_deg: .., dec_deg: ..}})",
                    islands_path.display(),
                    islands.rows.len()
                ),
            });
        }
        let (c_id, c_ra, c_dec) = (
            islands.col("Source_ID")?,
            islands.col("RA")?,
            islands.col("Dec")?,
        );
        let mut index: HashMap<String, (u32, usize)> = HashMap::new();
        let mut pos = Vec::new();
        for (line, row) in &islands.rows {
            if limit.map(|l| units.sources.len() >= l).unwrap_or(false) {
                break;
            }
            let name = row.get(c_id).cloned().unwrap_or_default();
            check_unit_name(&name).map_err(|why| {
                islands.bad(
                    *line,
                    format!("Source_ID: {why}; fix the name in the catalogue"),
                )
            })?;
            if let Some((_, first)) = index.get(&name) {
                return Err(islands.bad(*line, format!("duplicate Source_ID '{name}' (first on line {first}); island names must be unique")));
            }
            let ra = islands.number(*line, row, c_ra)?;
            let dec = islands.number(*line, row, c_dec)?;
            index.insert(name.clone(), (units.sources.len() as u32, *line));
            units.sources.push(name);
            pos.push((ra, dec));
        }
        units.source_components = vec![Vec::new(); units.sources.len()];
        let comps_path = field_dir.join("catalogue/components.csv");
        if comps_path.exists() {
            let comps = Table::read(&comps_path)?;
            let (c_gid, c_sid) = (comps.col("Gaussian_ID")?, comps.col("Source_ID")?);
            let mut seen: HashMap<String, usize> = HashMap::new();
            for (line, row) in &comps.rows {
                let name = row.get(c_gid).cloned().unwrap_or_default();
                let src = row.get(c_sid).cloned().unwrap_or_default();
                check_unit_name(&name).map_err(|why| {
                    comps.bad(
                        *line,
                        format!("Gaussian_ID: {why}; fix the name in the catalogue"),
                    )
                })?;
                if let Some(first) = seen.insert(name.clone(), *line) {
                    return Err(comps.bad(*line, format!("duplicate Gaussian_ID '{name}' (first on line {first}); component names must be unique")));
                }
                match index.get(&src) {
                    Some((si, _)) => {
                        units.source_components[*si as usize].push(units.components.len() as u32);
                        units.components.push((name, *si));
                    }
                    None if limit.is_some() => {}
                    None => {
                        return Err(comps.bad(
                            *line,
                            format!(
                                "component '{name}' names island '{src}', which is not in {}",
                                islands_path.display()
                            ),
                        ));
                    }
                }
            }
        }
        units.beam_sources = ff
            .beams
            .iter()
            .map(|b| {
                (0..units.sources.len() as u32)
                    .filter(|&s| {
                        let (ra, dec) = pos[s as usize];
                        crate::wcs::separation_deg(b.ra_deg, b.dec_deg, ra, dec) <= beam_radius_deg
                    })
                    .collect()
            })
            .collect();
        let mut held = vec![false; units.sources.len()];
        for list in &units.beam_sources {
            for &s in list {
                held[s as usize] = true;
            }
        }
        units.orphans = if ff.beams.is_empty() {
            Vec::new()
        } else {
            units
                .sources
                .iter()
                .zip(&held)
                .filter(|(_, h)| !**h)
                .map(|(n, _)| n.clone())
                .collect()
        };
        units.orphan_mask = units.sources.iter().map(|_| false).collect();
        if !units.orphans.is_empty() {
            let set: std::collections::HashSet<&String> = units.orphans.iter().collect();
            units.orphan_mask = units.sources.iter().map(|s| set.contains(s)).collect();
        }
        Ok(units)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_path_safe() {
        assert!(check_unit_name("J1234+56").is_ok());
        assert!(check_unit_name("a b;$(x)").is_ok());
        for bad in ["", "..", "a/b", ".x", "a\nb"] {
            assert!(check_unit_name(bad).is_err(), "{bad}");
        }
    }
}
