//! The `schooldns` binary: parse arguments, set up logging, run a command, report errors.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = schooldns::cli::Cli::parse();
    schooldns::logging::init(&cli.log);
    match schooldns::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
