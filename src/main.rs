//! The `schooldns` binary: parse arguments, set up logging, run a command, report errors.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use schooldns::hitlog::jsonlog;

fn main() -> ExitCode {
    let cli = schooldns::cli::Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(&cli.log))
        // Hit events go to the hit JSON sink only, never into the operator's log.
        .add_directive(
            format!("{}=off", jsonlog::TARGET)
                .parse()
                .expect("valid directive"),
        );
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    let hits = jsonlog::layer().with_filter(tracing_subscriber::filter::filter_fn(|m| {
        m.target() == jsonlog::TARGET
    }));
    tracing_subscriber::registry().with(log).with(hits).init();
    match schooldns::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
