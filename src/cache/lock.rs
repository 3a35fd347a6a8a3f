//! The cache's lock: `arrakis.lock` in the cache directory, an exclusive `flock` held for the
//! life of the process that opened the cache, the file naming the holder (pid, host, command).
//!
//! Must never: report a dead process as the holder: a lock still held a moment after its
//! holder died (a child between fork and exec) is waited for, briefly.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::{read_epoch, CacheError};

/// When the process named in the lock file is gone (killed), the lock can still be held for a
/// moment by a child it was starting (between fork and exec the child has its files). Wait for
/// that to pass, up to a few seconds, rather than report a dead process as the holder. True once
/// the lock is ours.
fn holder_gone_then_free(lock: &File) -> bool {
    let mut text = String::new();
    let _ = (&*lock).read_to_string(&mut text);
    let _ = (&*lock).rewind();
    let pid = text
        .strip_prefix("pid ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse::<i32>().ok());
    let same_host = text.contains(&format!(" on host {}:", hostname()));
    let Some(pid) = pid.filter(|_| same_host) else {
        return false;
    };
    let alive = || process_lives(pid as u32);
    let start = std::time::Instant::now();
    while !alive() && start.elapsed() < std::time::Duration::from_secs(5) {
        if lock.try_lock().is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// Whether process `pid` of this host is running (a zombie, killed and not yet reaped by its
/// parent, is not).
pub fn process_lives(pid: u32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    let exists = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
    // /proc/PID/stat: "pid (comm) S …", the state after the command's closing parenthesis.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next())
        });
    exists && !matches!(state, Some('Z' | 'X'))
}

/// Write the holder into the lock just taken.
fn finish_acquire(dir: &Path, mut lock: File) -> Result<CacheLock, CacheError> {
    let io = |source| CacheError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    lock.set_len(0).map_err(io)?;
    lock.rewind().map_err(io)?;
    writeln!(lock, "{}", holder_description()).map_err(io)?;
    let _ = lock.flush();
    Ok(CacheLock {
        dir: dir.to_path_buf(),
        file: lock,
    })
}

/// Whether the holder is a read-only command that holds the cache only for a moment.
fn brief_holder(holder: &str) -> bool {
    let command = holder.split_once(": ").map(|(_, c)| c).unwrap_or("");
    let words: Vec<&str> = command.split_whitespace().skip(1).collect();
    words.iter().any(|w| matches!(*w, "status" | "explain"))
        && !words
            .iter()
            .any(|w| matches!(*w, "build" | "archive" | "gc" | "demo"))
}

/// Wait up to 30 s for a brief holder to let go; true once the lock is ours.
fn wait_briefly(lock: &File) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(30) {
        if lock.try_lock().is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// What the lock file says of its holder (empty if nothing yet).
fn read_holder(lock: &mut File) -> String {
    let mut holder = String::new();
    if lock.rewind().is_ok() {
        let _ = lock.read_to_string(&mut holder);
    }
    holder.trim().to_string()
}

/// Who holds the lock, as written into the lock file.
fn holder_description() -> String {
    let args: Vec<String> = std::env::args().collect();
    format!(
        "pid {} on host {}: {}",
        std::process::id(),
        hostname(),
        args.join(" ")
    )
}

/// This machine's host name (for records and the lock file; never part of a key).
pub fn hostname() -> String {
    // Read once per process: every record names its host.
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    })
    .clone()
}

/// The held lock of a cache directory (see [`Cache`]); enough to read the epoch without opening
/// the database.
pub struct CacheLock {
    pub(super) dir: PathBuf,
    pub(super) file: File,
}

impl CacheLock {
    /// Take the lock of the cache at `dir` (creating the directory). With `wait`, block until
    /// another holder releases it; otherwise fail at once naming the holder.
    pub fn acquire(dir: &Path, wait: bool) -> Result<CacheLock, CacheError> {
        let io = |source| CacheError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("arrakis.lock"))
            .map_err(io)?;
        if lock.try_lock().is_err() && !holder_gone_then_free(&lock) {
            let mut holder = read_holder(&mut lock);
            // Empty: the holder has just taken the lock and not yet written who it is (a
            // moment): look again, taking the lock if it is let go meanwhile.
            let start = std::time::Instant::now();
            while holder.is_empty() && start.elapsed() < std::time::Duration::from_millis(500) {
                std::thread::sleep(std::time::Duration::from_millis(5));
                if lock.try_lock().is_ok() {
                    return finish_acquire(dir, lock);
                }
                holder = read_holder(&mut lock);
            }
            // A read-only command (status, explain) holds the cache for a moment: queue behind
            // it rather than fail, so that looking at a field never stops a build starting.
            if !wait && brief_holder(&holder) && wait_briefly(&lock) {
                return finish_acquire(dir, lock);
            }
            if !wait {
                return Err(CacheError::Busy {
                    dir: dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "holder unknown".into()
                    } else {
                        holder
                    },
                });
            }
            eprintln!(
                "arrakis: waiting for the cache {} ({holder})",
                dir.display()
            );
            lock.lock().map_err(io)?;
        }
        finish_acquire(dir, lock)
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cache's epoch ([`Cache::epoch`]); `None` when there is none or no database.
    pub fn epoch(&self) -> Option<u64> {
        read_epoch(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn read_only_holders_are_brief() {
        use super::brief_holder;
        assert!(brief_holder(
            "pid 1 on host h: /x/arrakis --cache c status F --datadir d"
        ));
        assert!(brief_holder(
            "pid 1 on host h: arrakis explain F rmclean/F_c1"
        ));
        assert!(!brief_holder(
            "pid 1 on host h: arrakis build F --datadir d"
        ));
        assert!(!brief_holder(
            "pid 1 on host h: arrakis --cache status build status"
        ));
        assert!(!brief_holder(""));
    }

    /// A holder that has taken the lock but not yet written who it is (a `status` just
    /// starting) is waited for a moment, not reported as "holder unknown".
    #[test]
    fn a_holder_not_yet_named_is_waited_for_a_moment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arrakis.lock");
        let other = std::fs::File::create(&path).unwrap();
        other.try_lock().unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(other);
        });
        let got = super::CacheLock::acquire(dir.path(), false);
        t.join().unwrap();
        assert!(got.is_ok(), "{:?}", got.err().map(|e| e.to_string()));
        let named = std::fs::read_to_string(&path).unwrap();
        assert!(named.starts_with("pid "), "{named}");
    }
}
