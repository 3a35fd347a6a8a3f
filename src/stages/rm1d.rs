//! One spectrum through RM synthesis and RM-CLEAN: the text format RM-Tools users know
//! (columns freq_Hz, I, Q, U, dI, dQ, dU; or freq_Hz, Q, U, dQ, dU without Stokes I), and the
//! JSON summaries with RM-Tools' key names. `arrakis rmsynth1d/rmclean1d` here and the pipeline's
//! rmsynth and rmclean stages run the same kernels (`science::rm_synthesis`, `science::rm_clean`).

use std::path::Path;

use super::StageError;
use crate::science::rm_clean::{run_rmclean, CleanParams, CleanSummary};
use crate::science::rm_synthesis::{run_rmsynth, Spectrum, SynthArrays, SynthParams, SynthSummary};

/// A spectrum read from a text file.
#[derive(Clone, Debug, Default)]
pub struct SpectrumData {
    /// Frequencies, Hz.
    pub freq_hz: Vec<f64>,
    /// Stokes I (absent for 5-column files).
    pub i: Option<Vec<f64>>,
    /// Stokes Q.
    pub q: Vec<f64>,
    /// Stokes U.
    pub u: Vec<f64>,
    /// Errors of I.
    pub di: Option<Vec<f64>>,
    /// Errors of Q.
    pub dq: Vec<f64>,
    /// Errors of U.
    pub du: Vec<f64>,
}

impl SpectrumData {
    /// Borrow as a kernel input.
    pub fn spectrum(&self) -> Spectrum<'_> {
        Spectrum {
            freq_hz: &self.freq_hz,
            i: self.i.as_deref(),
            q: &self.q,
            u: &self.u,
            di: self.di.as_deref(),
            dq: &self.dq,
            du: &self.du,
        }
    }
}

/// Read a spectrum: whitespace- or comma-separated columns, `#` comments. 7 columns
/// (freq_Hz I Q U dI dQ dU) or 5 (freq_Hz Q U dQ dU). `nan` is accepted for flagged channels.
pub fn read_spectrum(path: &Path) -> Result<SpectrumData, StageError> {
    let text = crate::hash::read_regular_string(path).map_err(|e| {
        StageError::file(
            path,
            None,
            format!("cannot read the spectrum file (freq_Hz I Q U dI dQ dU per line): {e}"),
        )
    })?;
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let cols: Result<Vec<f64>, _> = line
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<f64>())
            .collect();
        let at = |message: String| StageError::file(path, Some(n + 1), message);
        let cols = cols.map_err(|e| at(format!("not a number ({e}): '{line}'")))?;
        if cols.len() != 7 && cols.len() != 5 {
            return Err(at(format!(
                "{} columns; expected 7 (freq_Hz I Q U dI dQ dU) or 5 (freq_Hz Q U dQ dU)",
                cols.len()
            )));
        }
        if let Some(first) = rows.first() {
            if first.len() != cols.len() {
                return Err(at(format!(
                    "{} columns, but the first row has {}",
                    cols.len(),
                    first.len()
                )));
            }
        }
        rows.push(cols);
    }
    if rows.len() < 3 {
        return Err(StageError::file(
            path,
            None,
            format!("needs at least 3 channels, found {}", rows.len()),
        ));
    }
    let col = |k: usize| rows.iter().map(|r| r[k]).collect::<Vec<f64>>();
    let d = if rows[0].len() == 7 {
        SpectrumData {
            freq_hz: col(0),
            i: Some(col(1)),
            q: col(2),
            u: col(3),
            di: Some(col(4)),
            dq: col(5),
            du: col(6),
        }
    } else {
        SpectrumData {
            freq_hz: col(0),
            i: None,
            q: col(1),
            u: col(2),
            di: None,
            dq: col(3),
            du: col(4),
        }
    };
    if d.freq_hz.windows(2).any(|w| w[1] <= w[0]) {
        return Err(StageError::file(
            path,
            None,
            "frequencies must be strictly ascending (column 1)",
        ));
    }
    Ok(d)
}

/// RM synthesis of one spectrum.
pub fn synth(data: &SpectrumData, p: &SynthParams) -> (SynthSummary, SynthArrays) {
    run_rmsynth(&data.spectrum(), p)
}

/// Synthesis then CLEAN of one spectrum.
pub fn synth_and_clean(
    data: &SpectrumData,
    p: &SynthParams,
    c: &CleanParams,
) -> (SynthSummary, CleanSummary) {
    let (s, a) = run_rmsynth(&data.spectrum(), p);
    let (cs, _) = run_rmclean(&s, &a, c);
    (s, cs)
}
