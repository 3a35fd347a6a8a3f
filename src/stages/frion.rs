//! `frion` (per island): ionospheric Faraday-rotation correction of the island's Q and U mosaics
//! as FRion does it. θ(ν) comes from an RM_ion time series (two columns: time in seconds, RM_ion
//! in rad/m²) integrated over the observation, or straight from a FRion prediction file (three
//! columns: frequency in Hz, Re θ, Im θ, as `frion_predict` writes it). Writes the prediction
//! (`{source}_ion.txt`, FRion's format) and Q/U divided by θ channel by channel.
//!
//! Must never: guess an ionosphere. A missing or malformed file is an error naming it.

use std::path::Path;

use super::io::{out_path, single, stokes_input, write_text};
use super::params::{FRION_PREDICT, IONEX_PREFIX, ION_END, ION_PREDICT, ION_START, ION_TIMESTEP};
use super::{ActionCtx, Builtin, StageError};
use crate::fits::Cube;
use crate::rules::{Contract, SlotSpec};
use crate::science::frion::{correct_qu, modulation, numeric_warnings};
use crate::wcs::Wcs;

static CONTRACT: Contract = Contract {
    name: "frion",
    version: 1,
    params: &[
        &ION_PREDICT,
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
            "the IONEX files frion_predict reads (with ion_predict)",
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
    let text = std::fs::read_to_string(path).map_err(|e| {
        StageError::file(
            path,
            None,
            format!("cannot read the ionosphere file: {e}. Provide an RM_ion time series (columns: time [s], RM_ion [rad/m^2]) or a FRion prediction (columns: frequency [Hz], Re theta, Im theta; `frion_predict` writes one), or set ion: false to skip the correction"),
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
        return Err(StageError::data("ion_predict is on but ion_start or ion_end is not set: give the observation's start and end (e.g. --set ion_start=2021-01-01T10:00:00 --set ion_end=2021-01-01T10:15:00)"));
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
                "cannot run FRion's {program} ({e}): install FRion with RMextract (pip install frion RMextract) and put the IONEX files in {}/IONEXdata, or set ion_predict: false and give an RM_ion time series or FRion prediction file as ion_file",
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
        let predict = ctx.bool(&ION_PREDICT)?;
        let predicted;
        let ion_path = if predict {
            predicted = run_frion_predict(ctx, qp)?;
            predicted.as_path()
        } else {
            single(ctx, "ionosphere")?.as_path()
        };
        let ion = read_ionosphere(ion_path);
        if predict {
            let _ = std::fs::remove_file(ion_path);
        }
        let ion = ion?;
        let mut q = Cube::read(qp)?;
        let mut u = Cube::read(up)?;
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
        let (theta, warnings) = theta_for(&ion, &freqs, ion_path)?;

        let mut text = String::new();
        for w in &warnings {
            text.push_str(&format!("# warning: {w}\n"));
        }
        for (f, (re, im)) in freqs.iter().zip(&theta) {
            text.push_str(&format!(
                "{} {} {}\n",
                fmt_e18(*f),
                fmt_e18(*re),
                fmt_e18(*im)
            ));
        }
        write_text(out_path(ctx, "prediction")?, &text)?;

        let plane = q.nx * q.ny;
        correct_qu(&mut q.data, &mut u.data, plane, &theta);
        for (cube, name) in [(&mut q, "q"), (&mut u, "u")] {
            cube.header.history(
                "Corrected for ionospheric Faraday rotation (arrakis frion: P / theta, as FRion).",
            );
            for w in &warnings {
                cube.header.history(&format!("frion warning: {w}"));
            }
            cube.write(out_path(ctx, name)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn savetxt_format() {
        assert_eq!(fmt_e18(743.5e6), "7.435000000000000000e+08");
        assert_eq!(fmt_e18(-0.00125), "-1.250000000000000026e-03");
        assert_eq!(fmt_e18(0.0), "0.000000000000000000e+00");
        assert_eq!(fmt_e18(1e-100), "1.000000000000000020e-100");
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
        assert!(e.contains("ion: false"), "{e}");
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
