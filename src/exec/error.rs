//! What can go wrong in the engine and the executors: errors that stop a build, a target's
//! recorded failure, an executor that cannot start, an archived input that cannot come back.
//!
//! Must never: turn a target's failure into a build-stopping error (those are [`Failure`]s,
//! recorded, and the build goes on).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cache::CacheError;

/// Errors that stop a build (as opposed to a target failing).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A file could not be stat'ed or read for a reason other than not existing.
    #[error("{}: {source}{}", path.display(), crate::limits::hint_for(source).map(|h| format!(" ({h})")).unwrap_or_default())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A target's failure as it is recorded (in the cache, in Slurm receipts, in reports): its
/// message. It crosses processes as text, so it is text here too, but typed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(transparent)]
#[error("{0}")]
pub struct Failure(pub String);

impl Failure {
    /// The failure of an error, by its message.
    pub fn of(e: impl std::fmt::Display) -> Failure {
        Failure(e.to_string())
    }
}

/// A problem setting up an executor (directories, the program itself, a batch manifest): the
/// build stops before anything runs.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A directory or file could not be made or read.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What it was.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The worker threads could not start.
    #[error("cannot start {threads} threads: {message}")]
    Threads {
        /// How many.
        threads: usize,
        /// Why not.
        message: String,
    },
}

/// Why an input `arrakis archive` removed cannot be put back before its target runs (the target
/// fails with this; the build goes on).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Reading the archive record failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The file was removed without a copy.
    #[error("{} was removed by `arrakis archive` without a copy; put it back (for a beam cube: image the beam again) to rebuild this target", .0.display())]
    NoCopy(PathBuf),
    /// The tarball does not give it back intact.
    #[error(transparent)]
    Tarball(#[from] crate::archive::ArchiveError),
}
