//! Commands whose flags are settled but whose work is not built yet: they teach with
//! `--help` and refuse to run (exit 2).

use std::process::ExitCode;

use clap::Args;

use super::SelectionArgs;

pub fn not_yet(command: &'static str) -> anyhow::Result<ExitCode> {
    Err(anyhow::Error::new(backfill::Error::NotAvailable(command)))
        .map_err(|e| e.context("nothing was done; snapshot, diff and verify are available"))
}

/// Show which partitions a backfill would rewrite, in order, and what it would cost
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Table root: a local folder, file://PATH or s3://BUCKET/PREFIX
    pub table: String,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// The transform to check against the table's schema (planned, not executed)
    #[arg(long, value_name = "FILE")]
    pub sql: Option<std::path::PathBuf>,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Rewrite the selected partitions with a SQL transform, safely and resumably
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Table root: a local folder, file://PATH or s3://BUCKET/PREFIX
    pub table: String,
    /// The transform: SQL over the table `source` (one partition's rows)
    #[arg(long, value_name = "FILE")]
    pub sql: std::path::PathBuf,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Act on every partition (required when no selection is given)
    #[arg(long)]
    pub all: bool,
    /// Partitions rewritten at once
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Execution order
    #[arg(long, value_name = "ORDER", default_value = "oldest-first", value_parser = ["oldest-first", "newest-first"])]
    pub order: String,
    /// What to do when the transform returns no rows for a partition
    #[arg(long, value_name = "POLICY", default_value = "fail", value_parser = ["fail", "delete", "keep"])]
    pub on_empty: String,
    /// Accept output columns or types that differ from the table's
    #[arg(long)]
    pub allow_schema_change: bool,
    /// Register another table for joins, as NAME=TABLE (repeatable)
    #[arg(long = "table", value_name = "NAME=TABLE")]
    pub tables: Vec<String>,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Finish an interrupted run from its journal
#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// Table root
    pub table: String,
    /// The run to resume (default: the interrupted one)
    pub run_id: Option<String>,
}

/// Put back the old content of every partition a run committed
#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// Table root
    pub table: String,
    /// The run to undo
    pub run_id: String,
}

/// List the runs recorded in a table's journal
#[derive(Args, Debug)]
pub struct RunsArgs {
    /// Table root
    pub table: String,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
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
