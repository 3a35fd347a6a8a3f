//! `arrakis compare`: the command around `crate::compare`: read the files, run the checks,
//! print the summary, write the JUnit and Markdown files, choose the exit code.

use anyhow::{anyhow, Context, Result};

use super::EXIT_FAILED;
use crate::cli::CompareArgs;
use crate::compare::{self, Check, Csv, ReferenceOptions, TruthOptions};

/// `arrakis compare`.
pub fn compare(a: &CompareArgs) -> Result<i32> {
    let t0 = std::time::Instant::now();
    // Bad input is an `Err`: `main` prints it and exits 2, as for every command.
    let cat = Csv::read(&a.catalogue)?;
    let (title, checks) = match (&a.truth, &a.reference) {
        (Some(truth), _) => {
            let truth = Csv::read(truth)?;
            let yaml = a.field_yaml.clone().or_else(|| {
                let beside = a.catalogue.parent()?.join("field.yaml");
                beside.is_file().then_some(beside)
            });
            let footprint = match yaml {
                Some(y) => {
                    let f = crate::field_file::FieldFile::read(&y)?;
                    let beams = f.beams.iter().map(|b| (b.ra_deg, b.dec_deg)).collect();
                    Some((beams, a.beam_radius_deg))
                }
                None => None,
            };
            let o = TruthOptions {
                snr_min: a.snr_min,
                max_pull: a.max_pull,
                spread: (a.spread_min, a.spread_max),
                min_pulled: a.min_pulled,
                rm_floor: a.rm_floor,
                fracpol_floor: a.fracpol_floor,
                match_arcsec: a.match_arcsec,
                footprint,
                min_complex_flagged: a.min_complex_flagged,
            };
            (
                format!(
                    "{} against the truth {}",
                    a.catalogue.display(),
                    truth.path.display()
                ),
                compare::against_truth(&cat, &truth, &o),
            )
        }
        (None, Some(reference)) => {
            let old = Csv::read(reference)?;
            let tolerances = a
                .tolerance
                .iter()
                .map(|t| compare::parse_tolerance(t).map_err(anyhow::Error::msg))
                .collect::<Result<Vec<_>>>()?;
            let o = ReferenceOptions {
                tolerances,
                sigma: a.sigma,
                relative: a.relative,
                match_arcsec: a.match_arcsec,
            };
            (
                format!("{} against {}", a.catalogue.display(), old.path.display()),
                compare::against_reference(&cat, &old, &o),
            )
        }
        (None, None) => return Err(anyhow!("give --truth TRUTH.csv or --reference OLD.csv")),
    };
    let checks = checks?;
    let seconds = t0.elapsed().as_secs_f64();
    if let Some(path) = &a.junit {
        let suite = if a.truth.is_some() {
            "truth"
        } else {
            "reference"
        };
        crate::atomic::write_atomic(path, compare::junit(suite, &checks, seconds).as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &a.markdown {
        crate::atomic::write_atomic(path, compare::markdown(&title, &checks).as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    print_summary(&title, &checks);
    Ok(if checks.iter().any(|c| c.failure.is_some()) {
        EXIT_FAILED
    } else {
        0
    })
}

/// The failures in full, the rest counted per group, and the verdict.
fn print_summary(title: &str, checks: &[Check]) {
    let mut groups: Vec<(&str, usize, usize)> = Vec::new();
    for c in checks {
        let failed = usize::from(c.failure.is_some());
        match groups.iter_mut().find(|g| g.0 == c.group) {
            Some(g) => {
                g.1 += 1;
                g.2 += failed;
            }
            None => groups.push((&c.group, 1, failed)),
        }
    }
    println!("{title}");
    for (g, n, f) in &groups {
        // Per-component and per-column checks are many: their summary line, and the aggregate
        // checks by name.
        let one: Vec<&Check> = checks.iter().filter(|c| c.group == *g).collect();
        if *n <= 3 {
            for c in one {
                println!(
                    "  {} {g}: {}: {}",
                    if c.failure.is_some() { "FAIL" } else { "ok  " },
                    c.name,
                    c.failure.as_deref().unwrap_or(&c.detail)
                );
            }
        } else {
            println!(
                "  {} {g}: {} of {n} checks passed",
                if *f > 0 { "FAIL" } else { "ok  " },
                n - f
            );
            for c in one.iter().filter(|c| c.failure.is_some()).take(20) {
                println!("       {}", c.failure.as_deref().unwrap_or(""));
            }
            if *f > 20 {
                println!("       ... and {} more (see --junit / --markdown)", f - 20);
            }
        }
    }
    let failed: usize = groups.iter().map(|g| g.2).sum();
    println!(
        "arrakis compare: {}: {} checks, {failed} failed",
        if failed == 0 { "passed" } else { "REGRESSION" },
        checks.len()
    );
}
