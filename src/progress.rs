//! Build progress: one indicatif bar per stage on a terminal, plain periodic lines otherwise;
//! and the live counts file (`CACHE/live/FIELD.json`) that `status` reads while the build holds
//! the cache.
//!
//! Owns: how progress looks. Must never: influence what runs.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

/// Per-stage counters.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StageCount {
    /// Stage name.
    pub name: String,
    /// Targets to run (stale, failed or missing when the build started).
    pub total: u64,
    /// Of those, evaluated so far (ran, failed, or found up to date).
    pub done: u64,
    /// Actions that ran and succeeded.
    pub ran: u64,
    /// Actions running now.
    pub running: u64,
    /// Failed (their own action, or an input that failed).
    pub failed: u64,
}

/// What a running build writes for `status` to read: its counts, at most twice a second.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Live {
    /// The field being built.
    pub field: String,
    /// The build's process id and host.
    pub pid: u32,
    /// Its host.
    pub host: String,
    /// When it started and when this was written, Unix seconds.
    pub started_unix: f64,
    /// When this was written, Unix seconds.
    pub updated_unix: f64,
    /// Whether the build loop has ended.
    pub finished: bool,
    /// Per-stage counts.
    pub stages: Vec<StageCount>,
}

impl Live {
    /// The live file of `field` in the cache at `cache_dir`.
    pub fn path(cache_dir: &std::path::Path, field: &str) -> std::path::PathBuf {
        cache_dir.join("live").join(format!("{field}.json"))
    }
    /// Read it, if a build of that field wrote one and its process still runs on this host.
    pub fn read_running(cache_dir: &std::path::Path, field: &str) -> Option<Live> {
        let text = std::fs::read_to_string(Live::path(cache_dir, field)).ok()?;
        let live: Live = serde_json::from_str(&text).ok()?;
        let here = live.host == crate::cache::hostname();
        (here && crate::cache::process_lives(live.pid)).then_some(live)
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Progress reporting for one build.
pub struct Progress {
    stages: Vec<StageCount>,
    /// When each stage's first target was evaluated: rates and ETAs count from there.
    stage_start: Vec<Option<Instant>>,
    /// The per-stage bars and, last, the total.
    bars: Option<(MultiProgress, Vec<ProgressBar>)>,
    plain: bool,
    last_line: Instant,
    started: Instant,
    /// The live file's writer, its field, when the build started and when it was last written.
    live: Option<(LiveWriter, String, f64, Instant)>,
}

/// Writes the live file on a thread of its own: replacing a file by rename can wait on the disk
/// for a long time under a build's writes (ext4 writes the new file's data out first, and frees
/// the old one's blocks with a discard on `-o discard` mounts: 0.2-0.4 s per write measured on
/// a RACS-size build), and the scheduler that calls it must not wait with it.
struct LiveWriter {
    path: std::path::PathBuf,
    tx: Option<std::sync::mpsc::Sender<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Write the live file (best effort).
fn write_live_file(path: &std::path::Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = crate::atomic::write_atomic(path, bytes);
}

impl LiveWriter {
    fn start(path: std::path::PathBuf) -> LiveWriter {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let to = path.clone();
        let thread = std::thread::Builder::new()
            .name("arrakis-live".into())
            .spawn(move || {
                while let Ok(mut bytes) = rx.recv() {
                    // Only the latest counts matter.
                    while let Ok(newer) = rx.try_recv() {
                        bytes = newer;
                    }
                    write_live_file(&to, &bytes);
                }
            })
            .ok();
        LiveWriter {
            path,
            tx: thread.as_ref().map(|_| tx),
            thread,
        }
    }

    /// Write `bytes` soon (a later call may replace them before they are written); here and
    /// now when no thread could be started (ulimit -u).
    fn send(&self, bytes: Vec<u8>) {
        match &self.tx {
            Some(tx) => {
                let _ = tx.send(bytes);
            }
            None if self.thread.is_none() => write_live_file(&self.path, &bytes),
            None => {}
        }
    }

    /// Write the last bytes sent and stop.
    fn close(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LiveWriter {
    fn drop(&mut self) {
        self.close();
    }
}

impl Progress {
    /// `stages`: (name, number of targets). `quiet` disables all output.
    pub fn new(stages: Vec<(String, u64)>, quiet: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let stages: Vec<StageCount> = stages
            .into_iter()
            .map(|(name, total)| StageCount {
                name,
                total,
                ..Default::default()
            })
            .collect();
        let bars = if tty && !quiet {
            let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
            let width = stages.iter().map(|s| s.name.len()).max().unwrap_or(8);
            let style = ProgressStyle::with_template(&format!(
                "{{prefix:>{width}}} [{{bar:30}}] {{pos}}/{{len}} {{msg}} {{per_sec}} eta {{eta}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            let total: u64 = stages.iter().map(|s| s.total).sum();
            let bars = stages
                .iter()
                .map(|s| (s.name.clone(), s.total))
                .chain(std::iter::once(("total".to_string(), total)))
                .map(|(name, n)| {
                    let b = mp.add(ProgressBar::new(n));
                    b.set_style(style.clone());
                    b.set_prefix(name);
                    b
                })
                .collect();
            Some((mp, bars))
        } else {
            None
        };
        Progress {
            stage_start: vec![None; stages.len()],
            stages,
            plain: !tty && !quiet,
            bars,
            last_line: Instant::now(),
            started: Instant::now(),
            live: None,
        }
    }

    /// Also keep `path` up to date with the counts (for `status` during the build).
    pub fn with_live(mut self, path: std::path::PathBuf, field: &str) -> Progress {
        self.live = Some((
            LiveWriter::start(path),
            field.to_string(),
            unix_now(),
            Instant::now(),
        ));
        self.write_live(false, true);
        self
    }

    /// Write the live file: at most twice a second unless `force`. Best effort: a failure to
    /// write it changes nothing about the build.
    fn write_live(&mut self, finished: bool, force: bool) {
        let Some((writer, field, started, last)) = &mut self.live else {
            return;
        };
        if !force && last.elapsed() < Duration::from_millis(500) {
            return;
        }
        *last = Instant::now();
        let live = Live {
            field: field.clone(),
            pid: std::process::id(),
            host: crate::cache::hostname(),
            started_unix: *started,
            updated_unix: unix_now(),
            finished,
            stages: self.stages.clone(),
        };
        if let Ok(text) = serde_json::to_vec(&live) {
            writer.send(text);
        }
        if finished {
            writer.close();
        }
    }

    /// The number of actions running now, per stage (counted by the workers).
    pub fn set_running(&mut self, running: impl Iterator<Item = u64>) {
        let mut changed = false;
        for (i, r) in running.enumerate() {
            if let Some(s) = self.stages.get_mut(i) {
                if s.running != r {
                    s.running = r;
                    changed = true;
                    if r > 0 && self.stage_start[i].is_none() {
                        self.start_stage(i);
                    }
                }
            }
        }
        if changed {
            for i in 0..self.stages.len() {
                self.refresh(i);
            }
        }
    }

    /// Stage `i` began: its bar's rate and ETA count from now, not from the build's start.
    fn start_stage(&mut self, i: usize) {
        self.stage_start[i] = Some(Instant::now());
        if let Some((_, bars)) = &self.bars {
            bars[i].reset_elapsed();
            bars[i].reset_eta();
        }
    }

    /// Targets per second and the seconds left for stage `i`, from its own start.
    fn rate_eta(&self, i: usize) -> Option<(f64, f64)> {
        let s = &self.stages[i];
        let t = self.stage_start[i]?.elapsed().as_secs_f64();
        if s.done == 0 || t <= 0.0 {
            return None;
        }
        let rate = s.done as f64 / t;
        Some((rate, s.total.saturating_sub(s.done) as f64 / rate))
    }

    fn refresh(&mut self, i: usize) {
        self.write_live(false, false);
        if let Some((_, bars)) = &self.bars {
            let s = &self.stages[i];
            bars[i].set_position(s.done);
            bars[i].set_message(format!(
                "ran {} running {} failed {}",
                s.ran, s.running, s.failed
            ));
            let total = &bars[bars.len() - 1];
            total.set_position(self.stages.iter().map(|s| s.done).sum());
            total.set_message(format!(
                "ran {} running {} failed {}",
                self.stages.iter().map(|s| s.ran).sum::<u64>(),
                self.stages.iter().map(|s| s.running).sum::<u64>(),
                self.stages.iter().map(|s| s.failed).sum::<u64>()
            ));
        } else if self.plain && self.last_line.elapsed() >= Duration::from_secs(2) {
            self.last_line = Instant::now();
            self.print_plain();
        }
    }

    fn print_plain(&self) {
        let parts: Vec<String> = self
            .stages
            .iter()
            .enumerate()
            .filter(|(_, s)| s.total > 0 && (s.done > 0 || s.running > 0))
            .map(|(i, s)| {
                let pace = match self.rate_eta(i) {
                    Some((r, eta)) if s.done < s.total => format!(", {r:.1}/s, eta {eta:.0}s"),
                    _ => String::new(),
                };
                format!(
                    "{} {}/{} (ran {}, running {}, failed {}{pace})",
                    s.name, s.done, s.total, s.ran, s.running, s.failed
                )
            })
            .collect();
        let (done, total): (u64, u64) = self
            .stages
            .iter()
            .fold((0, 0), |(d, t), s| (d + s.done, t + s.total));
        eprintln!(
            "[{:>6.1}s] total {done}/{total}; {}",
            self.started.elapsed().as_secs_f64(),
            parts.join("; ")
        );
    }

    /// A target of stage `i` started running its action.
    pub fn started(&mut self, i: usize) {
        if self.stage_start[i].is_none() {
            self.start_stage(i);
        }
        self.stages[i].running += 1;
        self.refresh(i);
    }

    /// A target of stage `i` finished: `ran` if its action ran, `failed` if it failed.
    pub fn finished(&mut self, i: usize, ran: bool, failed: bool, was_running: bool) {
        if self.stage_start[i].is_none() {
            self.start_stage(i);
        }
        let s = &mut self.stages[i];
        s.done += 1;
        if was_running {
            s.running = s.running.saturating_sub(1);
        }
        s.ran += ran as u64;
        s.failed += failed as u64;
        self.refresh(i);
    }

    /// Print a line above the bars (or plainly).
    pub fn println(&self, line: &str) {
        match &self.bars {
            Some((mp, _)) => {
                let _ = mp.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// Finish and remove the bars.
    pub fn finish(&mut self) {
        self.write_live(true, true);
        if let Some((mp, bars)) = self.bars.take() {
            for b in bars {
                b.finish_and_clear();
            }
            let _ = mp.clear();
        } else if self.plain && self.started.elapsed() >= Duration::from_secs(2) {
            self.print_plain();
        }
    }
}
