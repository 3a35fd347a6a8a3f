//! Build progress: one indicatif bar per stage on a terminal, plain periodic lines otherwise.
//!
//! Owns: how progress looks. Must never: influence what runs.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Per-stage counters.
#[derive(Clone, Debug, Default)]
struct StageCount {
    name: String,
    total: u64,
    done: u64,
    ran: u64,
    running: u64,
    failed: u64,
}

/// Progress reporting for one build.
pub struct Progress {
    stages: Vec<StageCount>,
    bars: Option<(MultiProgress, Vec<ProgressBar>)>,
    plain: bool,
    last_line: Instant,
    started: Instant,
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
            let bars = stages
                .iter()
                .map(|s| {
                    let b = mp.add(ProgressBar::new(s.total));
                    b.set_style(style.clone());
                    b.set_prefix(s.name.clone());
                    b
                })
                .collect();
            Some((mp, bars))
        } else {
            None
        };
        Progress {
            stages,
            plain: !tty && !quiet,
            bars,
            last_line: Instant::now(),
            started: Instant::now(),
        }
    }

    fn refresh(&mut self, i: usize) {
        if let Some((_, bars)) = &self.bars {
            let s = &self.stages[i];
            bars[i].set_position(s.done);
            bars[i].set_message(format!(
                "ran {} running {} failed {}",
                s.ran, s.running, s.failed
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
            .filter(|s| s.total > 0)
            .map(|s| {
                format!(
                    "{} {}/{} (ran {}, running {}, failed {})",
                    s.name, s.done, s.total, s.ran, s.running, s.failed
                )
            })
            .collect();
        eprintln!(
            "[{:>6.1}s] {}",
            self.started.elapsed().as_secs_f64(),
            parts.join("; ")
        );
    }

    /// A target of stage `i` started running its action.
    pub fn started(&mut self, i: usize) {
        self.stages[i].running += 1;
        self.refresh(i);
    }

    /// A target of stage `i` finished: `ran` if its action ran, `failed` if it failed.
    pub fn finished(&mut self, i: usize, ran: bool, failed: bool, was_running: bool) {
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
