//! The catalogue reader on arbitrary islands/components CSVs (and field descriptions): units or
//! an error naming the file, never a panic; every accepted island and component name is usable
//! as one path component inside the field directory.
#![no_main]

use std::path::{Component, Path};
use std::sync::OnceLock;

use arrakis::rules::{embedded, RuleSet};
use arrakis::stages::registry;
use arrakis::units::{Needs, Units};
use libfuzzer_sys::fuzz_target;

const FIELD_YAML: &str = "field: F\nbeams:\n  - {beam: 0, ra_deg: 10.0, dec_deg: -30.0}\n  - {beam: 1, ra_deg: 11.0, dec_deg: -30.0}\n";

fn needs() -> &'static Needs {
    static N: OnceLock<Needs> = OnceLock::new();
    N.get_or_init(|| {
        let rules: RuleSet = embedded(&registry()).expect("the compiled-in rules load");
        Needs::of_rules(&rules)
    })
}

fn dir() -> &'static Path {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| {
        let d = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir_all(d.path().join("F/catalogue")).expect("mkdir");
        d
    })
    .path()
}

fuzz_target!(|data: &[u8]| {
    // islands.csv, components.csv and optionally field.yaml, separated by NUL bytes.
    let mut parts = data.splitn(3, |&b| b == 0);
    let islands = parts.next().unwrap_or_default();
    let comps = parts.next();
    let field_yaml = parts.next();
    let field = dir().join("F");
    std::fs::write(field.join("catalogue/islands.csv"), islands).expect("write");
    let comps_path = field.join("catalogue/components.csv");
    match comps {
        Some(c) => std::fs::write(&comps_path, c).expect("write"),
        None => {
            let _ = std::fs::remove_file(&comps_path);
        }
    }
    std::fs::write(
        field.join("field.yaml"),
        field_yaml.unwrap_or(FIELD_YAML.as_bytes()),
    )
    .expect("write");
    match Units::load(&field, 1.0, None, needs()) {
        Ok(u) => {
            for r in &u.rejected {
                assert!(r.contains(&*field.to_string_lossy()), "refused row without its file: {r}");
            }
            let names = u.sources.iter().chain(u.components.iter().map(|(n, _)| n));
            for name in names {
                let p = field.join("cutouts").join(name);
                assert_eq!(
                    p.parent(),
                    Some(field.join("cutouts").as_path()),
                    "name {name:?} is not one path component"
                );
                assert!(
                    Path::new(name)
                        .components()
                        .all(|c| matches!(c, Component::Normal(_))),
                    "name {name:?}"
                );
            }
            assert_eq!(u.beam_sources.len(), u.beams.len());
            assert_eq!(u.source_components.len(), u.sources.len());
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&*field.to_string_lossy()),
                "error without the file: {msg}"
            );
        }
    }
});
