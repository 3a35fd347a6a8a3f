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
                Column::Str(v) => {
                    format!("{}A", v.iter().map(|s| s.len()).max().unwrap_or(1).max(1))
                }
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
    for (i, (name, _, col)) in columns.iter().enumerate() {
        if col.len() != nrows {
            return Err(err(
                path,
                format!("column {name} has {} rows, expected {nrows}", col.len()),
            ));
        }
        if nrows == 0 {
            continue;
        }
        let colnum = (i + 1) as c_int;
        match col {
            Column::F64(v) => {
                let mut v = v.clone();
                // SAFETY: buffer holds nrows values.
                unsafe {
                    sys::ffpcld(
                        h.fptr,
                        colnum,
                        1,
                        1,
                        nrows as i64,
                        v.as_mut_ptr(),
                        &mut status,
                    )
                };
            }
            Column::F32(v) => {
                let mut v = v.clone();
                // SAFETY: buffer holds nrows values.
                unsafe {
                    sys::ffpcle(
                        h.fptr,
                        colnum,
                        1,
                        1,
                        nrows as i64,
                        v.as_mut_ptr(),
                        &mut status,
                    )
                };
            }
            Column::I32(v) => {
                let mut v = v.clone();
                // SAFETY: buffer holds nrows values (c_int is 32-bit).
                unsafe {
                    sys::ffpclk(
                        h.fptr,
                        colnum,
                        1,
                        1,
                        nrows as i64,
                        v.as_mut_ptr(),
                        &mut status,
                    )
                };
            }
            Column::I64(v) => {
                let mut v: Vec<c_long> = v.iter().map(|&x| x as c_long).collect();
                // SAFETY: as above (c_long is 64-bit on this platform's cfitsio build).
                unsafe {
                    sys::ffpclj(
                        h.fptr,
                        colnum,
                        1,
                        1,
                        nrows as i64,
                        v.as_mut_ptr(),
                        &mut status,
                    )
                };
            }
            Column::Bool(v) => {
                let mut v: Vec<c_char> = v.iter().map(|&b| b as c_char).collect();
                // SAFETY: as above.
                unsafe {
                    sys::ffpcll(
                        h.fptr,
                        colnum,
                        1,
                        1,
                        nrows as i64,
                        v.as_mut_ptr(),
                        &mut status,
                    )
                };
            }
            Column::Str(v) => {
                let cs: Vec<CString> = v.iter().map(|s| to_c(s)).collect::<Result<_, _>>()?;
                let mut ptrs: Vec<*mut c_char> =
                    cs.iter().map(|s| s.as_ptr() as *mut c_char).collect();
                // SAFETY: nrows C strings.
                unsafe {
                    sys::ffpcls(
                        h.fptr,
                        colnum,
                        1,
                        1,
                        nrows as i64,
                        ptrs.as_mut_ptr(),
                        &mut status,
                    )
                };
            }
        }
        h.check(status, &format!("writing column {name}"))?;
    }
    write_cards(&h, extra)?;
    h.close()
}
