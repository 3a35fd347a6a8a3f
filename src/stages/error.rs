//! The error every builtin returns: what went wrong with which file, line or parameter, said so
//! that the user knows what to fix.
//!
//! Must never: carry a bare message where a file is concerned (use [`StageError::File`] or
//! [`StageError::Io`], which name it).

use std::path::{Path, PathBuf};

use crate::fits::FitsError;

/// Why a builtin failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A file could not be read or written.
    /// (The system's error is in the message, not chained as a source: printed with its
    /// causes, it would appear twice.)
    #[error("{}: {error}{}", path.display(), crate::limits::hint_for(error).map(|h| format!(" ({h})")).unwrap_or_default())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        error: std::io::Error,
    },
    /// A file's contents are not what the stage reads (line 1-based where known).
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    File {
        /// The file.
        path: PathBuf,
        /// The line, for text files.
        line: Option<usize>,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A FITS file (or its WCS) is unreadable or unusable.
    #[error(transparent)]
    Fits(#[from] FitsError),
    /// A catalogue table is unreadable (the message names file, line and column).
    #[error(transparent)]
    Table(#[from] crate::units::UnitsError),
    /// A product another stage wrote lacks what this one reads.
    #[error(transparent)]
    Product(#[from] super::products::ProductError),
    /// The target's inputs cannot give a result (the message says why and what to do).
    #[error("{0}")]
    Data(String),
    /// An external program could not run or failed.
    #[error("{0}")]
    Program(String),
    /// The rule and the builtin's contract disagree at run time: a parameter, slot or output the
    /// contract check should have guaranteed is not there.
    #[error(
        "{target}: {what} (the rule does not match builtin's contract; this is a bug in arrakis)"
    )]
    Contract {
        /// The target.
        target: String,
        /// What is missing.
        what: String,
    },
}

impl StageError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> StageError {
        StageError::Io {
            path: path.to_path_buf(),
            error: source,
        }
    }
    /// A problem with the contents of `path` (at `line`, 1-based, if given).
    pub fn file(path: &Path, line: Option<usize>, message: impl Into<String>) -> StageError {
        StageError::File {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
    /// The data cannot give a result.
    pub fn data(message: impl Into<String>) -> StageError {
        StageError::Data(message.into())
    }
}
