//! The `argus` binary: wires the crates together behind Prometheus-compatible flags.
//! Only this crate (and tests) may use `anyhow`; it owns process concerns: flags, logging,
//! signals, the background loops and shutdown.

mod cli;
mod server;

use clap::Parser;

/// Caps glibc's malloc arenas at two (unless `MALLOC_ARENA_MAX` is set): with one arena per
/// busy thread, glibc kept ~15% more resident memory under remote-write load for no gain
/// (measured with ../shared/bench; see docs/benchmarks.md).
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only changes allocator tuning; called once at start-up before any
    // other thread exists. M_ARENA_MAX is -8 in glibc's malloc.h.
    unsafe {
        libc::mallopt(-8, 2);
    }
}

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Server(args) => server::run(*args),
    }
}
