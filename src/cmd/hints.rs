//! Hints for Arrakis's command-line habits when clap refuses a command line: Arrakis's
//! `--skip_<stage>` and other underscore flags, its `datadir field` positional order, `-v`.
//! Each hint is a command that pastes as it is.
//!
//! Must never: change what a command line means (hints are printed after clap's error, and the
//! command still fails).

use std::path::Path;

/// Arrakis flags whose arrakis spelling differs only by `-` for `_`.
const SPELLED_WITH_DASHES: &[&str] = &[
    "dask_config",
    "imager_dask_config",
    "keep_going",
    "dry_run",
    "full_check",
];

/// A hint for the refused command line `args` (without the program name), if one applies.
pub fn for_args(args: &[String]) -> Option<String> {
    let sub = args.iter().find(|a| !a.starts_with('-'))?.as_str();
    for a in args {
        let Some(flag) = a.strip_prefix("--") else {
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        if SPELLED_WITH_DASHES.contains(&name) {
            return Some(format!("arrakis spells it --{}", name.replace('_', "-")));
        }
        if name.contains('_') {
            // An Arrakis pipeline option: a parameter here.
            let v = match (name.starts_with("skip_") || name == "imager_only", value) {
                (_, Some(v)) => v.to_string(),
                (true, None) => "true".into(),
                (false, None) => "VALUE".into(),
            };
            return Some(format!(
                "--{name} is Arrakis's command-line option; arrakis takes it as a parameter: --set {name}={v} (or `{name}: {v}` in FIELD/arrakis.yaml, which every build of the field reads)"
            ));
        }
    }
    if args.iter().any(|a| a == "-v" || a == "--verbose")
        && matches!(sub, "build" | "status" | "demo")
    {
        return Some("arrakis has no -v: progress is shown by default (-q: errors only); `--report FILE` writes every target's outcome, `arrakis explain FIELD TARGET` says why one runs".into());
    }
    // Arrakis's `datadir field` order: two positionals where arrakis takes FIELD and --datadir.
    if matches!(sub, "build" | "status" | "explain" | "dag" | "archive") {
        let pos: Vec<&String> = args
            .iter()
            .skip_while(|a| a.as_str() != sub)
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .collect();
        if sub != "explain" && pos.len() >= 2 && Path::new(pos[0]).join(pos[1]).is_dir() {
            let rest: Vec<&str> = args
                .iter()
                .skip_while(|a| a.as_str() != sub)
                .skip(1)
                .filter(|a| *a != pos[0] && *a != pos[1])
                .map(|s| s.as_str())
                .collect();
            let tail = if rest.is_empty() {
                String::new()
            } else {
                format!(" {}", rest.join(" "))
            };
            return Some(format!(
                "arrakis takes the field first and the data directory as an option: arrakis {sub} {} --datadir {}{tail}",
                pos[1], pos[0]
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(line: &str) -> Option<String> {
        for_args(
            &line
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn arrakis_habits_get_hints_that_paste() {
        let h = hint("build F --skip_imager").unwrap();
        assert!(h.contains("--set skip_imager=true"), "{h}");
        let h = hint("build F --cutoff=-5").unwrap_or_default();
        assert!(!h.contains("--set"), "{h}");
        let h = hint("build F --ms_glob_pattern x").unwrap();
        assert!(h.contains("--set ms_glob_pattern=VALUE"), "{h}");
        assert_eq!(
            hint("build F --dask_config c.yaml").unwrap(),
            "arrakis spells it --dask-config"
        );
        assert!(hint("build F -v").unwrap().contains("no -v"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("RACS_X")).unwrap();
        let d = dir.path().display().to_string();
        let h = hint(&format!("build {d} RACS_X -j 2")).unwrap();
        assert_eq!(
            h,
            format!("arrakis takes the field first and the data directory as an option: arrakis build RACS_X --datadir {d} -j 2")
        );
        assert_eq!(hint("build A B"), None);
    }
}
