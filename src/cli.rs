//! Command-line definitions (clap derive). Nothing here does any work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::stages::params as P;

/// arrakis: the SPICE-RACS polarisation pipeline as an incremental build system.
#[derive(Debug, Parser)]
#[command(name = "arrakis", version, about, long_about = None)]
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
    /// Build a field: run exactly the targets that are not up to date.
    Build(BuildArgs),
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
    /// RM synthesis of one spectrum (as RM-Tools' rmsynth1d); prints a JSON summary.
    Rmsynth1d(Rm1dArgs),
    /// RM synthesis then RM-CLEAN of one spectrum (as RM-Tools' rmclean1d); prints
    /// {"synth": ..., "clean": ...}.
    Rmclean1d(Rm1dArgs),
    /// Simulate a small field into ./demo and build it (the README's first command).
    Demo(DemoArgs),
    /// Write a simulated ASKAP-like field (beam cubes, catalogues, field.yaml, truth.csv).
    Simulate(SimulateArgs),
    /// Set up a field from real ASKAP products: link the beam cubes and weights found in
    /// --images, write field.yaml from their headers, and the catalogues as the rules read them.
    Init(InitArgs),
    /// Benchmarks.
    Bench(BenchArgs),
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

/// Stokes I model for `--fit-function`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FitFunctionArg {
    /// Log-polynomial (power law with curvature).
    Log,
    /// Linear polynomial.
    Linear,
}

/// Channel weights for `--weight-type`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum WeightTypeArg {
    /// 1/σ² from dQ and dU.
    Variance,
    /// All ones.
    Uniform,
}

/// `arrakis rmsynth1d` / `rmclean1d`: the pipeline's parameter names, and its defaults (read
/// from the one table of them, `stages::params`).
#[derive(Debug, Args)]
pub struct Rm1dArgs {
    /// Text file: columns freq_Hz I Q U dI dQ dU, or freq_Hz Q U dQ dU.
    pub file: PathBuf,
    /// Stokes I model order (negative: choose up to |N| by AIC).
    #[arg(long, default_value_t = P::POLY_ORD.default.int() as i32, allow_negative_numbers = true)]
    pub poly_ord: i32,
    /// Stokes I model.
    #[arg(long, value_enum, default_value = P::FIT_FUNCTION.default.str())]
    pub fit_function: FitFunctionArg,
    /// Samples across the RMSF FWHM (when --dphi is not given).
    #[arg(long, default_value_t = P::N_SAMPLES.default.float())]
    pub n_samples: f64,
    /// Faraday-depth spacing, rad/m^2.
    #[arg(long)]
    pub dphi: Option<f64>,
    /// Largest |Faraday depth|, rad/m^2.
    #[arg(long)]
    pub phi_max: Option<f64>,
    /// Channel weights.
    #[arg(long, value_enum, default_value = P::WEIGHT_TYPE.default.str())]
    pub weight_type: WeightTypeArg,
    /// Fit a Gaussian to the RMSF main lobe for its FWHM.
    #[arg(long)]
    pub fit_rmsf: bool,
    /// CLEAN cutoff (negative: multiples of the theoretical FDF noise).
    #[arg(long, default_value_t = P::CUTOFF.default.float(), allow_negative_numbers = true)]
    pub cutoff: f64,
    /// CLEAN iteration limit.
    #[arg(long, default_value_t = P::MAX_ITER.default.int() as usize)]
    pub max_iter: usize,
    /// CLEAN loop gain.
    #[arg(long, default_value_t = P::GAIN.default.float())]
    pub gain: f64,
    /// Windowed second CLEAN pass threshold (negative: multiples of the noise); off by default.
    #[arg(long, allow_negative_numbers = true)]
    pub window: Option<f64>,
}

/// `arrakis build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The field.
    #[command(flatten)]
    pub field: FieldArgs,
    /// Print the targets that would run, and why; run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep running independent targets after a failure (per-source stages always do).
    #[arg(long)]
    pub keep_going: bool,
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
    /// No progress bars or lines.
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
