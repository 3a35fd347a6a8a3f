//! `frion` (per island): ionospheric Faraday-rotation correction of the island's Q and U mosaics
//! as FRion does it. θ(ν) comes from (`ion_source`):
//! - `file`: an RM_ion time series (two columns: time in seconds, RM_ion in rad/m²) integrated
//!   over the observation, or a FRion prediction file (three columns: frequency in Hz, Re θ,
//!   Im θ, as `frion_predict` writes it);
//! - `ionex`: RM_ion predicted for the island's direction over the scan (times from `field.yaml`)
//!   from the IONEX maps in `ionex_dir` (`science::ionosphere`), then integrated as FRion does;
//! - `frion_predict`: FRion's own program, run in the field directory.
//!
//! Writes the prediction (`{source}_ion.txt`, FRion's format, with the RM_ion samples and the
//! IONEX files used as `#` comments) and Q/U divided by θ channel by channel.
//!
//! Must never: guess an ionosphere. A missing or malformed file is an error naming it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use super::io::{out_path, single, stokes_input, write_text};
use super::params::{
    FRION_PREDICT, IONEX_DIR, IONEX_PREFIX, ION_END, ION_SOURCE, ION_START, ION_TIMESTEP,
};
use super::{ActionCtx, Builtin, StageError};
use crate::fits::{ImageStream, PlaneReader};
use crate::rules::{Contract, SlotSpec};
use crate::science::frion::{correct_qu, modulation, numeric_warnings};
use crate::science::ionex::{self, IonexMaps};
use crate::science::ionosphere;
use crate::wcs::Wcs;

static CONTRACT: Contract = Contract {
    name: "frion",
    version: 2,
    params: &[
        &ION_SOURCE,
        &IONEX_DIR,
        &ION_START,
        &ION_END,
        &ION_TIMESTEP,
        &IONEX_PREFIX,
        &FRION_PREDICT,
    ],
    inputs: &[
        SlotSpec::required(
            "mosaics",
            "the island's Q and U mosaics (linmos; I is ignored)",
        ),
        SlotSpec::optional(
            "ionosphere",
            "an RM_ion time series or FRion prediction file",
        ),
        SlotSpec::optional(
            "ionex",
            "the IONEX files in ionex_dir (ion_source: ionex or frion_predict)",
        ),
        SlotSpec::optional(
            "field_file",
            "field.yaml, for the scan's start and length (ion_source: ionex)",
        ),
        SlotSpec::optional(
            "islands",
            "the island catalogue, for the island's direction (ion_source: ionex)",
        ),
    ],
    outputs: &["prediction", "q", "u"],
    open: false,
};

/// What an ionosphere file holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Ionosphere {
    /// RM_ion (rad/m²) at times (s).
    TimeSeries { times: Vec<f64>, rms: Vec<f64> },
    /// θ per frequency (Hz), FRion's prediction file.
    Prediction {
        freqs: Vec<f64>,
        theta: Vec<(f64, f64)>,
    },
}

/// Read an ionosphere file: `#` comments and blank lines skipped; two columns make a time series,
/// three a FRion prediction.
pub fn read_ionosphere(path: &Path) -> Result<Ionosphere, StageError> {
    let text = crate::hash::read_regular_string(path).map_err(|e| {
        StageError::file(
            path,
            None,
            format!("cannot read the ionosphere file: {e}. Provide an RM_ion time series (columns: time [s], RM_ion [rad/m^2]) or a FRion prediction (columns: frequency [Hz], Re theta, Im theta; `frion_predict` writes one), or set skip_frion: true to build without the correction"),
        )
    })?;
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let row: Result<Vec<f64>, _> = line.split_whitespace().map(str::parse::<f64>).collect();
        let at = |message: String| StageError::file(path, Some(i + 1), message);
        let row = row.map_err(|_| at(format!("'{line}' is not a row of numbers")))?;
        if row.iter().any(|v| !v.is_finite()) {
            return Err(at(format!("'{line}' holds a value that is not finite")));
        }
        if let Some(first) = rows.first() {
            if first.len() != row.len() {
                return Err(at(format!(
                    "{} columns, but the first row has {}",
                    row.len(),
                    first.len()
                )));
            }
        } else if row.len() != 2 && row.len() != 3 {
            return Err(at(format!(
                "{} columns; expected 2 (time [s], RM_ion [rad/m^2]) or 3 (frequency [Hz], Re theta, Im theta)",
                row.len()
            )));
        }
        rows.push(row);
    }
    if rows.len() < 2 {
        return Err(StageError::file(
            path,
            None,
            format!("{} data row(s); at least two are needed", rows.len()),
        ));
    }
    if rows[0].len() == 2 {
        let times: Vec<f64> = rows.iter().map(|r| r[0]).collect();
        if let Some(k) = times.windows(2).position(|w| w[1] <= w[0]) {
            return Err(StageError::file(
                path,
                None,
                format!(
                    "times must increase, but row {} ({}) does not come after row {} ({})",
                    k + 2,
                    times[k + 1],
                    k + 1,
                    times[k]
                ),
            ));
        }
        Ok(Ionosphere::TimeSeries {
            times,
            rms: rows.iter().map(|r| r[1]).collect(),
        })
    } else {
        Ok(Ionosphere::Prediction {
            freqs: rows.iter().map(|r| r[0]).collect(),
            theta: rows.iter().map(|r| (r[1], r[2])).collect(),
        })
    }
}

/// A number as numpy's `savetxt` writes it (`%.18e`: two-digit signed exponent).
pub fn fmt_e18(x: f64) -> String {
    let mut s = String::with_capacity(24);
    push_e18(&mut s, x);
    s
}

/// [`fmt_e18`] appended to `out`.
pub fn push_e18(out: &mut String, x: f64) {
    let Some((mut digits, exp)) = digits19(x.abs()) else {
        out.push_str(&fmt_e18_general(x));
        return;
    };
    let mut d = [b'0'; 19];
    for c in d.iter_mut().rev() {
        *c = b'0' + (digits % 10) as u8;
        digits /= 10;
    }
    if x < 0.0 {
        out.push('-');
    }
    out.push(d[0] as char);
    out.push('.');
    // ASCII digits.
    out.push_str(std::str::from_utf8(&d[1..]).unwrap_or_default());
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        out.push('0');
    }
    out.push_str(&e.to_string());
}

/// The 19 significant digits of `x` (> 0) correctly rounded (ties to even, as Rust and numpy
/// round the exact value) and its decimal exponent, by exact 128-bit integer arithmetic:
/// `x·10^q = m·5^q·2^(e+q)` for `x = m·2^e` and `q = 18 − exponent`. `None` where that does not
/// fit (below 1e-14 or from 1e19, zero, not finite): the general formatter then (the
/// three-column ionosphere file of every island had Rust's exact formatting at 11 % of frion's
/// time, most numbers needing its big-number fallback).
fn digits19(x: f64) -> Option<(u64, i32)> {
    if !x.is_finite() || !(1e-14..1e19).contains(&x) {
        return None;
    }
    const LOW: u64 = 1_000_000_000_000_000_000; // 10^18
    let bits = x.to_bits();
    let (m, e) = (
        (bits & ((1 << 52) - 1)) | (1 << 52),
        ((bits >> 52) & 0x7ff) as i32 - 1075,
    );
    // The estimate can be one off either way near a power of ten: corrected below.
    let mut exp = x.log10().floor() as i32;
    for _ in 0..3 {
        let q = 18 - exp;
        // x·10^q = m·5^q / 2^shift.
        let shift = -(e + q);
        if !(0..=32).contains(&q) || !(1..=127).contains(&shift) {
            return None;
        }
        let n = (m as u128).checked_mul(5u128.pow(q as u32))?;
        let (mut d, rem) = (n >> shift, n & ((1u128 << shift) - 1));
        let half = 1u128 << (shift - 1);
        if rem > half || (rem == half && d & 1 == 1) {
            d += 1;
        }
        if d < LOW as u128 {
            exp -= 1;
        } else if d >= 10 * LOW as u128 {
            if d == 10 * LOW as u128 && rem != 0 {
                // Rounded up to a power of ten: one digit fewer after it.
                return Some((LOW, exp + 1));
            }
            exp += 1;
        } else {
            return Some((d as u64, exp));
        }
    }
    None
}

/// [`fmt_e18`] through Rust's own formatter (any finite number, NaN and ±inf).
fn fmt_e18_general(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let s = format!("{x:.18e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = exp.parse().unwrap_or(0);
    format!("{mant}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

/// θ per channel as (Re, Im), with FRion's warnings.
pub type Theta = (Vec<(f64, f64)>, Vec<String>);

/// θ for the cube's channels, with FRion's warnings.
pub fn theta_for(ion: &Ionosphere, freqs: &[f64], path: &Path) -> Result<Theta, StageError> {
    match ion {
        Ionosphere::TimeSeries { times, rms } => {
            let theta = modulation(times, rms, freqs);
            let warnings = numeric_warnings(rms, freqs, &theta);
            Ok((theta, warnings))
        }
        Ionosphere::Prediction { freqs: pf, theta } => {
            if pf.len() != freqs.len() {
                return Err(StageError::file(
                    path,
                    None,
                    format!(
                        "the prediction has {} channels but the cubes have {}; predict for the cubes' frequencies",
                        pf.len(),
                        freqs.len()
                    ),
                ));
            }
            if let Some(k) = pf
                .iter()
                .zip(freqs)
                .position(|(a, b)| (a - b).abs() > 1e-6 * b.abs())
            {
                return Err(StageError::file(
                    path,
                    Some(k + 1),
                    format!(
                        "row {} is for {} Hz but the cubes' channel {k} is at {} Hz; predict for the cubes' frequencies",
                        k + 1,
                        pf[k],
                        freqs[k]
                    ),
                ));
            }
            Ok((theta.clone(), Vec::new()))
        }
    }
}

/// Run FRion's `frion_predict` (an external program, no shell) in the field directory, where it
/// finds IONEX files under `IONEXdata/` (and downloads missing ones from CDDIS, which needs an
/// account), for the island's Q mosaic (frequencies and pointing from its header) between
/// `ion_start` and `ion_end`. Returns the prediction file it wrote (beside the outputs).
fn run_frion_predict(ctx: &ActionCtx, q_mosaic: &Path) -> Result<std::path::PathBuf, StageError> {
    let program = ctx.str(&FRION_PREDICT)?;
    let set = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(str::to_string);
    let (Some(start), Some(end)) = (set(ctx.opt_str(&ION_START)?), set(ctx.opt_str(&ION_END)?))
    else {
        return Err(StageError::data("ion_source is frion_predict but ion_start or ion_end is not set: give the observation's start and end (e.g. --set ion_start=2021-01-01T10:00:00 --set ion_end=2021-01-01T10:15:00)"));
    };
    let step = ctx.f64(&ION_TIMESTEP)?;
    let prefix = ctx.str(&IONEX_PREFIX)?;
    let out = out_path(ctx, "prediction")?.with_extension("frion_predict.txt");
    let result = std::process::Command::new(program)
        .arg("-F")
        .arg(q_mosaic)
        .args(["-d", &start, &end, "-t", "ASKAP", "--timestep", &step.to_string()])
        .args(["-P", prefix, "-s"])
        .arg(&out)
        .current_dir(ctx.field_dir)
        .output()
        .map_err(|e| {
            StageError::Program(format!(
                "cannot run FRion's {program} ({e}): install FRion with RMextract (pip install frion RMextract) and put the IONEX files in {}/IONEXdata, or set ion_source: ionex to predict from the IONEX files without FRion",
                ctx.field_dir.display()
            ))
        })?;
    if !result.status.success() {
        return Err(StageError::Program(format!(
            "{program} failed ({}); it needs RMextract and IONEX files in {}/IONEXdata (or a CDDIS account to download them):\n  {}",
            result.status,
            ctx.field_dir.display(),
            super::io::output_tail(&result, 12)
        )));
    }
    Ok(out)
}

/// A parsed file kept for the process: many frion targets read the same IONEX maps and island
/// catalogue (a local build runs them on one pool; a Slurm job runs a batch of them).
type MemoKey = (PathBuf, u64, Option<SystemTime>);

fn memo_key(path: &Path) -> Result<MemoKey, StageError> {
    let m = std::fs::metadata(path).map_err(|e| StageError::io(path, e))?;
    Ok((path.to_path_buf(), m.len(), m.modified().ok()))
}

/// Parsed files by key.
type Memo<T> = Mutex<HashMap<MemoKey, Arc<T>>>;
/// Island positions (RA, Dec) by Source_ID.
type Positions = HashMap<String, (f64, f64)>;

fn memoised<T: Send + Sync + 'static>(
    cell: &'static OnceLock<Memo<T>>,
    path: &Path,
    load: impl FnOnce() -> Result<T, StageError>,
) -> Result<Arc<T>, StageError> {
    let key = memo_key(path)?;
    let map = cell.get_or_init(Default::default);
    if let Some(v) = map.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(v.clone());
    }
    let v = Arc::new(load()?);
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, v.clone());
    Ok(v)
}

/// Whether a file name is an IONEX file's: a legacy daily name (`CODG1200.17I`), an IGS long
/// name (`...GIM.INX`), either possibly gzipped. Other files in `ionex_dir` are ignored.
fn looks_like_ionex(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let n = n
        .strip_suffix(".gz")
        .or_else(|| n.strip_suffix(".z"))
        .unwrap_or(&n);
    let b = n.as_bytes();
    n.ends_with(".inx")
        || (b.len() >= 4
            && b[b.len() - 1] == b'i'
            && b[b.len() - 2].is_ascii_digit()
            && b[b.len() - 3].is_ascii_digit()
            && b[b.len() - 4] == b'.')
}

/// Read one IONEX file (plain or gzipped).
fn read_ionex(path: &Path) -> Result<IonexMaps, StageError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let bytes = crate::hash::read_regular(path).map_err(|e| StageError::io(path, e))?;
    let text = if name.ends_with(".gz") || name.ends_with(".GZ") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut s)
            .map_err(|e| {
                StageError::file(path, None, format!("cannot gunzip the IONEX file: {e}"))
            })?;
        s
    } else if name.ends_with(".Z") || name.ends_with(".z") {
        return Err(StageError::file(path, None, "compressed with Unix compress (.Z), which arrakis does not read: uncompress it in place (`uncompress FILE` or `gzip -d FILE`)"));
    } else {
        String::from_utf8(bytes).map_err(|_| {
            StageError::file(
                path,
                None,
                "not a text file: an IONEX file is ASCII text (gzipped files must end in .gz)",
            )
        })?
    };
    IonexMaps::parse(&text).map_err(|e| {
        StageError::file(
            path,
            (e.line > 0).then_some(e.line),
            format!("{} (IONEX 1.0)", e.message),
        )
    })
}

/// The island positions of an island catalogue, by Source_ID.
fn island_positions(path: &Path) -> Result<Positions, StageError> {
    let t = crate::units::Table::read(path)?;
    let (id, ra, dec) = (t.col("Source_ID")?, t.col("RA")?, t.col("Dec")?);
    let mut out = HashMap::with_capacity(t.rows.len());
    for (line, row) in &t.rows {
        let name = row.get(id).cloned().unwrap_or_default();
        out.insert(
            name,
            (t.number(*line, row, ra)?, t.number(*line, row, dec)?),
        );
    }
    Ok(out)
}

/// A UTC time `YYYY-MM-DD[T ]HH:MM[:SS[.fff]]` (an optional trailing Z) as MJD seconds.
pub fn parse_utc(s: &str) -> Option<f64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00"));
    let d: Vec<u32> = date
        .split('-')
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<f64> = time
        .split(':')
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3
        || !(2..=3).contains(&t.len())
        || !(1..=12).contains(&d[1])
        || !(1..=31).contains(&d[2])
    {
        return None;
    }
    let sec = t[0] * 3600.0 + t[1] * 60.0 + t.get(2).copied().unwrap_or(0.0);
    Some(crate::science::geomag::mjd_from_civil(d[0] as i32, d[1], d[2]) as f64 * 86_400.0 + sec)
}

/// RM_ion over the scan for this island, predicted from the IONEX maps; with the text of the
/// comment lines that record how.
fn predict_from_ionex(ctx: &ActionCtx) -> Result<(Ionosphere, String), StageError> {
    let source = ctx.unit_var("source")?;
    let islands_path = single(ctx, "islands")?;
    let positions = {
        static ISLANDS: OnceLock<Memo<Positions>> = OnceLock::new();
        memoised(&ISLANDS, islands_path, || island_positions(islands_path))?
    };
    let &(ra, dec) = positions.get(source).ok_or_else(|| {
        StageError::file(islands_path, None, format!("island {source} is not in the island catalogue (Source_ID); the field's catalogues disagree"))
    })?;
    // The scan: field.yaml, unless ion_start/ion_end say otherwise.
    let field_path = single(ctx, "field_file")?;
    let field = crate::field_file::FieldFile::read(field_path)?;
    let param_time =
        |spec: &'static crate::config::params::ParamSpec| -> Result<Option<f64>, StageError> {
            match ctx.opt_str(spec)?.filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(v) => parse_utc(v).map(Some).ok_or_else(|| StageError::data(format!("{} = '{v}' is not a UTC time: write YYYY-MM-DDTHH:MM:SS, e.g. 2021-01-01T10:00:00", spec.name))),
        }
        };
    let start = match (param_time(&ION_START)?, field.scan_start_mjd_s) {
        (Some(t), _) | (None, Some(t)) => t,
        (None, None) => return Err(StageError::file(field_path, None, "no scan_start_mjd_s (and no ion_start parameter): the ionosphere is predicted over the scan; add scan_start_mjd_s and scan_length_s (arrakis init --scan-start TIME --scan-length SECONDS writes them)")),
    };
    let end = match (param_time(&ION_END)?, field.scan_length_s) {
        (Some(t), _) => t,
        (None, Some(len)) => start + len,
        (None, None) => return Err(StageError::file(field_path, None, "no scan_length_s (and no ion_end parameter): add scan_length_s, the scan's length in seconds (arrakis init --scan-length SECONDS writes it)")),
    };
    if end <= start {
        return Err(StageError::data(format!("the scan ends (MJD {:.6}) before it starts (MJD {:.6}): check scan_start_mjd_s/scan_length_s in field.yaml or ion_start/ion_end", end / 86_400.0, start / 86_400.0)));
    }
    let step = ctx.f64(&ION_TIMESTEP)?;
    let times = ionosphere::time_grid(start, end, step);
    // Every IONEX-looking file in ionex_dir, parsed once per process.
    static MAPS: OnceLock<Memo<IonexMaps>> = OnceLock::new();
    let mut files: Vec<(String, Arc<IonexMaps>)> = Vec::new();
    for p in ctx.input("ionex") {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if !looks_like_ionex(&name) {
            continue;
        }
        files.push((name, memoised(&MAPS, p, || read_ionex(p))?));
    }
    let prefix = ctx.str(&IONEX_PREFIX)?;
    let dir = ctx.str(&IONEX_DIR)?;
    let refs: Vec<(String, &IonexMaps)> =
        files.iter().map(|(n, m)| (n.clone(), m.as_ref())).collect();
    let (product, maps) = ionex::choose_refs(&refs, prefix, &times).map_err(|missing| {
        let mut days: Vec<String> = missing.iter().map(|&t| ionex::legacy_name(prefix, t)).collect();
        days.dedup();
        StageError::data(format!(
            "no IONEX product in {dir} covers the scan (MJD {:.5} to {:.5}, sampled from {:.5} to {:.5}){}: put the daily maps there, e.g. {} (CODE: ftp://ftp.aiub.unibe.ch/CODE/YYYY/, or CDDIS), uncompressed or .gz",
            start / 86_400.0,
            end / 86_400.0,
            times[0] / 86_400.0,
            times[times.len() - 1] / 86_400.0,
            if files.is_empty() { String::from(" (it holds no IONEX files)") } else { format!(" (it holds {})", files.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")) },
            days.join(", ")
        ))
    })?;
    let rms = ionosphere::predict(&ionosphere::ASKAP, ra, dec, &times, &maps).map_err(|e| {
        StageError::data(format!(
            "{e}; use another product (ionex_prefix) or ion_source: file"
        ))
    })?;
    let mut used: Vec<&str> = files
        .iter()
        .filter(|(n, _)| ionex::product_of(n) == product)
        .map(|(n, _)| n.as_str())
        .collect();
    used.sort_unstable();
    let mut note = format!(
        "# ionosphere: predicted by arrakis from IONEX ({product}: {}) for RA {ra:.6} Dec {dec:.6} from ASKAP, shell 450 km, WMM2020\n# rm_ion samples (MJD seconds, rad/m^2):\n",
        used.join(", ")
    );
    for (t, rm) in times.iter().zip(&rms) {
        note.push_str(&format!("#   {t:.1} {rm:.6}\n"));
    }
    Ok((Ionosphere::TimeSeries { times, rms }, note))
}

/// `frion` (per island).
pub struct Frion;

impl Builtin for Frion {
    fn contract(&self) -> &'static Contract {
        &CONTRACT
    }
    fn run(&self, ctx: &ActionCtx) -> Result<(), StageError> {
        let (qp, up) = (
            stokes_input(ctx, &["mosaics"], 1)?,
            stokes_input(ctx, &["mosaics"], 2)?,
        );
        let (ion, note, ion_path): (Ionosphere, String, PathBuf) = match ctx.str(&ION_SOURCE)? {
            "ionex" => {
                let (ion, note) = predict_from_ionex(ctx)?;
                (ion, note, PathBuf::from(ctx.str(&IONEX_DIR)?))
            }
            "frion_predict" => {
                let predicted = run_frion_predict(ctx, qp)?;
                let ion = read_ionosphere(&predicted);
                let _ = std::fs::remove_file(&predicted);
                (ion?, String::new(), predicted)
            }
            _ => {
                let p = single(ctx, "ionosphere")?;
                (read_ionosphere(p)?, String::new(), p.clone())
            }
        };
        // Read, corrected and written channel by channel (no whole cube decoded, then
        // corrected, then encoded: one pass over each plane while it is in the cache).
        let mut q = PlaneReader::open(qp)?;
        let mut u = PlaneReader::open(up)?;
        if (q.nx, q.ny, q.nchan) != (u.nx, u.ny, u.nchan) {
            return Err(StageError::data(format!(
                "{} is {}x{}x{} but {} is {}x{}x{}; Q and U must match (their beam cubes must have the same channels: check NAXIS3 of image.restored.q/u.*.beamNN cubes)",
                qp.display(),
                q.nx,
                q.ny,
                q.nchan,
                up.display(),
                u.nx,
                u.ny,
                u.nchan
            )));
        }
        let wcs = Wcs::from_header(&q.header, qp)?;
        let freqs: Vec<f64> = (0..q.nchan).map(|c| wcs.freq(c)).collect();
        let (theta, warnings) = theta_for(&ion, &freqs, &ion_path)?;

        let mut text = note;
        for w in &warnings {
            text.push_str(&format!("# warning: {w}\n"));
        }
        for (f, (re, im)) in freqs.iter().zip(&theta) {
            push_e18(&mut text, *f);
            text.push(' ');
            push_e18(&mut text, *re);
            text.push(' ');
            push_e18(&mut text, *im);
            text.push('\n');
        }
        write_text(out_path(ctx, "prediction")?, &text)?;

        let shape = [q.nx, q.ny, q.nchan];
        let mut out = Vec::with_capacity(2);
        for (cube, name) in [(&q, "q"), (&u, "u")] {
            let mut header = cube.header.clone();
            header.history(
                "Corrected for ionospheric Faraday rotation (arrakis frion: P / theta, as FRion).",
            );
            for w in &warnings {
                header.history(&format!("frion warning: {w}"));
            }
            out.push(ImageStream::create(out_path(ctx, name)?, &shape, &header)?);
        }
        let plane = q.nx * q.ny;
        let (mut qs, mut us) = (vec![0f32; plane], vec![0f32; plane]);
        for (c, t) in theta.iter().enumerate() {
            q.read_plane(c, &mut qs)?;
            u.read_plane(c, &mut us)?;
            correct_qu(&mut qs, &mut us, plane, std::slice::from_ref(t));
            out[0].put_f32(&qs)?;
            out[1].put_f32(&us)?;
        }
        for img in out {
            img.finish()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_parse_to_mjd_seconds() {
        assert_eq!(parse_utc("2017-04-27T08:53:20"), Some(5.0e9));
        assert_eq!(parse_utc("2017-04-27 08:53:20Z"), Some(5.0e9));
        assert_eq!(parse_utc("2017-04-27T08:53"), Some(5.0e9 - 20.0));
        assert_eq!(parse_utc("2017-04-27"), Some(5.0e9 - 32_000.0));
        for bad in ["2017-13-01T00:00:00", "yesterday", "2017-04-27T8", ""] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn savetxt_format() {
        assert_eq!(fmt_e18(743.5e6), "7.435000000000000000e+08");
        assert_eq!(fmt_e18(-0.00125), "-1.250000000000000026e-03");
        assert_eq!(fmt_e18(0.0), "0.000000000000000000e+00");
        assert_eq!(fmt_e18(1e-100), "1.000000000000000020e-100");
        // 2^-28 = 3.7252902984619140625e-09 exactly: a tie at the 19th digit, to even.
        assert_eq!(fmt_e18(2f64.powi(-28)), "3.725290298461914062e-09");
        // Either side of powers of ten, and the ends of the integer path.
        for x in [
            1.0,
            10.0,
            0.1,
            1e-14,
            9.999999999999999e-15,
            1e18,
            9.999999999999998e18,
            1e19,
            0.30000000000000004,
            f64::MIN_POSITIVE,
            f64::MAX,
            5e-324,
        ] {
            for x in [
                x,
                -x,
                f64::from_bits(x.to_bits() + 1),
                f64::from_bits(x.to_bits() - 1),
            ] {
                assert_eq!(fmt_e18(x), fmt_e18_general(x), "{x:e}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]
        #[test]
        fn savetxt_digits_match_the_general_formatter(bits in proptest::prelude::any::<u64>(), scale in -16i32..20) {
            // Any bits, and numbers spread over the integer path's range.
            let x = f64::from_bits(bits);
            proptest::prop_assert_eq!(fmt_e18(x), fmt_e18_general(x));
            let y = (bits >> 12) as f64 / (1u64 << 52) as f64 * 10f64.powi(scale);
            proptest::prop_assert_eq!(fmt_e18(y), fmt_e18_general(y));
        }
    }

    #[test]
    fn ionosphere_files_are_read_or_refused_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ion.txt");
        std::fs::write(&p, "# t RM\n0 1.5\n300 1.6\n\n600 1.7\n").unwrap();
        assert_eq!(
            read_ionosphere(&p).unwrap(),
            Ionosphere::TimeSeries {
                times: vec![0.0, 300.0, 600.0],
                rms: vec![1.5, 1.6, 1.7]
            }
        );
        std::fs::write(&p, "8e8 1 0\n9e8 0.5 0.5\n").unwrap();
        assert!(matches!(
            read_ionosphere(&p).unwrap(),
            Ionosphere::Prediction { .. }
        ));
        for (text, want) in [
            ("0 1\n300 x\n", "ion.txt:2"),
            ("0 1\n300 1 2\n", "ion.txt:2: 3 columns"),
            ("0 1 2 3\n", "expected 2"),
            ("0 1\n", "at least two"),
            ("0 1\n0 2\n", "times must increase"),
            ("0 1\n300 nan\n", "not finite"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = read_ionosphere(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = read_ionosphere(&dir.path().join("none.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("skip_frion: true"), "{e}");
    }

    #[test]
    fn prediction_must_match_the_cube_channels() {
        let ion = Ionosphere::Prediction {
            freqs: vec![8e8, 9e8],
            theta: vec![(1.0, 0.0), (0.0, 1.0)],
        };
        let p = Path::new("pred.txt");
        assert!(theta_for(&ion, &[8e8, 9e8], p).is_ok());
        assert!(theta_for(&ion, &[8e8], p)
            .unwrap_err()
            .to_string()
            .contains("2 channels"));
        assert!(theta_for(&ion, &[8e8, 9.1e8], p)
            .unwrap_err()
            .to_string()
            .contains("row 2"));
    }
}
