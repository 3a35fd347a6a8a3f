//! dask's byte-size and duration grammar, exactly as `dask.utils.parse_bytes` and
//! `dask.utils.parse_timedelta` read them, so a cluster config means here what it means to dask.
//!
//! Owns: the two parsers. Must never: decide what a value is used for or whether it is sensible
//! (a negative size parses, as in dask; the config reader refuses it).
//! Invariant: for every string, the answer (value or refusal) is dask's; `tests/it` checks a table
//! generated with dask itself (`tests/py/dask_grammar.py`).
//!
//! The grammar both share: spaces (only U+0020) are removed; the longest run of letters at the
//! end is the unit, the rest must be a Python `float()` literal (sign, digits with single `_`
//! between them, a point, an exponent; `inf`/`nan` never reach it, being letters). Quirks kept:
//! `parse_bytes` reads a string without digits as `1` of that unit (`"MB"` = 10⁶), and
//! `parse_timedelta` puts a `1` before a string that does not start with a digit (`".5s"` is
//! 1.5 s and `"-5s"` is refused, as dask does).

/// Why a string is not in dask's grammar.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DaskGrammarError {
    /// The part before the unit is not a number.
    #[error("'{0}' is not a number")]
    Number(String),
    /// The unit is not one dask knows.
    #[error("'{unit}' is not a {what} unit (dask knows: {known})")]
    Unit {
        /// The unit as written.
        unit: String,
        /// "byte" or "time".
        what: &'static str,
        /// The units dask accepts.
        known: &'static str,
    },
    /// The value does not fit (dask's `int()` of infinity or NaN fails too).
    #[error("'{0}' is too large")]
    Range(String),
    /// Nothing to parse.
    #[error("the value is empty")]
    Empty,
}

/// dask's `byte_sizes`, keys lower-case.
const BYTE_UNITS: &[(&str, f64)] = &[
    ("", 1.0),
    ("b", 1.0),
    ("k", 1e3),
    ("kb", 1e3),
    ("m", 1e6),
    ("mb", 1e6),
    ("g", 1e9),
    ("gb", 1e9),
    ("t", 1e12),
    ("tb", 1e12),
    ("p", 1e15),
    ("pb", 1e15),
    ("ki", 1024.0),
    ("kib", 1024.0),
    ("mi", 1048576.0),
    ("mib", 1048576.0),
    ("gi", 1073741824.0),
    ("gib", 1073741824.0),
    ("ti", 1099511627776.0),
    ("tib", 1099511627776.0),
    ("pi", 1125899906842624.0),
    ("pib", 1125899906842624.0),
];

/// dask's `timedelta_sizes`, keys lower-case (dask also lists the upper-case spellings, and
/// lower-cases the unit before the lookup).
const TIME_UNITS: &[(&str, f64)] = &[
    ("s", 1.0),
    ("second", 1.0),
    ("seconds", 1.0),
    ("ms", 1e-3),
    ("millisecond", 1e-3),
    ("milliseconds", 1e-3),
    ("us", 1e-6),
    ("microsecond", 1e-6),
    ("microseconds", 1e-6),
    ("ns", 1e-9),
    ("nanosecond", 1e-9),
    ("nanoseconds", 1e-9),
    ("m", 60.0),
    ("minute", 60.0),
    ("minutes", 60.0),
    ("h", 3600.0),
    ("hour", 3600.0),
    ("hours", 3600.0),
    ("d", 86400.0),
    ("day", 86400.0),
    ("days", 86400.0),
    ("w", 604800.0),
    ("week", 604800.0),
    ("weeks", 604800.0),
];

/// Python's `float()` of a literal: optional surrounding whitespace, sign, digits with single
/// underscores between digits, point, exponent; also `inf`/`infinity`/`nan`.
fn python_float(s: &str) -> Result<f64, DaskGrammarError> {
    let bad = || DaskGrammarError::Number(s.to_string());
    let t = s.trim();
    let b = t.as_bytes();
    // An underscore must sit between two digits.
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let before = i > 0 && b[i - 1].is_ascii_digit();
            let after = i + 1 < b.len() && b[i + 1].is_ascii_digit();
            if !(before && after) {
                return Err(bad());
            }
        }
    }
    let plain: String = t.chars().filter(|&c| c != '_').collect();
    let body = plain.trim_start_matches(['+', '-']);
    if plain.len() - body.len() > 1 {
        return Err(bad());
    }
    let lower = body.to_ascii_lowercase();
    if !matches!(lower.as_str(), "inf" | "infinity" | "nan")
        && !body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return Err(bad());
    }
    plain.parse::<f64>().map_err(|_| bad())
}

/// Split at the longest run of letters at the end: (number part, unit part).
fn split_unit(s: &str) -> (&str, &str) {
    let cut = s
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphabetic())
        .last()
        .map_or(s.len(), |(i, _)| i);
    s.split_at(cut)
}

/// `dask.utils.parse_bytes`: the number of bytes (dask's `int()`: truncated towards zero).
pub fn parse_bytes(s: &str) -> Result<i128, DaskGrammarError> {
    let mut t: String = s.chars().filter(|&c| c != ' ').collect();
    if !t.chars().any(|c| c.is_numeric()) {
        t.insert(0, '1');
    }
    let (num, unit) = split_unit(&t);
    let n = python_float(num)?;
    let mult = BYTE_UNITS
        .iter()
        .find(|(u, _)| *u == unit.to_lowercase())
        .map(|(_, m)| *m)
        .ok_or_else(|| DaskGrammarError::Unit {
            unit: unit.to_string(),
            what: "byte",
            known:
                "B, kB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB, or their first one or two letters",
        })?;
    let v = n * mult;
    if !v.is_finite() || v.abs() >= 2f64.powi(127) {
        return Err(DaskGrammarError::Range(s.to_string()));
    }
    Ok(v.trunc() as i128)
}

/// `dask.utils.parse_timedelta` with its default unit (seconds): the number of seconds.
pub fn parse_timedelta(s: &str) -> Result<f64, DaskGrammarError> {
    let mut t: String = s.chars().filter(|&c| c != ' ').collect();
    match t.chars().next() {
        None => return Err(DaskGrammarError::Empty),
        Some(c) if !c.is_numeric() => t.insert(0, '1'),
        Some(_) => {}
    }
    let (num, unit) = split_unit(&t);
    let n = python_float(num)?;
    let unit = if unit.is_empty() { "seconds" } else { unit };
    let mult = TIME_UNITS
        .iter()
        .find(|(u, _)| *u == unit.to_lowercase())
        .map(|(_, m)| *m)
        .ok_or_else(|| DaskGrammarError::Unit {
            unit: unit.to_string(),
            what: "time",
            known: "s, ms, us, ns, m, h, d, w, and second(s), millisecond(s), microsecond(s), nanosecond(s), minute(s), hour(s), day(s), week(s)",
        })?;
    let v = n * mult;
    // dask's `int(result) == result` fails on infinity and NaN.
    if !v.is_finite() {
        return Err(DaskGrammarError::Range(s.to_string()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dask_docstring_examples() {
        assert_eq!(parse_bytes("100"), Ok(100));
        assert_eq!(parse_bytes("100 MB"), Ok(100_000_000));
        assert_eq!(parse_bytes("5.4 kB"), Ok(5400));
        assert_eq!(parse_bytes("1kiB"), Ok(1024));
        assert_eq!(parse_bytes("1e6 kB"), Ok(1_000_000_000));
        assert_eq!(parse_bytes("MB"), Ok(1_000_000));
        assert!(parse_bytes("5 foos").is_err());
        assert_eq!(parse_timedelta("3.5 seconds"), Ok(3.5));
        assert_eq!(parse_timedelta("300ms"), Ok(0.3));
        assert_eq!(parse_timedelta(".5s"), Ok(1.5));
        assert!(parse_timedelta("2min").is_err());
        assert!(parse_timedelta("-5s").is_err());
    }

    /// Every case of the table generated with dask (`tests/py/dask_grammar.py`): the same value,
    /// or a refusal where dask refuses.
    #[test]
    fn agrees_with_dask_on_its_generated_table() {
        let table: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/dask_grammar.json")).unwrap();
        let mut checked = 0;
        for row in table["parse_bytes"].as_array().unwrap() {
            let s = row[0].as_str().unwrap();
            let want: Option<i128> = match &row[1] {
                serde_json::Value::Null => None,
                serde_json::Value::String(big) => match big.parse::<i128>() {
                    Ok(v) => Some(v),
                    Err(_) => {
                        // Beyond i128 dask still answers; arrakis refuses (no such memory).
                        assert!(parse_bytes(s).is_err(), "{s:?}: {big}");
                        checked += 1;
                        continue;
                    }
                },
                v => Some(v.as_i64().map(i128::from).unwrap()),
            };
            assert_eq!(parse_bytes(s).ok(), want, "parse_bytes({s:?})");
            checked += 1;
        }
        for row in table["parse_timedelta"].as_array().unwrap() {
            let s = row[0].as_str().unwrap();
            let want = row[1].as_f64();
            let got = parse_timedelta(s).ok();
            assert_eq!(
                got.map(f64::to_bits),
                want.map(f64::to_bits),
                "parse_timedelta({s:?}): {got:?} vs dask {want:?}"
            );
            checked += 1;
        }
        assert!(checked > 1500, "{checked}");
    }
}
