//! The catalogue's three files: CSV (empty cells where a number is blank), an RMTable FITS binary
//! table (units, UCDs as `TUCDn`, descriptions as `TCOMMn`, provenance keywords, `VERSION` of the
//! RMTable standard) and a VOTable 1.3 in TABLEDATA with every column's unit, UCD and
//! description and Arrakis's table PARAMs.
//!
//! Must never: write anywhere but the paths given (the engine's temporary outputs).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use super::columns::Kind;
use super::{Table, Values};
use crate::fits::{Column, Header};
use crate::stages::StageError;

/// The RMTable column standard the catalogue follows.
pub const RMTABLE_VERSION: &str = "1.3";

/// The CSV: a header of column names, one record per row.
pub fn csv(path: &Path, t: &Table) -> Result<(), StageError> {
    let e = |e: csv::Error| StageError::file(path, None, e.to_string());
    let mut w = csv::Writer::from_path(path).map_err(e)?;
    w.write_record(t.columns.iter().map(|(s, _)| s.name))
        .map_err(e)?;
    for r in 0..t.rows {
        w.write_record(t.columns.iter().map(|(_, v)| v.text(r)))
            .map_err(e)?;
    }
    w.flush().map_err(|x| StageError::io(path, x))
}

/// A FITS header string value cut to fit one card.
fn card_text(s: &str, room: usize) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        let need = if ch == '\'' { 2 } else { ch.len_utf8() };
        if out.len() + need > room || !ch.is_ascii() {
            break;
        }
        out.push(ch);
    }
    out
}

/// The RMTable FITS file (the table's columns become the file's: it is written last).
pub fn fits(path: &Path, t: Table) -> Result<(), StageError> {
    let mut cols = Vec::with_capacity(t.columns.len());
    let mut specs = Vec::with_capacity(t.columns.len());
    for (spec, v) in t.columns {
        let c = match (spec.kind, v) {
            (Kind::F32, Values::F64(x)) => Column::F32(x.iter().map(|v| *v as f32).collect()),
            (_, Values::F64(x)) => Column::F64(x),
            (Kind::I32, Values::I64(x)) => Column::I32(x.iter().map(|v| *v as i32).collect()),
            (_, Values::I64(x)) => Column::I64(x),
            (_, Values::Bool(x)) => Column::Bool(x),
            (_, Values::Str(x)) => Column::Str(x),
        };
        cols.push((spec.name.to_string(), spec.unit.to_string(), c));
        specs.push(spec);
    }
    let mut h = Header::default();
    h.set_str("VERSION", RMTABLE_VERSION, "RMTable standard version");
    h.set_str("CATALOG", &card_text(&t.name, 60), "catalogue name");
    for (k, v, c) in &t.provenance {
        if k.len() <= 8 {
            h.set_str(k, &card_text(v, 60), c);
        }
    }
    for (i, spec) in specs.iter().enumerate() {
        h.set_str(&format!("TUCD{}", i + 1), &card_text(spec.ucd, 66), "");
        h.set_str(
            &format!("TCOMM{}", i + 1),
            &card_text(spec.description, 66),
            "",
        );
    }
    // Every parameter in full (the PARAMS card is cut to one line).
    if let Some((_, params, _)) = t.provenance.iter().find(|p| p.0 == "PARAMS") {
        for p in params.split(' ').filter(|p| !p.is_empty()) {
            h.history(&format!("arrakis parameter {p}"));
        }
    }
    Ok(crate::fits::write_table(path, "CATALOGUE", &cols, &h)?)
}

/// Text for XML character data and attribute values: markup characters escaped, control
/// characters XML 1.0 cannot hold dropped (shared with `crate::compare`'s JUnit writer).
pub(crate) fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' && c != '\r' => {}
            c => o.push(c),
        }
    }
    o
}

/// The VOTable (1.3, TABLEDATA). Blank floats are written as NaN, as astropy reads them.
pub fn votable(path: &Path, t: &Table) -> Result<(), StageError> {
    let file = std::fs::File::create(path).map_err(|e| StageError::io(path, e))?;
    let mut x = std::io::BufWriter::with_capacity(1 << 16, file);
    votable_to(&mut x, t)
        .and_then(|_| x.flush())
        .map_err(|e| StageError::io(path, e))
}

/// [`votable`]'s text, streamed into `x` row by row (a field's table as one string was the
/// catalogue's largest allocation).
fn votable_to(x: &mut impl std::io::Write, t: &Table) -> std::io::Result<()> {
    writeln!(x, "<?xml version=\"1.0\" encoding=\"utf-8\"?>")?;
    writeln!(
        x,
        "<VOTABLE version=\"1.3\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
    )?;
    writeln!(x, " <RESOURCE type=\"results\">")?;
    for (k, v, c) in &t.provenance {
        writeln!(
            x,
            "  <INFO name=\"{}\" value=\"{}\">{}</INFO>",
            xml_escape(k),
            xml_escape(v),
            xml_escape(c)
        )?;
    }
    writeln!(x, "  <TABLE name=\"{}\">", xml_escape(&t.name))?;
    writeln!(
        x,
        "   <DESCRIPTION>Polarisation catalogue (RMTable v{}) made by arrakis</DESCRIPTION>",
        super::write::RMTABLE_VERSION
    )?;
    let params = [
        ("Catalogue_Name", t.name.replace(['.', '-'], "_")),
        ("Indexed_Fields", "ra,dec,cat_id,source_id".to_string()),
        (
            "Principal_Fields",
            "ra,dec,cat_id,source_id,rm,polint,snr_polint,fracpol,stokesI,sigma_add".to_string(),
        ),
    ];
    for (n, v) in &params {
        writeln!(
            x,
            "   <PARAM name=\"{n}\" datatype=\"char\" arraysize=\"{}\" value=\"{}\"/>",
            v.len().max(1),
            xml_escape(v)
        )?;
    }
    for (spec, v) in &t.columns {
        let (datatype, arraysize) = match (spec.kind, v) {
            (Kind::F32, _) => ("float", None),
            (Kind::I32, _) => ("int", None),
            (_, Values::F64(_)) => ("double", None),
            (_, Values::I64(_)) => ("long", None),
            (_, Values::Bool(_)) => ("boolean", None),
            (_, Values::Str(_)) => ("char", Some("*")),
        };
        let mut attrs = format!(
            "name=\"{}\" ID=\"{}\" datatype=\"{datatype}\"",
            spec.name, spec.name
        );
        if let Some(a) = arraysize {
            let _ = write!(attrs, " arraysize=\"{a}\"");
        }
        if !spec.unit.is_empty() {
            let _ = write!(attrs, " unit=\"{}\"", xml_escape(spec.unit));
        }
        if !spec.ucd.is_empty() {
            let _ = write!(attrs, " ucd=\"{}\"", xml_escape(spec.ucd));
        }
        writeln!(
            x,
            "   <FIELD {attrs}>\n    <DESCRIPTION>{}</DESCRIPTION>\n   </FIELD>",
            xml_escape(spec.description)
        )?;
    }
    writeln!(x, "   <DATA>\n    <TABLEDATA>")?;
    for r in 0..t.rows {
        x.write_all(b"     <TR>")?;
        for (_, v) in &t.columns {
            x.write_all(b"<TD>")?;
            match v {
                Values::F64(a) if a[r].is_nan() => x.write_all(b"NaN")?,
                Values::F64(a) if a[r].is_infinite() => {
                    x.write_all(if a[r] > 0.0 { b"+Inf" } else { b"-Inf" })?
                }
                Values::F64(a) => write!(x, "{}", a[r])?,
                Values::I64(a) => write!(x, "{}", a[r])?,
                Values::Bool(a) => x.write_all(if a[r] { b"T" } else { b"F" })?,
                Values::Str(a) => x.write_all(xml_escape(&a[r]).as_bytes())?,
            }
            x.write_all(b"</TD>")?;
        }
        x.write_all(b"</TR>\n")?;
    }
    writeln!(
        x,
        "    </TABLEDATA>\n   </DATA>\n  </TABLE>\n </RESOURCE>\n</VOTABLE>"
    )
}
