//! Numbers written as Python and NumPy write them, so files RM-Tools users know (its `key=value`
//! summaries, `np.savetxt` columns, its `-v` listing) read the same from arrakis.
//!
//! Must never: round differently from Python (shortest round-trip digits, `repr`'s switch to
//! exponent form below 1e-4 and from 1e16, two-digit exponents).

/// Decimal digits (no dot) and the decimal exponent of the first digit, from Rust's shortest
/// round-trip `{:e}` form (`"5.59e-4"` → `("559", -4)`).
fn digits_exp(e_form: &str) -> (String, i32) {
    let (mant, exp) = e_form.split_once('e').unwrap_or((e_form, "0"));
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// Python's exponent suffix: `e-05`, `e+16`.
fn exp_suffix(e: i32) -> String {
    format!("e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

/// `repr`/`str` of a float from its shortest digits: fixed notation for 1e-4 ≤ |x| < 1e16
/// (and 0), with at least one digit after the dot; scientific otherwise.
fn repr_from(neg: bool, e_form: &str) -> String {
    let (digits, e) = digits_exp(e_form);
    let sign = if neg { "-" } else { "" };
    if digits.chars().all(|c| c == '0') {
        return format!("{sign}0.0");
    }
    if (-4..16).contains(&e) {
        let n = digits.len() as i32;
        let s = if e < 0 {
            format!("0.{}{}", "0".repeat((-e - 1) as usize), digits)
        } else if e + 1 >= n {
            format!("{}{}.0", digits, "0".repeat((e + 1 - n) as usize))
        } else {
            let (a, b) = digits.split_at((e + 1) as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{s}")
    } else {
        let (a, b) = digits.split_at(1);
        let m = if b.is_empty() {
            a.to_string()
        } else {
            format!("{a}.{b}")
        };
        format!("{sign}{m}{}", exp_suffix(e))
    }
}

fn special(x: f64) -> Option<&'static str> {
    if x.is_nan() {
        Some("nan")
    } else if x.is_infinite() {
        Some(if x > 0.0 { "inf" } else { "-inf" })
    } else {
        None
    }
}

/// Python's `str(x)` of a float (`744000000.0`, `1e-05`, `nan`).
pub fn repr_f64(x: f64) -> String {
    match special(x) {
        Some(s) => s.to_string(),
        None => repr_from(x.is_sign_negative(), &format!("{:e}", x.abs())),
    }
}

/// NumPy's `str(np.float32(x))` (the shortest digits that round-trip in single precision).
pub fn repr_f32(x: f32) -> String {
    match special(x as f64) {
        Some(s) => s.to_string(),
        None => repr_from(x.is_sign_negative(), &format!("{:e}", x.abs())),
    }
}

/// C's `%.{prec}e` (what `np.savetxt` writes by default with `prec` = 18).
pub fn sci(x: f64, prec: usize) -> String {
    if let Some(s) = special(x) {
        return s.to_string();
    }
    let s = format!("{:.*e}", prec, x);
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    format!("{m}{}", exp_suffix(e.parse().unwrap_or(0)))
}

/// C's `%.{sig}g`: `sig` significant digits, trailing zeros dropped, exponent form when the
/// exponent is below -4 or at least `sig`.
pub fn g(x: f64, sig: usize) -> String {
    if let Some(s) = special(x) {
        return s.to_string();
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let sig = sig.max(1);
    let e_form = format!("{:.*e}", sig - 1, x);
    let e: i32 = e_form
        .split_once('e')
        .map(|(_, e)| e.parse().unwrap_or(0))
        .unwrap_or(0);
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if e < -4 || e >= sig as i32 {
        let (m, _) = e_form.split_once('e').unwrap_or((&e_form, ""));
        format!("{}{}", trim(m.to_string()), exp_suffix(e))
    } else {
        let decimals = (sig as i32 - 1 - e).max(0) as usize;
        trim(format!("{:.*}", decimals, x))
    }
}

/// `np.savetxt` of columns: one row per line, `%.18e` fields separated by one space.
pub fn savetxt(cols: &[&[f64]]) -> String {
    let n = cols.first().map_or(0, |c| c.len());
    let mut out = String::with_capacity(n * cols.len() * 26);
    for k in 0..n {
        let row: Vec<String> = cols.iter().map(|c| sci(c[k], 18)).collect();
        out.push_str(&row.join(" "));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_prints_them() {
        // Each pair checked against CPython 3 `str(float)` / NumPy `str(np.float32)`.
        for (x, want) in [
            (744000000.0, "744000000.0"),
            (0.0005591345616044227, "0.0005591345616044227"),
            (25.032820779543492, "25.032820779543492"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (-0.0001, "-0.0001"),
            (0.0, "0.0"),
            (2.0, "2.0"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(repr_f64(x), want, "{x}");
        }
        assert_eq!(repr_f32(0.09746355), "0.09746355");
        assert_eq!(repr_f32(1.0171338), "1.0171338");
        assert_eq!(repr_f32(0.0), "0.0");
        assert_eq!(repr_f32(5.0), "5.0");
        assert_eq!(repr_f32(4.426_884e-5), "4.426884e-05");
    }

    #[test]
    fn printf_forms_match_c() {
        assert_eq!(sci(-3961.891357421875, 18), "-3.961891357421875000e+03");
        assert_eq!(sci(0.0, 18), "0.000000000000000000e+00");
        assert_eq!(sci(3.565888910088688e-4, 3), "3.566e-04");
        assert_eq!(g(48.73174996355039, 4), "48.73");
        assert_eq!(g(0.0002976484721713418, 4), "0.0002976");
        assert_eq!(g(0.08411468857485264, 4), "0.08411");
        assert_eq!(g(1.2e-5, 4), "1.2e-05");
        assert_eq!(g(340.58129729681815, 4), "340.6");
        assert_eq!(g(12346.0, 4), "1.235e+04");
        assert_eq!(g(2.0, 4), "2");
        assert_eq!(
            savetxt(&[&[1.0], &[-2.5]]),
            "1.000000000000000000e+00 -2.500000000000000000e+00\n"
        );
    }
}
