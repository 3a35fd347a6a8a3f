//! What the stages share: the component catalogue reader, channel weight files, the action
//! context's inputs and outputs by slot, and NPY/JSON writers.
//!
//! Must never: write anywhere but the paths it is given.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ndarray::Array2;

use super::{ActionCtx, StageError};
use crate::hash::StatSig;
use crate::units::Table;

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
}

/// The component catalogue, in file order, indexed by component and by island.
pub struct Components {
    /// Every component, in file order.
    pub list: Vec<Component>,
    by_id: HashMap<String, usize>,
    by_island: HashMap<String, Vec<usize>>,
}

impl Components {
    /// The component named `id`.
    pub fn get(&self, id: &str) -> Option<&Component> {
        self.by_id.get(id).map(|&i| &self.list[i])
    }

    /// The components of island `island`, in file order.
    pub fn of_island(&self, island: &str) -> Vec<&Component> {
        self.by_island
            .get(island)
            .map(|ix| ix.iter().map(|&i| &self.list[i]).collect())
            .unwrap_or_default()
    }
}

/// Read `components.csv` (RACS column names; `Maj` in arcsec, 0 when absent), with the same
/// reader and messages as the unit catalogue (`units::Table`). Parsed once per version of the
/// file per process: every component's rmsynth target reads the same catalogue.
pub fn components(path: &Path) -> Result<Arc<Components>, StageError> {
    memo_by_file(path, || {
        let t = Table::read(path)?;
        let col = |n: &str| t.col(n);
        let (gi, si, ri, di) = (
            col("Gaussian_ID")?,
            col("Source_ID")?,
            col("RA")?,
            col("Dec")?,
        );
        let mi = t.headers.iter().position(|h| h == "Maj");
        let mut c = Components {
            list: Vec::with_capacity(t.rows.len()),
            by_id: HashMap::new(),
            by_island: HashMap::new(),
        };
        for (line, row) in &t.rows {
            let num = |i: usize| t.number(*line, row, i);
            let comp = Component {
                id: row.get(gi).cloned().unwrap_or_default(),
                island: row.get(si).cloned().unwrap_or_default(),
                ra: num(ri)?,
                dec: num(di)?,
                maj_arcsec: mi.map(num).transpose()?.unwrap_or(0.0),
            };
            c.by_id.insert(comp.id.clone(), c.list.len());
            c.by_island
                .entry(comp.island.clone())
                .or_default()
                .push(c.list.len());
            c.list.push(comp);
        }
        Ok(c)
    })
}

/// `load()` of the file at `path`, kept for the life of the process and reused while the file's
/// stat signature (size, mtime, inode, ctime) is unchanged. For inputs many targets of one build
/// read whole (the component catalogue, a holography beam model).
pub fn memo_by_file<T: Send + Sync + 'static>(
    path: &Path,
    load: impl FnOnce() -> Result<T, StageError>,
) -> Result<Arc<T>, StageError> {
    type Memo = HashMap<(PathBuf, TypeId), (StatSig, Arc<dyn Any + Send + Sync>)>;
    static MEMO: OnceLock<Mutex<Memo>> = OnceLock::new();
    let sig = StatSig::of_path(path)
        .map_err(|e| StageError::io(path, e))?
        .ok_or_else(|| StageError::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)))?;
    let key = (path.to_path_buf(), TypeId::of::<T>());
    let memo = MEMO.get_or_init(Default::default);
    if let Some((s, v)) = memo.lock().ok().and_then(|m| m.get(&key).cloned()) {
        if s == sig {
            if let Ok(v) = v.downcast::<T>() {
                return Ok(v);
            }
        }
    }
    let v = Arc::new(load()?);
    if let Ok(mut m) = memo.lock() {
        m.insert(key, (sig, v.clone()));
    }
    Ok(v)
}

/// The one file of input slot `slot` (an error naming the target if there is none).
pub fn single<'a>(ctx: &'a ActionCtx, slot: &str) -> Result<&'a PathBuf, StageError> {
    ctx.input(slot).first().ok_or_else(|| StageError::Contract {
        target: ctx.target.to_string(),
        what: format!("input '{slot}' has no file"),
    })
}

/// A beam's per-channel weights, as read from its weights text file.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelWeights {
    /// The weight of each channel (inverse variance; 0 for a flagged channel, NaN where the
    /// file says `nan`).
    pub w: Vec<f64>,
    /// Channels whose weight is `nan`, with their line: Arrakis writes `nan` for a channel
    /// with no data (its rms is NaN); the reader of the cube checks those channels are blank.
    pub nan: Vec<(usize, usize)>,
}

/// Per-channel weights from an Arrakis weights text file (`channel weight` rows, `#` comments):
/// exactly one row per channel of the cube, each weight finite and not negative (or `nan`, see
/// [`ChannelWeights::nan`]). Anything else is an error naming the file and line, since a missing
/// or wrong weight would silently change the mosaic.
pub fn read_weights(path: &Path, nchan: usize) -> Result<ChannelWeights, StageError> {
    let text = crate::hash::read_regular_string(path).map_err(|e| StageError::io(path, e))?;
    parse_weights(path, &text, nchan)
}

/// [`read_weights`], shared: files of the same text (every island's cutout of a beam carries a
/// copy of the beam's weights) are parsed once per process and the one result handed out. The
/// text is read each time and keyed by its digest, so a changed file is parsed again; a file in
/// error is never kept.
pub fn read_weights_shared(path: &Path, nchan: usize) -> Result<Arc<ChannelWeights>, StageError> {
    type Memo = HashMap<([u8; 32], usize), Arc<ChannelWeights>>;
    static MEMO: OnceLock<Mutex<Memo>> = OnceLock::new();
    // Some beams × Stokes of a field, a few fields to a process: more distinct texts than this
    // start the memo afresh.
    const MOST: usize = 1024;
    let text = crate::hash::read_regular_string(path).map_err(|e| StageError::io(path, e))?;
    let key = (*blake3::hash(text.as_bytes()).as_bytes(), nchan);
    let memo = MEMO.get_or_init(Default::default);
    if let Some(w) = memo.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(w);
    }
    let w = Arc::new(parse_weights(path, &text, nchan)?);
    if let Ok(mut m) = memo.lock() {
        if m.len() >= MOST {
            m.clear();
        }
        m.insert(key, w.clone());
    }
    Ok(w)
}

/// [`read_weights`] of text already read from `path`.
pub fn parse_weights(path: &Path, text: &str, nchan: usize) -> Result<ChannelWeights, StageError> {
    let mut w = vec![f64::NAN; nchan];
    let mut line_of: Vec<Option<usize>> = vec![None; nchan];
    let mut nan = Vec::new();
    let mut last_line = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        last_line = n + 1;
        let mut it = line.split_whitespace();
        let at = |message: String| StageError::file(path, Some(n + 1), message);
        let (Some(c), Some(v), None) = (it.next(), it.next(), it.next()) else {
            return Err(at(format!(
                "'{line}': expected two columns, 'channel weight' (as Arrakis writes them)"
            )));
        };
        let c: usize = c.parse().map_err(|_| {
            at(format!(
                "bad channel '{c}': expected a channel number from 0"
            ))
        })?;
        let v: f64 = v
            .parse()
            .map_err(|_| at(format!("bad weight '{v}': expected a number")))?;
        if c >= nchan {
            return Err(at(format!(
                "channel {c}, but the cube it belongs to has only {nchan} channels (0 to {}); a beam cube and its weights file must come from the same imaging run",
                nchan.saturating_sub(1)
            )));
        }
        if let Some(first) = line_of[c] {
            return Err(at(format!(
                "channel {c} is given twice (first on line {first}); each channel has one weight"
            )));
        }
        line_of[c] = Some(n + 1);
        if v.is_nan() {
            nan.push((c, n + 1));
        } else if !v.is_finite() || v < 0.0 {
            return Err(at(format!(
                "weight {v} for channel {c}: a weight is an inverse variance, finite and not negative (0 for a flagged channel)"
            )));
        }
        w[c] = v;
    }
    let missing: Vec<usize> = (0..nchan).filter(|&c| line_of[c].is_none()).collect();
    if missing.len() == nchan {
        return Err(StageError::file(
            path,
            None,
            format!("holds no weights; it needs one 'channel weight' row for each of the cube's {nchan} channels"),
        ));
    }
    if let Some(&c) = missing.first() {
        let list: Vec<String> = missing.iter().take(8).map(|c| c.to_string()).collect();
        return Err(StageError::file(
            path,
            Some(if c == 0 { 1 } else { line_of[c - 1].unwrap_or(last_line) }),
            format!(
                "no weight for channel{} {}{}: the cube has {nchan} channels and each needs a row (0 for a flagged channel){}",
                if missing.len() > 1 { "s" } else { "" },
                list.join(", "),
                if missing.len() > 8 { format!(" and {} more", missing.len() - 8) } else { String::new() },
                if line_of[c..].iter().all(|l| l.is_none()) { "; was the file cut short?" } else { "" }
            ),
        ));
    }
    Ok(ChannelWeights { w, nan })
}

/// The temporary path of output `name`.
pub fn out_path<'a>(ctx: &'a ActionCtx, name: &str) -> Result<&'a PathBuf, StageError> {
    ctx.outputs
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, p, _)| p)
        .ok_or_else(|| StageError::Contract {
            target: ctx.target.to_string(),
            what: format!("no output '{name}'"),
        })
}

/// A mosaic and its weight cube (linmos, merge) being put together for the context's
/// `mosaic` and `weight` outputs: both nx × ny × nchan pixels on the header's grid, given a run
/// of whole planes at a time (either order), then written.
pub struct MosaicPair {
    /// Per output the rule names (the mosaic: 0, the weight cube: 1), its file, written as the
    /// planes come.
    files: Vec<(usize, crate::fits::ImageStream)>,
    npix: usize,
}

impl MosaicPair {
    /// The two files created with their headers: the mosaic's `header`, the weight cube's with
    /// a BUNIT that says what its values are.
    pub fn start(
        ctx: &ActionCtx,
        (nx, ny, nchan): (usize, usize, usize),
        header: &crate::fits::Header,
        weight_unit: &str,
    ) -> Result<MosaicPair, StageError> {
        let mut files = Vec::new();
        for (name, path, _) in &ctx.outputs {
            let mut header = header.clone();
            let k = usize::from(*name != "mosaic");
            if k == 1 {
                header.set_str("BUNIT", "", weight_unit);
            }
            files.push((
                k,
                crate::fits::ImageStream::create(path, &[nx, ny, nchan], &header)?,
            ));
        }
        Ok(MosaicPair {
            files,
            npix: nx * ny,
        })
    }

    /// The next `w` planes of both, laid out in channel groups
    /// ([`ChannelGroups`](crate::science::layout::ChannelGroups)).
    pub fn put_groups(
        &mut self,
        mosaic: &[f32],
        weight: &[f32],
        w: usize,
    ) -> Result<(), StageError> {
        let layout = crate::science::layout::ChannelGroups { npix: self.npix, w };
        for (k, img) in &mut self.files {
            img.put_groups([mosaic, weight][*k], layout)?;
        }
        Ok(())
    }

    /// The next planes of both, plane after plane.
    pub fn put_planes(&mut self, mosaic: &[f32], weight: &[f32]) -> Result<(), StageError> {
        for (k, img) in &mut self.files {
            img.put_f32([mosaic, weight][*k])?;
        }
        Ok(())
    }

    /// Both finished (every plane must have been given).
    pub fn write(self) -> Result<(), StageError> {
        for (_, img) in self.files {
            img.finish()?;
        }
        Ok(())
    }
}

/// Write rows of equal length as a 2-D float64 NPY array.
pub fn write_npy(path: &Path, rows: &[&[f64]]) -> Result<(), StageError> {
    let n = rows.first().map(|r| r.len()).unwrap_or(0);
    if rows.iter().any(|r| r.len() != n) {
        return Err(StageError::file(path, None, "rows of different lengths"));
    }
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    let a = Array2::from_shape_vec((rows.len(), n), flat)
        .map_err(|e| StageError::file(path, None, e.to_string()))?;
    let f = std::fs::File::create(path).map_err(|e| StageError::io(path, e))?;
    ndarray_npy::WriteNpyExt::write_npy(&a, std::io::BufWriter::new(f))
        .map_err(|e| StageError::file(path, None, e.to_string()))
}

/// Read a 2-D float64 NPY array.
pub fn read_npy(path: &Path) -> Result<Array2<f64>, StageError> {
    let bytes = std::fs::read(path).map_err(|e| StageError::io(path, e))?;
    if let Some(a) = plain_npy(&bytes) {
        return Ok(a);
    }
    <Array2<f64> as ndarray_npy::ReadNpyExt>::read_npy(&bytes[..])
        .map_err(|e| StageError::file(path, None, e.to_string()))
}

/// A 2-D little-endian float64 array in C order, as numpy and [`write_npy`] write them, read
/// without ndarray-npy's general header parser (which took half of rmclean's time reading
/// rmsynth's two small files); `None` for any other header or length (ndarray-npy reads
/// those, or says what is wrong).
fn plain_npy(b: &[u8]) -> Option<Array2<f64>> {
    let rest = b.strip_prefix(b"\x93NUMPY")?;
    let (len, header_at) = match rest.first()? {
        1 => (
            u16::from_le_bytes(rest.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        2 | 3 => (
            u32::from_le_bytes(rest.get(2..6)?.try_into().ok()?) as usize,
            6,
        ),
        _ => return None,
    };
    let header = std::str::from_utf8(rest.get(header_at..header_at + len)?).ok()?;
    let data = &rest[header_at + len..];
    let after = |key: &str| {
        header
            .find(key)
            .map(|at| header[at + key.len()..].trim_start())
    };
    if !after("'descr':")?.starts_with("'<f8'") || !after("'fortran_order':")?.starts_with("False")
    {
        return None;
    }
    let shape = after("'shape':")?.strip_prefix('(')?;
    let dims = shape[..shape.find(')')?]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().ok())
        .collect::<Option<Vec<usize>>>()?;
    let [rows, cols] = dims[..] else {
        return None;
    };
    if data.len() != rows.checked_mul(cols)?.checked_mul(8)? {
        return None;
    }
    let values = data
        .chunks_exact(8)
        .map(|v| f64::from_le_bytes(v.try_into().unwrap()))
        .collect();
    Array2::from_shape_vec((rows, cols), values).ok()
}

/// Write a text file.
pub fn write_text(path: &Path, text: &str) -> Result<(), StageError> {
    std::fs::write(path, text).map_err(|e| StageError::io(path, e))
}

/// The last `n` lines of a finished program's stdout then stderr, indented for an error message.
pub fn output_tail(out: &std::process::Output, n: usize) -> String {
    let log =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n  ")
}

/// Which Stokes parameter (0 = I, 1 = Q, 2 = U) a cube is, from Arrakis's file names
/// (`...restored.{i,q,u}...`).
pub fn stokes_of(path: &Path) -> Option<usize> {
    let name = path.file_name()?.to_string_lossy().to_string();
    ["i", "q", "u"]
        .iter()
        .position(|s| name.contains(&format!(".restored.{s}.")))
}

/// The island's Stokes `s` (0 = I, 1 = Q, 2 = U) cube: the first among the input slots `slots`,
/// in that order (so FRion-corrected Q/U slots can come before the plain mosaics).
pub fn stokes_input<'a>(
    ctx: &'a ActionCtx,
    slots: &[&str],
    s: usize,
) -> Result<&'a PathBuf, StageError> {
    slots
        .iter()
        .flat_map(|slot| ctx.input(slot))
        .find(|p| stokes_of(p) == Some(s))
        .ok_or_else(|| {
            StageError::data(format!(
                "{}: the island's Stokes {} mosaic is not among the inputs (its name must hold '.restored.{}.')",
                ctx.target,
                ["I", "Q", "U"][s],
                ["i", "q", "u"][s]
            ))
        })
}

#[cfg(test)]
mod npy_tests {
    use super::*;
    use ndarray_npy::WriteNpyExt;

    #[test]
    fn plain_npy_files_read_as_ndarray_npy_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        for rows in [
            vec![vec![1.5, -2.0, f64::NAN], vec![0.0, 1e-300, 7.0]],
            vec![vec![]],
        ] {
            let r: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
            write_npy(&p, &r).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            let fast = plain_npy(&bytes).expect("the plain header is recognised");
            let slow = <Array2<f64> as ndarray_npy::ReadNpyExt>::read_npy(&bytes[..]).unwrap();
            assert_eq!(fast.shape(), slow.shape());
            let bits = |a: &Array2<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&slow));
            assert_eq!(bits(&read_npy(&p).unwrap()), bits(&slow));
        }
        // Fortran order, big-endian, 1-D, or a file cut short: left to ndarray-npy, which
        // reads the first two as they are and refuses the others naming the file.
        let a = ndarray::arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        let mut f = Vec::new();
        a.t().write_npy(&mut f).unwrap();
        assert!(plain_npy(&f).is_none());
        std::fs::write(&p, &f).unwrap();
        assert_eq!(read_npy(&p).unwrap(), a.t());
        let mut c_order = Vec::new();
        a.write_npy(&mut c_order).unwrap();
        assert!(plain_npy(&c_order).is_some());
        let at = c_order.windows(5).position(|w| w == b"'<f8'").unwrap();
        c_order[at + 1] = b'>';
        assert!(plain_npy(&c_order).is_none());
        let mut one = Vec::new();
        ndarray::arr1(&[1.0, 2.0]).write_npy(&mut one).unwrap();
        assert!(plain_npy(&one).is_none());
        std::fs::write(&p, &one).unwrap();
        assert!(read_npy(&p).is_err());
        write_npy(&p, &[&[1.0, 2.0]]).unwrap();
        let mut short = std::fs::read(&p).unwrap();
        short.truncate(short.len() - 3);
        assert!(plain_npy(&short).is_none());
        std::fs::write(&p, &short).unwrap();
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("a.npy"), "{e}");
    }
}

#[cfg(test)]
mod weights_tests {
    use super::*;

    #[test]
    fn copies_of_a_weights_text_are_parsed_once_and_a_changed_one_again() {
        let dir = tempfile::tempdir().unwrap();
        let put = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let text = "# Channel Weight\n0 4.5e5\n1 nan\n2 0\n";
        let (a, b) = (put("a.txt", text), put("b.txt", text));
        let wa = read_weights_shared(&a, 3).unwrap();
        let wb = read_weights_shared(&b, 3).unwrap();
        assert!(Arc::ptr_eq(&wa, &wb), "the second copy was parsed again");
        let plain = read_weights(&a, 3).unwrap();
        let bits = |w: &[f64]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!((bits(&wa.w), &wa.nan), (bits(&plain.w), &plain.nan));
        // Another channel count is another reading of the same text.
        let err = read_weights_shared(&a, 4).unwrap_err().to_string();
        assert!(err.contains("no weight for channel 3"), "{err}");
        // The file rewritten: its new text is what comes back.
        std::fs::write(&a, "0 1\n1 2\n2 3\n").unwrap();
        let changed = read_weights_shared(&a, 3).unwrap();
        assert_eq!(changed.w, [1.0, 2.0, 3.0]);
        assert!(Arc::ptr_eq(&read_weights_shared(&b, 3).unwrap(), &wb));
        // A file in error names its line, each time it is read.
        let bad = put("bad.txt", "0 1\n1 x\n2 3\n");
        for _ in 0..2 {
            let e = read_weights_shared(&bad, 3).unwrap_err().to_string();
            assert!(e.contains("bad.txt") && e.contains("bad weight 'x'"), "{e}");
        }
    }
}
