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

/// Which unit files a rule set needs: a field whose rules run per island must have
/// `catalogue/islands.csv` (a missing one is an input error, never "no islands": a catalogue built
/// from no islands would overwrite a good one), and per component `catalogue/components.csv`.
/// Also the shapes of the paths the rules make from island and component names, so that a name
/// too long for a file name is refused where it is read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// `catalogue/islands.csv` must exist.
    pub islands: bool,
    /// `catalogue/components.csv` must exist.
    pub components: bool,
    /// Every output path template that holds an island or component name.
    pub paths: Vec<PathShape>,
}

/// The lengths of a path template's parts: what a name adds to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathShape {
    /// The template, for messages.
    pub template: String,
    /// Per path component: (bytes that do not depend on a name, `{field}`s, `{source}`s,
    /// `{component}`s).
    pub parts: Vec<[usize; 4]>,
}

/// What a temporary name adds to a file name (`.arrakis-tmp-PID-N-`), at most.
const TMP_NAME_ROOM: usize = 48;
/// The longest file name (one path component) Linux file systems take.
const NAME_MAX: usize = 255;
/// The longest path cfitsio opens or creates (FLEN_FILENAME − 1).
const PATH_MAX_FITS: usize = 1024;

impl PathShape {
    /// The shape of `template` for a rule whose `foreach` variables take `foreach` values.
    fn of(template: &str, foreach: &[(String, Vec<String>)]) -> PathShape {
        let parts = template
            .split('/')
            .map(|comp| {
                let mut part = [0usize; 4];
                let names = crate::rules::spec::placeholders(comp).unwrap_or_default();
                let mut fixed = comp.replace("{{", "{").replace("}}", "}").len();
                for n in &names {
                    fixed -= n.len() + 2;
                    match n.as_str() {
                        "field" => part[1] += 1,
                        "source" => part[2] += 1,
                        "component" => part[3] += 1,
                        "beam" => fixed += 2,
                        other => {
                            fixed += foreach
                                .iter()
                                .find(|(k, _)| k == other)
                                .and_then(|(_, vs)| vs.iter().map(|v| v.len()).max())
                                .unwrap_or(8)
                        }
                    }
                }
                part[0] = fixed;
                part
            })
            .collect();
        PathShape {
            template: template.to_string(),
            parts,
        }
    }

    /// Why a unit whose names have these lengths cannot have this path (under `dir_len` bytes
    /// of field directory): a file or directory name longer than the system takes (a file's
    /// counting the temporary name written first), or a whole path longer than cfitsio opens.
    fn too_long(&self, dir_len: usize, field: usize, source: usize, comp: usize) -> Option<String> {
        let len = |p: &[usize; 4]| p[0] + p[1] * field + p[2] * source + p[3] * comp;
        let last = self.parts.len().saturating_sub(1);
        for (i, p) in self.parts.iter().enumerate() {
            let room = if i == last {
                NAME_MAX - TMP_NAME_ROOM
            } else {
                NAME_MAX
            };
            if len(p) > room {
                let what = if i == last { "file" } else { "directory" };
                return Some(format!(
                    "the {what} name '{}' of '{}' would have {} bytes, over the {room} it can have{}",
                    self.template.split('/').nth(i).unwrap_or(""),
                    self.template,
                    len(p),
                    if i == last {
                        format!(" ({NAME_MAX} a file system allows, less {TMP_NAME_ROOM} for the temporary name written first)")
                    } else {
                        String::new()
                    }
                ));
            }
        }
        let total = dir_len + self.parts.iter().map(|p| len(p) + 1).sum::<usize>() + TMP_NAME_ROOM;
        (total > PATH_MAX_FITS).then(|| {
            format!(
                "the path '{}' in this field would have {total} bytes with its temporary name, over the {PATH_MAX_FITS} cfitsio opens",
                self.template
            )
        })
    }
}

impl Needs {
    /// Both files, and no path shapes (for loading units outside a build).
    pub fn all() -> Needs {
        Needs {
            islands: true,
            components: true,
            paths: Vec::new(),
        }
    }

    /// What `rules` need: islands when a rule runs per island or component, or reads the
    /// islands file; components when a rule runs per component or reads the components file.
    pub fn of_rules(rules: &crate::rules::RuleSet) -> Needs {
        use crate::rules::spec::{InputSource, UnitKind};
        let mut needs = Needs::default();
        for r in &rules.rules {
            needs.islands |= matches!(r.unit, UnitKind::Source | UnitKind::Component);
            needs.components |= r.unit == UnitKind::Component;
            for i in &r.inputs {
                if let (InputSource::File(t), false) = (&i.source, i.optional) {
                    needs.islands |= t.trim_start_matches("./") == ISLANDS_FILE;
                    needs.components |= t.trim_start_matches("./") == COMPONENTS_FILE;
                }
            }
            for o in &r.outputs {
                if o.path.contains("{source}") || o.path.contains("{component}") {
                    let shape = PathShape::of(&o.path, &r.foreach);
                    if !needs.paths.contains(&shape) {
                        needs.paths.push(shape);
                    }
                }
            }
        }
        needs
    }

    /// Why a catalogue row's name cannot name its unit's files (`None` when it can): not a
    /// usable path component, or a path made from it too long. `comp` is the component's name
    /// (of island `source`), or `None` for the island itself.
    fn unusable(
        &self,
        dir: &Path,
        field: &str,
        source: &str,
        comp: Option<&str>,
    ) -> Option<String> {
        check_unit_name(comp.unwrap_or(source))
            .err()
            .map(|e| e.to_string())
            .or_else(|| self.name_too_long(dir, field, source, comp))
    }

    /// Why island `source` (or its component `comp`) cannot be a unit of the field `field` in
    /// `dir`: the first path that would be too long, and the longest name that would fit.
    fn name_too_long(
        &self,
        dir: &Path,
        field: &str,
        source: &str,
        comp: Option<&str>,
    ) -> Option<String> {
        let dir_len = dir.as_os_str().len();
        let first = |s: usize, c: usize| {
            self.paths
                .iter()
                .filter(|p| comp.is_some() || p.parts.iter().all(|x| x[3] == 0))
                .find_map(|p| p.too_long(dir_len, field.len(), s, c))
        };
        let why = first(source.len(), comp.map_or(0, str::len))?;
        // The longest name of this kind that fits (the other name as it is).
        let fits = |n: usize| match comp {
            Some(_) => first(source.len(), n).is_none(),
            None => first(n, 0).is_none(),
        };
        let (mut lo, mut hi) = (0usize, comp.unwrap_or(source).len());
        while lo + 1 < hi {
            let mid = (lo + hi) / 2;
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(format!("{why}; names up to {lo} bytes fit here"))
    }
}

/// The islands file, relative to the field directory.
pub const ISLANDS_FILE: &str = "catalogue/islands.csv";
/// The components file, relative to the field directory.
pub const COMPONENTS_FILE: &str = "catalogue/components.csv";

/// A name as a message shows it: at most 60 characters, escaped.
fn ellipsis(name: &str) -> String {
    let shown: String = name.chars().take(60).collect();
    let shown = shown.escape_debug().to_string();
    if name.chars().count() > 60 {
        format!("{shown}...")
    } else {
        shown
    }
}

/// Why a unit file the rules need cannot be read (`None` when it is a regular file).
fn unit_file_problem(path: &Path, what: &str) -> Option<UnitsError> {
    let why = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => return None,
        Ok(m) => format!(
            "is {}, not a regular file; the rules need the {what} catalogue (CSV) here",
            crate::hash::special_kind(&m.file_type()).unwrap_or("a directory")
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "does not exist; the rules run per {what} and need it (restore it, or set the field up again with `arrakis init`); nothing was built"
        ),
        Err(e) => format!("cannot be read ({e}); nothing was built"),
    };
    Some(UnitsError::Read {
        path: path.to_path_buf(),
        why,
    })
}

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
    /// Catalogue rows refused for their name (too long for a file name, or not usable as one):
    /// `FILE:LINE: why`, one per row. Their islands (and components) are not built; the rest
    /// of the field is, and the build then fails naming them.
    pub rejected: Vec<String>,
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
        let (file, _) = crate::hash::open_regular(path).map_err(|e| UnitsError::Read {
            path: path.to_path_buf(),
            why: format!("cannot read the catalogue: {e}"),
        })?;
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_reader(std::io::BufReader::new(file));
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

    /// The message refusing the row at `line` whose `column` holds `name`, which cannot name
    /// the files of its `unit` (`"island"`, `"component"`) for the reason `why`.
    pub(crate) fn refusal(
        &self,
        line: usize,
        column: &str,
        name: &str,
        unit: &str,
        why: &str,
    ) -> String {
        format!(
            "{}:{line}: {column} '{}' ({} bytes) cannot name the {unit}'s files: {why}; fix or shorten the name in the catalogue (the {unit} is not built)",
            self.path.display(),
            ellipsis(name),
            name.len(),
        )
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
    /// `limit` keeps only the first N islands (and their components); `needs` says which unit
    /// files must exist (a file that is not needed and missing means no such units).
    pub fn load(
        field_dir: &Path,
        beam_radius_deg: f64,
        limit: Option<usize>,
        needs: &Needs,
    ) -> Result<Units, UnitsError> {
        let field_yaml = field_dir.join("field.yaml");
        let ff = FieldFile::read(&field_yaml)?;
        let text = crate::hash::read_regular_string(&field_yaml).unwrap_or_default();
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

        let islands_path = field_dir.join(ISLANDS_FILE);
        let comps_path = field_dir.join(COMPONENTS_FILE);
        for (needed, path, what) in [
            (needs.islands, &islands_path, "island"),
            (needs.components, &comps_path, "component"),
        ] {
            if let Some(e) = needed.then(|| unit_file_problem(path, what)).flatten() {
                return Err(e);
            }
        }
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
        // Islands refused for their name: their components go with them.
        let mut refused: std::collections::HashSet<String> = Default::default();
        let mut pos = Vec::new();
        for (line, row) in &islands.rows {
            if limit.map(|l| units.sources.len() >= l).unwrap_or(false) {
                break;
            }
            let name = row.get(c_id).cloned().unwrap_or_default();
            if let Some(why) = needs.unusable(field_dir, &units.field, &name, None) {
                units
                    .rejected
                    .push(islands.refusal(*line, "Source_ID", &name, "island", &why));
                refused.insert(name);
                continue;
            }
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
        if comps_path.exists() {
            let comps = Table::read(&comps_path)?;
            let (c_gid, c_sid) = (comps.col("Gaussian_ID")?, comps.col("Source_ID")?);
            let mut seen: HashMap<String, usize> = HashMap::new();
            for (line, row) in &comps.rows {
                let name = row.get(c_gid).cloned().unwrap_or_default();
                let src = row.get(c_sid).cloned().unwrap_or_default();
                if refused.contains(&src) {
                    continue;
                }
                if let Some(why) = needs.unusable(field_dir, &units.field, &src, Some(&name)) {
                    units.rejected.push(comps.refusal(
                        *line,
                        "Gaussian_ID",
                        &name,
                        "component",
                        &why,
                    ));
                    continue;
                }
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
