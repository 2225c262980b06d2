//! Commands whose flags are settled but whose work is not built yet: they teach with
//! `--help` and refuse to run (exit 2).

use std::process::ExitCode;

use clap::Args;

pub fn not_yet(command: &'static str) -> anyhow::Result<ExitCode> {
    Err(anyhow::Error::new(backfill::Error::NotAvailable(command)))
        .map_err(|e| e.context("nothing was done"))
}

/// Measure partition rewrite throughput on synthetic data or an existing table
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// An existing table to measure (default: a generated one)
    pub table: Option<String>,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}
