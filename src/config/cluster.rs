//! Cluster configs: the dask-jobqueue / distributed YAML files Arrakis users already have
//! (`cluster_class`, `cluster_kwargs`, `adapt_kwargs`), read with dask-jobqueue's meaning of
//! every key (`../shared/slurm/JOBQUEUE.md`).
//!
//! Owns: parsing and validating those files (errors name file, line and key, with the nearest
//! known key for a typo), dask's byte-size grammar, Slurm's `--mem` rounding, and the job bounds
//! that `adapt_kwargs` imply.
//! Must never: submit anything, or print job scripts (`exec::slurm::script` does).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

use super::ConfigError;
use crate::diag::{did_you_mean, line_of, location};

/// Which executor a config selects.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterClass {
    /// `distributed.LocalCluster` (or no config): the rayon pool.
    Local,
    /// `dask_jobqueue.SLURMCluster`.
    Slurm,
}

/// `cluster_kwargs` of a SLURMCluster, with dask-jobqueue's defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlurmKwargs {
    /// Cores per job (`--cpus-per-task` unless `job_cpu`).
    pub cores: u32,
    /// Worker processes per job; with `cores` this sets how many targets run at once in a job.
    pub processes: u32,
    /// Memory per job in bytes (from `memory`).
    pub memory_bytes: u64,
    /// `-J` (`job_name`; default `dask-worker`). `name` is the cluster name, not this.
    pub job_name: String,
    /// The cluster name (`name`); only labels worker logs.
    pub name: Option<String>,
    /// `-p`.
    pub queue: Option<String>,
    /// `-A` (`account`, or the deprecated `project`).
    pub account: Option<String>,
    /// `-t`, verbatim (default `00:30:00`).
    pub walltime: String,
    /// `--cpus-per-task` override.
    pub job_cpu: Option<u32>,
    /// `--mem` override, verbatim.
    pub job_mem: Option<String>,
    /// Extra `#SBATCH` lines, verbatim, after the standard ones.
    pub job_extra_directives: Vec<String>,
    /// Substrings: standard header lines containing any are dropped.
    pub job_directives_skip: Vec<String>,
    /// Lines after the header, before the worker command.
    pub job_script_prologue: Vec<String>,
    /// `-e`/`-o` directory (relative to the directory arrakis is run from); created by us.
    pub log_directory: Option<String>,
    /// Scratch directory for the worker, expanded by the job's shell (`$LOCALDIR` works).
    pub local_directory: Option<String>,
    /// First line of the script (default `#!/usr/bin/env bash`).
    pub shebang: String,
}

/// `adapt_kwargs`, as bounds on jobs in flight and the batch sizing goal.
#[derive(Clone, Debug, PartialEq)]
pub struct Adapt {
    /// Most jobs in flight: `maximum_jobs`, or `maximum` workers / `processes` (rounded up).
    pub max_jobs: usize,
    /// How long a batch should take (`target_duration`; default 5 s).
    pub target_duration: Duration,
    /// How often job states are polled (`interval`; default 1 s; at most 5 s is used).
    pub interval: Duration,
}

/// A parsed cluster config.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The file it came from (None: the built-in local default).
    pub path: Option<PathBuf>,
    /// Which executor.
    pub class: ClusterClass,
    /// Slurm job settings (meaningful for `Slurm`).
    pub slurm: SlurmKwargs,
    /// Scaling bounds.
    pub adapt: Adapt,
    /// Local parallelism a LocalCluster config asks for (`n_workers` × `threads_per_worker`).
    pub local_jobs: Option<usize>,
    /// Keys accepted but meaningless to arrakis (Dask-only), with where they are.
    pub unused: Vec<String>,
}

/// Keys of SLURMCluster that arrakis uses.
const SLURM_KEYS: &[&str] = &[
    "cores",
    "processes",
    "memory",
    "job_name",
    "name",
    "queue",
    "account",
    "project",
    "walltime",
    "job_cpu",
    "job_mem",
    "job_extra_directives",
    "job_extra",
    "job_directives_skip",
    "header_skip",
    "job_script_prologue",
    "env_extra",
    "log_directory",
    "local_directory",
    "shebang",
];

/// Keys that mean something only to Dask (its workers, scheduler or logging).
const DASK_ONLY_KEYS: &[&str] = &[
    "interface",
    "silence_logs",
    "worker_extra_args",
    "extra",
    "protocol",
    "security",
    "death_timeout",
    "nanny",
    "scheduler_options",
    "shared_temp_directory",
    "host",
    "dashboard_address",
    "n_workers",
    "asynchronous",
    "config_name",
    "python",
    "worker_command",
    "scheduler_cls",
    "loop",
    "worker_class",
    "worker_options",
    "env_vars",
];

const LOCAL_KEYS: &[&str] = &["n_workers", "threads_per_worker", "processes"];
const LOCAL_DASK_ONLY: &[&str] = &[
    "memory_limit",
    "dashboard_address",
    "silence_logs",
    "host",
    "scheduler_port",
    "local_directory",
    "interface",
    "protocol",
    "asynchronous",
    "name",
    "security",
    "worker_class",
    "blocked_handlers",
    "service_kwargs",
];

const ADAPT_KEYS: &[&str] = &[
    "minimum",
    "maximum",
    "minimum_jobs",
    "maximum_jobs",
    "target_duration",
    "interval",
    "wait_count",
    "minimum_memory",
    "maximum_memory",
    "minimum_cores",
    "maximum_cores",
];

/// dask-jobqueue's `slurm_format_bytes_ceil`: whole G, M or K, rounded up (at least `1K`).
pub fn slurm_mem(bytes: u64) -> String {
    let units = [(1u64 << 30, 'G'), (1 << 20, 'M'), (1 << 10, 'K')];
    for (size, unit) in units {
        if bytes >= size {
            return format!("{}{unit}", bytes.div_ceil(size));
        }
    }
    "1K".into()
}

struct Reader<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Reader<'_> {
    fn err(&self, key: &[&str], message: String) -> ConfigError {
        ConfigError {
            location: location(self.path, line_of(self.text, key)),
            message,
        }
    }

    fn string(&self, key: &[&str], v: &Value) -> Result<String, ConfigError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(self.err(key, format!("{} must be a string", key.join(".")))),
        }
    }

    fn count(&self, key: &[&str], v: &Value) -> Result<u32, ConfigError> {
        v.as_u64()
            .filter(|&n| n >= 1 && n <= u32::MAX as u64)
            .map(|n| n as u32)
            .ok_or_else(|| self.err(key, format!("{} must be a whole number ≥ 1", key.join("."))))
    }

    fn strings(&self, key: &[&str], v: &Value) -> Result<Vec<String>, ConfigError> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::Sequence(items) => items.iter().map(|i| self.string(key, i)).collect(),
            Value::String(s) => Ok(vec![s.clone()]),
            _ => Err(self.err(key, format!("{} must be a list of strings", key.join(".")))),
        }
    }
}

impl ClusterConfig {
    /// The built-in local executor (no config given).
    pub fn local_default() -> ClusterConfig {
        ClusterConfig {
            path: None,
            class: ClusterClass::Local,
            slurm: SlurmKwargs::default(),
            adapt: Adapt {
                max_jobs: 1,
                target_duration: Duration::from_secs(5),
                interval: Duration::from_secs(1),
            },
            local_jobs: None,
            unused: Vec::new(),
        }
    }

    /// Read a cluster config file.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let text = crate::hash::read_regular_string(path).map_err(|e| ConfigError {
            location: path.display().to_string(),
            message: format!("cannot read the cluster config: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Parse a cluster config's text (`path` is for messages).
    pub fn parse(path: &Path, text: &str) -> Result<ClusterConfig, ConfigError> {
        let r = Reader { path, text };
        let doc: Value = serde_yaml::from_str(text).map_err(|e| ConfigError {
            location: location(path, e.location().map(|l| l.line())),
            message: format!("not valid YAML: {e}"),
        })?;
        let Value::Mapping(top) = doc else {
            return Err(r.err(
                &[],
                "a cluster config is a mapping with cluster_class, cluster_kwargs and adapt_kwargs"
                    .into(),
            ));
        };
        let mut class = None;
        let mut kwargs = serde_yaml::Mapping::new();
        let mut adapt = serde_yaml::Mapping::new();
        let mut unused = Vec::new();
        for (k, v) in &top {
            let k = k.as_str().unwrap_or_default();
            match k {
                "cluster_class" => {
                    let s = r.string(&[k], v)?;
                    class = Some(match s.as_str() {
                        "dask_jobqueue.SLURMCluster" => ClusterClass::Slurm,
                        "distributed.LocalCluster" | "dask.distributed.LocalCluster" => {
                            ClusterClass::Local
                        }
                        other => {
                            return Err(r.err(
                                &[k],
                                format!(
                                    "cluster_class '{other}' is not supported: use dask_jobqueue.SLURMCluster (Slurm) or distributed.LocalCluster (this machine)"
                                ),
                            ))
                        }
                    });
                }
                "cluster_kwargs" => match v {
                    Value::Mapping(m) => kwargs = m.clone(),
                    Value::Null => {}
                    _ => return Err(r.err(&[k], "cluster_kwargs must be a mapping".into())),
                },
                "adapt_kwargs" => match v {
                    Value::Mapping(m) => adapt = m.clone(),
                    Value::Null => {}
                    _ => return Err(r.err(&[k], "adapt_kwargs must be a mapping".into())),
                },
                other => {
                    return Err(r.err(
                        &[other],
                        format!(
                            "unknown key '{other}'{}; a cluster config has cluster_class, cluster_kwargs and adapt_kwargs (pipeline parameters go in a file given with --config)",
                            did_you_mean(other, ["cluster_class", "cluster_kwargs", "adapt_kwargs"])
                        ),
                    ))
                }
            }
        }
        let class = class.ok_or_else(|| {
            r.err(
                &[],
                "cluster_class is missing: add `cluster_class: \"dask_jobqueue.SLURMCluster\"` (or distributed.LocalCluster)".into(),
            )
        })?;
        let mut cfg = ClusterConfig::local_default();
        cfg.path = Some(path.to_path_buf());
        cfg.class = class.clone();
        let (known, dask_only) = match class {
            ClusterClass::Slurm => (SLURM_KEYS, DASK_ONLY_KEYS),
            ClusterClass::Local => (LOCAL_KEYS, LOCAL_DASK_ONLY),
        };
        for (k, _) in &kwargs {
            let k = k.as_str().unwrap_or_default();
            if dask_only.contains(&k) {
                unused.push(format!(
                    "cluster_kwargs.{k} ({}): only Dask uses it",
                    location(path, line_of(text, &["cluster_kwargs", k]))
                ));
            } else if !known.contains(&k) {
                return Err(r.err(
                    &["cluster_kwargs", k],
                    format!(
                        "unknown cluster_kwargs key '{k}'{}",
                        did_you_mean(k, known.iter().chain(dask_only).copied())
                    ),
                ));
            }
        }
        for (k, _) in &adapt {
            let k = k.as_str().unwrap_or_default();
            if !ADAPT_KEYS.contains(&k) {
                return Err(r.err(
                    &["adapt_kwargs", k],
                    format!(
                        "unknown adapt_kwargs key '{k}'{}",
                        did_you_mean(k, ADAPT_KEYS.iter().copied())
                    ),
                ));
            }
            if matches!(
                k,
                "wait_count"
                    | "minimum_memory"
                    | "maximum_memory"
                    | "minimum_cores"
                    | "maximum_cores"
                    | "minimum"
                    | "minimum_jobs"
            ) {
                unused.push(format!(
                    "adapt_kwargs.{k} ({}): arrakis submits jobs only for work that is ready and lets each finish its batch",
                    location(path, line_of(text, &["adapt_kwargs", k]))
                ));
            }
        }
        let kw = |k: &str| kwargs.get(k).filter(|v| !v.is_null());
        match class {
            ClusterClass::Local => {
                let n = match kw("n_workers") {
                    Some(v) => Some(r.count(&["cluster_kwargs", "n_workers"], v)?),
                    None => None,
                };
                let t = match kw("threads_per_worker") {
                    Some(v) => r.count(&["cluster_kwargs", "threads_per_worker"], v)?,
                    None => 1,
                };
                cfg.local_jobs = n.map(|n| (n * t) as usize);
            }
            ClusterClass::Slurm => {
                let s = &mut cfg.slurm;
                let key = |k: &'static str| ["cluster_kwargs", k];
                s.cores =
                    match kw("cores") {
                        Some(v) => r.count(&key("cores"), v)?,
                        None => return Err(r.err(
                            &["cluster_kwargs"],
                            "cluster_kwargs.cores is missing: SLURMCluster needs the cores per job"
                                .into(),
                        )),
                    };
                s.processes = match kw("processes") {
                    Some(v) => r.count(&key("processes"), v)?,
                    // dask's nprocesses_nthreads: about sqrt(cores) processes.
                    None => default_processes(s.cores),
                };
                let mem = kw("memory").ok_or_else(|| {
                    r.err(
                        &["cluster_kwargs"],
                        "cluster_kwargs.memory is missing: SLURMCluster needs the memory per job (e.g. \"16GiB\")".into(),
                    )
                })?;
                let mem_s = r.string(&key("memory"), mem)?;
                s.memory_bytes = match super::dask::parse_bytes(&mem_s) {
                    Ok(b) if b > 0 && b <= u64::MAX as i128 => b as u64,
                    Ok(_) => {
                        return Err(r.err(
                            &key("memory"),
                            format!("memory '{mem_s}' must be a positive size: write e.g. 128GiB, 250GB or 64G"),
                        ))
                    }
                    Err(e) => {
                        return Err(r.err(
                            &key("memory"),
                            format!("memory '{mem_s}' is not a size in dask's grammar ({e}): write e.g. 128GiB, 250GB or 64G"),
                        ))
                    }
                };
                s.job_name = match kw("job_name") {
                    Some(v) => r.string(&key("job_name"), v)?,
                    None => "dask-worker".into(),
                };
                s.name = kw("name").map(|v| r.string(&key("name"), v)).transpose()?;
                s.queue = kw("queue")
                    .map(|v| r.string(&key("queue"), v))
                    .transpose()?;
                s.account = match (kw("account"), kw("project")) {
                    (Some(v), _) => Some(r.string(&key("account"), v)?),
                    (None, Some(v)) => Some(r.string(&key("project"), v)?),
                    _ => None,
                };
                s.walltime = match kw("walltime") {
                    Some(v) => r.string(&key("walltime"), v)?,
                    None => "00:30:00".into(),
                };
                s.job_cpu = kw("job_cpu")
                    .map(|v| r.count(&key("job_cpu"), v))
                    .transpose()?;
                s.job_mem = kw("job_mem")
                    .map(|v| r.string(&key("job_mem"), v))
                    .transpose()?;
                let list = |a: &'static str, b: &'static str| -> Result<Vec<String>, ConfigError> {
                    match (kw(a), kw(b)) {
                        (Some(v), _) => r.strings(&["cluster_kwargs", a], v),
                        (None, Some(v)) => r.strings(&["cluster_kwargs", b], v),
                        _ => Ok(Vec::new()),
                    }
                };
                s.job_extra_directives = list("job_extra_directives", "job_extra")?;
                s.job_directives_skip = list("job_directives_skip", "header_skip")?;
                s.job_script_prologue = list("job_script_prologue", "env_extra")?
                    .into_iter()
                    .filter(|l| !l.is_empty())
                    .collect();
                s.log_directory = kw("log_directory")
                    .map(|v| r.string(&key("log_directory"), v))
                    .transpose()?;
                s.local_directory = kw("local_directory")
                    .map(|v| r.string(&key("local_directory"), v))
                    .transpose()?;
                s.shebang = match kw("shebang") {
                    Some(v) => r.string(&key("shebang"), v)?,
                    None => "#!/usr/bin/env bash".into(),
                };
            }
        }
        let ak = |k: &str| adapt.get(k).filter(|v| !v.is_null());
        let processes = cfg.slurm.processes.max(1) as usize;
        let count = |k: &'static str| -> Result<Option<usize>, ConfigError> {
            ak(k)
                .map(|v| {
                    v.as_u64().map(|n| n as usize).ok_or_else(|| {
                        r.err(
                            &["adapt_kwargs", k],
                            format!("adapt_kwargs.{k} must be a whole number"),
                        )
                    })
                })
                .transpose()
        };
        let max_jobs = match (count("maximum_jobs")?, count("maximum")?) {
            (Some(j), _) => j,
            (None, Some(w)) => w.div_ceil(processes),
            (None, None) => usize::MAX,
        };
        if max_jobs == 0 {
            return Err(r.err(
                &["adapt_kwargs"],
                "adapt_kwargs allows no jobs at all (maximum 0): raise maximum_jobs or maximum"
                    .into(),
            ));
        }
        cfg.adapt.max_jobs = max_jobs;
        // Also validate the minimums' types, though arrakis does not keep idle jobs.
        count("minimum_jobs")?;
        count("minimum")?;
        let dur = |k: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            match ak(k) {
                None => Ok(default),
                Some(v) => {
                    let s = r.string(&["adapt_kwargs", k], v)?;
                    match super::dask::parse_timedelta(&s) {
                        Ok(secs) => Duration::try_from_secs_f64(secs).map_err(|_| r.err(
                            &["adapt_kwargs", k],
                            format!("adapt_kwargs.{k} '{s}' must be a duration of at least 0 s: write e.g. \"5s\", \"300s\" or \"2m\""),
                        )),
                        Err(e) => Err(r.err(
                            &["adapt_kwargs", k],
                            format!("adapt_kwargs.{k} '{s}' is not a duration in dask's grammar ({e}): write e.g. \"5s\", \"300s\" or \"2m\""),
                        )),
                    }
                }
            }
        };
        cfg.adapt.target_duration = dur("target_duration", Duration::from_secs(5))?;
        cfg.adapt.interval = dur("interval", Duration::from_secs(1))?;
        cfg.unused = unused;
        Ok(cfg)
    }

    /// Targets a job runs at once: `processes` × (`cores` / `processes`), at least 1.
    pub fn parallel_per_job(&self) -> usize {
        let p = self.slurm.processes.max(1);
        (p * (self.slurm.cores / p).max(1)) as usize
    }
}

/// dask's `nprocesses_nthreads`: for `cores` ≤ 4 one process per core, else the divisor of
/// `cores` nearest to its square root (from above).
fn default_processes(cores: u32) -> u32 {
    if cores <= 4 {
        return cores.max(1);
    }
    let root = (cores as f64).sqrt().ceil() as u32;
    (root..=cores)
        .find(|d| cores.is_multiple_of(*d))
        .unwrap_or(cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClusterConfig, ConfigError> {
        ClusterConfig::parse(Path::new("c.yaml"), text)
    }

    fn slurm(kwargs: &str) -> ClusterConfig {
        let text = format!(
            "cluster_class: dask_jobqueue.SLURMCluster\ncluster_kwargs:\n  cores: 4\n  memory: 8GiB\n{kwargs}"
        );
        parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn sizes_and_durations_are_read_as_dask_reads_them() {
        let c = |mem: &str, dur: &str| {
            parse(&format!(
                "cluster_class: dask_jobqueue.SLURMCluster\ncluster_kwargs:\n  cores: 4\n  memory: \"{mem}\"\nadapt_kwargs:\n  target_duration: \"{dur}\"\n"
            ))
        };
        let ok = c("5 Gi", "1.5 minutes").unwrap();
        assert_eq!(ok.slurm.memory_bytes, 5 << 30);
        assert_eq!(ok.adapt.target_duration, Duration::from_secs(90));
        for (mem, dur, want) in [
            ("-1GB", "5s", "must be a positive size"),
            ("0", "5s", "must be a positive size"),
            ("12 parsecs", "5s", "'parsecs' is not a byte unit"),
            ("8GiB", "2min", "'min' is not a time unit"),
            ("8GiB", "-5s", "not a number"),
            ("8GiB", "1e300d", "at least 0 s"),
        ] {
            let e = c(mem, dur).unwrap_err().to_string();
            assert!(e.contains(want), "{mem} {dur}: {e}");
        }
    }

    #[test]
    fn slurm_mem_rounds_up_to_whole_units() {
        assert_eq!(slurm_mem(248 << 30), "248G");
        assert_eq!(slurm_mem(250_000_000_000), "233G");
        assert_eq!(slurm_mem((1 << 30) - 1), "1024M");
        assert_eq!(slurm_mem(1500), "2K");
        assert_eq!(slurm_mem(10), "1K");
    }

    #[test]
    fn each_cluster_kwarg() {
        let c = slurm("");
        assert_eq!(c.class, ClusterClass::Slurm);
        assert_eq!(c.slurm.cores, 4);
        assert_eq!(c.slurm.memory_bytes, 8 << 30);
        assert_eq!(c.slurm.job_name, "dask-worker");
        assert_eq!(c.slurm.walltime, "00:30:00");
        assert_eq!(
            c.slurm.processes, 4,
            "dask: one process per core up to 4 cores"
        );
        assert_eq!(c.slurm.shebang, "#!/usr/bin/env bash");
        assert_eq!(slurm("  processes: 2\n").slurm.processes, 2);
        assert_eq!(slurm("  job_name: spice\n").slurm.job_name, "spice");
        let named = slurm("  name: spice-worker\n");
        assert_eq!(named.slurm.name.as_deref(), Some("spice-worker"));
        assert_eq!(
            named.slurm.job_name, "dask-worker",
            "name is not the job name"
        );
        assert_eq!(
            slurm("  queue: work\n").slurm.queue.as_deref(),
            Some("work")
        );
        assert_eq!(
            slurm("  account: OD-1\n").slurm.account.as_deref(),
            Some("OD-1")
        );
        assert_eq!(
            slurm("  project: OD-2\n").slurm.account.as_deref(),
            Some("OD-2")
        );
        assert_eq!(
            slurm("  walltime: '1-00:00:00'\n").slurm.walltime,
            "1-00:00:00"
        );
        assert_eq!(slurm("  job_cpu: 8\n").slurm.job_cpu, Some(8));
        assert_eq!(
            slurm("  job_mem: 10G\n").slurm.job_mem.as_deref(),
            Some("10G")
        );
        assert_eq!(
            slurm("  job_extra_directives: ['--qos express', '--exclusive']\n")
                .slurm
                .job_extra_directives,
            ["--qos express", "--exclusive"]
        );
        assert_eq!(
            slurm("  job_extra: ['--qos x']\n")
                .slurm
                .job_extra_directives,
            ["--qos x"]
        );
        assert_eq!(
            slurm("  job_directives_skip: ['--mem']\n")
                .slurm
                .job_directives_skip,
            ["--mem"]
        );
        assert_eq!(
            slurm("  header_skip: ['-J']\n").slurm.job_directives_skip,
            ["-J"]
        );
        assert_eq!(
            slurm("  job_script_prologue: ['module load x', '', 'export A=1']\n")
                .slurm
                .job_script_prologue,
            ["module load x", "export A=1"]
        );
        assert_eq!(
            slurm("  env_extra: ['export B=2']\n")
                .slurm
                .job_script_prologue,
            ["export B=2"]
        );
        assert_eq!(
            slurm("  log_directory: logs\n")
                .slurm
                .log_directory
                .as_deref(),
            Some("logs")
        );
        assert_eq!(
            slurm("  local_directory: $LOCALDIR\n")
                .slurm
                .local_directory
                .as_deref(),
            Some("$LOCALDIR")
        );
        assert_eq!(
            slurm("  shebang: '#!/bin/bash'\n").slurm.shebang,
            "#!/bin/bash"
        );
        let dask = slurm("  interface: ib0\n  silence_logs: info\n  worker_extra_args: ['--x']\n");
        assert_eq!(dask.unused.len(), 3, "{:?}", dask.unused);
        assert!(dask.unused[0].contains("interface") && dask.unused[0].contains("c.yaml:5"));
    }

    #[test]
    fn default_processes_follow_dask() {
        assert_eq!(default_processes(1), 1);
        assert_eq!(default_processes(4), 4);
        assert_eq!(default_processes(16), 4);
        assert_eq!(default_processes(6), 3);
        assert_eq!(default_processes(7), 7);
    }

    #[test]
    fn adapt_bounds() {
        let c = slurm("  processes: 4\nadapt_kwargs:\n  minimum: 108\n  maximum: 512\n  target_duration: 5s\n  interval: 10s\n");
        assert_eq!(c.adapt.max_jobs, 128, "512 workers / 4 processes");
        assert_eq!(c.adapt.target_duration, Duration::from_secs(5));
        assert_eq!(c.adapt.interval, Duration::from_secs(10));
        let c = slurm("adapt_kwargs:\n  minimum_jobs: 1\n  maximum_jobs: 36\n  maximum: 3\n  target_duration: 300s\n");
        assert_eq!(c.adapt.max_jobs, 36, "maximum_jobs wins over maximum");
        assert_eq!(c.adapt.target_duration, Duration::from_secs(300));
        assert_eq!(slurm("").adapt.max_jobs, usize::MAX);
        let c = slurm("  processes: 3\nadapt_kwargs:\n  maximum: 10\n");
        assert_eq!(c.adapt.max_jobs, 4, "jobs = ceil(workers / processes)");
        assert_eq!(c.parallel_per_job(), 3);
    }

    #[test]
    fn bad_configs_say_where_and_what() {
        let e = slurm_err("  memroy: 8GiB\n");
        assert!(
            e.contains("c.yaml:5") && e.contains("did you mean 'memory'"),
            "{e}"
        );
        let e = parse("cluster_class: dask_jobqueue.SLURMCluster\ncluster_kwargs:\n  cores: many\n  memory: 8GiB\n").unwrap_err().to_string();
        assert!(e.contains("cores must be a whole number"), "{e}");
        let e = parse("cluster_class: dask_jobqueue.SLURMCluster\ncluster_kwargs:\n  cores: 2\n  memory: lots\n").unwrap_err().to_string();
        assert!(
            e.contains("c.yaml:4") && e.contains("memory 'lots' is not a size"),
            "{e}"
        );
        let e = parse("cluster_class: dask_jobqueue.PBSCluster\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported"), "{e}");
        let e = parse("cluster_kwargs: {cores: 1}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cluster_class is missing"), "{e}");
        let e = slurm_err("adapt_kwargs:\n  maximum_jobz: 3\n");
        assert!(e.contains("did you mean 'maximum_jobs'"), "{e}");
        let e = slurm_err("adapt_kwargs:\n  target_duration: soon\n");
        assert!(e.contains("not a duration"), "{e}");
    }

    fn slurm_err(extra: &str) -> String {
        parse(&format!(
            "cluster_class: dask_jobqueue.SLURMCluster\ncluster_kwargs:\n  cores: 4\n  memory: 8GiB\n{extra}"
        ))
        .unwrap_err()
        .to_string()
    }

    #[test]
    fn local_cluster() {
        let c = parse("cluster_class: distributed.LocalCluster\ncluster_kwargs:\n  n_workers: 3\n  threads_per_worker: 2\n  memory_limit: 4GB\n").unwrap();
        assert_eq!(c.class, ClusterClass::Local);
        assert_eq!(c.local_jobs, Some(6));
        assert_eq!(c.unused.len(), 1);
    }
}
