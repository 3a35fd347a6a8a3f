//! Files written whole and atomically: a temporary name in the destination's own directory, then
//! a rename. Every output, record file, report, snapshot and receipt arrakis writes goes through
//! here or names its temporary files the same way.
//!
//! Owns: the temporary-name scheme (`.arrakis-tmp-<pid>-<n>-<name>`, keeping the extension so
//! tools that look at it still work), [`write_atomic`]/[`write_atomic_with`], and finding the
//! leftovers of a killed process ([`remove_leftovers`]: its temporary files and its scratch
//! directories, `.arrakis-<what>-<pid>`).
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

/// The process that left `name` behind if it is one of arrakis's leftovers: a temporary output
/// (`.arrakis-tmp-<pid>-…`, a file or a symbolic link) or, with `dir`, a scratch directory
/// (`.arrakis-<what>-<pid>`, the imager's and fix_ms's working copies).
pub fn leftover_pid(name: &str, dir: bool) -> Option<u32> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let pid = match name.strip_prefix(TMP_PREFIX) {
        Some(rest) if !dir => rest.split('-').next()?,
        Some(_) => return None,
        None if dir => match name.strip_prefix(".arrakis-")?.rsplit_once('-')? {
            ("", _) => return None,
            (_, pid) => pid,
        },
        None => return None,
    };
    if digits(pid) {
        pid.parse().ok()
    } else {
        None
    }
}

/// What [`remove_leftovers`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Temporary outputs.
    pub files: usize,
    /// Scratch directories.
    pub dirs: usize,
    /// The bytes of both.
    pub bytes: u64,
}

impl std::ops::AddAssign for Removed {
    fn add_assign(&mut self, o: Removed) {
        self.files += o.files;
        self.dirs += o.dirs;
        self.bytes += o.bytes;
    }
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} temporary file(s)", self.files)?;
        if self.dirs > 0 {
            write!(f, " and {} scratch director(ies)", self.dirs)?;
        }
        write!(f, " ({:.1} MiB)", self.bytes as f64 / (1024.0 * 1024.0))
    }
}

/// Remove arrakis's leftovers under `dir` ([`leftover_pid`]): every one, or with `of` only those
/// process `of` left. For a directory no build writes meanwhile.
pub fn remove_leftovers(dir: &Path, of: Option<u32>) -> std::io::Result<Removed> {
    let mut done = Removed::default();
    let mut walk = walkdir::WalkDir::new(dir).into_iter();
    while let Some(entry) = walk.next() {
        let Ok(entry) = entry else { continue };
        let kind = entry.file_type();
        let name = entry.file_name().to_string_lossy();
        let Some(pid) = leftover_pid(&name, kind.is_dir()) else {
            continue;
        };
        if entry.depth() == 0 || of.is_some_and(|of| of != pid) {
            continue;
        }
        let path = entry.path();
        let cannot = |e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("cannot remove {}: {e}", path.display()))
        };
        if kind.is_dir() {
            walk.skip_current_dir();
            done.bytes += walkdir::WalkDir::new(path)
                .into_iter()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_file())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum::<u64>();
            std::fs::remove_dir_all(path).map_err(cannot)?;
            done.dirs += 1;
        } else {
            done.bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(path).map_err(cannot)?;
            done.files += 1;
        }
    }
    Ok(done)
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
        assert_eq!(remove_leftovers(dir.path(), None).unwrap().files, 1);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the destination remains");
    }

    #[test]
    fn leftovers_are_told_by_name_and_removed_by_process() {
        assert_eq!(
            leftover_pid(".arrakis-tmp-123-7-a-b.fits", false),
            Some(123)
        );
        assert_eq!(leftover_pid(".arrakis-tmp-123-link-x", false), Some(123));
        assert_eq!(
            leftover_pid(".arrakis-imager-beam03-4567", true),
            Some(4567)
        );
        assert_eq!(leftover_pid(".arrakis-fix_ms-beam35-89", true), Some(89));
        // Not leftovers: a scratch name that is a file, a temporary name that is a directory,
        // the field's bookkeeping, ordinary names.
        assert_eq!(leftover_pid(".arrakis-imager-beam03-4567", false), None);
        assert_eq!(leftover_pid(".arrakis-tmp-123-7-x", true), None);
        assert_eq!(leftover_pid(".arrakis-cache", false), None);
        assert_eq!(leftover_pid(".arrakis-cache", true), None);
        assert_eq!(leftover_pid(".arrakis-imager-beam03-", true), None);
        assert_eq!(leftover_pid(".arrakis--12", true), None);
        assert_eq!(leftover_pid(".arrakis-tmp-+12-0-x", false), None);
        assert_eq!(leftover_pid(".arrakis-imager-beam03-+12", true), None);
        assert_eq!(leftover_pid("beam-03", true), None);
        assert_eq!(leftover_pid("cutouts", true), None);

        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let island = d.join("cutouts/J1");
        std::fs::create_dir_all(&island).unwrap();
        std::fs::write(island.join(".arrakis-tmp-111-0-a.fits"), [0u8; 1000]).unwrap();
        std::fs::write(island.join(".arrakis-tmp-222-0-a.fits"), [0u8; 10]).unwrap();
        std::os::unix::fs::symlink("nowhere", d.join(".arrakis-tmp-111-link-r")).unwrap();
        let scratch = d.join(".arrakis-imager-beam03-111");
        std::fs::create_dir_all(scratch.join("sub")).unwrap();
        std::fs::write(scratch.join("sub/image.fits"), [0u8; 500]).unwrap();
        // Inside a scratch directory: removed with it, not counted again.
        std::fs::write(scratch.join(".arrakis-tmp-111-1-b"), [0u8; 20]).unwrap();
        std::fs::create_dir_all(d.join(".arrakis-imager-beam04-222")).unwrap();
        std::fs::write(d.join(".arrakis-cache"), b"/cache\n").unwrap();
        std::fs::write(island.join("J1.cutout.fits"), b"kept").unwrap();

        let r = remove_leftovers(d, Some(111)).unwrap();
        // 1 000 + the link's 7 ("nowhere") + the scratch directory's 500 and 20.
        let bytes = 1527;
        assert_eq!(
            r,
            Removed {
                files: 2,
                dirs: 1,
                bytes
            }
        );
        assert_eq!(
            r.to_string(),
            "2 temporary file(s) and 1 scratch director(ies) (0.0 MiB)"
        );
        assert!(!scratch.exists());
        assert!(!island.join(".arrakis-tmp-111-0-a.fits").exists());
        assert!(d
            .join(".arrakis-tmp-111-link-r")
            .symlink_metadata()
            .is_err());
        // Another process's leftovers, the bookkeeping and the outputs stay.
        assert!(island.join(".arrakis-tmp-222-0-a.fits").exists());
        assert!(d.join(".arrakis-imager-beam04-222").is_dir());
        assert!(d.join(".arrakis-cache").exists());
        assert!(island.join("J1.cutout.fits").exists());
        // Every process's: what gc does.
        let r = remove_leftovers(d, None).unwrap();
        assert_eq!((r.files, r.dirs, r.bytes), (1, 1, 10));
        assert_eq!(
            r.to_string(),
            "1 temporary file(s) and 1 scratch director(ies) (0.0 MiB)"
        );
        assert!(island.join("J1.cutout.fits").exists() && d.join(".arrakis-cache").exists());
    }
}
