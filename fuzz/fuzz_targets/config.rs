//! Pipeline configuration files and `--set` values on the compiled-in rules: parameters or an
//! error naming the file (or the `--set`), never a panic.
#![no_main]

use std::io::Write;
use std::sync::OnceLock;

use arrakis::config;
use arrakis::rules::{embedded, RuleSet};
use arrakis::stages::registry;
use libfuzzer_sys::fuzz_target;

fn rules() -> &'static RuleSet {
    static R: OnceLock<RuleSet> = OnceLock::new();
    R.get_or_init(|| embedded(&registry()).expect("the compiled-in rules load"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line, if it starts with `set `, is a list of --set values; the rest a config file.
    let (sets, body) = match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("set ") => (
            first[4..]
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect::<Vec<_>>(),
            rest,
        ),
        _ => (Vec::new(), text),
    };
    let mut f = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("a temporary file");
    f.write_all(body.as_bytes()).expect("write");
    let path = f.path().to_path_buf();
    if let Err(e) = config::resolve(&rules().param_decls(), &[path.clone()], &sets) {
        let msg = e.to_string();
        let named = msg.contains(&*path.to_string_lossy()) || msg.contains("--set");
        assert!(named, "error names neither the file nor --set: {msg}");
    }
});
