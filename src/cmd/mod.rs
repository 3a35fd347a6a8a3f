//! The commands: each subcommand as a function from its parsed arguments to an exit code. They
//! parse nothing themselves (clap did, in `cli.rs`), call the library, and print what the user
//! reads; `anyhow` is used here and in `main.rs` only.
//!
//! Must never: hold engine or science logic (the build sequence is `crate::session`, the archive
//! transaction `crate::archive`, every stage `crate::stages`).

pub mod bench;
pub mod build;
pub mod compare;
pub mod hints;
pub mod inspect;
pub mod maintain;
pub mod region;
pub mod rmtools;
mod rmtools_plots;
pub mod tools;

use std::path::{Path, PathBuf};

use crate::cli::FieldArgs;
use crate::session::FieldSpec;

/// Exit code when targets failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code for bad input (rules, config, field) or a cache problem.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code when interrupted.
pub const EXIT_INTERRUPTED: i32 = 130;

impl From<&FieldArgs> for FieldSpec {
    fn from(a: &FieldArgs) -> FieldSpec {
        FieldSpec {
            field: a.field.clone(),
            datadir: a.datadir.clone(),
            rules: a.rules.clone(),
            configs: a.config.clone(),
            sets: a.sets.clone(),
            limit: a.limit,
        }
    }
}

/// Absolute form of `p` (for messages).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
