//! The `argus` binary: wires the crates together behind Prometheus-compatible flags.
//! Only this crate (and tests) may use `anyhow`; it owns process concerns: flags, logging,
//! signals, the background loops and shutdown.

mod cli;
mod server;
mod tool;

use clap::Parser;

/// Caps glibc's malloc arenas at two (unless `MALLOC_ARENA_MAX` is set): with one arena per
/// busy thread, glibc kept ~15% more resident memory under remote-write load for no gain.
/// Also pins the mmap threshold at 256 KiB, so that large transient buffers (request bodies,
/// compaction) are always mapped and unmapped instead of fragmenting the heap as glibc's
/// self-raising threshold lets them do. Measured with ../shared/bench (docs/benchmarks.md).
#[allow(unsafe_code)]
fn tune_malloc() {
    // SAFETY: mallopt only changes allocator tuning; called once at start-up before any
    // other thread exists. M_ARENA_MAX is -8 and M_MMAP_THRESHOLD is -3 in glibc's malloc.h.
    unsafe {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            libc::mallopt(-8, 2);
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            libc::mallopt(-3, 256 * 1024);
        }
    }
}

/// Gives freed heap pages back to the kernel (after compaction frees its working set).
#[allow(unsafe_code)]
pub(crate) fn release_free_memory() {
    // SAFETY: malloc_trim only returns unused pages of the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn main() -> std::process::ExitCode {
    tune_malloc();
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Server(args) => server::run(*args),
        cli::Command::Tool(cli::ToolCommand::PromqlTest { files }) => promql_test(&files),
        cli::Command::Tool(cli::ToolCommand::Check(cli::CheckCommand::Config { files })) => {
            tool::check_config(&files)
        }
        cli::Command::Tool(cli::ToolCommand::Check(cli::CheckCommand::Metrics)) => {
            tool::check_metrics()
        }
    }
}

fn promql_test(files: &[std::path::PathBuf]) -> std::process::ExitCode {
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in files {
        let name = file.display();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                println!("{name}: cannot read: {e}");
                failed += 1;
                continue;
            }
        };
        match argus_promql::promqltest::run_script(&text) {
            Ok(results) => {
                for r in results {
                    match r.failure {
                        None => passed += 1,
                        Some(why) => {
                            failed += 1;
                            println!("{name}:{}: {}: {why}", r.line, r.query);
                        }
                    }
                }
            }
            Err(e) => {
                println!("{name}: {e}");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
