//! The commands beside the build: `simulate`,
//! `job-script` and `worker` (what a Slurm job runs).
//!
//! Must never: open the cache (`worker` runs inside Slurm jobs, where only the coordinator may).

use anyhow::{anyhow, Result};

use crate::config::cluster::{ClusterClass, ClusterConfig};
use crate::exec::slurm::{job_script as slurm_script, worker_command};

/// `arrakis simulate`.
pub fn simulate(a: &crate::cli::SimulateArgs) -> Result<i32> {
    crate::units::check_unit_name(&a.field).map_err(|e| anyhow!("field name: {e}"))?;
    let o = crate::simulate::SimOptions {
        field: a.field.clone(),
        beams: a.beams.max(1),
        sources: a.sources,
        nchan: a.nchan.max(4),
        npix: a.npix.max(32),
        band: a.band.clone(),
        seed: a.seed,
        ionosphere: a.ionosphere,
        leakage: a.leakage,
        centre: a.ra.zip(a.dec),
        sky_seed: a.sky_seed,
    };
    if let Some((ra, dec)) = o.centre {
        if !(ra.is_finite() && dec.is_finite() && (0.0..360.0).contains(&ra) && dec.abs() <= 85.0) {
            return Err(anyhow!(
                "--ra {ra} --dec {dec}: give the field centre with RA in [0, 360) and Dec in [-85, 85] degrees"
            ));
        }
    }
    if let Some(f) = a.leakage {
        if !(f.is_finite() && (0.0..=0.5).contains(&f)) {
            return Err(anyhow!(
                "--leakage {f}: give the leakage fraction at the half-power radius, between 0 and 0.5 (ASKAP's is about 0.01)"
            ));
        }
    }
    let dir = crate::simulate::simulate(&a.datadir, &o).map_err(|e| anyhow!(e))?;
    eprintln!("simulated field {} in {}", a.field, dir.display());
    let mut next = format!(
        "arrakis build {} --datadir {}",
        a.field,
        a.datadir.display()
    );
    let mut why = Vec::new();
    if a.ionosphere {
        next.push_str(" --set ion_source=ionex");
        why.push("predicts the injected ionosphere from IONEXdata/");
    }
    if a.leakage.is_some() {
        next.push_str(" --set holofile=holography.fits");
        why.push("removes the injected leakage with holography.fits");
    }
    if why.is_empty() {
        eprintln!("next: {next}");
    } else {
        eprintln!("next: {next}   ({})", why.join("; "));
    }
    Ok(0)
}

/// `arrakis job-script --dask-config FILE`: the script one job of that config gets.
pub fn job_script(a: &crate::cli::JobScriptArgs) -> Result<i32> {
    let c = ClusterConfig::load(&a.dask_config).map_err(|e| anyhow!(e.to_string()))?;
    if c.class != ClusterClass::Slurm {
        return Err(anyhow!(
            "{}: cluster_class is not dask_jobqueue.SLURMCluster; a local cluster has no job script",
            a.dask_config.display()
        ));
    }
    for u in &c.unused {
        eprintln!("arrakis: unused cluster config key {u}");
    }
    let exe = std::env::current_exe()?;
    let manifest = "CACHE/slurm/FIELD/batch-N.json";
    print!("{}", slurm_script(&c, &worker_command(&c, &exe, manifest)));
    Ok(0)
}

/// `arrakis worker`: run a batch manifest (inside a Slurm job).
pub fn worker(a: &crate::cli::WorkerArgs) -> Result<i32> {
    let failed =
        crate::exec::worker::run_manifest(&a.manifest, a.parallel, a.local_directory.as_deref())
            .map_err(|e| anyhow!(e))?;
    // Failed targets are reported in their receipts; the job itself succeeded.
    if failed > 0 {
        eprintln!("arrakis worker: {failed} target(s) failed (see their receipts)");
    }
    Ok(0)
}

/// `arrakis init`.
pub fn init(a: &crate::cli::InitArgs) -> Result<i32> {
    let centre = match &a.centre {
        None => None,
        Some(t) => {
            let v: Vec<f64> = t
                .split(',')
                .map(|x| x.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    anyhow!(
                        "--centre '{t}': expected RA,DEC in degrees, e.g. --centre 189.375,-25.0"
                    )
                })?;
            if v.len() != 2 {
                return Err(anyhow!(
                    "--centre '{t}': expected RA,DEC in degrees, e.g. --centre 189.375,-25.0"
                ));
            }
            Some((v[0], v[1]))
        }
    };
    let o = crate::init::InitOptions {
        centre,
        field: a.field.clone(),
        datadir: a.datadir.clone(),
        images: a.images.clone(),
        components: a.components.clone(),
        islands: a.islands.clone(),
        sbid: a.sbid.clone(),
        pol_axis_deg: a.pol_axis,
        scan_start_mjd_s: a.scan_start,
        scan_length_s: a.scan_length,
        copy: a.copy,
        force: a.force,
    };
    match crate::init::init(&o) {
        Ok(r) => {
            println!(
                "{}: {} ({} beams, {} islands, {} components)",
                if r.unchanged { "up to date" } else { "set up" },
                r.dir.display(),
                r.beams,
                r.islands,
                r.components,
            );
            if !r.unchanged {
                // The daily IONEX maps the scan needs (RMextract's samples run one 300 s step
                // either side of it).
                let maps = match (o.scan_start_mjd_s, o.scan_length_s) {
                    (Some(t), len) => {
                        let mut names: Vec<String> = [t - 300.0, t + len.unwrap_or(0.0) + 600.0]
                            .iter()
                            .map(|&x| crate::science::ionex::legacy_name("codg", x))
                            .collect();
                        names.dedup();
                        names.join(" and ")
                    }
                    (None, _) => "the scan's day(s), e.g. CODG{DOY}0.{YY}I (and give --scan-start and --scan-length)".into(),
                };
                println!(
                    "next: put the IONEX maps {maps} in {}/IONEXdata, then\n  arrakis build {} --datadir {} --set ion_source=ionex\n(or --set skip_frion=true to build without the ionospheric correction)",
                    r.dir.display(),
                    o.field,
                    o.datadir.display()
                );
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("arrakis: error: {e}");
            Ok(2)
        }
    }
}
