//! A region: overlapping built fields merged into one catalogue, as Arrakis's `spice_region`
//! (`merge_fields` → rmsynth → rmclean → makecat → validate on the merged name). `arrakis region
//! NAME --fields A,B` writes the region directory `DATADIR/NAME` from the fields' catalogues and
//! products; the region is then built like a field, with the region's rules
//! ([`crate::rules::RuleSet::for_region`]: `merge` in place of beams … frion).
//!
//! What this module writes (only files whose bytes change are rewritten, so an unchanged island
//! keeps every key):
//! - `region.yaml` (the fields, the matching radius: what marks the directory as a region);
//! - `field.yaml`: every field's beams (renumbered), channels flagged in every field, and one
//!   `tiles` entry per field (centre, SBID, scan, POL_AXIS), which the catalogue reads per row
//!   through `Tile_ID`;
//! - `catalogue/islands.csv`, `catalogue/components.csv` (every component once) and
//!   `catalogue/sources/ISLAND.csv` (one island's component rows, what its rmsynth targets read),
//!   with a `Region_Fields` column naming the fields whose data the island's mosaic combines;
//! - `members/ISLAND/FIELD/`: links to each contributing field's products of the island (I
//!   mosaic, Q and U FRion-corrected unless `skip_frion`, their weight cubes, the FRion prediction);
//! - `truth.csv` when every field has one (a simulation's truth, for validate).
//!
//! Matching: the fields' catalogues have their own names, so components are matched by position:
//! two components of different fields are the same when each is the other's nearest within
//! `match_arcsec` (mutual nearest neighbours). Islands that share a matched component are one
//! region island. Each region island and component is taken from its *owner*: of the fields that
//! hold it, the one whose tile centre is nearest (Arrakis: the tile it was source-found in), whose
//! catalogue row (names, Selavy columns, Tile_ID, SBID) it keeps.
//!
//! Must never: write into a field's directory; run a target (the build does).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::field_file::{BeamCentre, FieldFile, SkyPosition, Tile};
use crate::units::Table;
use crate::wcs::separation_deg;

/// The file that marks a directory as a region.
pub const REGION_FILE: &str = "region.yaml";

/// Default matching radius, arcsec: well inside a RACS beam (15-25″), well outside the position
/// errors of components bright enough to be measured in polarisation (≲1″).
pub const DEFAULT_MATCH_ARCSEC: f64 = 3.0;

/// Whether `dir` is a region directory.
pub fn is_region(dir: &Path) -> bool {
    dir.join(REGION_FILE).is_file()
}

/// Why a region cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    /// What is wrong and what to do.
    #[error("{0}")]
    Bad(String),
    /// A field's file is wrong.
    #[error(transparent)]
    Units(#[from] crate::units::UnitsError),
    /// A file cannot be written.
    #[error("{}: {why}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> RegionError + '_ {
    move |e| RegionError::Io {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct RegionSpec {
    /// Region name (the directory under `datadir`).
    pub name: String,
    /// Its fields, in the order given.
    pub fields: Vec<String>,
    /// The directory holding the fields and the region.
    pub datadir: PathBuf,
    /// Matching radius, arcsec.
    pub match_arcsec: f64,
    /// Take the plain Q/U mosaics (the fields were built without FRion).
    pub skip_frion: bool,
}

/// `region.yaml`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionFile {
    /// The region's name.
    pub region: String,
    /// Its fields (directories beside it).
    pub fields: Vec<String>,
    /// The matching radius, arcsec.
    pub match_arcsec: f64,
}

impl RegionFile {
    /// The region file in `dir`, if there is one that reads.
    pub fn read(dir: &Path) -> Option<RegionFile> {
        let text = std::fs::read_to_string(dir.join(REGION_FILE)).ok()?;
        serde_yaml::from_str(&text).ok()
    }
}

/// What [`prepare`] found and wrote.
#[derive(Debug, Default)]
pub struct Summary {
    /// The region directory.
    pub dir: PathBuf,
    /// Region islands.
    pub islands: usize,
    /// Of them, imaged by more than one field (joint mosaics).
    pub joint: usize,
    /// Region components.
    pub components: usize,
    /// Field components that are another field's component (counted once in the region).
    pub duplicates: usize,
    /// Islands of a field without products (its build failed for them), as `FIELD/ISLAND`.
    pub unbuilt: Vec<String>,
    /// Files written or links made this time.
    pub written: usize,
}

/// One field, read.
struct Field {
    name: String,
    dir: PathBuf,
    file: FieldFile,
    centre: (f64, f64),
    islands: Table,
    comps: Table,
    truth: Option<Table>,
}

/// An island's products in its field.
fn products(f: &Field, island: &str, skip_frion: bool) -> Vec<(String, PathBuf)> {
    let d = f.dir.join("cutouts").join(island);
    let name = |kind: &str, s: &str, ion: bool| {
        d.join(format!(
            "{island}.cutout.{kind}.restored.{s}.{}.contcube.linmos{}.fits",
            f.name,
            if ion { ".ion" } else { "" }
        ))
    };
    let mut v = Vec::new();
    for s in ["i", "q", "u"] {
        let ion = !skip_frion && s != "i";
        v.push((format!("{island}.{s}.mosaic.fits"), name("image", s, ion)));
        v.push((
            format!("{island}.{s}.weight.fits"),
            name("weights", s, false),
        ));
    }
    if !skip_frion {
        v.push((
            format!("{island}.ion.txt"),
            d.join(format!("{island}_ion.txt")),
        ));
    }
    v
}

/// Union-find.
struct Sets(Vec<usize>);

impl Sets {
    fn new(n: usize) -> Sets {
        Sets((0..n).collect())
    }
    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.0[a.max(b)] = a.min(b);
        }
    }
}

/// A component of some field.
struct Comp {
    field: usize,
    row: usize,
    ra: f64,
    dec: f64,
    /// Index of its island in `islands`.
    island: usize,
}

/// Pairs of components of different fields that are each other's nearest within `r_deg`.
fn mutual_nearest(comps: &[Comp], r_deg: f64) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..comps.len()).collect();
    order.sort_by(|&a, &b| comps[a].dec.total_cmp(&comps[b].dec));
    // best[(component, other field)] = (nearest of that field, separation).
    let mut best: HashMap<(usize, usize), (usize, f64)> = HashMap::new();
    for (k, &a) in order.iter().enumerate() {
        for &b in &order[k + 1..] {
            if comps[b].dec - comps[a].dec > r_deg {
                break;
            }
            if comps[a].field == comps[b].field {
                continue;
            }
            let s = separation_deg(comps[a].ra, comps[a].dec, comps[b].ra, comps[b].dec);
            if s > r_deg {
                continue;
            }
            for (x, y) in [(a, b), (b, a)] {
                let e = best.entry((x, comps[y].field)).or_insert((y, s));
                if s < e.1 {
                    *e = (y, s);
                }
            }
        }
    }
    let mut pairs: Vec<(usize, usize)> = best
        .iter()
        .filter(|(&(a, _), &(b, _))| {
            a < b && best.get(&(b, comps[a].field)).map(|x| x.0) == Some(a)
        })
        .map(|(&(a, _), &(b, _))| (a, b))
        .collect();
    pairs.sort_unstable();
    pairs
}

/// The mean direction of positions (degrees).
fn mean_direction(p: impl Iterator<Item = (f64, f64)>) -> (f64, f64) {
    let (mut x, mut y, mut z) = (0.0, 0.0, 0.0);
    for (ra, dec) in p {
        let (a, d) = (ra.to_radians(), dec.to_radians());
        x += d.cos() * a.cos();
        y += d.cos() * a.sin();
        z += d.sin();
    }
    (
        y.atan2(x).to_degrees().rem_euclid(360.0),
        z.atan2(x.hypot(y)).to_degrees(),
    )
}

/// Write `bytes` to `path` atomically unless it already holds them; whether it wrote.
fn put(path: &Path, bytes: &[u8]) -> Result<bool, RegionError> {
    if std::fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(false);
    }
    crate::atomic::write_atomic(path, bytes).map_err(io_err(path))?;
    Ok(true)
}

/// Make `link` a symbolic link to `target` unless it is one; whether it changed.
fn link(link: &Path, target: &Path) -> Result<bool, RegionError> {
    if std::fs::read_link(link).ok().as_deref() == Some(target) {
        return Ok(false);
    }
    let dir = link.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(
        ".arrakis-tmp-{}-link-{}",
        std::process::id(),
        link.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, link).map_err(io_err(link))?;
    Ok(true)
}

/// A path from directory `from` to `to`, relative when both are under one root.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    if common <= 1 {
        return to.to_path_buf();
    }
    let mut p = PathBuf::new();
    for _ in common..f.len() {
        p.push("..");
    }
    for c in &t[common..] {
        p.push(c);
    }
    p
}

/// CSV text of `headers` and `rows`.
fn csv_text(headers: &[String], rows: &[Vec<String>]) -> Result<Vec<u8>, RegionError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let bad = |e: csv::Error| RegionError::Bad(format!("cannot write a CSV row: {e}"));
    w.write_record(headers).map_err(bad)?;
    for r in rows {
        w.write_record(r).map_err(bad)?;
    }
    w.into_inner()
        .map_err(|e| RegionError::Bad(format!("cannot write a CSV: {e}")))
}

/// Headers of several tables: the first's, then any other's not yet seen, then `extra`.
fn union_headers<'a>(tables: impl Iterator<Item = &'a Table>, extra: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tables {
        for h in &t.headers {
            if !out.contains(h) {
                out.push(h.clone());
            }
        }
    }
    for e in extra {
        if !out.iter().any(|h| h == e) {
            out.push(e.to_string());
        }
    }
    out
}

/// A row of `t` laid out under `headers` (missing columns empty).
fn lay_out(t: &Table, row: &[String], headers: &[String]) -> Vec<String> {
    headers
        .iter()
        .map(|h| {
            t.headers
                .iter()
                .position(|x| x == h)
                .and_then(|i| row.get(i).cloned())
                .unwrap_or_default()
        })
        .collect()
}

fn read_field(datadir: &Path, name: &str) -> Result<Field, RegionError> {
    let dir = datadir.join(name);
    if !dir.join("field.yaml").is_file() {
        return Err(RegionError::Bad(format!(
            "{}: no field here (no field.yaml); --fields names field directories under --datadir {}",
            dir.display(),
            datadir.display()
        )));
    }
    if is_region(&dir) {
        return Err(RegionError::Bad(format!(
            "{}: is a region, not a field; list the fields it was made from instead",
            dir.display()
        )));
    }
    let dir = dir.canonicalize().map_err(io_err(&dir))?;
    let file = FieldFile::read(&dir.join("field.yaml"))?;
    let islands = Table::read(&dir.join(crate::units::ISLANDS_FILE))?;
    let comps = Table::read(&dir.join(crate::units::COMPONENTS_FILE))?;
    let truth_path = dir.join("truth.csv");
    let truth = if truth_path.is_file() {
        Some(Table::read(&truth_path)?)
    } else {
        None
    };
    Ok(Field {
        name: name.to_string(),
        centre: file.tile_centre(),
        dir,
        file,
        islands,
        comps,
        truth,
    })
}

/// Read the fields, match them, and write the region directory.
pub fn prepare(spec: &RegionSpec) -> Result<Summary, RegionError> {
    if spec.fields.is_empty() {
        return Err(RegionError::Bad(
            "no fields: --fields A,B names the built fields the region merges".into(),
        ));
    }
    crate::units::check_unit_name(&spec.name)
        .map_err(|e| RegionError::Bad(format!("region name '{}': {e}", spec.name)))?;
    let mut seen = BTreeSet::new();
    for f in &spec.fields {
        if f == &spec.name {
            return Err(RegionError::Bad(format!(
                "the region cannot be named after one of its fields ('{f}'): choose another NAME"
            )));
        }
        if !seen.insert(f) {
            return Err(RegionError::Bad(format!(
                "field '{f}' is listed twice in --fields"
            )));
        }
    }
    if !(spec.match_arcsec > 0.0 && spec.match_arcsec.is_finite()) {
        return Err(RegionError::Bad(format!(
            "--match-arcsec {}: the matching radius must be a positive number of arcsec",
            spec.match_arcsec
        )));
    }
    let fields: Vec<Field> = spec
        .fields
        .iter()
        .map(|f| read_field(&spec.datadir, f))
        .collect::<Result<_, _>>()?;
    let dir = spec.datadir.join(&spec.name);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let dir = dir.canonicalize().map_err(io_err(&dir))?;

    // Every island and component of every field.
    struct Isl {
        field: usize,
        row: usize,
        name: String,
        ra: f64,
        dec: f64,
    }
    let mut islands: Vec<Isl> = Vec::new();
    let mut island_of: HashMap<(usize, String), usize> = HashMap::new();
    let mut comps: Vec<Comp> = Vec::new();
    for (fi, f) in fields.iter().enumerate() {
        let t = &f.islands;
        let (si, ri, di) = (t.col("Source_ID")?, t.col("RA")?, t.col("Dec")?);
        for (k, (line, row)) in t.rows.iter().enumerate() {
            let name = row.get(si).cloned().unwrap_or_default();
            island_of.insert((fi, name.clone()), islands.len());
            islands.push(Isl {
                field: fi,
                row: k,
                name,
                ra: t.number(*line, row, ri)?,
                dec: t.number(*line, row, di)?,
            });
        }
        let t = &f.comps;
        let (si, ri, di) = (t.col("Source_ID")?, t.col("RA")?, t.col("Dec")?);
        for (k, (line, row)) in t.rows.iter().enumerate() {
            let isl = row.get(si).cloned().unwrap_or_default();
            let Some(&island) = island_of.get(&(fi, isl.clone())) else {
                return Err(RegionError::Bad(format!(
                    "{}:{line}: Source_ID '{isl}' is not an island of {}",
                    t.path.display(),
                    f.islands.path.display()
                )));
            };
            comps.push(Comp {
                field: fi,
                row: k,
                ra: t.number(*line, row, ri)?,
                dec: t.number(*line, row, di)?,
                island,
            });
        }
    }
    let pairs = mutual_nearest(&comps, spec.match_arcsec / 3600.0);
    let mut csets = Sets::new(comps.len());
    let mut isets = Sets::new(islands.len());
    for &(a, b) in &pairs {
        csets.union(a, b);
        isets.union(comps[a].island, comps[b].island);
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..islands.len() {
        groups.entry(isets.find(i)).or_default().push(i);
    }
    let mut comps_of: HashMap<usize, Vec<usize>> = HashMap::new();
    for (c, comp) in comps.iter().enumerate() {
        comps_of.entry(comp.island).or_default().push(c);
    }
    let nearest_field = |fs: &mut dyn Iterator<Item = usize>, at: (f64, f64)| -> usize {
        fs.min_by(|&a, &b| {
            let sa = separation_deg(at.0, at.1, fields[a].centre.0, fields[a].centre.1);
            let sb = separation_deg(at.0, at.1, fields[b].centre.0, fields[b].centre.1);
            sa.total_cmp(&sb).then(a.cmp(&b))
        })
        .unwrap_or(0)
    };

    // Region islands, by owner field and name (so names taken first are the owner fields' own).
    struct RIsland {
        owner: usize,
        members: Vec<usize>,
        comps: Vec<usize>,
    }
    let mut rislands: Vec<RIsland> = Vec::new();
    let mut summary = Summary {
        dir: dir.clone(),
        ..Summary::default()
    };
    for members in groups.into_values() {
        let at = mean_direction(members.iter().map(|&i| (islands[i].ra, islands[i].dec)));
        let owner_field = nearest_field(&mut members.iter().map(|&i| islands[i].field), at);
        let owner = members
            .iter()
            .copied()
            .filter(|&i| islands[i].field == owner_field)
            .min_by(|&a, &b| {
                let sa = separation_deg(at.0, at.1, islands[a].ra, islands[a].dec);
                let sb = separation_deg(at.0, at.1, islands[b].ra, islands[b].dec);
                sa.total_cmp(&sb)
            })
            .unwrap_or(members[0]);
        // Components: one per matched set, from the field nearest it.
        let mut sets: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &i in &members {
            for &c in comps_of.get(&i).map(|v| v.as_slice()).unwrap_or(&[]) {
                sets.entry(csets.find(c)).or_default().push(c);
            }
        }
        let mut kept = Vec::new();
        for set in sets.into_values() {
            let at = mean_direction(set.iter().map(|&c| (comps[c].ra, comps[c].dec)));
            let f = nearest_field(&mut set.iter().map(|&c| comps[c].field), at);
            let mine: Vec<usize> = set
                .iter()
                .copied()
                .filter(|&c| comps[c].field == f)
                .collect();
            summary.duplicates += set.len() - mine.len();
            kept.extend(mine);
        }
        kept.sort_by_key(|&c| (comps[c].field, comps[c].row));
        rislands.push(RIsland {
            owner,
            members,
            comps: kept,
        });
    }
    rislands.sort_by_key(|r| (islands[r.owner].field, islands[r.owner].row));

    // Names: the owner's, made unique across fields with the owner field's name.
    let unique = |taken: &mut BTreeSet<String>, name: &str, field: &str| -> String {
        let mut n = name.to_string();
        let mut k = 1;
        while !taken.insert(n.clone()) {
            n = if k == 1 {
                format!("{name}_{field}")
            } else {
                format!("{name}_{field}_{k}")
            };
            k += 1;
        }
        n
    };
    let mut taken_islands = BTreeSet::new();
    let mut taken_comps = BTreeSet::new();
    let isl_headers = union_headers(fields.iter().map(|f| &f.islands), &["Region_Fields"]);
    let comp_headers = union_headers(fields.iter().map(|f| &f.comps), &["Region_Fields"]);
    let col = |h: &[String], n: &str| h.iter().position(|x| x == n);
    let (is_id, is_tile) = (col(&isl_headers, "Source_ID"), col(&isl_headers, "Tile_ID"));
    let (cs_gid, cs_sid, cs_tile, cs_sbid) = (
        col(&comp_headers, "Gaussian_ID"),
        col(&comp_headers, "Source_ID"),
        col(&comp_headers, "Tile_ID"),
        col(&comp_headers, "SBID"),
    );
    let (is_rf, cs_rf) = (
        col(&isl_headers, "Region_Fields").unwrap_or(0),
        col(&comp_headers, "Region_Fields").unwrap_or(0),
    );
    let mut isl_rows = Vec::new();
    let mut comp_rows = Vec::new();
    let mut per_island: Vec<(String, Vec<Vec<String>>)> = Vec::new();
    let mut truth_rows: Vec<Vec<String>> = Vec::new();
    let truth_headers = fields
        .iter()
        .all(|f| f.truth.is_some())
        .then(|| union_headers(fields.iter().filter_map(|f| f.truth.as_ref()), &[]));
    // Each field's truth rows by component id.
    let truth_index: Vec<HashMap<&str, usize>> = fields
        .iter()
        .map(|f| {
            let Some(t) = &f.truth else {
                return HashMap::new();
            };
            let Ok(c) = t.col("cat_id") else {
                return HashMap::new();
            };
            t.rows
                .iter()
                .enumerate()
                .filter_map(|(k, (_, r))| Some((r.get(c)?.as_str(), k)))
                .collect()
        })
        .collect();
    let mut keep_members: BTreeSet<PathBuf> = BTreeSet::new();
    // A field none of whose islands has products was not built (or not with these settings).
    for (fi, f) in fields.iter().enumerate() {
        let mine: Vec<&Isl> = islands.iter().filter(|i| i.field == fi).collect();
        let built = mine.iter().any(|i| {
            products(f, &i.name, spec.skip_frion)
                .iter()
                .all(|(_, p)| p.is_file())
        });
        if !mine.is_empty() && !built {
            return Err(RegionError::Bad(format!(
                "field {} has no {}mosaics under {}: build it first (`arrakis build {} --datadir {}`{}), or leave out --no-field-builds",
                f.name,
                if spec.skip_frion { "" } else { "FRion-corrected " },
                f.dir.join("cutouts").display(),
                f.name,
                spec.datadir.display(),
                if spec.skip_frion { "" } else { "; or set skip_frion: true if the fields were built without FRion" }
            )));
        }
    }
    for r in &rislands {
        let o = &islands[r.owner];
        let of = &fields[o.field];
        let name = unique(&mut taken_islands, &o.name, &of.name);
        // The fields whose products the joint mosaic combines.
        let mut used: BTreeSet<usize> = BTreeSet::new();
        let member_dir = dir.join("members").join(&name);
        let mut members: Vec<&Isl> = r.members.iter().map(|&i| &islands[i]).collect();
        members.sort_by_key(|m| (m.field, m.row));
        for m in &members {
            let f = &fields[m.field];
            let prods = products(f, &m.name, spec.skip_frion);
            if !prods.iter().all(|(_, p)| p.is_file()) {
                summary.unbuilt.push(format!("{}/{}", f.name, m.name));
                continue;
            }
            used.insert(m.field);
            let fdir = member_dir.join(&f.name);
            for (lname, target) in prods {
                let l = fdir.join(&lname);
                if link(&l, &relative(&fdir, &target))? {
                    summary.written += 1;
                }
                keep_members.insert(l);
            }
        }
        if used.is_empty() {
            // No field built it: left out (named in the summary), not a target that must fail.
            taken_islands.remove(&name);
            continue;
        }
        let region_fields: Vec<&str> = used.iter().map(|&f| fields[f].name.as_str()).collect();
        if used.len() > 1 {
            summary.joint += 1;
        }
        let mut row = lay_out(&of.islands, &of.islands.rows[o.row].1, &isl_headers);
        if let Some(i) = is_id {
            row[i] = name.clone();
        }
        if let Some(i) = is_tile.filter(|&i| row[i].is_empty()) {
            row[i] = of.name.clone();
        }
        row[is_rf] = region_fields.join(";");
        isl_rows.push(row);
        let mut mine = Vec::new();
        for &c in &r.comps {
            let comp = &comps[c];
            let f = &fields[comp.field];
            let src = &f.comps.rows[comp.row].1;
            let mut row = lay_out(&f.comps, src, &comp_headers);
            let old_id = cs_gid.map(|i| row[i].clone()).unwrap_or_default();
            let id = unique(&mut taken_comps, &old_id, &f.name);
            if let Some(i) = cs_gid {
                row[i] = id.clone();
            }
            if let Some(i) = cs_sid {
                row[i] = name.clone();
            }
            if let Some(i) = cs_tile.filter(|&i| row[i].is_empty()) {
                row[i] = f.name.clone();
            }
            if let Some(i) = cs_sbid.filter(|&i| row[i].is_empty()) {
                row[i] = f.file.sbid_text();
            }
            row[cs_rf] = region_fields.join(";");
            if let (Some(th), Some(t)) = (&truth_headers, &f.truth) {
                if let Some(&k) = truth_index[comp.field].get(old_id.as_str()) {
                    let mut tr = lay_out(t, &t.rows[k].1, th);
                    for (col, v) in [("cat_id", &id), ("source_id", &name)] {
                        if let Some(c) = th.iter().position(|h| h == col) {
                            tr[c] = v.clone();
                        }
                    }
                    truth_rows.push(tr);
                }
            }
            mine.push(row.clone());
            comp_rows.push(row);
        }
        summary.components += mine.len();
        per_island.push((name, mine));
    }
    summary.islands = per_island.len();

    // The files.
    let mut w = |path: PathBuf, bytes: Vec<u8>| -> Result<(), RegionError> {
        if put(&path, &bytes)? {
            summary.written += 1;
        }
        Ok(())
    };
    let rf = RegionFile {
        region: spec.name.clone(),
        fields: spec.fields.clone(),
        match_arcsec: spec.match_arcsec,
    };
    let text = format!(
        "# Written by `arrakis region`: this directory is a region of these fields.\n{}",
        serde_yaml::to_string(&rf).map_err(|e| RegionError::Bad(e.to_string()))?
    );
    w(dir.join(REGION_FILE), text.into_bytes())?;
    w(dir.join("field.yaml"), field_file(&spec.name, &fields)?)?;
    w(
        dir.join(crate::units::ISLANDS_FILE),
        csv_text(&isl_headers, &isl_rows)?,
    )?;
    w(
        dir.join(crate::units::COMPONENTS_FILE),
        csv_text(&comp_headers, &comp_rows)?,
    )?;
    let mut keep_sources = BTreeSet::new();
    for (name, rows) in &per_island {
        let p = dir.join(crate::rules::spec::REGION_ISLAND_COMPONENTS.replace("{source}", name));
        w(p.clone(), csv_text(&comp_headers, rows)?)?;
        keep_sources.insert(p);
    }
    if let Some(th) = &truth_headers {
        w(dir.join("truth.csv"), csv_text(th, &truth_rows)?)?;
    }
    // What an earlier region held and this one does not.
    remove_others(&dir.join("members"), &keep_members)?;
    let sources_dir = dir.join(
        Path::new(crate::rules::spec::REGION_ISLAND_COMPONENTS)
            .parent()
            .unwrap_or(Path::new("catalogue")),
    );
    remove_others(&sources_dir, &keep_sources)?;
    // Mosaics and spectra of islands the region no longer has (an island renamed because a
    // nearer field now holds it): the region's cutouts/ holds only what its targets wrote.
    let names: BTreeSet<&str> = per_island.iter().map(|(n, _)| n.as_str()).collect();
    let cutouts = dir.join("cutouts");
    if let Ok(rd) = std::fs::read_dir(&cutouts) {
        for e in rd.flatten() {
            let n = e.file_name();
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir && !names.contains(n.to_string_lossy().as_ref()) {
                std::fs::remove_dir_all(e.path()).map_err(io_err(&e.path()))?;
            }
        }
    }
    Ok(summary)
}

/// Remove every file under `root` not in `keep`, and directories left empty.
fn remove_others(root: &Path, keep: &BTreeSet<PathBuf>) -> Result<(), RegionError> {
    if !root.is_dir() {
        return Ok(());
    }
    for e in walkdir::WalkDir::new(root).contents_first(true) {
        let e = e.map_err(|e| RegionError::Bad(format!("{}: {e}", root.display())))?;
        let p = e.path();
        if e.file_type().is_dir() {
            if p != root {
                let _ = std::fs::remove_dir(p);
            }
        } else if !keep.contains(p) {
            std::fs::remove_file(p).map_err(io_err(p))?;
        }
    }
    Ok(())
}

/// The region's `field.yaml`: every field's beams (numbered in field order), the channels every
/// field flags, and a tile per field.
fn field_file(name: &str, fields: &[Field]) -> Result<Vec<u8>, RegionError> {
    let mut beams = Vec::new();
    for f in fields {
        for b in &f.file.beams {
            beams.push(BeamCentre {
                beam: beams.len() as u32,
                ra_deg: b.ra_deg,
                dec_deg: b.dec_deg,
            });
        }
    }
    let same = |get: &dyn Fn(&FieldFile) -> Option<String>| {
        let v: BTreeSet<Option<String>> = fields.iter().map(|f| get(&f.file)).collect();
        if v.len() == 1 {
            v.into_iter().next().flatten()
        } else {
            None
        }
    };
    let band = same(&|f| f.band.clone());
    let nchan = same(&|f| f.nchan.map(|n| n.to_string())).and_then(|n| n.parse().ok());
    let mut flagged: Option<BTreeSet<u32>> = None;
    for f in fields {
        let s: BTreeSet<u32> = f.file.flagged_channels.iter().copied().collect();
        flagged = Some(match flagged {
            None => s,
            Some(prev) => prev.intersection(&s).copied().collect(),
        });
    }
    let (ra, dec) = mean_direction(fields.iter().map(|f| f.centre));
    let ff = FieldFile {
        field: name.to_string(),
        beams,
        centre: Some(SkyPosition {
            ra_deg: ra,
            dec_deg: dec,
        }),
        sbid: None,
        band,
        nchan,
        flagged_channels: flagged.unwrap_or_default().into_iter().collect(),
        scan_start_mjd_s: None,
        scan_length_s: None,
        pol_axis_deg: None,
        tiles: fields
            .iter()
            .map(|f| Tile {
                name: f.name.clone(),
                centre: SkyPosition {
                    ra_deg: f.centre.0,
                    dec_deg: f.centre.1,
                },
                sbid: f.file.sbid.clone(),
                scan_start_mjd_s: f.file.scan_start_mjd_s,
                scan_length_s: f.file.scan_length_s,
                pol_axis_deg: f.file.pol_axis_deg,
            })
            .collect(),
    };
    let text = serde_yaml::to_string(&ff).map_err(|e| RegionError::Bad(e.to_string()))?;
    Ok(format!(
        "# Written by `arrakis region` from the fields {}: their beams, and one tile per field.\n{text}",
        fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
    )
    .into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comp(field: usize, ra: f64, dec: f64) -> Comp {
        Comp {
            field,
            row: 0,
            ra,
            dec,
            island: 0,
        }
    }

    #[test]
    fn components_match_their_mutual_nearest_of_another_field_only() {
        let r = 3.0 / 3600.0;
        let comps = vec![
            comp(0, 10.0, -20.0),
            comp(1, 10.0 + 0.5 / 3600.0, -20.0),
            // A second candidate in field 1, farther: not matched.
            comp(1, 10.0 + 2.0 / 3600.0, -20.0),
            // Same field, same place: never matched to each other.
            comp(0, 10.0, -20.0 + 0.1 / 3600.0),
            // Outside the radius.
            comp(2, 10.0, -20.0 + 10.0 / 3600.0),
        ];
        let pairs = mutual_nearest(&comps, r);
        assert_eq!(pairs, vec![(0, 1)]);
    }

    #[test]
    fn relative_links_climb_to_the_common_root() {
        assert_eq!(
            relative(
                Path::new("/d/R/members/x/A"),
                Path::new("/d/A/cutouts/x/f.fits")
            ),
            PathBuf::from("../../../../A/cutouts/x/f.fits")
        );
    }
}
