//! The rule loader on arbitrary rule files: it returns a rule set or an error naming a file, and
//! never panics; a rule set it accepts expands against a small field without panicking, and
//! every output path it makes stays inside the field directory.
#![no_main]

use std::path::{Component, Path, PathBuf};

use arrakis::config;
use arrakis::rules::{expand::expand, RuleSet};
use arrakis::stages::registry;
use arrakis::units::Units;
use libfuzzer_sys::fuzz_target;

/// Up to three rule files, separated by a line `%%`.
fn files(text: &str) -> Vec<(PathBuf, String)> {
    text.split("\n%%\n")
        .take(3)
        .enumerate()
        .map(|(i, t)| (PathBuf::from(format!("rules/r{i}.yaml")), t.to_string()))
        .collect()
}

fn small_units() -> Units {
    Units {
        field: "F".into(),
        beams: vec!["00".into(), "01".into()],
        sources: vec!["J1".into(), "J2".into()],
        components: vec![("J1_c1".into(), 0), ("J2_c1".into(), 1), ("J2_c2".into(), 1)],
        beam_sources: vec![vec![0, 1], vec![1]],
        source_components: vec![vec![0], vec![1, 2]],
        orphans: vec![],
        orphan_mask: vec![false, false],
        rejected: vec![],
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sources = files(text);
    let rules = match RuleSet::from_sources(&sources, &registry()) {
        Ok(r) => r,
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("rules/r"), "error without a file name: {msg}");
            return;
        }
    };
    let Ok(params) = config::resolve(&rules.param_decls(), &[], &[]) else {
        return;
    };
    let field_dir = Path::new("/nonexistent/F");
    let Ok(graph) = expand(&rules, &params, &small_units(), field_dir, &|_| Some("1".to_string())) else {
        return;
    };
    for t in &graph.targets {
        for o in &t.outputs {
            let p = Path::new(&o.rel);
            assert!(
                p.components().all(|c| matches!(c, Component::Normal(_))),
                "output {} of {} leaves the field directory",
                o.rel,
                t.id
            );
        }
    }
});
