//! The `argus` binary: wires the crates together behind Prometheus-compatible flags.
//! Only this crate (and tests) may use `anyhow`; it owns process concerns: flags, logging,
//! signals, the background loops and shutdown.

mod cli;
mod server;
mod tool;

use clap::Parser;

/// jemalloc instead of glibc's malloc. After a query over many series frees its working set,
/// glibc leaves the freed chunks in bins shared with the HTTP threads, and the next request
/// on those threads spent 5–12 ms sorting them inside `malloc`; with jemalloc it takes 0.9 ms.
/// Resident memory per series under remote-write load is within 5% of glibc capped at two
/// arenas (docs/benchmarks.md; mimalloc held 65% more).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Gives freed heap pages back to the kernel now (after compaction frees its working set)
/// instead of over jemalloc's decay time.
#[allow(unsafe_code)]
pub(crate) fn release_free_memory() {
    // `arena.<MALLCTL_ARENAS_ALL>.purge`: MALLCTL_ARENAS_ALL is 4096 in jemalloc.h.
    const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
    // SAFETY: a jemalloc control call with a NUL-terminated name that takes and returns
    // nothing (null pointers and zero lengths), as its documentation specifies for purge.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}

fn main() -> std::process::ExitCode {
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
