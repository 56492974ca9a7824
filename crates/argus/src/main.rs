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
/// instead of over jemalloc's decay time. False if jemalloc refused the request.
#[allow(unsafe_code)]
pub(crate) fn release_free_memory() -> bool {
    // `arena.<MALLCTL_ARENAS_ALL>.purge`: MALLCTL_ARENAS_ALL is 4096 in jemalloc.h.
    const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
    // SAFETY: a jemalloc control call with a NUL-terminated name that takes and returns
    // nothing (null pointers and zero lengths), as its documentation specifies for purge.
    let status = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    status == 0
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

#[cfg(test)]
mod allocator_tests {
    /// With jemalloc's own return of freed pages turned off, the purge is what gives them
    /// back.
    #[test]
    #[allow(unsafe_code)]
    fn purge_after_freeing_returns_memory() {
        // This thread's arena keeps freed pages until purged (`dirty_decay_ms` = -1).
        let mut arena: u32 = 0;
        let mut len = std::mem::size_of::<u32>();
        // SAFETY: reads one unsigned, the type jemalloc documents for `thread.arena`.
        let read = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"thread.arena".as_ptr(),
                (&mut arena as *mut u32).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(read, 0);
        let name = std::ffi::CString::new(format!("arena.{arena}.dirty_decay_ms")).unwrap();
        let mut never: isize = -1;
        // SAFETY: writes one ssize_t, the type jemalloc documents for this control.
        let set = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                (&mut never as *mut isize).cast(),
                std::mem::size_of::<isize>(),
            )
        };
        assert_eq!(set, 0, "{name:?}");
        let resident = || -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            status
                .lines()
                .find_map(|l| l.strip_prefix("RssAnon:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        // Many mid-sized blocks (not one huge mapping, which jemalloc unmaps at once).
        let blocks: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8; 64 << 10]).collect();
        let held = resident();
        drop(blocks);
        assert!(super::release_free_memory());
        let after = resident();
        assert!(
            after + 128 * 1024 < held,
            "RssAnon {held} KiB before the purge, {after} KiB after"
        );
    }
}
