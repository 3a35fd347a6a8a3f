//! The integration tests, one binary (linking one test binary per file dominated the build):
//! each module drives the real `arrakis` binary or the library on simulated fields in temporary
//! directories. Tests run in parallel; the ones that share the one-node Slurm take
//! `common::cluster_shared`/`cluster_exclusive`.

mod common;

mod adding_a_stage;
mod archive;
mod arrakis_habits;
mod bad_field;
mod bad_input;
mod catalogue;
mod compare;
mod disk_full;
mod engine_cli;
mod engine_faults;
mod engine_hashing;
mod engine_props;
mod engine_snapshot;
mod frion;
mod hostile;
mod imager;
mod ionosphere;
mod kill_pipeline;
mod leakage;
mod load;
mod pipeline;
mod real_data;
mod region;
mod rm3d;
mod rmtools_agreement;
mod slurm;
mod store;
mod validate;
mod wcs;
