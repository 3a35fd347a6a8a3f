//! Keeps the walkthrough "Adding a stage" in ARCHITECTURE.md true: every code block in it is a
//! verbatim excerpt of the files it names, and the stage it adds (`spectrum`) does what the
//! walkthrough says: no target unless `write_spectra` is on; then only its targets run; its files
//! hold rmsynth's spectrum; RM-Tools reads one and finds arrakis's peak.

use std::path::Path;
use std::process::Command;

use arrakis::simulate::{simulate, SimOptions};
use arrakis::stages::products::SynthProduct;

use crate::common::*;

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The fenced ```rust and ```yaml blocks of the section headed `title`.
fn code_blocks(doc: &str, title: &str) -> Vec<String> {
    let start = doc
        .find(title)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no section {title}"));
    let rest = &doc[start + title.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(l) = lines.next() {
        if l == "```rust" || l == "```yaml" {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            blocks.push(body.join("\n") + "\n");
        }
    }
    blocks
}

#[test]
fn the_walkthrough_quotes_the_code_as_it_is() {
    let doc = read("ARCHITECTURE.md");
    let files: Vec<(&str, String)> = [
        "src/stages/params.rs",
        "src/stages/spectrum.rs",
        "src/stages/mod.rs",
        "rules/spectrum.yaml",
        "tests/it/adding_a_stage.rs",
    ]
    .into_iter()
    .map(|f| (f, read(f)))
    .collect();
    let blocks = code_blocks(&doc, "## Adding a stage");
    assert!(blocks.len() >= 6, "{} code blocks", blocks.len());
    for b in &blocks {
        assert!(
            files.iter().any(|(_, text)| text.contains(b.as_str())),
            "this block of ARCHITECTURE.md's \"Adding a stage\" is in none of {:?}; update the walkthrough:\n{b}",
            files.iter().map(|(f, _)| *f).collect::<Vec<_>>()
        );
    }
}

#[test]
fn the_stage_it_adds_writes_spectra_rm_tools_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let field = "RACS_SPEC";
    simulate(data, &SimOptions::small(field, 7)).unwrap();
    let cache = data.join("cache");
    let (out, r) = build_real(&cache, data, field, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !r.keys().any(|id| id.starts_with("spectrum/")),
        "on by default"
    );

    let r = build_real(&cache, data, field, &["--set", "write_spectra=true"]).1;
    let ran = with_status(&r, "ran");
    assert!(!ran.is_empty() && ran.iter().all(|id| id.starts_with("spectrum/")));

    // Each file holds the channels of rmsynth's product that are not blank, in order.
    let mut dirs = std::collections::HashMap::new();
    for e in walkdir::WalkDir::new(data.join(field).join("cutouts")) {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(comp) = name.strip_suffix("_RMsynth.json") {
            dirs.insert(comp.to_string(), e.path().parent().unwrap().to_path_buf());
        }
    }
    let mut measured: Option<(String, SynthProduct)> = None;
    for id in &ran {
        let comp = id.trim_start_matches("spectrum/");
        let dir = &dirs[comp];
        let product = SynthProduct::read(&dir.join(format!("{comp}_RMsynth.json"))).unwrap();
        let dat = dir.join(format!("{comp}_spectrum.dat"));
        let rows: Vec<Vec<f64>> = std::fs::read_to_string(&dat)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().map(|v| v.parse().unwrap()).collect())
            .collect();
        let Some(m) = product.measured() else {
            assert!(rows.is_empty(), "{comp}: rows for an unmeasured component");
            continue;
        };
        let s = &m.spectrum;
        let want: Vec<[f64; 7]> = (0..s.freq_hz.len())
            .map(|k| {
                [
                    s.freq_hz[k],
                    s.i[k],
                    s.q[k],
                    s.u[k],
                    s.di[k],
                    s.dq[k],
                    s.du[k],
                ]
            })
            .filter(|r| r.iter().all(|v| v.is_finite()))
            .collect();
        assert_eq!(rows.len(), want.len(), "{comp}");
        for (got, w) in rows.iter().zip(&want) {
            for (a, b) in got.iter().zip(w) {
                assert!((a - b).abs() <= 1e-9 * b.abs(), "{comp}: {a} vs {b}");
            }
        }
        if measured.is_none() {
            measured = Some((comp.to_string(), product.clone()));
        }
    }

    // Rejected channels kept as NaN: the stage's parameter reruns the stage only, and RM-Tools
    // on that file (its NaN channels flagged, as rmsynth's were) with the pipeline's parameters
    // finds the peak arrakis's rmsynth found.
    let blanks = [
        "--set",
        "write_spectra=true",
        "--set",
        "spectrum_blanks=nan",
    ];
    let r = build_real(&cache, data, field, &blanks).1;
    assert_eq!(
        with_status(&r, "ran"),
        ran,
        "only the spectrum targets rerun"
    );
    let (comp, product) = measured.expect("a measured component");
    let dat = dirs[&comp].join(format!("{comp}_spectrum.dat"));
    let m = product.measured().unwrap();
    let rows = std::fs::read_to_string(&dat)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    assert_eq!(
        rows,
        m.spectrum.freq_hz.len(),
        "every channel, blanks as NaN"
    );
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.json");
    let out_json = dir.path().join("out.json");
    let case = serde_json::json!([{
        "file": dat, "poly_ord": 3, "fit_function": "log", "n_samples": 5.0, "dphi": null,
        "phi_max": null, "weight_type": "variance", "fit_rmsf": false, "cutoff": -8.0,
        "max_iter": 10000, "gain": 0.1, "window": null
    }]);
    std::fs::write(&cases, case.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/rmtools_ref.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(&cases)
        .arg(&out_json)
        .output()
        .unwrap();
    assert!(out.status.success(), "RM-Tools: {}", text(&out));
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_json).unwrap()).unwrap();
    let theirs = &reference[0]["synth"];
    let phi = theirs["phiPeakPIfit_rm2"].as_f64().unwrap();
    let amp = theirs["ampPeakPIfit"].as_f64().unwrap();
    assert!(
        (phi - m.synth.peak.phiPeakPIfit_rm2).abs() < 1e-4 * m.synth.fwhmRMSF,
        "RM-Tools' peak {phi} vs arrakis's {}",
        m.synth.peak.phiPeakPIfit_rm2
    );
    assert!(
        (amp - m.synth.peak.ampPeakPIfit).abs() < 1e-5 * amp.abs(),
        "RM-Tools' amplitude {amp} vs arrakis's {}",
        m.synth.peak.ampPeakPIfit
    );
}
