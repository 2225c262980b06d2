//! The `backfill` binary: parse arguments, call the library, render, map errors to exit codes.
// The binary reads the user's files; the library's filesystem calls go through
// `backfill::storage::fs` (clippy.toml).
#![allow(clippy::disallowed_methods)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cli::heap::limit_arenas();
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            cli::render::note(&format!("error: cannot start the runtime: {e}"));
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            cli::render::note(&format!("error: {}", message(&e)));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The context chain down to the library's error, whose message already says what its
/// source said.
fn message(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        parts.push(cause.to_string());
        if cause.is::<backfill::Error>() {
            break;
        }
    }
    parts.join(": ")
}

/// 75 (`EX_TEMPFAIL`) when another run holds the table: busy, safe to retry later, which
/// an orchestrator must tell from bad input; 70 (`EX_SOFTWARE`) for a bug of this tool;
/// 2 for every other error.
fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<backfill::Error>() {
        Some(e) if e.is_retryable() => 75,
        Some(backfill::Error::Internal(_)) => 70,
        _ => 2,
    }
}
