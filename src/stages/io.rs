//! What the stages share: the component catalogue reader, channel weight files, the action
//! context's inputs and outputs by slot, and NPY/JSON writers.
//!
//! Must never: write anywhere but the paths it is given.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use serde_json::Value;

use super::ActionCtx;

/// A component as the catalogue gives it.
#[derive(Clone, Debug)]
pub struct Component {
    /// `Gaussian_ID`.
    pub id: String,
    /// `Source_ID`.
    pub island: String,
    /// Position, degrees.
    pub ra: f64,
    /// Position, degrees.
    pub dec: f64,
    /// Major axis, arcsec.
    pub maj_arcsec: f64,
    /// Every column, by name (for the catalogue).
    pub columns: HashMap<String, String>,
}

/// Read `components.csv` (RACS column names; `Maj` in arcsec, 0 when absent).
pub fn read_components(path: &Path) -> Result<Vec<Component>, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_path(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .iter()
        .map(|s| s.to_string())
        .collect();
    let col = |n: &str| {
        headers
            .iter()
            .position(|h| h == n)
            .ok_or_else(|| format!("{}:1: missing column '{n}'", path.display()))
    };
    let (gi, si, ri, di) = (
        col("Gaussian_ID")?,
        col("Source_ID")?,
        col("RA")?,
        col("Dec")?,
    );
    let mi = headers.iter().position(|h| h == "Maj");
    let mut out = Vec::new();
    for (line, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| format!("{}:{}: {e}", path.display(), line + 2))?;
        let num = |i: usize| -> Result<f64, String> {
            rec.get(i).unwrap_or("").parse::<f64>().map_err(|_| {
                format!(
                    "{}:{}: column '{}' is not a number",
                    path.display(),
                    line + 2,
                    headers[i]
                )
            })
        };
        out.push(Component {
            id: rec.get(gi).unwrap_or("").to_string(),
            island: rec.get(si).unwrap_or("").to_string(),
            ra: num(ri)?,
            dec: num(di)?,
            maj_arcsec: mi.map(num).transpose()?.unwrap_or(0.0),
            columns: headers
                .iter()
                .cloned()
                .zip(rec.iter().map(|s| s.to_string()))
                .collect(),
        });
    }
    Ok(out)
}

/// The one file of input slot `slot` (an error naming the target if there is none).
pub fn single<'a>(ctx: &'a ActionCtx, slot: &str) -> Result<&'a PathBuf, String> {
    ctx.input(slot)
        .first()
        .ok_or_else(|| format!("{}: input '{slot}' is missing", ctx.target))
}

/// Per-channel weights from an Arrakis weights text file (`channel weight` rows).
pub fn read_weights(path: &Path, nchan: usize) -> Result<Vec<f64>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = vec![0.0; nchan];
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(c), Some(v)) = (it.next(), it.next()) else {
            return Err(format!(
                "{}:{}: expected 'channel weight'",
                path.display(),
                n + 1
            ));
        };
        let c: usize = c
            .parse()
            .map_err(|_| format!("{}:{}: bad channel '{c}'", path.display(), n + 1))?;
        let v: f64 = v
            .parse()
            .map_err(|_| format!("{}:{}: bad weight '{v}'", path.display(), n + 1))?;
        if c >= nchan {
            return Err(format!(
                "{}:{}: channel {c} but the cube has {nchan}",
                path.display(),
                n + 1
            ));
        }
        w[c] = v;
    }
    Ok(w)
}

/// The temporary path of output `name`.
pub fn out_path<'a>(ctx: &'a ActionCtx, name: &str) -> Result<&'a PathBuf, String> {
    ctx.outputs
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, p, _)| p)
        .ok_or_else(|| format!("{}: no output '{name}'", ctx.target))
}

/// Write rows of equal length as a 2-D float64 NPY array.
pub fn write_npy(path: &Path, rows: &[&[f64]]) -> Result<(), String> {
    let n = rows.first().map(|r| r.len()).unwrap_or(0);
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    let a = Array2::from_shape_vec((rows.len(), n), flat).map_err(|e| e.to_string())?;
    let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    ndarray_npy::WriteNpyExt::write_npy(&a, std::io::BufWriter::new(f))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Read a 2-D float64 NPY array.
pub fn read_npy(path: &Path) -> Result<Array2<f64>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    <Array2<f64> as ndarray_npy::ReadNpyExt>::read_npy(f)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Write pretty-printed JSON.
pub fn write_json(path: &Path, v: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
