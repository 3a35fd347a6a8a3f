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
    git_commit();
    stage_code();
}

include!("src/code_digest.rs");

/// `OUT_DIR/stage_code.rs`: per builtin, the digest of its stage module's code and everything
/// that code calls in this crate (`scan::closure`), for the implementation part of its key.
fn stage_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", root.join("assets").display());
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("stage_code.rs");
    let mut f = std::fs::File::create(out).unwrap();
    writeln!(f, "&[").unwrap();
    for (module, file) in scan::stage_modules(&src) {
        let mut h = blake3::Hasher::new();
        for p in scan::closure(&src, &file) {
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .to_string();
            h.update(rel.as_bytes());
            h.update(&[0]);
            h.update(&std::fs::read(&p).unwrap_or_default());
        }
        let digest = h.finalize().to_hex()[..16].to_string();
        // The builtins the module defines: `name: "..."` of each `Contract`.
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for part in text.split("Contract {").skip(1) {
            if let Some(rest) = part.split("name: \"").nth(1) {
                let name = rest.split('"').next().unwrap_or_default();
                writeln!(f, "    ({name:?}, {module:?}, {digest:?}),").unwrap();
            }
        }
    }
    writeln!(f, "]").unwrap();
}

/// `ARRAKIS_COMMIT`: the commit the binary is built from (for `--version`), "unknown" outside
/// a git checkout; rebuilt when HEAD moves.
fn git_commit() {
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    for p in ["HEAD", "logs/HEAD"] {
        if let Some(path) = git(&["rev-parse", "--git-path", p]) {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let date = git(&["log", "-1", "--format=%cs"]).unwrap_or_default();
    let text = if date.is_empty() {
        format!("commit {commit}")
    } else {
        format!("commit {commit}, {date}")
    };
    println!("cargo:rustc-env=ARRAKIS_COMMIT={text}");
}
