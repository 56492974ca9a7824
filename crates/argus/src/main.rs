//! The `argus` binary: wires the crates together behind Prometheus-compatible flags.
//! Only this crate (and tests) may use `anyhow`; it owns process concerns: flags, logging,
//! signals, the background loops and shutdown.

mod alloc;
mod cli;
mod server;
mod tool;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    // Queries (from flags, rule files, the API) are parsed and evaluated recursively: every
    // thread that may do so gets the stack the deepest accepted expression needs.
    match std::thread::Builder::new()
        .name("main".into())
        .stack_size(argus_promql::parser::STACK_SIZE)
        .spawn(move || run(cli))
    {
        Ok(main) => main
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        Err(e) => {
            eprintln!("error: starting the main thread: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> std::process::ExitCode {
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
