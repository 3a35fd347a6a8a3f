//! `arrakis region NAME --fields A,B`: build the fields, write the region directory from them
//! (`crate::region::prepare`), and build the region as a field is built.

use std::path::Path;

use anyhow::{anyhow, Result};

use super::{EXIT_BAD_INPUT, EXIT_INTERRUPTED};
use crate::cli::{BuildArgs, RegionArgs};
use crate::config::params::ParamValue;
use crate::region::{RegionSpec, REGION_FILE};
use crate::session;

/// `arrakis region`.
pub fn region(cache: Option<&Path>, wait: bool, a: &RegionArgs) -> Result<i32> {
    if !a.build.more_fields.is_empty() {
        return Err(anyhow!(
            "arrakis region takes one NAME (got also {}); name the fields it merges with --fields A,B",
            a.build.more_fields.join(" ")
        ));
    }
    let name = &a.build.field.field;
    let datadir = &a.build.field.datadir;
    let mut seen = std::collections::BTreeSet::new();
    if let Some(f) = a.fields.iter().find(|f| !seen.insert(f.as_str())) {
        return Err(anyhow!("field '{f}' is listed twice in --fields"));
    }
    if a.fields.contains(name) {
        return Err(anyhow!(
            "the region cannot be named after one of its fields ('{name}'): choose another NAME"
        ));
    }
    let region_dir = datadir.join(name);
    if region_dir.is_dir() && !region_dir.join(REGION_FILE).is_file() {
        return Err(anyhow!(
            "{} exists and is not a region (no {REGION_FILE}): choose another NAME",
            region_dir.display()
        ));
    }
    // The fields first, in one build, with the same parameters (a no-op when up to date).
    if !a.no_field_builds {
        let mut fb: BuildArgs = a.build.clone();
        fb.field.field = a.fields[0].clone();
        fb.more_fields = a.fields[1..].to_vec();
        fb.force.clear();
        fb.until = None;
        fb.only = None;
        fb.report = None;
        let rc = super::build::build(cache, wait, &fb)?;
        match rc {
            0 => {}
            EXIT_INTERRUPTED | EXIT_BAD_INPUT => return Ok(rc),
            _ => eprintln!(
                "arrakis: note: some targets of the fields failed (listed above); the region takes the islands they did build"
            ),
        }
    }
    // A region made before of other fields (or another radius) is made again of these.
    if let Some(was) = crate::region::RegionFile::read(&region_dir) {
        if was.fields != a.fields || was.match_arcsec != a.match_arcsec {
            eprintln!(
                "arrakis: note: region {name} was made of {} (matched within {}\"); it is made again, of {} (within {}\")",
                was.fields.join(", "),
                was.match_arcsec,
                a.fields.join(", "),
                a.match_arcsec
            );
        }
    }
    // Which Q and U the fields made: resolved as the region's build will resolve it.
    let configs = session::config_files(&region_dir, &a.build.field.config);
    let rules = session::load_rules(a.build.field.rules.as_deref())?.for_region();
    let params = session::resolve_params(&rules, &configs, &a.build.field.sets)?;
    let skip_frion = matches!(params.get("skip_frion"), Some(ParamValue::Bool(true)));
    let s = crate::region::prepare(&RegionSpec {
        name: name.clone(),
        fields: a.fields.clone(),
        datadir: datadir.clone(),
        match_arcsec: a.match_arcsec,
        skip_frion,
    })?;
    if !a.build.quiet {
        println!(
            "region {name}: {} islands ({} imaged by several fields, mosaicked across them), {} components ({} found by more than one field, kept once; matched within {}\")",
            s.islands, s.joint, s.components, s.duplicates, a.match_arcsec
        );
    }
    if !s.unbuilt.is_empty() {
        let shown: Vec<&str> = s.unbuilt.iter().take(5).map(|x| x.as_str()).collect();
        eprintln!(
            "arrakis: note: {} island(s) of the fields have no {}products and were left out of the region's mosaics: {}{}",
            s.unbuilt.len(),
            if skip_frion { "" } else { "FRion-corrected " },
            shown.join(", "),
            if s.unbuilt.len() > shown.len() { ", ..." } else { "" }
        );
    }
    super::build::build(cache, wait, &a.build)
}
