//! Files written whole and atomically: a temporary name in the destination's own directory, then
//! a rename. Every output, record file, report, snapshot and receipt arrakis writes goes through
//! here or names its temporary files the same way.
//!
//! Owns: the temporary-name scheme (`.arrakis-tmp-<pid>-<n>-<name>`, keeping the extension so
//! tools that look at it still work), [`write_atomic`]/[`write_atomic_with`], and finding the
//! leftovers of a killed process ([`remove_temp_files`]).
//! Must never: leave the destination half-written: it either keeps its old bytes or has the new
//! ones; a failed write removes its temporary file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of every temporary output name; `arrakis gc` removes leftovers.
pub const TMP_PREFIX: &str = ".arrakis-tmp-";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The final file name a temporary output path stands for (the inverse of [`temp_path_for`]).
pub fn final_name_of(temp: &Path) -> Option<String> {
    let name = temp.file_name()?.to_string_lossy().to_string();
    let rest = name.strip_prefix(TMP_PREFIX)?;
    rest.splitn(3, '-').nth(2).map(str::to_string)
}

/// A fresh temporary path beside `final_path`.
pub fn temp_path_for(final_path: &Path) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = final_path
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    final_path.with_file_name(format!("{TMP_PREFIX}{}-{n}-{name}", std::process::id()))
}

/// Write `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |f| std::io::Write::write_all(f, bytes))
}

/// Write `path` atomically by streaming into a temporary file in the same directory (`write`
/// gets it open and empty), then renaming it into place; on any error the temporary file is
/// removed and `path` is untouched.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = temp_path_for(path);
    let res = std::fs::File::create(&tmp)
        .and_then(|mut f| write(&mut f))
        .and_then(|_| std::fs::rename(&tmp, path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Bytes free to unprivileged users on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct for a valid NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Remove leftover temporary files (from a killed process) under `dir`; how many, and their
/// bytes.
pub fn remove_temp_files(dir: &Path) -> std::io::Result<(usize, u64)> {
    let (mut n, mut bytes) = (0, 0);
    for entry in walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if entry.file_type().is_file()
            && entry.file_name().to_string_lossy().starts_with(TMP_PREFIX)
        {
            bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(entry.path()).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot remove {}: {e}", entry.path().display()),
                )
            })?;
            n += 1;
        }
    }
    Ok((n, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_round_trip_and_writes_are_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a-b.c.fits");
        let tmp = temp_path_for(&dest);
        assert_eq!(tmp.parent(), dest.parent());
        assert!(tmp.to_string_lossy().ends_with(".fits"));
        assert_eq!(final_name_of(&tmp).as_deref(), Some("a-b.c.fits"));
        write_atomic(&dest, b"old").unwrap();
        let failed = write_atomic_with(&dest, |f| {
            std::io::Write::write_all(f, b"half")?;
            Err(std::io::Error::other("disk gone"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        std::fs::write(&tmp, b"left by a killed build").unwrap();
        assert_eq!(remove_temp_files(dir.path()).unwrap().0, 1);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the destination remains");
    }
}
