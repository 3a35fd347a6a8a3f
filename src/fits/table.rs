//! FITS binary tables with units (the catalogue's FITS form).
//!
//! Must never: write a column whose length differs from the others.

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_long};
use std::path::Path;

use fitsio::sys;

use super::*;

/// A column of a binary table.
pub enum Column {
    /// 64-bit floats.
    F64(Vec<f64>),
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit integers.
    I64(Vec<i64>),
    /// 32-bit integers.
    I32(Vec<i32>),
    /// Booleans.
    Bool(Vec<bool>),
    /// Strings.
    Str(Vec<String>),
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Column::F64(v) => v.len(),
            Column::F32(v) => v.len(),
            Column::I64(v) => v.len(),
            Column::I32(v) => v.len(),
            Column::Bool(v) => v.len(),
            Column::Str(v) => v.len(),
        }
    }
}

/// The bytes one row of `c` takes: its TFORM's width (`"{n}A"` strings as wide as the longest).
fn width(c: &Column) -> usize {
    match c {
        Column::F64(_) | Column::I64(_) => 8,
        Column::F32(_) | Column::I32(_) => 4,
        Column::Bool(_) => 1,
        Column::Str(v) => v.iter().map(|s| s.len()).max().unwrap_or(1).max(1),
    }
}

/// The table's rows as FITS stores them (big-endian numbers, logicals `T`/`F`, strings padded
/// with blanks, as cfitsio's column writers put them), encoded here and handed to cfitsio in
/// one write: writing column by column makes cfitsio pass over every row of the file once per
/// column through its few small buffers (most of the catalogue's FITS time).
fn put_rows(
    h: &Handle,
    columns: &[(String, String, Column)],
    nrows: usize,
) -> Result<(), FitsError> {
    let widths: Vec<usize> = columns.iter().map(|c| width(&c.2)).collect();
    let row: usize = widths.iter().sum();
    if nrows == 0 || row == 0 {
        return Ok(());
    }
    let mut bytes = vec![0u8; nrows * row];
    let mut at = 0;
    for ((_, _, col), w) in columns.iter().zip(&widths) {
        let cells = bytes[at..].chunks_mut(row).map(|r| &mut r[..*w]);
        match col {
            Column::F64(v) => put_be(cells, v.iter().map(|x| x.to_be_bytes())),
            Column::F32(v) => put_be(cells, v.iter().map(|x| x.to_be_bytes())),
            Column::I64(v) => put_be(cells, v.iter().map(|x| x.to_be_bytes())),
            Column::I32(v) => put_be(cells, v.iter().map(|x| x.to_be_bytes())),
            Column::Bool(v) => cells
                .zip(v)
                .for_each(|(c, x)| c[0] = if *x { b'T' } else { b'F' }),
            Column::Str(v) => cells.zip(v).for_each(|(c, x)| {
                c[..x.len()].copy_from_slice(x.as_bytes());
                c[x.len()..].fill(b' ');
            }),
        }
        at += w;
    }
    let mut status = 0;
    // SAFETY: valid handle on the table just created with nrows rows of `row` bytes; the buffer
    // holds nrows·row bytes.
    unsafe {
        sys::ffptbb(
            h.fptr,
            1,
            1,
            bytes.len() as i64,
            bytes.as_mut_ptr(),
            &mut status,
        )
    };
    h.check(status, "writing the table's rows")
}

/// Each value's big-endian bytes into its cell.
fn put_be<'a, const N: usize>(
    cells: impl Iterator<Item = &'a mut [u8]>,
    values: impl Iterator<Item = [u8; N]>,
) {
    cells.zip(values).for_each(|(c, b)| c.copy_from_slice(&b));
}

/// Write a binary table (after an empty primary HDU): (name, unit, column).
pub fn write_table(
    path: &Path,
    extname: &str,
    columns: &[(String, String, Column)],
    extra: &Header,
) -> Result<(), FitsError> {
    let h = Handle::create(path)?;
    let mut status = 0;
    let mut naxes: [c_long; 1] = [0];
    // SAFETY: valid handle; an empty primary image.
    unsafe { sys::ffcrim(h.fptr, 8, 0, naxes.as_mut_ptr(), &mut status) };
    h.check(status, "creating the primary HDU")?;
    let nrows = columns.first().map(|c| c.2.len()).unwrap_or(0);
    let to_c =
        |s: &str| CString::new(s).map_err(|_| err(path, "a column name contains a NUL byte"));
    let names: Vec<CString> = columns
        .iter()
        .map(|c| to_c(&c.0))
        .collect::<Result<_, _>>()?;
    let forms: Vec<CString> = columns
        .iter()
        .map(|(_, _, c)| {
            to_c(&match c {
                Column::F64(_) => "D".to_string(),
                Column::F32(_) => "E".to_string(),
                Column::I64(_) => "K".to_string(),
                Column::I32(_) => "J".to_string(),
                Column::Bool(_) => "L".to_string(),
                Column::Str(_) => format!("{}A", width(c)),
            })
        })
        .collect::<Result<_, _>>()?;
    let units: Vec<CString> = columns
        .iter()
        .map(|c| to_c(&c.1))
        .collect::<Result<_, _>>()?;
    let mut pn: Vec<*mut c_char> = names.iter().map(|s| s.as_ptr() as *mut c_char).collect();
    let mut pf: Vec<*mut c_char> = forms.iter().map(|s| s.as_ptr() as *mut c_char).collect();
    let mut pu: Vec<*mut c_char> = units.iter().map(|s| s.as_ptr() as *mut c_char).collect();
    let ext = to_c(extname)?;
    // SAFETY: arrays of C strings with tfields entries each; cfitsio copies them.
    unsafe {
        sys::ffcrtb(
            h.fptr,
            2,
            nrows as i64,
            columns.len() as c_int,
            pn.as_mut_ptr(),
            pf.as_mut_ptr(),
            pu.as_mut_ptr(),
            ext.as_ptr(),
            &mut status,
        )
    };
    h.check(status, "creating the table")?;
    for (name, _, col) in columns {
        if col.len() != nrows {
            return Err(err(
                path,
                format!("column {name} has {} rows, expected {nrows}", col.len()),
            ));
        }
        if let Column::Str(v) = col {
            if let Some(r) = v.iter().position(|s| s.contains('\0')) {
                return Err(err(
                    path,
                    format!("column {name} row {} contains a NUL byte", r + 1),
                ));
            }
        }
    }
    put_rows(&h, columns, nrows)?;
    write_cards(&h, extra)?;
    h.close()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Overwrite every column of the table in HDU 2 of `path` through cfitsio's own column
    /// writers (what `write_table` did before it encoded the rows itself).
    fn put_columns_with_cfitsio(path: &Path, columns: &[(String, String, Column)]) {
        let c = CString::new(path.to_str().unwrap()).unwrap();
        let (mut fptr, mut status, mut kind) = (std::ptr::null_mut(), 0, 0);
        // SAFETY: valid C string and out-pointers; READWRITE.
        unsafe {
            sys::ffdkopn(&mut fptr, c.as_ptr(), 1, &mut status);
            sys::ffmahd(fptr, 2, &mut kind, &mut status);
        }
        for (i, (_, _, col)) in columns.iter().enumerate() {
            let (k, n) = ((i + 1) as c_int, col.len() as i64);
            // SAFETY: each buffer holds n values of the column's type.
            unsafe {
                match col {
                    Column::F64(v) => {
                        sys::ffpcld(fptr, k, 1, 1, n, v.clone().as_mut_ptr(), &mut status)
                    }
                    Column::F32(v) => {
                        sys::ffpcle(fptr, k, 1, 1, n, v.clone().as_mut_ptr(), &mut status)
                    }
                    Column::I32(v) => {
                        sys::ffpclk(fptr, k, 1, 1, n, v.clone().as_mut_ptr(), &mut status)
                    }
                    Column::I64(v) => {
                        let mut v: Vec<c_long> = v.iter().map(|&x| x as c_long).collect();
                        sys::ffpclj(fptr, k, 1, 1, n, v.as_mut_ptr(), &mut status)
                    }
                    Column::Bool(v) => {
                        let mut v: Vec<c_char> = v.iter().map(|&b| b as c_char).collect();
                        sys::ffpcll(fptr, k, 1, 1, n, v.as_mut_ptr(), &mut status)
                    }
                    Column::Str(v) => {
                        let cs: Vec<CString> = v
                            .iter()
                            .map(|s| CString::new(s.as_str()).unwrap())
                            .collect();
                        let mut p: Vec<*mut c_char> =
                            cs.iter().map(|s| s.as_ptr() as *mut c_char).collect();
                        sys::ffpcls(fptr, k, 1, 1, n, p.as_mut_ptr(), &mut status)
                    }
                };
            }
            assert_eq!(status, 0, "column {}", i + 1);
        }
        // SAFETY: the file is open.
        unsafe { sys::ffclos(fptr, &mut status) };
        assert_eq!(status, 0);
    }

    #[test]
    fn rows_are_the_bytes_cfitsio_column_writers_put() {
        let dir = tempfile::tempdir().unwrap();
        let n = 700;
        let f = |k: usize| match k % 5 {
            0 => f64::NAN,
            1 => -0.0,
            _ => k as f64 * 1.37e-3 - 0.2,
        };
        let cols = |blank: bool| -> Vec<(String, String, Column)> {
            let x = |k: usize| if blank { 0.0 } else { f(k) };
            let s = |k: usize| {
                if blank {
                    "x".repeat(10)
                } else {
                    format!("J{:0w$}", k, w = 1 + k % 9)
                }
            };
            vec![
                (
                    "d".into(),
                    "deg".into(),
                    Column::F64((0..n).map(x).collect()),
                ),
                (
                    "e".into(),
                    "Jy".into(),
                    Column::F32((0..n).map(|k| x(k) as f32).collect()),
                ),
                (
                    "k".into(),
                    "".into(),
                    Column::I64((0..n).map(|k| x(k) as i64 - 3).collect()),
                ),
                (
                    "j".into(),
                    "".into(),
                    Column::I32((0..n).map(|k| -(k as i32) * i32::from(!blank)).collect()),
                ),
                (
                    "l".into(),
                    "".into(),
                    Column::Bool((0..n).map(|k| !blank && k % 3 == 0).collect()),
                ),
                ("a".into(), "".into(), Column::Str((0..n).map(s).collect())),
            ]
        };
        let (ours, theirs) = (dir.path().join("ours.fits"), dir.path().join("theirs.fits"));
        write_table(&ours, "CATALOGUE", &cols(false), &Header::default()).unwrap();
        write_table(&theirs, "CATALOGUE", &cols(true), &Header::default()).unwrap();
        assert_ne!(
            std::fs::read(&ours).unwrap(),
            std::fs::read(&theirs).unwrap()
        );
        put_columns_with_cfitsio(&theirs, &cols(false));
        let (a, b) = (
            std::fs::read(&ours).unwrap(),
            std::fs::read(&theirs).unwrap(),
        );
        if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
            panic!(
                "byte {i} of {}: ours {:?} theirs {:?}",
                a.len(),
                String::from_utf8_lossy(&a[i.saturating_sub(8)..i + 24]),
                String::from_utf8_lossy(&b[i.saturating_sub(8)..i + 24])
            );
        }
        assert_eq!(a.len(), b.len());
        // A NUL in a string is refused, naming the column and row.
        let bad = vec![(
            "name".to_string(),
            String::new(),
            Column::Str(vec!["a".into(), "b\0".into()]),
        )];
        let e = write_table(&dir.path().join("bad.fits"), "T", &bad, &Header::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("column name row 2") && e.contains("NUL"), "{e}");
    }
}
