//! `arrakis compare`: a catalogue checked against a simulation's truth (pulls of RM and
//! fractional polarisation, the footprint measured) or against a reference catalogue (every
//! column within its tolerance, components added or lost), as checks a CI system reads (JUnit
//! XML) and a person reads (a summary, a Markdown table).
//!
//! Owns: reading the two CSV tables, matching their rows (by `cat_id`, else by position),
//! the checks and their default limits, tolerances (`COLUMN=VALUE|N%|Nsigma|exact|ignore`),
//! the JUnit and Markdown renderings.
//! Must never: pass a check it could not make (too few sources to judge is a failure, not a
//! pass); read any file but the ones it is given (and the field.yaml beside a field catalogue).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::stages::catalogue::xml_escape;

/// Bad input: a file that cannot be read, a column that is not there, an option that makes no
/// sense. (`arrakis compare` exits 2.)
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct CompareError {
    /// The file (or option) at fault.
    pub path: PathBuf,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn bad(path: &Path, message: impl Into<String>) -> CompareError {
    CompareError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// A CSV table, read whole.
pub struct Csv {
    /// Where it was read from.
    pub path: PathBuf,
    /// Column names.
    pub headers: Vec<String>,
    /// Rows, one string per column.
    pub rows: Vec<Vec<String>>,
}

impl Csv {
    /// Read `path` (a header line, then rows).
    pub fn read(path: &Path) -> Result<Csv, CompareError> {
        let mut r = csv::ReaderBuilder::new()
            .flexible(false)
            .from_path(path)
            .map_err(|e| bad(path, format!("cannot read: {e}")))?;
        let headers: Vec<String> = r
            .headers()
            .map_err(|e| bad(path, format!("not a CSV table: {e}")))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut rows = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| bad(path, format!("line {}: {e}", i + 2)))?;
            rows.push(rec.iter().map(|v| v.trim().to_string()).collect());
        }
        Ok(Csv {
            path: path.to_path_buf(),
            headers,
            rows,
        })
    }

    /// The index of column `name`, if any.
    pub fn col(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// The index of column `name`, or an error naming the file and the column.
    pub fn need(&self, name: &str) -> Result<usize, CompareError> {
        self.col(name).ok_or_else(|| {
            bad(
                &self.path,
                format!("no column '{name}' (is this an arrakis catalogue or a truth.csv?)"),
            )
        })
    }

    fn num(&self, row: usize, col: usize) -> f64 {
        self.rows[row]
            .get(col)
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    }
}

/// A cell's numbers: one, or a comma-separated list (the catalogue's list columns, e.g. the
/// Stokes I model's coefficients); none for an empty cell; `None` if any is not a number.
fn numbers(cell: &str) -> Option<Vec<f64>> {
    if cell.is_empty() {
        return Some(Vec::new());
    }
    cell.split(',').map(|v| v.trim().parse().ok()).collect()
}

/// One check, as a JUnit test case.
#[derive(Clone, Debug)]
pub struct Check {
    /// Its group (the JUnit class name): `truth.footprint`, `truth.pulls`, `reference.column`...
    pub group: String,
    /// Its name (a component, a column, a statistic).
    pub name: String,
    /// Why it failed; `None`: it passed.
    pub failure: Option<String>,
    /// What was measured (for the summary and the Markdown table).
    pub detail: String,
}

impl Check {
    fn new(group: &str, name: &str, failure: Option<String>, detail: String) -> Check {
        Check {
            group: group.into(),
            name: name.into(),
            failure,
            detail,
        }
    }
}

/// Rows of `a` matched to rows of `b`: by `cat_id` where `a`'s id is in `b`, else each to the
/// nearest row of `b` within `arcsec` that is not taken (and whose nearest in `a` it is).
fn match_rows(a: &Csv, b: &Csv, arcsec: f64) -> Result<Vec<Option<usize>>, CompareError> {
    let (ia, ib) = (a.need("cat_id")?, b.need("cat_id")?);
    let by_id: HashMap<&str, usize> = b
        .rows
        .iter()
        .enumerate()
        .map(|(k, r)| (r[ib].as_str(), k))
        .collect();
    let mut out: Vec<Option<usize>> = a
        .rows
        .iter()
        .map(|r| by_id.get(r[ia].as_str()).copied())
        .collect();
    let mut taken = vec![false; b.rows.len()];
    for k in out.iter().flatten() {
        taken[*k] = true;
    }
    let pos = |t: &Csv| -> Result<Vec<(f64, f64)>, CompareError> {
        let (r, d) = (t.need("ra")?, t.need("dec")?);
        Ok((0..t.rows.len())
            .map(|k| (t.num(k, r), t.num(k, d)))
            .collect())
    };
    if out.iter().all(|m| m.is_some()) {
        return Ok(out);
    }
    let (pa, pb) = (pos(a)?, pos(b)?);
    let sep =
        |x: (f64, f64), y: (f64, f64)| crate::wcs::separation_deg(x.0, x.1, y.0, y.1) * 3600.0;
    let nearest = |p: (f64, f64), among: &[(f64, f64)], skip: &dyn Fn(usize) -> bool| {
        among
            .iter()
            .enumerate()
            .filter(|(k, _)| !skip(*k))
            .map(|(k, q)| (k, sep(p, *q)))
            .filter(|(_, s)| s.is_finite())
            .min_by(|x, y| x.1.total_cmp(&y.1))
    };
    let unmatched_a: Vec<usize> = (0..a.rows.len()).filter(|&k| out[k].is_none()).collect();
    for &i in &unmatched_a {
        let Some((j, s)) = nearest(pa[i], &pb, &|k| taken[k]) else {
            continue;
        };
        if s > arcsec {
            continue;
        }
        // Mutual: `i` is the nearest unmatched row of `a` to `j`.
        let back = nearest(pb[j], &pa, &|k| out[k].is_some());
        if back.map(|(k, _)| k) == Some(i) {
            out[i] = Some(j);
            taken[j] = true;
        }
    }
    Ok(out)
}

/// Limits of the check against a simulation's truth.
#[derive(Clone, Debug)]
pub struct TruthOptions {
    /// Only components at least this polarised signal-to-noise (`snr_polint`) are pulled.
    pub snr_min: f64,
    /// The largest |pull| a component may have.
    pub max_pull: f64,
    /// The robust spread (1.4826 × MAD) of the pulls must lie in this range.
    pub spread: (f64, f64),
    /// Fewer components than this to pull is a failure (the check would say nothing).
    pub min_pulled: usize,
    /// Systematic floor added in quadrature to `rm_err` (rad/m²).
    pub rm_floor: f64,
    /// Systematic floor added in quadrature to `fracpol_err`, as a fraction of the true one.
    pub fracpol_floor: f64,
    /// Position tolerance for rows whose `cat_id` does not match (arcsec).
    pub match_arcsec: f64,
    /// The field's beams (centre list) and radius (deg): the footprint; `None`: every truth
    /// component is in it.
    pub footprint: Option<(Vec<(f64, f64)>, f64)>,
    /// At least this fraction of the Faraday-complex truth components above `snr_min` must be
    /// flagged `complex_flag` (0: reported only).
    pub min_complex_flagged: f64,
}

impl Default for TruthOptions {
    fn default() -> TruthOptions {
        TruthOptions {
            snr_min: 10.0,
            max_pull: 5.0,
            spread: (0.25, 2.5),
            min_pulled: 5,
            rm_floor: 0.05,
            fracpol_floor: 0.0,
            match_arcsec: 3.0,
            footprint: None,
            min_complex_flagged: 0.0,
        }
    }
}

/// 1.4826 × the median absolute deviation from the median (the standard deviation of a
/// Gaussian, unmoved by a few outliers).
fn robust_spread(v: &[f64]) -> f64 {
    let med = |mut x: Vec<f64>| -> f64 {
        x.sort_by(f64::total_cmp);
        let n = x.len();
        if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            x[n / 2]
        } else {
            0.5 * (x[n / 2 - 1] + x[n / 2])
        }
    };
    let m = med(v.to_vec());
    1.4826 * med(v.iter().map(|x| (x - m).abs()).collect())
}

/// At most `n` items, then "and K more".
fn listed(items: &[String], n: usize) -> String {
    let mut s = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > n {
        let _ = write!(s, " and {} more", items.len() - n);
    }
    s
}

/// The checks of `cat` against a simulation's `truth`.
pub fn against_truth(cat: &Csv, truth: &Csv, o: &TruthOptions) -> Result<Vec<Check>, CompareError> {
    let t_id = truth.need("cat_id")?;
    let (t_ra, t_dec) = (truth.need("ra")?, truth.need("dec")?);
    let (t_rm, t_p, t_p2) = (
        truth.need("rm")?,
        truth.need("fracpol")?,
        truth.need("fracpol2")?,
    );
    let t_ion = truth.col("rm_ion");
    let need = |n: &str| cat.need(n);
    let (c_id, c_rm, c_rm_err) = (need("cat_id")?, need("rm")?, need("rm_err")?);
    let (c_p, c_p_err, c_snr) = (need("fracpol")?, need("fracpol_err")?, need("snr_polint")?);
    let c_complex = cat.col("complex_flag");
    // Rows a quality flag marks (SNR, Stokes I fit, channels, leakage, RM synthesis) are not
    // detections: not pulled, counted.
    let quality: Vec<usize> = crate::stages::catalogue::DETECTION_FLAGS
        .iter()
        .filter_map(|f| cat.col(f))
        .collect();
    let mut flagged = 0usize;
    // The catalogue says whether its RMs were corrected for the ionosphere.
    let c_ion = cat.col("ionosphere");
    let matched = match_rows(truth, cat, o.match_arcsec)?;
    let mut checks = Vec::new();

    // The footprint: every component the beams cover is measured.
    let inside = |k: usize| match &o.footprint {
        None => true,
        Some((beams, radius)) => {
            let (ra, dec) = (truth.num(k, t_ra), truth.num(k, t_dec));
            beams
                .iter()
                .any(|b| crate::wcs::separation_deg(ra, dec, b.0, b.1) <= *radius)
        }
    };
    let footprint: Vec<usize> = (0..truth.rows.len()).filter(|&k| inside(k)).collect();
    let missing: Vec<String> = footprint
        .iter()
        .filter(|&&k| match matched[k] {
            Some(j) => !cat.num(j, c_rm).is_finite(),
            None => true,
        })
        .map(|&k| truth.rows[k][t_id].clone())
        .collect();
    checks.push(Check::new(
        "truth.footprint",
        "every component in the footprint measured",
        (!missing.is_empty()).then(|| {
            format!(
                "{} of {} components inside the footprint have no measured RM: {}",
                missing.len(),
                footprint.len(),
                listed(&missing, 20)
            )
        }),
        format!(
            "{} of {} measured",
            footprint.len() - missing.len(),
            footprint.len()
        ),
    ));
    let mut used = vec![false; cat.rows.len()];
    for j in matched.iter().flatten() {
        used[*j] = true;
    }
    let spurious: Vec<String> = (0..cat.rows.len())
        .filter(|&j| !used[j])
        .map(|j| cat.rows[j][c_id].clone())
        .collect();
    checks.push(Check::new(
        "truth.footprint",
        "no component that is not in the truth",
        (!spurious.is_empty()).then(|| {
            format!(
                "{} catalogue rows match no simulated component (by cat_id or within {}\"): {}",
                spurious.len(),
                o.match_arcsec,
                listed(&spurious, 20)
            )
        }),
        format!("{} rows, {} unmatched", cat.rows.len(), spurious.len()),
    ));

    // Pulls of the Faraday-simple components above the SNR cut.
    let (mut rm_pulls, mut p_pulls) = (Vec::new(), Vec::new());
    let (mut complex, mut complex_flagged) = (0usize, 0usize);
    for (k, j) in matched.iter().enumerate() {
        let Some(j) = *j else { continue };
        let snr = cat.num(j, c_snr);
        let (p_true, p2) = (truth.num(k, t_p), truth.num(k, t_p2));
        // NaN SNRs and fractions are not pulled.
        if snr.is_nan() || snr < o.snr_min || p_true.is_nan() || p_true <= 0.0 {
            continue;
        }
        let id = &truth.rows[k][t_id];
        if quality.iter().any(|&c| cat.rows[j][c] == "true") {
            flagged += 1;
            continue;
        }
        if p2 > 0.0 {
            complex += 1;
            if c_complex.is_some_and(|c| cat.rows[j][c] == "true") {
                complex_flagged += 1;
            }
            continue;
        }
        let corrected = c_ion.is_none_or(|c| {
            let v = cat.rows[j][c].to_ascii_lowercase();
            !(v.is_empty() || v == "none" || v == "false")
        });
        let rm_ion = match (corrected, t_ion) {
            (false, Some(c)) => truth.num(k, c),
            _ => 0.0,
        };
        let rm_true = truth.num(k, t_rm) + rm_ion;
        let (rm, rm_err) = (cat.num(j, c_rm), cat.num(j, c_rm_err));
        let (p, p_err) = (cat.num(j, c_p), cat.num(j, c_p_err));
        let rm_pull = (rm - rm_true) / rm_err.hypot(o.rm_floor);
        let p_pull = (p - p_true) / p_err.hypot(o.fracpol_floor * p_true);
        let mut why = Vec::new();
        // A NaN pull (no error, no value) fails.
        let within = |pull: f64| pull.abs() <= o.max_pull;
        if !within(rm_pull) {
            why.push(format!(
                "RM {rm:.3} ± {rm_err:.3} rad/m², simulated {rm_true:.3}: pull {rm_pull:.1}"
            ));
        }
        if !within(p_pull) {
            why.push(format!(
                "fracpol {p:.4} ± {p_err:.4}, simulated {p_true:.4}: pull {p_pull:.1}"
            ));
        }
        let failure = (!why.is_empty())
            .then(|| format!("{id}: {} (limit |pull| ≤ {})", why.join("; "), o.max_pull));
        checks.push(Check::new(
            "truth.pulls",
            id,
            failure,
            format!("SNR {snr:.1}: RM pull {rm_pull:+.2}, fracpol pull {p_pull:+.2}"),
        ));
        rm_pulls.push(rm_pull);
        p_pulls.push(p_pull);
    }
    for (what, pulls) in [("RM", &rm_pulls), ("fracpol", &p_pulls)] {
        let s = robust_spread(pulls);
        let failure = if pulls.len() < o.min_pulled {
            Some(format!(
                "only {} Faraday-simple, unflagged components at SNR ≥ {} ({flagged} flagged): fewer than {} cannot judge the errors (lower --snr-min, or simulate more sources)",
                pulls.len(),
                o.snr_min,
                o.min_pulled
            ))
        } else if !(o.spread.0..=o.spread.1).contains(&s) {
            Some(format!(
                "the spread of the {what} pulls is {s:.2} (1.4826 × MAD of {} components): outside [{}, {}], so the reported errors are {}",
                pulls.len(),
                o.spread.0,
                o.spread.1,
                if s > o.spread.1 { "too small" } else { "too large" }
            ))
        } else {
            None
        };
        checks.push(Check::new(
            "truth.errors",
            &format!("{what} pull spread"),
            failure,
            format!(
                "{s:.2} over {} components ({flagged} above the SNR cut carry a quality flag and are not pulled)",
                pulls.len()
            ),
        ));
    }
    let frac = if complex > 0 {
        complex_flagged as f64 / complex as f64
    } else {
        f64::NAN
    };
    checks.push(Check::new(
        "truth.complexity",
        "Faraday-complex components flagged",
        (complex > 0 && frac < o.min_complex_flagged).then(|| {
            format!(
                "{complex_flagged} of {complex} Faraday-complex components at SNR ≥ {} are flagged complex_flag ({:.0} %, at least {:.0} % required)",
                o.snr_min,
                100.0 * frac,
                100.0 * o.min_complex_flagged
            )
        }),
        format!("{complex_flagged} of {complex} flagged"),
    ));
    Ok(checks)
}

/// How far a column may move against the reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// Identical text.
    Exact,
    /// Not compared.
    Ignore,
    /// |new − old| ≤ this.
    Abs(f64),
    /// |new − old| ≤ this × |old|.
    Rel(f64),
    /// |new − old| ≤ this × the row's own error (`COLUMN_err`, the larger of old and new).
    Sigma(f64),
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tolerance::Exact => write!(f, "exact"),
            Tolerance::Ignore => write!(f, "ignored"),
            Tolerance::Abs(v) => write!(f, "±{v}"),
            // In percent without the binary rounding of ×100 (1e-6 is 0.0001 %).
            Tolerance::Rel(v) => write!(f, "±{}%", (v * 1e14).round() / 1e12),
            Tolerance::Sigma(v) => write!(f, "±{v}σ"),
        }
    }
}

/// Read `COLUMN=VALUE` (absolute), `COLUMN=N%`, `COLUMN=Nsigma`, `COLUMN=exact` or
/// `COLUMN=ignore`.
pub fn parse_tolerance(s: &str) -> Result<(String, Tolerance), String> {
    let (col, v) = s
        .split_once('=')
        .ok_or_else(|| format!("--tolerance {s}: write COLUMN=VALUE, COLUMN=N%, COLUMN=Nsigma, COLUMN=exact or COLUMN=ignore"))?;
    let v = v.trim();
    let num = |t: &str| -> Result<f64, String> {
        t.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| format!("--tolerance {s}: '{t}' is not a number ≥ 0"))
    };
    let tol = match v {
        "exact" => Tolerance::Exact,
        "ignore" => Tolerance::Ignore,
        _ if v.ends_with('%') => Tolerance::Rel(num(&v[..v.len() - 1])? / 100.0),
        _ if v.ends_with("sigma") => Tolerance::Sigma(num(&v[..v.len() - 5])?),
        _ => Tolerance::Abs(num(v)?),
    };
    Ok((col.trim().to_string(), tol))
}

/// Options of the check against a reference catalogue.
#[derive(Clone, Debug)]
pub struct ReferenceOptions {
    /// Tolerances given per column.
    pub tolerances: Vec<(String, Tolerance)>,
    /// A measurement with an error column (`X` and `X_err`) may move this many of its errors.
    pub sigma: f64,
    /// Any other number may move by this fraction of itself.
    pub relative: f64,
    /// Position tolerance for rows whose `cat_id` does not match (arcsec).
    pub match_arcsec: f64,
}

impl Default for ReferenceOptions {
    fn default() -> ReferenceOptions {
        ReferenceOptions {
            tolerances: Vec::new(),
            sigma: 0.1,
            relative: 1e-6,
            match_arcsec: 3.0,
        }
    }
}

/// The tolerance of column `name` of `table` by default: text, integers, booleans, ids and
/// flags exact; a measurement with an error column `sigma` of its error; other numbers
/// `relative`. Lists of numbers are numbers, compared element by element.
fn default_tolerance(name: &str, old: &Csv, o: &ReferenceOptions) -> Tolerance {
    let c = old.col(name);
    let numbers = c.is_some_and(|c| {
        old.rows
            .iter()
            .any(|r| numbers(&r[c]).is_some_and(|v| !v.is_empty()))
            && old.rows.iter().all(|r| numbers(&r[c]).is_some())
    });
    let integers = c.is_some_and(|c| old.rows.iter().all(|r| r[c].parse::<i64>().is_ok()));
    if !numbers || integers || name.ends_with("_flag") || name.ends_with("_id") {
        Tolerance::Exact
    } else if old.col(&format!("{name}_err")).is_some() {
        Tolerance::Sigma(o.sigma)
    } else {
        Tolerance::Rel(o.relative)
    }
}

/// The checks of `new` against the reference catalogue `old`: components lost and added, and
/// one check per column.
pub fn against_reference(
    new: &Csv,
    old: &Csv,
    o: &ReferenceOptions,
) -> Result<Vec<Check>, CompareError> {
    for (col, _) in &o.tolerances {
        if old.col(col).is_none() && new.col(col).is_none() {
            return Err(bad(
                Path::new("--tolerance"),
                format!(
                    "no column '{col}' in either catalogue{}",
                    crate::diag::did_you_mean(col, old.headers.iter().map(|h| h.as_str()))
                ),
            ));
        }
    }
    let id = old.need("cat_id")?;
    new.need("cat_id")?;
    let matched = match_rows(old, new, o.match_arcsec)?;
    let mut checks = Vec::new();
    let lost: Vec<String> = (0..old.rows.len())
        .filter(|&k| matched[k].is_none())
        .map(|k| old.rows[k][id].clone())
        .collect();
    checks.push(Check::new(
        "reference.components",
        "no component lost",
        (!lost.is_empty()).then(|| format!("{} lost: {}", lost.len(), listed(&lost, 20))),
        format!(
            "{} of {} found",
            old.rows.len() - lost.len(),
            old.rows.len()
        ),
    ));
    let mut taken = vec![false; new.rows.len()];
    for j in matched.iter().flatten() {
        taken[*j] = true;
    }
    let nid = new.need("cat_id")?;
    let added: Vec<String> = (0..new.rows.len())
        .filter(|&j| !taken[j])
        .map(|j| new.rows[j][nid].clone())
        .collect();
    checks.push(Check::new(
        "reference.components",
        "no component added",
        (!added.is_empty()).then(|| format!("{} added: {}", added.len(), listed(&added, 20))),
        format!("{} rows", new.rows.len()),
    ));
    for name in &old.headers {
        let tol = o
            .tolerances
            .iter()
            .rev()
            .find(|(c, _)| c == name)
            .map(|(_, t)| *t)
            .unwrap_or_else(|| default_tolerance(name, old, o));
        let (Some(co), Some(cn)) = (old.col(name), new.col(name)) else {
            checks.push(Check::new(
                "reference.columns",
                name,
                (tol != Tolerance::Ignore)
                    .then(|| format!("column {name} is not in {}", new.path.display())),
                "lost".into(),
            ));
            continue;
        };
        if tol == Tolerance::Ignore {
            continue;
        }
        let err_cols = (
            old.col(&format!("{name}_err")),
            new.col(&format!("{name}_err")),
        );
        // Rounding: a change below `relative` of the column's largest magnitude is no change
        // (a width that is 0 on one CPU and 7e-15 on another, whose error is 0 as well).
        let floor = o.relative
            * old
                .rows
                .iter()
                .flat_map(|r| numbers(&r[co]).unwrap_or_default())
                .map(f64::abs)
                .filter(|v| v.is_finite())
                .fold(0.0, f64::max);
        let mut moved = Vec::new();
        // One number against its reference, `e` its error (Sigma).
        let within = |x: f64, y: f64, e: f64| match tol {
            _ if x.is_nan() && y.is_nan() => true,
            Tolerance::Exact => x == y,
            Tolerance::Abs(t) => (y - x).abs() <= t,
            Tolerance::Rel(t) => (y - x).abs() <= (t * x.abs()).max(floor),
            Tolerance::Sigma(t) => (y - x).abs() <= (t * e).max(floor),
            Tolerance::Ignore => true,
        };
        for (k, j) in matched.iter().enumerate() {
            let Some(j) = *j else { continue };
            let (a, b) = (&old.rows[k][co], &new.rows[j][cn]);
            if a == b {
                continue;
            }
            // Element by element (a list's errors in the error column's list); text, and lists
            // of another length, have moved.
            let errors = |csv: &Csv, row: usize, col: Option<usize>| {
                col.and_then(|c| numbers(&csv.rows[row][c]))
                    .unwrap_or_default()
            };
            let (eo, en) = (errors(old, k, err_cols.0), errors(new, j, err_cols.1));
            let ok = match (tol, numbers(a), numbers(b)) {
                (Tolerance::Exact, _, _) | (_, None, _) | (_, _, None) => false,
                (_, Some(x), Some(y)) if x.len() != y.len() => false,
                (_, Some(x), Some(y)) => x.iter().zip(&y).enumerate().all(|(i, (&x, &y))| {
                    let e = eo
                        .get(i)
                        .copied()
                        .unwrap_or(f64::NAN)
                        .max(en.get(i).copied().unwrap_or(f64::NAN));
                    within(x, y, e)
                }),
            };
            if !ok {
                moved.push(format!("{}: {a} -> {b}", old.rows[k][id]));
            }
        }
        checks.push(Check::new(
            "reference.columns",
            name,
            (!moved.is_empty()).then(|| {
                format!(
                    "{name} moved beyond {tol} in {} component(s): {}",
                    moved.len(),
                    listed(&moved, 20)
                )
            }),
            if moved.is_empty() {
                format!("within {tol}")
            } else {
                format!("{} moved beyond {tol}", moved.len())
            },
        ));
    }
    for name in new.headers.iter().filter(|h| old.col(h).is_none()) {
        checks.push(Check::new(
            "reference.columns",
            name,
            None,
            format!("new column (not in {})", old.path.display()),
        ));
    }
    Ok(checks)
}

/// The checks as a JUnit XML report: one test suite `suite`, one test case per check (class
/// name its group), a `<failure>` for each failed one.
pub fn junit(suite: &str, checks: &[Check], seconds: f64) -> String {
    let failures = checks.iter().filter(|c| c.failure.is_some()).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"arrakis compare\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{seconds:.3}\">",
        checks.len()
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{seconds:.3}\">",
        xml_escape(suite),
        checks.len()
    );
    for c in checks {
        let _ = write!(
            x,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"0\"",
            xml_escape(&c.group),
            xml_escape(&c.name)
        );
        match &c.failure {
            None => {
                let _ = writeln!(
                    x,
                    ">\n      <system-out>{}</system-out>\n    </testcase>",
                    xml_escape(&c.detail)
                );
            }
            Some(f) => {
                let _ = writeln!(
                    x,
                    ">\n      <failure message=\"{}\" type=\"regression\">{}</failure>\n    </testcase>",
                    xml_escape(f),
                    xml_escape(f)
                );
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// The checks as a Markdown table for a merge-request comment: a headline, then the failed
/// checks first.
pub fn markdown(title: &str, checks: &[Check]) -> String {
    let failed: Vec<&Check> = checks.iter().filter(|c| c.failure.is_some()).collect();
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut m = format!(
        "### {title}: {}\n\n{} checks, {} failed.\n\n| | check | result |\n|---|---|---|\n",
        if failed.is_empty() {
            "passed"
        } else {
            "REGRESSION"
        },
        checks.len(),
        failed.len()
    );
    for c in failed
        .iter()
        .copied()
        .chain(checks.iter().filter(|c| c.failure.is_none()))
    {
        let (mark, text) = match &c.failure {
            Some(f) => ("❌", f.as_str()),
            None => ("✅", c.detail.as_str()),
        };
        let _ = writeln!(
            m,
            "| {mark} | {} / {} | {} |",
            cell(&c.group),
            cell(&c.name),
            cell(text)
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(path: &str, text: &str) -> Csv {
        let mut r = csv::Reader::from_reader(text.as_bytes());
        Csv {
            path: path.into(),
            headers: r.headers().unwrap().iter().map(String::from).collect(),
            rows: r
                .records()
                .map(|r| r.unwrap().iter().map(String::from).collect())
                .collect(),
        }
    }

    fn failed_names(checks: &[Check]) -> Vec<&str> {
        checks
            .iter()
            .filter(|c| c.failure.is_some())
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn tolerances_parse_and_refuse_nonsense() {
        assert_eq!(parse_tolerance("rm=0.5").unwrap().1, Tolerance::Abs(0.5));
        assert_eq!(parse_tolerance("rm=2%").unwrap().1, Tolerance::Rel(0.02));
        assert_eq!(
            parse_tolerance("rm=3sigma").unwrap().1,
            Tolerance::Sigma(3.0)
        );
        assert_eq!(parse_tolerance("x=exact").unwrap().1, Tolerance::Exact);
        assert_eq!(parse_tolerance("x=ignore").unwrap().1, Tolerance::Ignore);
        assert!(parse_tolerance("rm").is_err());
        assert!(parse_tolerance("rm=-1").is_err());
        assert!(parse_tolerance("rm=lots").is_err());
    }

    #[test]
    fn reference_defaults_exact_for_ids_and_flags_sigma_for_measurements() {
        let old = csv(
            "old.csv",
            "cat_id,ra,dec,rm,rm_err,snr_flag,Nchan,reffreq\nA,10,0,5.0,1.0,false,288,8.87e8\nB,11,0,7.0,1.0,true,288,8.87e8\n",
        );
        // A moves 0.05σ in rm (inside 0.1σ); B's flag flips; reffreq moves 1e-3 relative.
        let new = csv(
            "new.csv",
            "cat_id,ra,dec,rm,rm_err,snr_flag,Nchan,reffreq\nA,10,0,5.05,1.0,false,288,8.87e8\nB,11,0,7.0,1.0,false,288,8.879e8\n",
        );
        let checks = against_reference(&new, &old, &ReferenceOptions::default()).unwrap();
        let failed = failed_names(&checks);
        assert_eq!(failed, ["snr_flag", "reffreq"]);
        let flag = checks.iter().find(|c| c.name == "snr_flag").unwrap();
        assert!(flag.failure.as_ref().unwrap().contains("B: true -> false"));
        // An RM moved by 10σ, and a lost component.
        let new = csv(
            "new.csv",
            "cat_id,ra,dec,rm,rm_err,snr_flag,Nchan,reffreq\nA,10,0,15.0,1.0,false,288,8.87e8\n",
        );
        let checks = against_reference(&new, &old, &ReferenceOptions::default()).unwrap();
        let f = |n: &str| checks.iter().find(|c| c.name == n).unwrap().failure.clone();
        assert!(f("rm").unwrap().contains("A: 5.0 -> 15.0"));
        assert!(f("no component lost").unwrap().contains("B"));
        // Renamed ids match by position.
        let new = csv(
            "new.csv",
            "cat_id,ra,dec,rm,rm_err,snr_flag,Nchan,reffreq\nA2,10.00001,0,5.0,1.0,false,288,8.87e8\nB,11,0,7.0,1.0,true,288,8.87e8\n",
        );
        let mut o = ReferenceOptions::default();
        o.tolerances.push(("cat_id".into(), Tolerance::Ignore));
        o.tolerances.push(("ra".into(), Tolerance::Abs(1e-3)));
        let checks = against_reference(&new, &old, &o).unwrap();
        assert!(checks.iter().all(|c| c.failure.is_none()), "{checks:?}");
    }

    #[test]
    fn lists_of_numbers_compare_element_by_element() {
        // The Stokes I model's coefficients and their errors: lists in one cell each.
        let head = "cat_id,ra,dec,coef,coef_err,fit_err,names\n";
        let old = csv(
            "old.csv",
            &format!("{head}A,10,0,\"0.0,8.86489,0.3292\",\"0.1,0.2,0.01\",\"0.0,2.0551652e-4\",\"a,b\"\n"),
        );
        // Rounding in the last digits (4e-7 relative), 0.05σ in the coefficients: no change.
        let new = csv(
            "new.csv",
            &format!("{head}A,10,0,\"0.0,8.87489,0.3292\",\"0.1,0.2,0.01\",\"0.0,2.0551661e-4\",\"a,b\"\n"),
        );
        let checks = against_reference(&new, &old, &ReferenceOptions::default()).unwrap();
        assert!(checks.iter().all(|c| c.failure.is_none()), "{checks:?}");
        // A coefficient moved by 1σ, an error by 1e-3, a list grown, a name changed.
        let new = csv(
            "new.csv",
            &format!("{head}A,10,0,\"0.0,8.86489,0.3392\",\"0.1,0.2,0.01\",\"0.0,2.0572e-4,1.0\",\"a,c\"\n"),
        );
        let checks = against_reference(&new, &old, &ReferenceOptions::default()).unwrap();
        assert_eq!(failed_names(&checks), ["coef", "fit_err", "names"]);
        let f = |n: &str| checks.iter().find(|c| c.name == n).unwrap().failure.clone();
        assert!(f("coef")
            .unwrap()
            .contains("A: 0.0,8.86489,0.3292 -> 0.0,8.86489,0.3392"));
    }

    #[test]
    fn rounding_of_a_zero_is_no_change_but_a_real_move_is() {
        // A Faraday width 0 with error 0 on one CPU comes out 7e-15 on another: rounding, below
        // 1e-6 of the column's largest value. 1e-3 is a change.
        let old = csv(
            "old.csv",
            "cat_id,ra,dec,rm_width,rm_width_err,snr\nA,10,0,0,0,0\nB,11,0,4.9,0.1,12.5\n",
        );
        let new = csv(
            "new.csv",
            "cat_id,ra,dec,rm_width,rm_width_err,snr\nA,10,0,7.1e-15,0,1e-14\nB,11,0,4.9,0.1,12.5\n",
        );
        let checks = against_reference(&new, &old, &ReferenceOptions::default()).unwrap();
        assert!(checks.iter().all(|c| c.failure.is_none()), "{checks:?}");
        let new = csv(
            "new.csv",
            "cat_id,ra,dec,rm_width,rm_width_err,snr\nA,10,0,1e-3,0,1e-3\nB,11,0,4.9,0.1,12.5\n",
        );
        let checks = against_reference(&new, &old, &ReferenceOptions::default()).unwrap();
        let failed = failed_names(&checks);
        assert_eq!(failed, ["rm_width", "snr"]);
    }

    #[test]
    fn robust_spread_is_the_gaussian_sigma_and_ignores_an_outlier() {
        let v: Vec<f64> = (0..1001)
            .map(|i| {
                // Gaussian quantiles: the spread of a unit normal.
                let p = (i as f64 + 0.5) / 1001.0;
                statrs_like_probit(p)
            })
            .chain([1000.0])
            .collect();
        assert!(
            (robust_spread(&v) - 1.0).abs() < 0.02,
            "{}",
            robust_spread(&v)
        );
    }

    /// The inverse of the normal CDF by bisection on erf (enough for a test).
    fn statrs_like_probit(p: f64) -> f64 {
        let (mut lo, mut hi) = (-10.0f64, 10.0f64);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            let cdf = 0.5 * (1.0 + libm_erf(mid / std::f64::consts::SQRT_2));
            if cdf < p {
                lo = mid
            } else {
                hi = mid
            }
        }
        0.5 * (lo + hi)
    }

    fn libm_erf(x: f64) -> f64 {
        // Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
        let t = 1.0 / (1.0 + 0.3275911 * x.abs());
        let y = 1.0
            - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
                + 0.254829592)
                * t
                * (-x * x).exp();
        y.copysign(x)
    }

    #[test]
    fn junit_is_xml_a_reader_parses_with_each_failure() {
        let checks = vec![
            Check::new("g", "ok & fine", None, "all <good>".into()),
            Check::new("g", "bad", Some("rm \"moved\" 10σ".into()), String::new()),
        ];
        let x = junit("suite", &checks, 1.5);
        let doc = roxmltree::Document::parse(&x).unwrap();
        let cases: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].attribute("name"), Some("ok & fine"));
        let f = cases[1]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(f.attribute("message"), Some("rm \"moved\" 10σ"));
        let suite = doc
            .descendants()
            .find(|n| n.has_tag_name("testsuite"))
            .unwrap();
        assert_eq!(suite.attribute("failures"), Some("1"));
    }
}
