//! Helpers for user-facing diagnostics: where a YAML key sits in its file, and the nearest known
//! name to a typo.
//!
//! Owns: nothing stateful. Must never: decide whether something is an error (callers do).

/// 1-based line of the key at `path` (outer to inner) in block-style YAML `text`, or of the
/// deepest ancestor found. `None` when not even the first key is found.
pub fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let mut best = None;
    let mut depth = 0;
    let mut child_indent: Option<usize> = None;
    let mut parent_indent: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        if depth == path.len() {
            break;
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if let Some(p) = parent_indent {
            if indent <= p {
                // Left the parent's block without finding the child.
                break;
            }
        }
        let body = trimmed.trim_start_matches("- ");
        let indent = indent + (trimmed.len() - body.len());
        match child_indent {
            None => child_indent = Some(indent),
            Some(c) if c != indent => continue,
            Some(_) => {}
        }
        let key = path[depth];
        // A block-list item that is the key itself (`- cutoff` under `params:`).
        let item = trimmed.len() != body.len() && body.trim_end() == key;
        let matches = item
            || body
                .strip_prefix(key)
                .map(|rest| rest.trim_start().starts_with(':'))
                .unwrap_or(false)
            || body
                .strip_prefix(&format!("\"{key}\""))
                .map(|rest| rest.trim_start().starts_with(':'))
                .unwrap_or(false)
            || body
                .strip_prefix(&format!("'{key}'"))
                .map(|rest| rest.trim_start().starts_with(':'))
                .unwrap_or(false);
        if matches {
            best = Some(i + 1);
            depth += 1;
            parent_indent = Some(indent);
            child_indent = None;
        }
    }
    best
}

/// The known name closest to `unknown`, if it is close enough to be a plausible typo.
pub fn nearest<'a, I>(unknown: &str, known: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(usize, &str)> = None;
    for k in known {
        let d = strsim::damerau_levenshtein(&unknown.to_lowercase(), &k.to_lowercase());
        if best.map(|(bd, _)| d < bd).unwrap_or(true) {
            best = Some((d, k));
        }
    }
    let (d, k) = best?;
    let limit = (unknown.chars().count() / 3).max(2);
    (d <= limit).then(|| k.to_string())
}

/// ", did you mean 'x'?" or "" when nothing is close.
pub fn did_you_mean<'a, I>(unknown: &str, known: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    match nearest(unknown, known) {
        Some(k) => format!("; did you mean '{k}'?"),
        None => String::new(),
    }
}

/// "FILE:LINE" or "FILE" when the line is unknown.
pub fn location(file: &std::path::Path, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{}:{l}", file.display()),
        None => file.display().to_string(),
    }
}

/// A command line for field `field` in `field_dir` that pastes as it is: `arrakis SUB FIELD`,
/// with `--datadir` when the field is not in the working directory.
pub fn field_command(sub: &str, field_dir: &std::path::Path, field: &str) -> String {
    let datadir = field_dir.parent().unwrap_or(std::path::Path::new(""));
    let d = datadir.to_string_lossy();
    if d.is_empty() || d == "." {
        format!("arrakis {sub} {field}")
    } else {
        format!("arrakis {sub} {field} --datadir {d}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys() {
        let text = "a: 1\nb:\n  c: 2\n  d:\n    e: 3\nc: 4\n";
        assert_eq!(line_of(text, &["a"]), Some(1));
        assert_eq!(line_of(text, &["b", "c"]), Some(3));
        assert_eq!(line_of(text, &["b", "d", "e"]), Some(5));
        assert_eq!(line_of(text, &["c"]), Some(6));
        assert_eq!(line_of(text, &["b", "zz"]), Some(2));
    }

    #[test]
    fn suggests_close_names_only() {
        let known = ["cutoff", "max_iter", "gain"];
        assert_eq!(nearest("cutof", known), Some("cutoff".into()));
        assert_eq!(nearest("maxiter", known), Some("max_iter".into()));
        assert_eq!(nearest("zzzzzzzz", known), None);
    }
}
