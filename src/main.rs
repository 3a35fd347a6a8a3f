//! The `arrakis` binary: parse the command line, call the library, map errors to exit codes.

use clap::Parser;

// The engine allocates many small strings (target ids, paths); mimalloc is markedly faster at
// that than glibc's allocator on no-op builds of large fields.
#[global_allocator]
static GLOBAL: arrakis::limits::Guarded<mimalloc::MiMalloc> =
    arrakis::limits::Guarded(mimalloc::MiMalloc);

use arrakis::cli::{BenchWhat, Cli, Command};

/// The cache of a command that is not about one field: --cache, else ./cache.
fn main() {
    // A closed pipe ends the command quietly, as it does git and ls (`arrakis params | head`):
    // the default action of SIGPIPE, which Rust's runtime replaces with an error on every write
    // (and println! turns into a panic). arrakis writes to no child's stdin and no socket, and
    // every output is written atomically, so ending at a closed stdout loses nothing.
    // SAFETY: setting a signal's disposition to its default, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Ctrl-C first of all: a press at any moment after the start ends the command cleanly
    // (130), never by the signal's default action.
    let mut presses = 0u32;
    let _ = ctrlc::set_handler(move || {
        presses += 1;
        if presses > 1 {
            // Outputs are written atomically and records only after them: abandoning is safe.
            std::process::exit(arrakis::cmd::EXIT_INTERRUPTED);
        }
        arrakis::exec::INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    // Limits of a shared node: said clearly, never a panic or a silent kill.
    if let Err(e) = arrakis::limits::prepare() {
        eprintln!("arrakis: error: {e}");
        std::process::exit(arrakis::cmd::EXIT_FAILED);
    }
    if let Err(e) = arrakis::science::simd::check_env() {
        eprintln!("arrakis: error: {e}");
        std::process::exit(arrakis::cmd::EXIT_BAD_INPUT);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            if e.use_stderr() {
                let args: Vec<String> = std::env::args().skip(1).collect();
                let _ = e.print();
                if let Some(h) = arrakis::cmd::hints::for_args(&args) {
                    eprintln!("hint: {h}");
                }
                std::process::exit(arrakis::cmd::EXIT_BAD_INPUT);
            }
            e.exit()
        }
    };
    let result = match &cli.command {
        Command::Build(a) => arrakis::cmd::build::build(cli.cache.as_deref(), cli.wait, a),
        Command::Region(a) => arrakis::cmd::region::region(cli.cache.as_deref(), cli.wait, a),
        Command::Status(a) => arrakis::cmd::inspect::status(cli.cache.as_deref(), cli.wait, a),
        Command::Explain(a) => arrakis::cmd::inspect::explain(cli.cache.as_deref(), cli.wait, a),
        Command::Dag(a) => arrakis::cmd::inspect::dag(a),
        Command::Compare(a) => arrakis::cmd::compare::compare(a),
        Command::Gc(a) => arrakis::cmd::maintain::gc(cli.cache.as_deref(), cli.wait, a),
        Command::Params(a) => arrakis::cmd::inspect::params(a),
        Command::Columns => arrakis::cmd::inspect::columns(),
        Command::Rmsynth1d(a) => arrakis::cmd::rmtools::rmsynth1d(a),
        Command::Rmclean1d(a) => arrakis::cmd::rmtools::rmclean1d(a),
        Command::Rmsynth3d(a) => arrakis::cmd::rmtools::rmsynth3d(a),
        Command::Rmclean3d(a) => arrakis::cmd::rmtools::rmclean3d(a),
        Command::Simulate(a) => arrakis::cmd::tools::simulate(a),
        Command::Init(a) => arrakis::cmd::tools::init(a),
        Command::Demo(a) => arrakis::cmd::build::demo(cli.cache.as_deref(), a),
        Command::JobScript(a) => arrakis::cmd::tools::job_script(a),
        Command::Archive(a) => arrakis::cmd::maintain::archive(cli.cache.as_deref(), cli.wait, a),
        Command::Worker(a) => arrakis::cmd::tools::worker(a),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = arrakis::cli::Cli::command();
            clap_complete::generate(*shell, &mut cmd, "arrakis", &mut std::io::stdout());
            Ok(0)
        }
        Command::Bench(b) => match &b.what {
            BenchWhat::Region {
                side,
                sources,
                npix,
                nchan,
                dir,
            } => arrakis::cmd::bench::region(*side, *sources, *npix, *nchan, dir.as_deref()),
            BenchWhat::Field {
                beams,
                npix,
                nchan,
                sources,
                jobs,
                dir,
                build_with,
            } => arrakis::cmd::bench::field(
                *beams,
                *npix,
                *nchan,
                *sources,
                jobs.unwrap_or_else(arrakis::session::default_jobs),
                dir.as_deref(),
                build_with.as_deref(),
            ),
            BenchWhat::Store {
                sources,
                npix,
                nchan,
                dir,
            } => arrakis::cmd::bench::store(*sources, *npix, *nchan, dir.as_deref()),
            BenchWhat::Engine {
                islands,
                beams,
                dir,
                jobs,
                field_only,
            } => arrakis::cmd::bench::engine(*islands, *beams, dir.as_deref(), *jobs, *field_only),
            BenchWhat::Slurm {
                sources,
                beams,
                npix,
                nchan,
                dask_config,
                dir,
                jobs,
            } => {
                let sim = arrakis::simulate::SimOptions {
                    sources: *sources,
                    beams: (*beams).max(1),
                    npix: (*npix).max(32),
                    nchan: (*nchan).max(4),
                    ..arrakis::simulate::SimOptions::small("RACS_BENCH", 1)
                };
                arrakis::cmd::bench::slurm(&sim, dir.as_deref(), dask_config.as_deref(), *jobs)
            }
            BenchWhat::Rm3d {
                npix,
                clean_npix,
                python,
                repeats,
            } => arrakis::cmd::bench::rm3d(*npix, *clean_npix, python.as_deref(), *repeats),
            BenchWhat::Io {
                npix,
                nchan,
                sources,
                dir,
            } => arrakis::cmd::bench::io(*npix, *nchan, *sources, dir.as_deref()),
            BenchWhat::Smooth {
                npix,
                nchan,
                beamcon,
                dir,
            } => arrakis::cmd::bench::smooth(*npix, *nchan, beamcon.as_deref(), dir.as_deref()),
            BenchWhat::Ionosphere { islands } => arrakis::cmd::bench::ionosphere(*islands),
            BenchWhat::Rm1d {
                spectra,
                python,
                rounds,
                no_reference,
            } => arrakis::cmd::bench::rm1d(*spectra, python.as_deref(), *rounds, *no_reference),
        },
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("arrakis: error: {e:#}");
            std::process::exit(arrakis::cmd::EXIT_BAD_INPUT);
        }
    }
}
