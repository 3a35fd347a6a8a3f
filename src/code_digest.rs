// The source files a stage's code is made of: its module and every module of this crate it
// refers to, transitively (`crate::`, `super::` and `self::` paths, paths through a module's own
// submodules, `use` groups, `mod` declarations, `include_str!`/`include_bytes!` files).
// `build.rs` includes this file to digest each stage module's closure into the key of its
// builtins (so a change to a stage's code, or to anything it calls, reruns that stage and what
// reads it, and nothing else); the crate compiles it too (`crate::code_digest`), for its tests.
//
// Plain std only (build scripts cannot use the crate's dependencies). Module granularity: a
// change anywhere in a module file counts, comments included (conservative).

#[allow(dead_code)]
pub mod scan {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    /// The module path of a source file under `src`: `src/stages/rmclean.rs` → [stages,
    /// rmclean]; `src/stages/catalogue/mod.rs` → [stages, catalogue]; `src/lib.rs` → [].
    fn module_of(src: &Path, file: &Path) -> Vec<String> {
        let rel = file.strip_prefix(src).unwrap_or(file);
        let mut segs: Vec<String> = rel
            .iter()
            .map(|s| s.to_string_lossy().to_string())
            .collect();
        if let Some(last) = segs.pop() {
            let stem = last.trim_end_matches(".rs").to_string();
            if stem != "mod" && stem != "lib" && stem != "main" {
                segs.push(stem);
            }
        }
        segs
    }

    /// The file of module `segs` (`a/b.rs` or `a/b/mod.rs`), if there is one.
    fn module_file(src: &Path, segs: &[String]) -> Option<PathBuf> {
        if segs.is_empty() {
            return Some(src.join("lib.rs")).filter(|p| p.is_file());
        }
        let base = segs.iter().fold(src.to_path_buf(), |p, s| p.join(s));
        let file = base.with_extension("rs");
        if file.is_file() {
            return Some(file);
        }
        let m = base.join("mod.rs");
        m.is_file().then_some(m)
    }

    /// The longest module prefix of `path` that has a file: the file an item path lives in.
    fn resolve(src: &Path, path: &[String]) -> Option<PathBuf> {
        (1..=path.len())
            .rev()
            .find_map(|n| module_file(src, &path[..n]))
    }

    fn ident_at(b: &[u8], mut i: usize) -> (String, usize) {
        let s = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        (String::from_utf8_lossy(&b[s..i]).to_string(), i)
    }

    fn skip_ws(b: &[u8], mut i: usize) -> usize {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    }

    /// Paths starting at `b[i]` (after a `crate::`-like prefix), with `use` groups expanded:
    /// `a::b::{c, d::e}` → a::b::c, a::b::d::e (and a::b itself). Each is pushed onto `out`
    /// after `prefix`.
    fn paths_at(b: &[u8], i: usize, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
        let mut cur = prefix.to_vec();
        let mut i = skip_ws(b, i);
        loop {
            if i < b.len() && b[i] == b'{' {
                // A group: each item relative to `cur`.
                out.push(cur.clone());
                i += 1;
                loop {
                    i = skip_ws(b, i);
                    if i >= b.len() || b[i] == b'}' {
                        return i + 1;
                    }
                    i = paths_at(b, i, &cur, out);
                    i = skip_ws(b, i);
                    if i < b.len() && b[i] == b',' {
                        i += 1;
                    }
                }
            }
            let (id, j) = ident_at(b, i);
            if id.is_empty() {
                out.push(cur);
                return i;
            }
            if id != "self" {
                cur.push(id);
            }
            i = j;
            if b.get(i..i + 2) == Some(b"::") {
                i = skip_ws(b, i + 2);
            } else {
                out.push(cur);
                return i;
            }
        }
    }

    /// Modules that are the engine and the stage framework, not any stage's code: a change
    /// there cannot change what a stage writes for the same inputs and parameters (the
    /// parameter values are in the key already); one that does bumps the stages' VERSION.
    pub const NOT_STAGE_CODE: &[&str] = &[
        "archive",
        "atomic",
        "cache",
        "cli",
        "cmd",
        "code_digest",
        "compare",
        "config",
        "diag",
        "exec",
        "graph",
        "hash",
        "init",
        "limits",
        "progress",
        "region",
        "rules",
        "session",
        "simulate",
        "snapshot",
        "store",
        "stages/mod.rs",
        "stages/params.rs",
        "lib.rs",
    ];

    fn excluded(src: &Path, file: &Path) -> bool {
        let rel = file.strip_prefix(src).unwrap_or(file);
        let first = rel
            .iter()
            .next()
            .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string());
        NOT_STAGE_CODE
            .iter()
            .any(|x| first.as_deref() == Some(*x) || rel == Path::new(x))
    }

    /// The submodules a module file declares from its own file (`mod x;`, with any
    /// visibility): the names its relative paths may start with.
    fn child_modules(b: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(k) = b[i..].windows(4).position(|w| w == b"mod ") {
            let at = i + k;
            let word_start = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
            let (id, j) = ident_at(b, skip_ws(b, at + 4));
            if word_start && !id.is_empty() && b.get(skip_ws(b, j)) == Some(&b';') {
                out.push(id);
            }
            i = at + 4;
        }
        out
    }

    /// The files `file` refers to; its `mod` declarations only when it is `root` or inside it
    /// (a parent module declares every sibling: following those would take in everything),
    /// elsewhere the submodules its relative paths name (`fits/mod.rs`'s `reader::…`).
    /// Its unit tests (from `#[cfg(test)]` on) are not its code.
    fn refs(src: &Path, file: &Path, root: &[String]) -> Vec<PathBuf> {
        let Ok(mut text) = std::fs::read(file) else {
            return Vec::new();
        };
        if let Some(k) = text.windows(12).position(|w| w == b"#[cfg(test)]") {
            text.truncate(k);
        }
        let b = &text[..];
        let here = module_of(src, file);
        let children = child_modules(b);
        let mut paths: Vec<Vec<String>> = Vec::new();
        let mut files = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let word_start = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
            if !word_start {
                i += 1;
                continue;
            }
            // A path relative to this module through one of its own submodules
            // (`reader::PlaneReader`, `use table::{..}`), not the tail of a longer path.
            let relative_child = || {
                let (id, j) = ident_at(b, i);
                let tail = i >= 2 && &b[i - 2..i] == b"::";
                !tail && b[j..].starts_with(b"::") && children.contains(&id)
            };
            if b[i..].starts_with(b"crate::") {
                i = paths_at(b, i + 7, &[], &mut paths);
            } else if b[i..].starts_with(b"super::") {
                let mut base = here.clone();
                while b[i..].starts_with(b"super::") {
                    base.pop();
                    i += 7;
                }
                i = paths_at(b, i, &base, &mut paths);
            } else if b[i..].starts_with(b"self::") {
                i = paths_at(b, i + 6, &here, &mut paths);
            } else if relative_child() {
                i = paths_at(b, i, &here, &mut paths);
            } else if b[i..].starts_with(b"mod ") {
                let (id, j) = ident_at(b, skip_ws(b, i + 4));
                let j = skip_ws(b, j);
                if !id.is_empty() && b.get(j) == Some(&b';') && here.starts_with(root) {
                    let mut p = here.clone();
                    p.push(id);
                    paths.push(p);
                }
                i = j.max(i + 1);
            } else if b[i..].starts_with(b"include_str!(\"")
                || b[i..].starts_with(b"include_bytes!(\"")
            {
                let s = i + b[i..].iter().position(|&c| c == b'"').unwrap_or(0) + 1;
                let e = s + b[s..].iter().position(|&c| c == b'"').unwrap_or(0);
                let rel = String::from_utf8_lossy(&b[s..e]).to_string();
                if let Some(dir) = file.parent() {
                    let p = dir.join(&rel);
                    if p.is_file() {
                        files.push(p);
                    }
                }
                i = e + 1;
            } else {
                i += 1;
            }
        }
        files.extend(paths.iter().filter_map(|p| resolve(src, p)));
        files
    }

    /// Every source file the module file `start` is made of, transitively (itself included),
    /// under the crate's `src` directory.
    pub fn closure(src: &Path, start: &Path) -> BTreeSet<PathBuf> {
        let root = module_of(src, start);
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.to_path_buf()];
        while let Some(f) = todo.pop() {
            if (f != start && excluded(src, &f)) || !seen.insert(f.clone()) {
                continue;
            }
            if f.extension().is_some_and(|e| e == "rs") {
                todo.extend(refs(src, &f, &root));
            }
        }
        seen
    }

    /// The stage modules under `src/stages`: (module name, its file), sorted.
    pub fn stage_modules(src: &Path) -> Vec<(String, PathBuf)> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(src.join("stages"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(stem) = name.strip_suffix(".rs") {
                if stem != "mod" {
                    v.push((stem.to_string(), p));
                }
            } else if p.join("mod.rs").is_file() {
                v.push((name, p.join("mod.rs")));
            }
        }
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::scan::*;
    use std::path::Path;

    fn names(src: &Path, module: &str) -> Vec<String> {
        let (_, file) = stage_modules(src)
            .into_iter()
            .find(|(m, _)| m == module)
            .unwrap();
        closure(src, &file)
            .iter()
            .map(|p| p.strip_prefix(src).unwrap().display().to_string())
            .collect()
    }

    #[test]
    #[ignore]
    fn print_closures() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for (m, _) in stage_modules(&src) {
            eprintln!("{m}: {:?}", names(&src, &m));
        }
    }

    /// Per stage module, the digest of its closure's contents (as `build.rs` makes them).
    fn digests(src: &Path) -> std::collections::BTreeMap<String, String> {
        stage_modules(src)
            .into_iter()
            .map(|(m, file)| {
                let mut h = blake3::Hasher::new();
                for p in closure(src, &file) {
                    h.update(p.strip_prefix(src).unwrap().to_string_lossy().as_bytes());
                    h.update(&std::fs::read(&p).unwrap());
                }
                (m, h.finalize().to_hex().to_string())
            })
            .collect()
    }

    #[test]
    fn editing_a_stage_changes_its_digest_and_no_other() {
        let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        for e in walkdir::WalkDir::new(&real).into_iter().flatten() {
            let to = src.join(e.path().strip_prefix(&real).unwrap());
            if e.file_type().is_dir() {
                std::fs::create_dir_all(&to).unwrap();
            } else {
                std::fs::copy(e.path(), &to).unwrap();
            }
        }
        let before = digests(&src);
        let edit = |rel: &str| {
            let p = src.join(rel);
            let mut t = std::fs::read_to_string(&p).unwrap();
            t.push_str("\nfn an_edit() {}\n");
            std::fs::write(&p, t).unwrap();
        };
        edit("stages/rmclean.rs");
        let after = digests(&src);
        let changed: Vec<&String> = before.keys().filter(|m| before[*m] != after[*m]).collect();
        assert_eq!(changed, ["rmclean"]);
        // A kernel several stages call: exactly those.
        edit("science/primary_beam.rs");
        let again = digests(&src);
        let changed: Vec<&String> = after.keys().filter(|m| after[*m] != again[*m]).collect();
        assert_eq!(changed, ["linmos"]);
        // The interpolation: the stages that regrid, not every stage that reads a FITS file
        // (the reader takes only the pixel layout, `science/layout.rs`).
        edit("science/regrid.rs");
        let regrid = digests(&src);
        let changed: Vec<&String> = again.keys().filter(|m| again[*m] != regrid[*m]).collect();
        assert_eq!(changed, ["linmos", "merge"]);
        // The FITS reader's transposes (a submodule `fits/mod.rs` names relatively): every
        // stage that reads or writes a cube.
        edit("fits/transpose.rs");
        let fits = digests(&src);
        let changed: Vec<&String> = regrid.keys().filter(|m| regrid[*m] != fits[*m]).collect();
        for m in ["cutout", "linmos", "frion", "rmsynth", "rm3d", "beams"] {
            assert!(changed.contains(&&m.to_string()), "{m} not in {changed:?}");
        }
        for m in ["rm1d", "products", "stamp", "params"] {
            assert!(!changed.contains(&&m.to_string()), "{m} in {changed:?}");
        }
        // The engine is not a stage's code.
        edit("exec/local.rs");
        assert_eq!(digests(&src), fits);
    }

    #[test]
    fn a_stage_is_its_module_and_what_it_calls_not_its_siblings() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let rmclean = names(&src, "rmclean");
        assert!(
            rmclean.contains(&"stages/rmclean.rs".to_string()),
            "{rmclean:?}"
        );
        assert!(
            rmclean.contains(&"science/rm_clean.rs".to_string()),
            "{rmclean:?}"
        );
        for other in [
            "stages/cutout.rs",
            "stages/linmos.rs",
            "stages/rmsynth.rs",
            "science/frion.rs",
        ] {
            assert!(
                !rmclean.contains(&other.to_string()),
                "{other} in {rmclean:?}"
            );
        }
        // A directory module takes in its submodules; a file it includes counts too.
        let cat = names(&src, "catalogue");
        assert!(
            cat.iter().any(|f| f == "stages/catalogue/write.rs"),
            "{cat:?}"
        );
        let fix = names(&src, "fix_ms");
        assert!(fix.iter().any(|f| f == "stages/fix_ms.py"), "{fix:?}");
        // A module outside the stage takes in the submodules its relative paths name
        // (`fits/mod.rs`: `pub use reader::PlaneReader`, `transpose::transpose_swap32`).
        let linmos = names(&src, "linmos");
        for f in ["fits/reader.rs", "fits/transpose.rs", "fits/table.rs"] {
            assert!(linmos.iter().any(|x| x == f), "{f} not in {linmos:?}");
        }
    }

    #[test]
    fn relative_paths_name_only_the_modules_own_submodules() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("stages")).unwrap();
        std::fs::create_dir_all(src.join("kit")).unwrap();
        let put = |rel: &str, text: &str| std::fs::write(src.join(rel), text).unwrap();
        put(
            "stages/one.rs",
            "use crate::kit::Thing;\nfn f() { crate::kit::helper(); }\n",
        );
        put(
            "kit/mod.rs",
            "mod inner;\npub(crate) mod unused;\nmod other;\npub use inner::Thing;\n\
             fn g() { std::other::x(); regex::inner(); }\n",
        );
        for f in ["kit/inner.rs", "kit/unused.rs", "kit/other.rs"] {
            put(f, "pub struct Thing;\n");
        }
        let (_, file) = stage_modules(&src).into_iter().next().unwrap();
        let got: Vec<String> = closure(&src, &file)
            .iter()
            .map(|p| p.strip_prefix(&src).unwrap().display().to_string())
            .collect();
        // `inner::` is followed; `other` only appears after `::`, `unused` not at all, and
        // `inner` after another crate's name is not this module's.
        assert_eq!(got, ["kit/inner.rs", "kit/mod.rs", "stages/one.rs"]);
    }
}
