//! `arrakis init`: a field directory from real ASKAP products. The beam cubes and weights are
//! found in an images directory by Arrakis's patterns, linked (or copied) into the field under
//! the names the rules read, `field.yaml` is written from the cube headers and the options, and
//! the island and component catalogues (CSV or FITS binary tables with the RACS column names)
//! become `catalogue/islands.csv` and `catalogue/components.csv`.
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
    /// Component catalogue (CSV or FITS).
    pub components: PathBuf,
    /// Island catalogue (CSV or FITS).
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
            let zero: Vec<bool> = ws.iter().map(|v| *v == 0.0).collect();
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
    let islands = catalogue_csv(&o.islands, &["Source_ID", "RA", "Dec"])?;
    let components = catalogue_csv(&o.components, &["Gaussian_ID", "Source_ID", "RA", "Dec"])?;
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

/// A catalogue as CSV text with its rows counted: a CSV file is checked and passed through, a
/// FITS binary table (first table extension) is converted, every column kept.
fn catalogue_csv(path: &Path, required: &[&str]) -> Result<(String, usize), InitError> {
    let name = path.to_string_lossy().to_lowercase();
    let (headers, rows) = if name.ends_with(".fits")
        || name.ends_with(".fit")
        || name.ends_with(".fits.gz")
    {
        read_fits_table(path)?
    } else if name.ends_with(".xml") || name.ends_with(".vot") || name.ends_with(".votable") {
        return Err(err(path, "VOTable catalogues are not read yet: convert it to FITS or CSV (for example with astropy: Table.read(f).write('cat.fits'))"));
    } else {
        // The reader the stages use: trimmed cells, `#` comments, errors naming FILE:LINE.
        let t = crate::units::Table::read(path)?;
        (t.headers, t.rows.into_iter().map(|(_, r)| r).collect())
    };
    for need in required {
        if !headers.iter().any(|h| h == need) {
            return Err(err(
                path,
                format!(
                    "no column '{need}'{}; the catalogue needs the RACS column names ({})",
                    crate::diag::did_you_mean(need, headers.iter().map(|s| s.as_str())),
                    required.join(", ")
                ),
            ));
        }
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&headers)
        .map_err(|e| err(path, e.to_string()))?;
    for r in &rows {
        w.write_record(r).map_err(|e| err(path, e.to_string()))?;
    }
    let bytes = w.into_inner().map_err(|e| err(path, e.to_string()))?;
    Ok((String::from_utf8_lossy(&bytes).into_owned(), rows.len()))
}

/// The first binary table of a FITS file as text cells (numbers in Rust's shortest round-trip
/// form, NaN and empty as empty).
fn read_fits_table(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>), InitError> {
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
    let mut cols: Vec<Vec<String>> = Vec::new();
    for c in column_descriptions {
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
        cols.push(cells);
    }
    let rows = (0..*num_rows)
        .map(|r| {
            cols.iter()
                .map(|c| c.get(r).cloned().unwrap_or_default())
                .collect()
        })
        .collect();
    Ok((headers, rows))
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
