//! `arrakis init`: a field directory from real ASKAP products. The beam cubes and weights are
//! found in an images directory by Arrakis's patterns, linked (or copied) into the field under
//! the names the rules read, `field.yaml` is written from the cube headers and the options, and
//! the island and component catalogues (CSV, FITS binary tables or VOTables, with the RACS
//! column names or Selavy's) become `catalogue/islands.csv` and `catalogue/components.csv`.
//!
//! Must never: overwrite a different field (without `force`), copy a cube unless asked, or leave
//! a half-written file (every file is written atomically).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::field_file::{BeamCentre, FieldFile};

/// What `init` is given.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Field name.
    pub field: String,
    /// Directory holding the field directory.
    pub datadir: PathBuf,
    /// Directory of the beam cubes and weights.
    pub images: PathBuf,
    /// Component catalogue (CSV, FITS or VOTable).
    pub components: PathBuf,
    /// Island catalogue (CSV, FITS or VOTable).
    pub islands: PathBuf,
    /// Tile centre (RA, Dec) in degrees.
    pub centre: Option<(f64, f64)>,
    /// Scheduling block ID.
    pub sbid: Option<String>,
    /// Polarisation axis, degrees.
    pub pol_axis_deg: Option<f64>,
    /// Scan start, MJD seconds.
    pub scan_start_mjd_s: Option<f64>,
    /// Scan length, seconds.
    pub scan_length_s: Option<f64>,
    /// Copy the cubes instead of linking them.
    pub copy: bool,
    /// Replace a different field in the way.
    pub force: bool,
}

/// Why `init` could not set the field up.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A catalogue cannot be read (the message names file and line).
    #[error(transparent)]
    Table(#[from] crate::units::UnitsError),
    /// A file or directory is wrong, or missing.
    #[error("{}: {why}", path.display())]
    File {
        /// Where.
        path: PathBuf,
        /// What is wrong and what to do.
        why: String,
    },
}

fn err(path: &Path, why: impl Into<String>) -> InitError {
    InitError::File {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

const STOKES: [&str; 3] = ["i", "q", "u"];

/// The beam number in a file name's `beamNN` (the last one).
fn beam_of(name: &str) -> Option<u32> {
    let i = name.rfind("beam")?;
    let digits: String = name[i + 4..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Files of `dir` matching `pattern` (a glob on the file name), by beam: exactly one per beam.
fn by_beam(dir: &Path, pattern: &str) -> Result<BTreeMap<u32, PathBuf>, InitError> {
    let full = dir.join(pattern);
    let paths = glob::glob(&full.to_string_lossy())
        .map_err(|e| err(dir, format!("bad pattern {pattern}: {e}")))?;
    let mut out: BTreeMap<u32, PathBuf> = BTreeMap::new();
    for p in paths.flatten() {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let Some(b) = beam_of(&name) else { continue };
        if let Some(first) = out.insert(b, p.clone()) {
            return Err(err(
                dir,
                format!(
                    "two files match {pattern} for beam {b:02}: {} and {}; move one away",
                    first.display(),
                    p.display()
                ),
            ));
        }
    }
    Ok(out)
}

/// What `init` did.
#[derive(Debug)]
pub struct InitReport {
    /// The field directory.
    pub dir: PathBuf,
    /// Beams found.
    pub beams: usize,
    /// Islands and components written.
    pub islands: usize,
    /// Components written.
    pub components: usize,
    /// Nothing changed (the field was already set up so).
    pub unchanged: bool,
}

/// Set up `datadir/field`.
pub fn init(o: &InitOptions) -> Result<InitReport, InitError> {
    crate::units::check_unit_name(&o.field)
        .map_err(|e| err(&o.datadir, format!("field name: {e}")))?;
    if !o.images.is_dir() {
        return Err(err(
            &o.images,
            "not a directory (--images: where the beam cubes are)",
        ));
    }
    // The cubes and weights, one of each per beam and Stokes.
    let mut cubes: Vec<BTreeMap<u32, PathBuf>> = Vec::new();
    let mut weights: Vec<BTreeMap<u32, PathBuf>> = Vec::new();
    for s in STOKES {
        cubes.push(by_beam(
            &o.images,
            &format!("image.restored.{s}*contcube*beam[0-9][0-9].conv.fits"),
        )?);
        weights.push(by_beam(
            &o.images,
            &format!("weights.restored.{s}*contcube*beam[0-9][0-9].conv.txt"),
        )?);
    }
    let beams: Vec<u32> = cubes[0].keys().copied().collect();
    if beams.is_empty() {
        return Err(err(
            &o.images,
            "no beam cubes: expected files like image.restored.i.SB61234.contcube.RACS_1237+00A.beam00.conv.fits",
        ));
    }
    for (k, s) in STOKES.iter().enumerate() {
        for &b in &beams {
            if !cubes[k].contains_key(&b) {
                return Err(err(&o.images, format!("beam {b:02} has a Stokes I cube but no Stokes {} cube (image.restored.{s}*contcube*beam{b:02}.conv.fits)", s.to_uppercase())));
            }
            if !weights[k].contains_key(&b) {
                return Err(err(&o.images, format!("beam {b:02} has no weights file for Stokes {} (weights.restored.{s}*contcube*beam{b:02}.conv.txt)", s.to_uppercase())));
            }
        }
    }
    // field.yaml from the Stokes I headers and the weights.
    let mut centres = Vec::new();
    let mut nchan = None;
    let mut fmin = f64::INFINITY;
    let mut fmax = f64::NEG_INFINITY;
    let mut flagged_everywhere: Option<Vec<bool>> = None;
    for &b in &beams {
        let path = &cubes[0][&b];
        let (h, (_, _, nc)) =
            crate::fits::read_header(path).map_err(|e| err(path, e.to_string()))?;
        let w = crate::wcs::Wcs::from_header(&h, path).map_err(|e| err(path, e.message))?;
        centres.push(BeamCentre {
            beam: b,
            ra_deg: w.crval_ra.rem_euclid(360.0),
            dec_deg: w.crval_dec,
        });
        match nchan {
            None => nchan = Some(nc),
            Some(n) if n != nc => {
                return Err(err(path, format!("{nc} channels, but beam {:02} has {n}; every beam must have the same channels", beams[0])));
            }
            _ => {}
        }
        for c in [0, nc.saturating_sub(1)] {
            let f = w.freq(c);
            fmin = fmin.min(f);
            fmax = fmax.max(f);
        }
        for per_beam in &weights {
            let wp = &per_beam[&b];
            let ws = crate::stages::io::read_weights(wp, nc).map_err(|e| err(wp, e.to_string()))?;
            let zero: Vec<bool> = ws.w.iter().map(|v| v.is_nan() || *v == 0.0).collect();
            flagged_everywhere = Some(match flagged_everywhere {
                None => zero,
                Some(prev) => prev.iter().zip(&zero).map(|(a, b)| *a && *b).collect(),
            });
        }
    }
    let nchan = nchan.unwrap_or(0);
    let centre_mhz = 0.5 * (fmin + fmax) / 1e6;
    let band = if centre_mhz < 1100.0 {
        "low"
    } else if centre_mhz < 1500.0 {
        "mid"
    } else {
        "high"
    };
    let ff = FieldFile {
        field: o.field.clone(),
        beams: centres,
        centre: o
            .centre
            .map(|(ra_deg, dec_deg)| crate::field_file::SkyPosition { ra_deg, dec_deg }),
        sbid: o.sbid.clone().map(|s| match s.parse::<u64>() {
            Ok(n) => serde_yaml::Value::Number(n.into()),
            Err(_) => serde_yaml::Value::String(s),
        }),
        band: Some(band.to_string()),
        nchan: Some(nchan as u32),
        flagged_channels: flagged_everywhere
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|(_, f)| **f)
            .map(|(c, _)| c as u32)
            .collect(),
        scan_start_mjd_s: o.scan_start_mjd_s,
        scan_length_s: o.scan_length_s,
        pol_axis_deg: o.pol_axis_deg,
        tiles: Vec::new(),
    };
    let yaml = format!(
        "# Written by `arrakis init` from the beam cubes in {}.\n{}",
        o.images.display(),
        serde_yaml::to_string(&ff).map_err(|e| err(&o.datadir, e.to_string()))?
    );
    // What is written must read back (a centre off the sky, say, is refused here).
    FieldFile::parse(&yaml, &o.datadir.join(&o.field).join("field.yaml")).map_err(|e| {
        err(
            &o.datadir,
            format!("the options make an invalid field.yaml: {e}"),
        )
    })?;
    // Catalogues.
    let islands = catalogue_csv(&o.islands, &["Source_ID", "RA", "Dec"], true)?;
    let components = catalogue_csv(
        &o.components,
        &["Gaussian_ID", "Source_ID", "RA", "Dec"],
        false,
    )?;
    // The field directory: new, the same field again, or (with force) replaced.
    let dir = o.datadir.join(&o.field);
    let yaml_path = dir.join("field.yaml");
    let mut files: Vec<(PathBuf, Vec<u8>)> = vec![
        (yaml_path.clone(), yaml.into_bytes()),
        (dir.join("catalogue/islands.csv"), islands.0.into_bytes()),
        (
            dir.join("catalogue/components.csv"),
            components.0.into_bytes(),
        ),
    ];
    if let Ok(old) = std::fs::read(&yaml_path) {
        let same_field = FieldFile::parse(&String::from_utf8_lossy(&old), &yaml_path)
            .map(|f| f.field == o.field)
            .unwrap_or(false);
        if old != files[0].1 && !o.force {
            return Err(err(
                &dir,
                if same_field {
                    "already holds this field set up from other cubes or options; --force replaces its field.yaml, catalogues and links (built products stay, and rebuild as their inputs change)".to_string()
                } else {
                    "holds another field's field.yaml; choose another --datadir, or --force to replace it".to_string()
                },
            ));
        }
    }
    std::fs::create_dir_all(dir.join("catalogue")).map_err(|e| err(&dir, e.to_string()))?;
    let mut unchanged = true;
    for (path, bytes) in files.drain(..) {
        if std::fs::read(&path).ok().as_deref() == Some(&bytes[..]) {
            continue;
        }
        unchanged = false;
        crate::atomic::write_atomic(&path, &bytes).map_err(|e| err(&path, e.to_string()))?;
    }
    for (k, s) in STOKES.iter().enumerate() {
        for &b in &beams {
            for (src, name) in [
                (
                    &cubes[k][&b],
                    format!(
                        "image.restored.{s}.{}.contcube.beam{b:02}.conv.fits",
                        o.field
                    ),
                ),
                (
                    &weights[k][&b],
                    format!(
                        "weights.restored.{s}.{}.contcube.beam{b:02}.conv.txt",
                        o.field
                    ),
                ),
            ] {
                let dest = dir.join(name);
                let src = std::fs::canonicalize(src).map_err(|e| err(src, e.to_string()))?;
                unchanged &= !place(&src, &dest, o.copy)?;
            }
        }
    }
    Ok(InitReport {
        dir,
        beams: beams.len(),
        islands: islands.1,
        components: components.1,
        unchanged,
    })
}

/// Link (or copy) `src` to `dest` unless it is already there; true when something changed.
fn place(src: &Path, dest: &Path, copy: bool) -> Result<bool, InitError> {
    if !copy {
        if std::fs::read_link(dest).ok().as_deref() == Some(src) {
            return Ok(false);
        }
        let tmp = crate::atomic::temp_path_for(dest);
        std::os::unix::fs::symlink(src, &tmp).map_err(|e| err(dest, e.to_string()))?;
        std::fs::rename(&tmp, dest).map_err(|e| err(dest, e.to_string()))?;
        return Ok(true);
    }
    if let (Ok(a), Ok(b)) = (std::fs::metadata(src), std::fs::symlink_metadata(dest)) {
        if b.is_file()
            && a.len() == b.len()
            && crate::hash::hash_file(src).ok() == crate::hash::hash_file(dest).ok()
        {
            return Ok(false);
        }
    }
    let tmp = crate::atomic::temp_path_for(dest);
    std::fs::copy(src, &tmp).map_err(|e| err(dest, e.to_string()))?;
    std::fs::rename(&tmp, dest).map_err(|e| err(dest, e.to_string()))?;
    Ok(true)
}

/// A table as read: column names, their units (where the file says), rows of text cells.
struct RawTable {
    headers: Vec<String>,
    units: Vec<Option<String>>,
    rows: Vec<Vec<String>>,
}

/// A catalogue as CSV text with its rows counted: a CSV file is checked and passed through, a
/// FITS binary table (first table extension) or a VOTable (first TABLE, TABLEDATA) is converted,
/// every column kept. A table with Selavy's column names and none of RACS's is renamed to RACS's
/// (`SELAVY_COMPONENTS`, `SELAVY_ISLANDS`), with fluxes in mJy and sizes in arcsec.
fn catalogue_csv(
    path: &Path,
    required: &[&str],
    islands: bool,
) -> Result<(String, usize), InitError> {
    let name = path.to_string_lossy().to_lowercase();
    let mut t = if name.ends_with(".fits") || name.ends_with(".fit") || name.ends_with(".fits.gz") {
        read_fits_table(path)?
    } else if name.ends_with(".xml") || name.ends_with(".vot") || name.ends_with(".votable") {
        read_votable(path)?
    } else {
        // The reader the stages use: trimmed cells, `#` comments, errors naming FILE:LINE.
        let t = crate::units::Table::read(path)?;
        RawTable {
            units: vec![None; t.headers.len()],
            headers: t.headers,
            rows: t.rows.into_iter().map(|(_, r)| r).collect(),
        }
    };
    if !required.iter().any(|n| t.headers.iter().any(|h| h == n)) {
        from_selavy(&mut t, path, islands)?;
    }
    let headers = &t.headers;
    for need in required {
        if !headers.iter().any(|h| h == need) {
            return Err(err(
                path,
                format!(
                    "no column '{need}'{}; the catalogue needs the RACS column names ({}) or Selavy's ({})",
                    crate::diag::did_you_mean(need, headers.iter().map(|s| s.as_str())),
                    required.join(", "),
                    if islands { "island_id, ra_deg_cont, dec_deg_cont" } else { "component_id, island_id, ra_deg_cont, dec_deg_cont" }
                ),
            ));
        }
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(headers)
        .map_err(|e| err(path, e.to_string()))?;
    for r in &t.rows {
        w.write_record(r).map_err(|e| err(path, e.to_string()))?;
    }
    let bytes = w.into_inner().map_err(|e| err(path, e.to_string()))?;
    Ok((String::from_utf8_lossy(&bytes).into_owned(), t.rows.len()))
}

/// How a Selavy column's values convert to the RACS column's unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// Text or a count: as it is.
    Text,
    /// Degrees (positions, angles).
    Deg,
    /// Arcseconds (sizes, position errors).
    Arcsec,
    /// mJy or mJy/beam (what the RACS catalogues and Selavy write).
    MilliJy,
}

/// Selavy's component-table columns (ASKAPsoft `selavy-…components.xml`) and the RACS
/// (PyBDSF-style) names the stages read.
pub const SELAVY_COMPONENTS: &[(&str, &str, Kind)] = &[
    ("component_id", "Gaussian_ID", Kind::Text),
    ("island_id", "Source_ID", Kind::Text),
    ("ra_deg_cont", "RA", Kind::Deg),
    ("dec_deg_cont", "Dec", Kind::Deg),
    ("ra_err", "E_RA", Kind::Arcsec),
    ("dec_err", "E_Dec", Kind::Arcsec),
    ("flux_int", "Total_flux_Gaussian", Kind::MilliJy),
    ("flux_int_err", "E_Total_flux_Gaussian", Kind::MilliJy),
    ("flux_peak", "Peak_flux", Kind::MilliJy),
    ("flux_peak_err", "E_Peak_flux", Kind::MilliJy),
    ("maj_axis", "Maj", Kind::Arcsec),
    ("maj_axis_err", "E_Maj", Kind::Arcsec),
    ("min_axis", "Min", Kind::Arcsec),
    ("min_axis_err", "E_Min", Kind::Arcsec),
    ("pos_ang", "PA", Kind::Deg),
    ("pos_ang_err", "E_PA", Kind::Deg),
    ("maj_axis_deconv", "DC_Maj", Kind::Arcsec),
    ("maj_axis_deconv_err", "E_DC_Maj", Kind::Arcsec),
    ("min_axis_deconv", "DC_Min", Kind::Arcsec),
    ("min_axis_deconv_err", "E_DC_Min", Kind::Arcsec),
    ("pos_ang_deconv", "DC_PA", Kind::Deg),
    ("pos_ang_deconv_err", "E_DC_PA", Kind::Deg),
];

/// Selavy's island-table columns and the RACS names.
pub const SELAVY_ISLANDS: &[(&str, &str, Kind)] = &[
    ("island_id", "Source_ID", Kind::Text),
    ("island_name", "Source_Name", Kind::Text),
    ("ra_deg_cont", "RA", Kind::Deg),
    ("dec_deg_cont", "Dec", Kind::Deg),
    ("flux_int", "Total_flux_Source", Kind::MilliJy),
    ("flux_peak", "Peak_flux", Kind::MilliJy),
    ("n_components", "N_Gaus", Kind::Text),
];

/// The factor that takes a value in `unit` to the RACS unit of `kind`, or None if the unit is not
/// one of its kind. No unit: the value is taken as in the RACS unit (Selavy's own).
fn unit_factor(kind: Kind, unit: Option<&str>) -> Option<f64> {
    let Some(u) = unit
        .map(|u| u.trim().to_ascii_lowercase())
        .filter(|u| !u.is_empty())
    else {
        return Some(1.0);
    };
    let u = u.strip_suffix("/beam").unwrap_or(&u).to_string();
    match (kind, u.as_str()) {
        (Kind::Text, _) => Some(1.0),
        (Kind::Deg, "deg" | "degree" | "degrees") => Some(1.0),
        (Kind::Deg, "rad") => Some(180.0 / std::f64::consts::PI),
        (Kind::Arcsec, "arcsec" | "\"") => Some(1.0),
        (Kind::Arcsec, "arcmin" | "'") => Some(60.0),
        (Kind::Arcsec, "deg" | "degree" | "degrees") => Some(3600.0),
        (Kind::MilliJy, "mjy") => Some(1.0),
        (Kind::MilliJy, "jy") => Some(1000.0),
        (Kind::MilliJy, "ujy" | "µjy") => Some(1e-3),
        _ => None,
    }
}

/// Rename a Selavy table's columns to RACS's (values converted to RACS's units), and add what
/// RACS has and Selavy does not: `N_Gaus` (components per island) and `S_Code` (S for an island
/// of one component, M otherwise) for components.
fn from_selavy(t: &mut RawTable, path: &Path, islands: bool) -> Result<(), InitError> {
    let map = if islands {
        SELAVY_ISLANDS
    } else {
        SELAVY_COMPONENTS
    };
    if !t.headers.iter().any(|h| h == map[0].0) {
        return Ok(()); // not Selavy's either: the caller names what is missing
    }
    for (from, to, kind) in map {
        let Some(c) = t.headers.iter().position(|h| h == from) else {
            continue;
        };
        let factor = unit_factor(*kind, t.units[c].as_deref()).ok_or_else(|| {
            err(
                path,
                format!(
                    "column '{from}' is in '{}', which arrakis cannot convert to {} for {to}",
                    t.units[c].as_deref().unwrap_or(""),
                    match kind {
                        Kind::Deg => "degrees",
                        Kind::Arcsec => "arcsec",
                        Kind::MilliJy => "mJy",
                        Kind::Text => "text",
                    }
                ),
            )
        })?;
        t.headers[c] = to.to_string();
        if factor != 1.0 {
            for (r, row) in t.rows.iter_mut().enumerate() {
                let cell = &mut row[c];
                if cell.trim().is_empty() {
                    continue;
                }
                let v: f64 = cell.trim().parse().map_err(|_| {
                    err(
                        path,
                        format!("row {}: '{cell}' in column '{from}' is not a number", r + 1),
                    )
                })?;
                *cell = (v * factor).to_string();
            }
        }
    }
    if !islands {
        let sid = t.headers.iter().position(|h| h == "Source_ID");
        if let Some(sid) = sid {
            let mut count: BTreeMap<String, usize> = BTreeMap::new();
            for row in &t.rows {
                *count.entry(row[sid].clone()).or_default() += 1;
            }
            let has = |t: &RawTable, n: &str| t.headers.iter().any(|h| h == n);
            let (add_n, add_s) = (!has(t, "N_Gaus"), !has(t, "S_Code"));
            for row in &mut t.rows {
                let n = count[&row[sid]];
                if add_n {
                    row.push(n.to_string());
                }
                if add_s {
                    row.push(if n == 1 { "S" } else { "M" }.to_string());
                }
            }
            if add_n {
                t.headers.push("N_Gaus".into());
                t.units.push(None);
            }
            if add_s {
                t.headers.push("S_Code".into());
                t.units.push(None);
            }
        }
    }
    Ok(())
}

/// The first TABLE of a VOTable (TABLEDATA serialisation) as text cells, with the FIELDs' names
/// and units.
fn read_votable(path: &Path) -> Result<RawTable, InitError> {
    let text = crate::hash::read_regular_string(path)
        .map_err(|e| err(path, format!("cannot read the VOTable: {e}")))?;
    let doc = roxmltree::Document::parse_with_options(
        &text,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .map_err(|e| {
        err(
            path,
            format!("not a readable VOTable (XML error at {}: {e})", e.pos()),
        )
    })?;
    let line_of = |n: roxmltree::Node| doc.text_pos_at(n.range().start).row;
    let table = doc
        .descendants()
        .find(|n| n.has_tag_name("TABLE"))
        .ok_or_else(|| err(path, "the VOTable holds no TABLE"))?;
    let fields: Vec<roxmltree::Node> = table
        .children()
        .filter(|n| n.has_tag_name("FIELD"))
        .collect();
    if fields.is_empty() {
        return Err(err(path, "the VOTable's TABLE declares no FIELD (columns)"));
    }
    let headers: Vec<String> = fields
        .iter()
        .map(|f| {
            f.attribute("name")
                .or_else(|| f.attribute("ID"))
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let units = fields
        .iter()
        .map(|f| f.attribute("unit").map(str::to_string))
        .collect();
    let data = table.children().find(|n| n.has_tag_name("DATA"));
    let Some(data) = data else {
        return Ok(RawTable {
            headers,
            units,
            rows: Vec::new(),
        });
    };
    let Some(td) = data.children().find(|n| n.has_tag_name("TABLEDATA")) else {
        let kind = data
            .children()
            .find(|n| n.is_element())
            .map(|n| n.tag_name().name().to_string())
            .unwrap_or_default();
        return Err(err(path, format!("the table data is serialised as {kind}, which arrakis does not read: write it as TABLEDATA (astropy: votable.from_table(t).to_xml(f, tabledata_format='tabledata')) or as FITS")));
    };
    let mut rows = Vec::new();
    for tr in td.children().filter(|n| n.has_tag_name("TR")) {
        let cells: Vec<String> = tr
            .children()
            .filter(|n| n.has_tag_name("TD"))
            .map(|n| n.text().unwrap_or("").trim().to_string())
            .collect();
        if cells.len() != headers.len() {
            return Err(err(
                path,
                format!(
                    "line {}: a row of {} cells, but the table has {} columns",
                    line_of(tr),
                    cells.len(),
                    headers.len()
                ),
            ));
        }
        rows.push(
            cells
                .into_iter()
                .map(|c| {
                    if c.eq_ignore_ascii_case("nan") || c == "--" {
                        String::new()
                    } else {
                        c
                    }
                })
                .collect(),
        );
    }
    Ok(RawTable {
        headers,
        units,
        rows,
    })
}

/// The first binary table of a FITS file as text cells (numbers in Rust's shortest round-trip
/// form, NaN and empty as empty).
fn read_fits_table(path: &Path) -> Result<RawTable, InitError> {
    use fitsio::hdu::HduInfo;
    use fitsio::tables::ColumnDataType as T;
    let e = |x: fitsio::errors::Error| err(path, format!("cannot read the FITS table: {x}"));
    let mut f = fitsio::FitsFile::open(path).map_err(e)?;
    let hdu = f.hdu(1).map_err(e)?;
    let HduInfo::TableInfo {
        column_descriptions,
        num_rows,
    } = &hdu.info
    else {
        return Err(err(path, "HDU 1 is not a table"));
    };
    let mut headers = Vec::new();
    let mut units = Vec::new();
    let mut cols: Vec<Vec<String>> = Vec::new();
    for (k, c) in column_descriptions.iter().enumerate() {
        let cells: Vec<String> = match c.data_type.typ {
            T::Text | T::String => hdu
                .read_col::<String>(&mut f, &c.name)
                .map_err(e)?
                .into_iter()
                .map(|s| s.trim().to_string())
                .collect(),
            T::Float | T::Double => hdu
                .read_col::<f64>(&mut f, &c.name)
                .map_err(e)?
                .into_iter()
                .map(|v| {
                    if v.is_finite() {
                        v.to_string()
                    } else {
                        String::new()
                    }
                })
                .collect(),
            T::Logical => hdu
                .read_col::<bool>(&mut f, &c.name)
                .map_err(e)?
                .into_iter()
                .map(|v| v.to_string())
                .collect(),
            _ => hdu
                .read_col::<i64>(&mut f, &c.name)
                .map_err(e)?
                .into_iter()
                .map(|v| v.to_string())
                .collect(),
        };
        if c.data_type.repeat > 1 && !matches!(c.data_type.typ, T::Text | T::String) {
            continue;
        }
        headers.push(c.name.clone());
        units.push(
            hdu.read_key::<String>(&mut f, &format!("TUNIT{}", k + 1))
                .ok(),
        );
        cols.push(cells);
    }
    let rows = (0..*num_rows)
        .map(|r| {
            cols.iter()
                .map(|c| c.get(r).cloned().unwrap_or_default())
                .collect()
        })
        .collect();
    Ok(RawTable {
        headers,
        units,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beam_numbers_come_from_the_last_beam_tag() {
        assert_eq!(
            beam_of("image.restored.q.SB61234.contcube.RACS_1237+00A.beam07.conv.fits"),
            Some(7)
        );
        assert_eq!(
            beam_of("weights.restored.i.beamformer.contcube.beam35.conv.txt"),
            Some(35)
        );
        assert_eq!(beam_of("image.fits"), None);
    }
}
