//! arrakis: the SPICE-RACS radio-polarisation pipeline as a content-addressed, make-like
//! incremental build system. See `ARCHITECTURE.md` for the map of these modules.

pub mod archive;
pub mod atomic;
pub mod cache;
pub mod cli;
pub mod cmd;
pub mod code_digest;
pub mod compare;
pub mod config;
pub mod cputime;
pub mod diag;
pub mod exec;
pub mod field_file;
pub mod fits;
pub mod graph;
pub mod hash;
pub mod init;
pub mod limits;
pub mod progress;
pub mod pyfmt;
pub mod region;
pub mod rules;
pub mod science;
pub mod session;
pub mod simulate;
pub mod snapshot;
pub mod stages;
pub mod store;
pub mod units;
pub mod wcs;
