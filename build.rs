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
