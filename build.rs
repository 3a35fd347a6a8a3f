// Embeds the project's rules/*.yaml into the binary so `arrakis` works from any directory.
use std::io::Write;

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("embedded_rules.rs");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().map(|x| x == "yaml").unwrap_or(false));
    files.sort();
    let mut f = std::fs::File::create(out).unwrap();
    writeln!(f, "&[").unwrap();
    for p in files {
        println!("cargo:rerun-if-changed={}", p.display());
        writeln!(
            f,
            "    ({:?}, include_str!({:?})),",
            p.file_name().unwrap().to_string_lossy(),
            p.display().to_string()
        )
        .unwrap();
    }
    writeln!(f, "]").unwrap();
}
