//! Command-line definitions (clap derive). Nothing here does any work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `--version`: the crate version and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("ARRAKIS_COMMIT"), ")");

/// arrakis: the SPICE-RACS polarisation pipeline as an incremental build system.
#[derive(Debug, Parser)]
#[command(name = "arrakis", version = VERSION, about, long_about = None)]
pub struct Cli {
    /// Cache directory (sled store of target records and the stat cache). Default: the cache
    /// that last built the field (FIELD/.arrakis-cache records it), else ./cache.
    #[arg(long, global = true, env = "ARRAKIS_CACHE")]
    pub cache: Option<PathBuf>,
    /// Wait for another arrakis process holding the cache instead of failing at once.
    #[arg(long, global = true)]
    pub wait: bool,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the field and its rules and parameters come from.
#[derive(Debug, Args, Clone)]
pub struct FieldArgs {
    /// Field name (a directory under --datadir).
    pub field: String,
    /// Directory holding field directories.
    #[arg(long, default_value = ".")]
    pub datadir: PathBuf,
    /// Rule directory (default: the rules compiled into this binary).
    #[arg(long, env = "ARRAKIS_RULES")]
    pub rules: Option<PathBuf>,
    /// Pipeline config file (YAML; Arrakis config files work as they are). Repeatable; later
    /// files override earlier ones.
    #[arg(long)]
    pub config: Vec<PathBuf>,
    /// Override one parameter, e.g. --set cutoff=-5. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Process only the first N islands of the catalogue.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a field (or several as one build: `arrakis build A B C`, one scheduler and one
    /// Slurm queue for all): run exactly the targets that are not up to date.
    Build(BuildArgs),
    /// Merge overlapping fields into a region: build the fields, match their components by
    /// position, mosaic the islands several fields imaged across those fields, and build the
    /// region's catalogue (DATADIR/NAME/NAME.catalogue.{csv,fits,xml}).
    Region(RegionArgs),
    /// Check a catalogue against a simulation's truth (--truth) or a reference catalogue
    /// (--reference): a summary, JUnit XML and Markdown; exit 0 within tolerance, 1 on a
    /// regression, 2 on bad input.
    Compare(CompareArgs),
    /// Per stage: how many targets are up to date, stale, failed or never built.
    Status(StatusArgs),
    /// Why a target would run.
    Explain(ExplainArgs),
    /// Print the target graph.
    Dag(DagArgs),
    /// Forget records of targets no longer in the rule set; remove leftover temporary files.
    Gc(GcArgs),
    /// List the parameters the rules read, with their values and where each came from.
    Params(ParamsArgs),
    /// Print the final catalogue's columns (name, unit, UCD, type, description) as Markdown.
    Columns,
    /// RM-Tools' rmsynth1d: RM synthesis of one spectrum (its flags, defaults and files).
    Rmsynth1d(Rmsynth1dArgs),
    /// RM-Tools' rmclean1d: RM-CLEAN of what `rmsynth1d -S` wrote for a data file.
    Rmclean1d(Rmclean1dArgs),
    /// RM-Tools' rmsynth3d: RM synthesis of Q and U FITS cubes.
    Rmsynth3d(Rmsynth3dArgs),
    /// RM-Tools' rmclean3d: RM-CLEAN of rmsynth3d's cubes.
    Rmclean3d(Rmclean3dArgs),
    /// Simulate a small field into ./demo and build it (the README's first command).
    Demo(DemoArgs),
    /// Write a simulated ASKAP-like field (beam cubes, catalogues, field.yaml, truth.csv).
    Simulate(SimulateArgs),
    /// Set up a field from real ASKAP products: link the beam cubes and weights found in
    /// --images, write field.yaml from their headers, and the catalogues as the rules read them.
    Init(InitArgs),
    /// Benchmarks.
    Bench(BenchArgs),
    /// Print a shell completion script: `arrakis completions bash > ~/.local/share/bash-completion/completions/arrakis`
    /// (zsh: into a directory on $fpath as _arrakis; fish: ~/.config/fish/completions/arrakis.fish).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the Slurm job script one job of a cluster config gets.
    JobScript(JobScriptArgs),
    /// Arrakis's cleanup, made safe: tar the per-beam cutouts into FIELD/cutouts.tar and remove
    /// them (and with --remove-beam-cubes the beam cubes). The cache remembers them, so nothing
    /// becomes stale, and a target that needs them again gets them back from the tarball.
    Archive(ArchiveArgs),
    /// Run a batch of targets (what a Slurm job runs; never opens the cache).
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// `arrakis compare`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("against").required(true).args(["truth", "reference"])))]
pub struct CompareArgs {
    /// The catalogue to check (`FIELD/FIELD.catalogue.csv`).
    pub catalogue: PathBuf,
    /// A simulated field's `truth.csv`: pulls of RM and fractional polarisation of the
    /// Faraday-simple components, the footprint measured, complex components flagged.
    #[arg(long, value_name = "TRUTH.csv")]
    pub truth: Option<PathBuf>,
    /// An earlier catalogue: every column within its tolerance, components added or lost.
    #[arg(long, value_name = "OLD.csv")]
    pub reference: Option<PathBuf>,
    /// Write the checks as JUnit XML (CI systems display it).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the checks as a Markdown table (for a merge-request comment).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Position tolerance for rows whose cat_id does not match (arcsec).
    #[arg(long, default_value_t = 3.0)]
    pub match_arcsec: f64,
    /// --truth: pull only components at least this polarised SNR (snr_polint).
    #[arg(long, default_value_t = 10.0)]
    pub snr_min: f64,
    /// --truth: the largest |pull| ((measured − simulated) / error) a component may have.
    #[arg(long, default_value_t = 5.0)]
    pub max_pull: f64,
    /// --truth: the pulls' robust spread (1.4826 × MAD; 1 for honest errors) must be at least
    /// this (errors not too large). Low, because RM-Tools' RM error (FWHM / 2 / SNR) is
    /// conservative (spreads of 0.37-1.45 on simulated fields) and a few tens of components
    /// give a noisy spread.
    #[arg(long, default_value_t = 0.25)]
    pub spread_min: f64,
    /// --truth: ... and at most this (errors not too small).
    #[arg(long, default_value_t = 2.5)]
    pub spread_max: f64,
    /// --truth: fewer components to pull than this fails (the check would say nothing).
    #[arg(long, default_value_t = 5)]
    pub min_pulled: usize,
    /// --truth: systematic floor added in quadrature to rm_err (rad/m²).
    #[arg(long, default_value_t = 0.05)]
    pub rm_floor: f64,
    /// --truth: systematic floor added in quadrature to fracpol_err, as a fraction of the
    /// simulated fraction.
    #[arg(long, default_value_t = 0.0)]
    pub fracpol_floor: f64,
    /// --truth: at least this fraction of the Faraday-complex components above --snr-min must
    /// carry complex_flag (default 0: reported only).
    #[arg(long, default_value_t = 0.0)]
    pub min_complex_flagged: f64,
    /// --truth: the field's field.yaml (its beams are the footprint; default: the one beside the
    /// catalogue, if any).
    #[arg(long, value_name = "FILE")]
    pub field_yaml: Option<PathBuf>,
    /// --truth: beam radius of the footprint (deg).
    #[arg(long, default_value_t = 1.0)]
    pub beam_radius_deg: f64,
    /// --reference: a column's tolerance, repeatable: COLUMN=VALUE (absolute), COLUMN=N%,
    /// COLUMN=Nsigma (of the row's COLUMN_err), COLUMN=exact or COLUMN=ignore.
    #[arg(long, value_name = "COLUMN=TOL")]
    pub tolerance: Vec<String>,
    /// --reference: a measurement with an error column may move this many of its errors.
    #[arg(long, default_value_t = 0.1)]
    pub sigma: f64,
    /// --reference: any other number may move by this fraction of itself; and no number
    /// counts as moved by less than this fraction of its column's largest value (rounding).
    #[arg(long, default_value_t = 1e-6)]
    pub relative: f64,
}

/// `arrakis simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Field name (the directory made under --datadir).
    pub field: String,
    /// Directory to hold the field directory.
    #[arg(long, default_value = ".")]
    pub datadir: PathBuf,
    /// Number of beams.
    #[arg(long, default_value_t = 4)]
    pub beams: usize,
    /// Number of islands.
    #[arg(long, default_value_t = 20)]
    pub sources: usize,
    /// Channels.
    #[arg(long, default_value_t = 72)]
    pub nchan: usize,
    /// Pixels per image side.
    #[arg(long, default_value_t = 160)]
    pub npix: usize,
    /// Band: low (743-1031 MHz) or mid (1296-1440 MHz).
    #[arg(long, default_value = "low", value_parser = ["low", "mid"])]
    pub band: String,
    /// Random seed (the same arguments give the same bytes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Inject an ionospheric Faraday rotation into Q and U, per island along its line of sight
    /// through a simulated ionosphere written as IONEX maps in IONEXdata/ (build with
    /// --set ion_source=ionex to predict from them); `ionosphere/rm_ion.txt` holds the field
    /// centre's RM_ion(t), truth.csv each island's mean RM_ion.
    #[arg(long)]
    pub ionosphere: bool,
    /// Inject instrumental leakage of Stokes I into Q and U (FRACTION at the beam's half-power
    /// radius, e.g. 0.01; growing with the square of the offset, a different pattern per beam)
    /// and write the holography model that describes it as FIELD/holography.fits, in ASKAP's
    /// layout (build with --set holofile=holography.fits to remove it in linmos).
    #[arg(long, value_name = "FRACTION")]
    pub leakage: Option<f64>,
    /// Field centre RA, degrees (with --dec; default 189.375).
    #[arg(long, requires = "dec", allow_negative_numbers = true)]
    pub ra: Option<f64>,
    /// Field centre Dec, degrees (with --ra; default -25).
    #[arg(long, requires = "ra", allow_negative_numbers = true)]
    pub dec: Option<f64>,
    /// Take the sources from the simulated sky of this seed: fields simulated with one sky seed
    /// image one sky, so overlapping fields share sources (--sources is then the density: that
    /// many islands over one field's footprint).
    #[arg(long, value_name = "S")]
    pub sky_seed: Option<u64>,
}

/// `arrakis init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Field name (the directory made under --datadir), e.g. RACS_1237+00A.
    pub field: String,
    /// Directory to hold the field directory.
    #[arg(long, default_value = ".")]
    pub datadir: PathBuf,
    /// Directory of the beam cubes (image.restored.{i,q,u}*contcube*beamNN.conv.fits) and their
    /// weights (weights.restored.{i,q,u}*contcube*beamNN.conv.txt).
    #[arg(long)]
    pub images: PathBuf,
    /// Component (Gaussian) catalogue: CSV, FITS table or VOTable (.xml/.vot), with the RACS
    /// column names or Selavy's.
    #[arg(long)]
    pub components: PathBuf,
    /// Island (source) catalogue: CSV, FITS table or VOTable (.xml/.vot), with the RACS column
    /// names or Selavy's.
    #[arg(long)]
    pub islands: PathBuf,
    /// Scheduling block ID.
    #[arg(long)]
    pub sbid: Option<String>,
    /// Tile centre "RA,DEC" in degrees (the RACS fields table's RA_DEG, DEC_DEG); default the
    /// mean direction of the beam centres.
    #[arg(long, allow_hyphen_values = true)]
    pub centre: Option<String>,
    /// Polarisation axis of the footprint (ASKAP's POL_AXIS), degrees.
    #[arg(long = "pol-axis", allow_negative_numbers = true)]
    pub pol_axis: Option<f64>,
    /// Start of the scan: MJD in seconds (as CASA counts it, e.g. 5.0e9) or a UTC date and time
    /// (2019-04-27T08:53:20).
    #[arg(long = "scan-start", value_parser = scan_start, allow_negative_numbers = true)]
    pub scan_start: Option<f64>,
    /// Length of the scan, seconds.
    #[arg(long = "scan-length")]
    pub scan_length: Option<f64>,
    /// Copy the cubes and weights into the field instead of linking them.
    #[arg(long)]
    pub copy: bool,
    /// Replace what is in the way (another field, or this one set up differently).
    #[arg(long)]
    pub force: bool,
}

/// Global options that RM-Tools' commands do not use: declared (hidden) in each of them so that
/// clap does not list the global ones in their help.
#[derive(Debug, Args)]
pub struct NoCacheArgs {
    /// Not used (RM-Tools' commands have no cache).
    #[arg(long, hide = true)]
    pub cache: Option<PathBuf>,
    /// Not used.
    #[arg(long, hide = true)]
    pub wait: bool,
}

/// RM-Tools' output flags of rmsynth1d and rmclean1d.
#[derive(Debug, Args)]
pub struct Output1dArgs {
    /// Write the plots (PNG, beside the input: there is no window to show them in).
    #[arg(short = 'p', long = "plots")]
    pub plots: bool,
    /// Print the measurements as RM-Tools does.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Save the arrays and measurements beside the input (see below).
    #[arg(short = 'S', long = "save")]
    pub save: bool,
}

/// RM-Tools' Faraday-depth axis flags, the same in rmsynth1d and rmsynth3d.
#[derive(Debug, Args)]
pub struct FaradayAxisArgs {
    /// Fit a Gaussian to the RMSF main lobe for its FWHM.
    #[arg(short = 't', long = "fit-rmsf")]
    pub fit_rmsf: bool,
    /// Largest |Faraday depth| sampled, rad/m^2 [auto].
    #[arg(short = 'l', long = "phi-max")]
    pub phi_max: Option<f64>,
    /// Faraday-depth spacing, rad/m^2 [auto] (overrides -s).
    #[arg(short = 'd', long = "dphi")]
    pub dphi: Option<f64>,
    /// Refused with the reason (RM-Tools' super-resolution RMSF is not implemented).
    #[arg(short = 'r', long = "super-resolution", hide = true)]
    pub super_resolution: bool,
}

/// `arrakis rmsynth1d`: RM-Tools' `rmsynth1d`, its flags and defaults (short flags as RM-Tools
/// documents them; the long names are the pipeline's parameter names).
#[derive(Debug, Args)]
#[command(
    after_help = "Outputs with -S, beside the input (as RM-Tools writes them):
  _FDFdirty.dat   dirty FDF [phi, Q, U]
  _RMSF.dat       RMSF [phi, Q, U]
  _weight.dat     channel weights [freq_Hz, weight]
  _RMsynth.dat    the measurements, key=value
  _RMsynth.json   the measurements, JSON
With none of -S, -v, -p the measurements are printed as JSON."
)]
pub struct Rmsynth1dArgs {
    /// Text file: columns freq_Hz I Q U dI dQ dU, or freq_Hz Q U dQ dU.
    #[arg(value_name = "dataFile.dat")]
    pub file: PathBuf,
    /// The Faraday-depth axis and RMSF.
    #[command(flatten)]
    pub axis: FaradayAxisArgs,
    /// Samples across the RMSF FWHM.
    #[arg(short = 's', long = "n-samples", default_value_t = 10.0)]
    pub n_samples: f64,
    /// Channel weights: variance (1/sigma^2) or uniform.
    #[arg(short = 'w', long = "weight-type", default_value = "variance", value_parser = ["variance", "uniform"])]
    pub weight_type: String,
    /// Stokes I model: log or linear polynomial.
    #[arg(short = 'f', long = "fit-function", default_value = "log", value_parser = ["log", "linear"])]
    pub fit_function: String,
    /// Stokes I polynomial order, 0-5; negative: choose up to |N| by AIC.
    #[arg(
        short = 'o',
        long = "poly-ord",
        default_value_t = 2,
        allow_negative_numbers = true
    )]
    pub poly_ord: i32,
    /// Ignore the Stokes I spectrum (synthesise Q and U as given).
    #[arg(short = 'i', long = "no-stokes-i")]
    pub no_stokes_i: bool,
    /// What to write and print.
    #[command(flatten)]
    pub out: Output1dArgs,
    /// Intensity units of the data.
    #[arg(short = 'U', long, default_value = "Jy/beam")]
    pub units: String,
    /// Accepted for RM-Tools' scripts: arrakis always computes in 64-bit.
    #[arg(short = 'b', hide = true)]
    pub bit64: bool,
    /// Accepted for RM-Tools' scripts: no debugging plots here.
    #[arg(short = 'D', hide = true)]
    pub debug: bool,
    /// The global options that do not apply, hidden.
    #[command(flatten)]
    pub no_cache: NoCacheArgs,
}

/// `arrakis rmclean1d`: RM-Tools' `rmclean1d`: cleans what `rmsynth1d -S` wrote for the same
/// data file (`_FDFdirty.dat`, `_RMSF.dat`, `_weight.dat`, `_RMsynth.json`).
#[derive(Debug, Args)]
#[command(
    after_help = "Outputs with -S, beside the input (as RM-Tools writes them):
  _FDFclean.dat   clean FDF [phi, Q, U]
  _FDFmodel.dat   clean components [phi, Q, U]
  _RMclean.dat    the measurements, key=value
  _RMclean.json   the measurements, JSON
With none of -S, -v, -p the measurements are printed as JSON."
)]
pub struct Rmclean1dArgs {
    /// The data file given to rmsynth1d.
    #[arg(value_name = "dataFile.dat")]
    pub file: PathBuf,
    /// CLEAN cutoff: positive absolute, negative multiples of the theoretical FDF noise.
    #[arg(short = 'c', long, default_value_t = -3.0, allow_negative_numbers = true)]
    pub cutoff: f64,
    /// Threshold of a deeper, windowed second CLEAN [not used if not set].
    #[arg(short = 'w', long, allow_negative_numbers = true)]
    pub window: Option<f64>,
    /// CLEAN iteration limit.
    #[arg(short = 'n', long = "max-iter", default_value_t = 1000)]
    pub max_iter: usize,
    /// CLEAN loop gain.
    #[arg(short = 'g', long, default_value_t = 0.1)]
    pub gain: f64,
    /// What to write and print.
    #[command(flatten)]
    pub out: Output1dArgs,
    /// The global options that do not apply, hidden.
    #[command(flatten)]
    pub no_cache: NoCacheArgs,
}

/// `arrakis rmsynth3d`: RM-Tools' `rmsynth3d` on FITS cubes; writes FDF_{real,im,tot}_dirty.fits,
/// RMSF_{real,im,tot}.fits, RMSF_FWHM.fits, FDF_maxPI.fits and FDF_peakRM.fits beside the Q cube.
#[derive(Debug, Args)]
pub struct Rmsynth3dArgs {
    /// Stokes Q cube.
    #[arg(value_name = "StokesQ.fits")]
    pub fits_q: PathBuf,
    /// Stokes U cube.
    #[arg(value_name = "StokesU.fits")]
    pub fits_u: PathBuf,
    /// Text file of the channel frequencies, Hz, one per line.
    #[arg(value_name = "freqs_Hz.dat")]
    pub freq_file: PathBuf,
    /// Stokes I model cube (Q and U are divided by it; the FDF is scaled back at lambda0^2).
    #[arg(short = 'i', value_name = "FITS")]
    pub fits_i: Option<PathBuf>,
    /// Text file of per-channel noise values (for variance weights).
    #[arg(short = 'n', value_name = "FILE")]
    pub noise_file: Option<PathBuf>,
    /// Channel weights: uniform or variance (needs -n).
    #[arg(short = 'w', long = "weight-type", default_value = "uniform", value_parser = ["uniform", "variance"])]
    pub weight_type: String,
    /// The Faraday-depth axis and RMSF.
    #[command(flatten)]
    pub axis: FaradayAxisArgs,
    /// Prefix of the output file names.
    #[arg(short = 'o', long = "prefix", default_value = "")]
    pub prefix: String,
    /// Samples across the RMSF FWHM.
    #[arg(short = 's', long = "n-samples", default_value_t = 5.0)]
    pub n_samples: f64,
    /// Skip the RMSF (write only the FDF cubes).
    #[arg(short = 'R', long = "no-rmsf")]
    pub no_rmsf: bool,
    /// Say what is written.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Refused with the reason (one file with extensions is not written; the separate files are).
    #[arg(short = 'f', hide = true)]
    pub extensions: bool,
    /// The global options that do not apply, hidden.
    #[command(flatten)]
    pub no_cache: NoCacheArgs,
}

/// `arrakis rmclean3d`: RM-Tools' `rmclean3d`; writes FDF_clean_{real,im,tot}.fits,
/// FDF_CC_{real,im,tot}.fits and CLEAN_nIter.fits beside the FDF cube.
#[derive(Debug, Args)]
pub struct Rmclean3dArgs {
    /// Any of rmsynth3d's FDF cubes (FDF_real_dirty.fits, _im_, _tot_).
    #[arg(value_name = "FDF_dirty.fits")]
    pub fits_fdf: PathBuf,
    /// Any of rmsynth3d's RMSF cubes (RMSF_real.fits, _im, _tot; RMSF_FWHM.fits is found
    /// beside it).
    #[arg(value_name = "RMSF.fits")]
    pub fits_rmsf: PathBuf,
    /// CLEAN cutoff in flux units (negative: multiples of the theoretical FDF noise, when
    /// the FDF header carries it as arrakis writes it).
    #[arg(
        short = 'c',
        long,
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub cutoff: f64,
    /// CLEAN iteration limit per pixel.
    #[arg(short = 'n', long = "max-iter", default_value_t = 1000)]
    pub max_iter: usize,
    /// CLEAN loop gain.
    #[arg(short = 'g', long, default_value_t = 0.1)]
    pub gain: f64,
    /// Prefix of the output file names.
    #[arg(short = 'o', long = "prefix", default_value = "")]
    pub prefix: String,
    /// Say what is written.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Refused with the reason (the windowed second pass is 1D only here).
    #[arg(short = 'w', hide = true, allow_negative_numbers = true)]
    pub window: Option<f64>,
    /// Refused with the reason (one file with extensions is not written; the separate files are).
    #[arg(short = 'f', hide = true)]
    pub extensions: bool,
    /// Accepted for RM-Tools' scripts: arrakis uses every core (-j is not needed).
    #[arg(long = "ncores", hide = true)]
    pub ncores: Option<usize>,
    /// The global options that do not apply, hidden.
    #[command(flatten)]
    pub no_cache: NoCacheArgs,
}

/// `arrakis build`.
#[derive(Debug, Args, Clone)]
pub struct BuildArgs {
    /// The field.
    #[command(flatten)]
    pub field: FieldArgs,
    /// Print the targets that would run, and why; run nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Keep running independent targets after a failure (per-source stages always do).
    #[arg(short = 'k', long)]
    pub keep_going: bool,
    /// Run STAGE's targets (or a rule's, e.g. wsclean of the imager stage, or the one target
    /// with that id) even if up to date, and whatever is stale after them. Repeatable.
    #[arg(long, value_name = "STAGE|RULE|TARGET")]
    pub force: Vec<String>,
    /// Run every target of the build even if up to date.
    #[arg(long)]
    pub forceall: bool,
    /// Parallel jobs (default: all cores).
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
    /// Build every stage up to and including STAGE.
    #[arg(long, value_name = "STAGE")]
    pub until: Option<String>,
    /// Build only STAGE; its inputs must already be up to date.
    #[arg(long, value_name = "STAGE")]
    pub only: Option<String>,
    /// Write a JSON report of every target's outcome to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Errors only: no progress, notes or table (failures are still listed, with the closing
    /// line).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Evaluate every target even when the snapshot of the last complete build shows that no
    /// file, parameter or record changed since (the snapshot is only a shortcut; both ways
    /// decide the same).
    #[arg(long)]
    pub full_check: bool,
    /// Cluster config (dask-jobqueue YAML) for the cutout and per-source stages; a
    /// dask_jobqueue.SLURMCluster config runs them as Slurm jobs.
    #[arg(long, alias = "dask_config", value_name = "FILE")]
    pub dask_config: Option<PathBuf>,
    /// Cluster config for the imaging stage.
    #[arg(long, alias = "imager_dask_config", value_name = "FILE")]
    pub imager_dask_config: Option<PathBuf>,
    /// Resubmit targets of a failed, timed-out or cancelled Slurm job up to N times.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub retries: u32,
    /// While sbatch cannot reach the Slurm controller (or is missing for a while), retry with
    /// backoff (1 s doubling to 60 s) for up to this many seconds before failing the queued
    /// targets.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub sbatch_patience: u64,
    /// Build a field whose outputs exist into a cache that holds no record of it (every target
    /// runs again). Without it such a build is refused, naming the cache that built the field.
    #[arg(long)]
    pub new_cache: bool,
    /// More fields (directories under the same --datadir), built in the same run.
    #[arg(value_name = "MORE_FIELDS")]
    pub more_fields: Vec<String>,
}

/// `arrakis region`.
#[derive(Debug, Args)]
#[command(mut_arg("field", |a| a.value_name("NAME").help("Region name (the directory made under --datadir, beside its fields)")))]
#[command(mut_arg("more_fields", |a| a.hide(true)))]
pub struct RegionArgs {
    /// How to build: every option of `arrakis build`, for the fields and the region alike
    /// (`--force`, `--until`, `--only` and `--report` for the region only).
    #[command(flatten)]
    pub build: BuildArgs,
    /// The fields to merge (directories under --datadir), comma-separated: --fields A,B,C.
    #[arg(long, value_delimiter = ',', required = true, num_args = 1..)]
    pub fields: Vec<String>,
    /// Two components of different fields are one source when each is the other's nearest and
    /// they lie within this many arcsec.
    #[arg(long, default_value_t = crate::region::DEFAULT_MATCH_ARCSEC, value_name = "ARCSEC")]
    pub match_arcsec: f64,
    /// Take the fields' products as they are instead of building the fields first.
    #[arg(long)]
    pub no_field_builds: bool,
}

/// `arrakis worker` (what a Slurm job runs).
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The batch manifest (`{task}` is replaced by SLURM_ARRAY_TASK_ID).
    #[arg(long)]
    pub manifest: String,
    /// Targets to run at once.
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// Scratch directory for external commands (TMPDIR).
    #[arg(long)]
    pub local_directory: Option<String>,
}

/// `arrakis job-script`.
#[derive(Debug, Args)]
pub struct JobScriptArgs {
    /// The cluster config (dask-jobqueue SLURMCluster YAML).
    #[arg(long, alias = "dask_config", value_name = "FILE")]
    pub dask_config: PathBuf,
}

/// `arrakis status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The field.
    #[command(flatten)]
    pub field: FieldArgs,
}

/// `arrakis archive`.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The field.
    #[command(flatten)]
    pub field: FieldArgs,
    /// Also remove the beam cubes the cutouts were made from (no copy is kept: imaging makes
    /// them again).
    #[arg(long)]
    pub remove_beam_cubes: bool,
}

/// `arrakis explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The field.
    #[command(flatten)]
    pub field: FieldArgs,
    /// Target id, e.g. rmclean/J123745+120300_c1.
    pub target: String,
}

/// `arrakis dag`.
#[derive(Debug, Args)]
pub struct DagArgs {
    /// The field.
    #[command(flatten)]
    pub field: FieldArgs,
    /// Graphviz DOT output (the only format so far; accepted for clarity).
    #[arg(long)]
    pub dot: bool,
}

/// `arrakis gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Fields whose records to check against the current rules (default: every field directory
    /// under --datadir that has records).
    pub fields: Vec<String>,
    /// Directory holding field directories.
    #[arg(long, default_value = ".")]
    pub datadir: PathBuf,
    /// Rule directory (default: the compiled-in rules).
    #[arg(long, env = "ARRAKIS_RULES")]
    pub rules: Option<PathBuf>,
    /// Pipeline config files, as for build.
    #[arg(long)]
    pub config: Vec<PathBuf>,
    /// Parameter overrides, as for build.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Also drop cache records that fail their checksum (their targets rebuild).
    #[arg(long)]
    pub repair: bool,
}

/// `arrakis params`.
#[derive(Debug, Args)]
pub struct ParamsArgs {
    /// Rule directory (default: the compiled-in rules).
    #[arg(long, env = "ARRAKIS_RULES")]
    pub rules: Option<PathBuf>,
    /// Pipeline config files.
    #[arg(long)]
    pub config: Vec<PathBuf>,
    /// Parameter overrides.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Print a pipeline config (YAML) of every parameter with its value and help instead.
    #[arg(long)]
    pub yaml: bool,
}

/// `arrakis bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Engine overhead on a synthetic field with the pipeline's shape: cold build, no-op build,
    /// dry run, one-parameter change, peak memory, cache size.
    Engine {
        /// Number of islands.
        #[arg(long, default_value_t = 10_000)]
        islands: usize,
        /// Number of beams.
        #[arg(long, default_value_t = 36)]
        beams: usize,
        /// Working directory (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Parallel jobs.
        #[arg(short = 'j', long)]
        jobs: Option<usize>,
        /// Only write the field and its rules into --dir (for `benches/peers.py`), time nothing.
        #[arg(long, requires = "dir")]
        field_only: bool,
    },
    /// A region of simulated fields of one sky on a grid, 1° apart: every field built in one run,
    /// then `arrakis region` cold, as a no-op and after a parameter change (wall time, peak
    /// memory, targets, cache size).
    Region {
        /// Fields per side of the grid (side² fields).
        #[arg(long, default_value_t = 3)]
        side: usize,
        /// Islands per field footprint (the sky's density).
        #[arg(long, default_value_t = 20)]
        sources: usize,
        /// Pixels per beam image side.
        #[arg(long, default_value_t = 160)]
        npix: usize,
        /// Channels.
        #[arg(long, default_value_t = 72)]
        nchan: usize,
        /// Working directory (default: a temporary directory); fields already simulated there
        /// are reused.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// A RACS-shaped simulated field built cold beside its I/O floor measured in the same run
    /// (the beam cubes evicted from the page cache, every input read once, the same output
    /// bytes written once), per stage and overall; each stage also built again by itself, as
    /// its floor is measured.
    Field {
        /// Beams.
        #[arg(long, default_value_t = 36)]
        beams: usize,
        /// Pixels per beam image side.
        #[arg(long, default_value_t = 320)]
        npix: usize,
        /// Channels.
        #[arg(long, default_value_t = 288)]
        nchan: usize,
        /// Islands.
        #[arg(long, default_value_t = 600)]
        sources: usize,
        /// Parallel jobs (default: every core).
        #[arg(short, long)]
        jobs: Option<usize>,
        /// Working directory (default: a temporary directory); a field already simulated there
        /// is reused (RACS size: 12.7 GB of cubes, 10 GB of outputs).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Time the build of this arrakis binary instead (an earlier version, for a before and
        /// after on the same floors); the floors are measured by this one.
        #[arg(long, value_name = "ARRAKIS")]
        build_with: Option<PathBuf>,
    },
    /// Going back to earlier parameters: a simulated field built, a parameter changed and
    /// changed back twice (recompute, then restores from the content store), a no-op, and the
    /// store's size against the field's outputs.
    Store {
        /// Islands.
        #[arg(long, default_value_t = 1000)]
        sources: usize,
        /// Pixels per beam image side.
        #[arg(long, default_value_t = 96)]
        npix: usize,
        /// Channels.
        #[arg(long, default_value_t = 72)]
        nchan: usize,
        /// Working directory (default: a temporary directory); a field already simulated there
        /// is reused.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// A simulated field built by the local executor and by the Slurm executor in the same run:
    /// wall time, Slurm jobs submitted, scheduling overhead per target.
    Slurm {
        /// Number of islands.
        #[arg(long, default_value_t = 1000)]
        sources: usize,
        /// Number of beams.
        #[arg(long, default_value_t = 9)]
        beams: usize,
        /// Pixels per beam image side.
        #[arg(long, default_value_t = 256)]
        npix: usize,
        /// Channels.
        #[arg(long, default_value_t = 36)]
        nchan: usize,
        /// Cluster config (default: cores 2, processes 2, maximum_jobs 4, target_duration 10s).
        #[arg(long = "dask-config", alias = "dask_config")]
        dask_config: Option<PathBuf>,
        /// Working directory (default: a scratch directory under the current one, so that
        /// Slurm jobs see it).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Parallel jobs of the local build.
        #[arg(short = 'j', long)]
        jobs: Option<usize>,
    },
    /// 3D RM synthesis and RM-CLEAN, arrakis vs RM-Tools on the same cube.
    Rm3d {
        /// Pixels per image side.
        #[arg(long, default_value_t = 256)]
        npix: usize,
        /// Pixels per side of the corner CLEANed by both (RM-Tools cleans pixel by pixel in
        /// Python).
        #[arg(long, default_value_t = 32)]
        clean_npix: usize,
        /// Python with RM-Tools installed (default: $ARRAKIS_PYTHON or /opt/arrakis-venv).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Runs of each kernel on each side; the fastest counts (the machines are shared).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// Cutout and input-hashing throughput on big beam cubes against reading them through.
    Io {
        /// Pixels per image side.
        #[arg(long, default_value_t = 2048)]
        npix: usize,
        /// Channels.
        #[arg(long, default_value_t = 36)]
        nchan: usize,
        /// Islands in the beam.
        #[arg(long, default_value_t = 300)]
        sources: usize,
        /// Working directory (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The imager's common-resolution step against RACS-tools' beamcon_2D (what Arrakis runs) on
    /// the same channel images: common beam, time, pixel agreement.
    Smooth {
        /// Pixels per image side.
        #[arg(long, default_value_t = 2048)]
        npix: usize,
        /// Channel images.
        #[arg(long, default_value_t = 36)]
        nchan: usize,
        /// RACS-tools' beamcon_2D (default: $ARRAKIS_BEAMCON or /opt/racs-venv/bin/beamcon_2D).
        #[arg(long)]
        beamcon: Option<PathBuf>,
        /// Working directory (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Ionosphere prediction from IONEX: reading a day of global maps, and RM_ion over a
    /// 15-minute scan for N island directions (RMextract's 300 s samples).
    Ionosphere {
        /// Number of island directions.
        #[arg(long, default_value_t = 1000)]
        islands: usize,
    },
    /// RM synthesis + RM-CLEAN per spectrum, arrakis vs RM-Tools on the same spectra.
    Rm1d {
        /// Number of spectra.
        #[arg(long, default_value_t = 200)]
        spectra: usize,
        /// Python with RM-Tools installed (default: $ARRAKIS_PYTHON or /opt/arrakis-venv).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Passes of arrakis over the spectra; the fastest counts (more passes steady the figure
        /// and make a profile of arrakis's side).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Time arrakis only (for profiling): skip RM-Tools.
        #[arg(long)]
        no_reference: bool,
    },
}

/// `arrakis demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the demo field.
    #[arg(long, default_value = "demo")]
    pub dir: PathBuf,
    /// Parallel jobs (default: all cores).
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
}

/// `--scan-start`: MJD seconds, or a UTC time as the frion stage reads `ion_start`.
fn scan_start(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .or_else(|| crate::stages::frion::parse_utc(s))
        .ok_or_else(|| {
            format!("'{s}' is neither MJD seconds (e.g. 5.0e9) nor a UTC time (e.g. 2019-04-27T08:53:20)")
        })
}
