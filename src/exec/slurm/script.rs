//! The job script a Slurm job gets, as dask-jobqueue 0.9 writes it for the same `cluster_kwargs`
//! (`arrakis job-script` prints it), and the `arrakis worker` command line inside it.
//!
//! Must never: put a value into the script unquoted (the only variables left for the job's
//! shell are Slurm's and the user's prologue).

use std::path::Path;

use super::*;

/// The job script for one job of `cfg`, running `worker_command`: dask-jobqueue's layout
/// (shebang, blank line, `#SBATCH` header, prologue, command).
pub fn job_script(cfg: &ClusterConfig, worker_command: &str) -> String {
    let s = &cfg.slurm;
    let mut header = vec![format!("#SBATCH -J {}", s.job_name)];
    if let Some(dir) = &s.log_directory {
        header.push(format!("#SBATCH -e {dir}/{}-%J.err", s.job_name));
        header.push(format!("#SBATCH -o {dir}/{}-%J.out", s.job_name));
    }
    if let Some(q) = &s.queue {
        header.push(format!("#SBATCH -p {q}"));
    }
    if let Some(a) = &s.account {
        header.push(format!("#SBATCH -A {a}"));
    }
    header.push("#SBATCH -n 1".into());
    header.push(format!(
        "#SBATCH --cpus-per-task={}",
        s.job_cpu.unwrap_or(s.cores)
    ));
    header.push(format!(
        "#SBATCH --mem={}",
        s.job_mem
            .clone()
            .unwrap_or_else(|| slurm_mem(s.memory_bytes))
    ));
    header.push(format!("#SBATCH -t {}", s.walltime));
    header.retain(|line| {
        !s.job_directives_skip
            .iter()
            .any(|skip| line.contains(skip.as_str()))
    });
    header.extend(
        s.job_extra_directives
            .iter()
            .map(|d| format!("#SBATCH {d}")),
    );
    format!(
        "{}\n\n{}\n{}\n{}\n",
        s.shebang,
        header.join("\n"),
        s.job_script_prologue.join("\n"),
        worker_command
    )
}

/// The worker command line a job runs for `manifest` (`{task}` in it becomes the array index).
pub fn worker_command(cfg: &ClusterConfig, exe: &Path, manifest: &str) -> String {
    let mut cmd = format!(
        "{} worker --manifest {} --parallel {}",
        sh_quote(&exe.to_string_lossy()),
        sh_quote(manifest),
        cfg.parallel_per_job()
    );
    if let Some(dir) = &cfg.slurm.local_directory {
        // Left unquoted on purpose: `$LOCALDIR` is the node's scratch, expanded by the job's shell.
        cmd.push_str(&format!(" --local-directory {dir}"));
    }
    cmd
}

/// Single-quote for the job script (paths we generate; never user data).
pub(super) fn sh_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-{}+=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
