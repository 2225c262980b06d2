use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use backfill::lock::LeaseTimes;
use backfill::run;
use backfill::storage::Location;

use super::render;

/// List the runs recorded in a table's journal, show one, or release a run's backups
///
/// With RUN_ID: that run partition by partition (pending, rewritten, unchanged, deleted,
/// kept, failed, mid_commit, rolled_back...), with rows before and after; for a frozen run
/// this is how far its workers got.
///
/// Backups of the old files are kept until released: `--release RUN_ID` deletes them (the
/// run can no longer be rolled back; its journal stays).
#[derive(Args, Debug)]
pub struct RunsArgs {
    /// Table root
    pub table: String,
    /// Show this run, partition by partition
    #[arg(value_name = "RUN_ID")]
    pub run: Option<String>,
    /// Delete the backups of a finished run
    #[arg(long, value_name = "RUN_ID")]
    pub release: Option<String>,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: RunsArgs) -> Result<ExitCode> {
    let loc = Location::open(&args.table)?;
    if let Some(id) = &args.release {
        run::release(&loc, id, LeaseTimes::from_env())
            .await
            .with_context(|| format!("releasing run {id}"))?;
        render::note(&format!("released the backups of run {id}"));
    }
    if let Some(id) = &args.run {
        let detail = run::run_detail(&loc, id)
            .await
            .with_context(|| format!("reading run {id} of {}", loc.display))?;
        return Ok(render::emit(&detail, args.json));
    }
    let history = run::history(&loc)
        .await
        .with_context(|| format!("reading the journal of {}", loc.display))?;
    Ok(render::emit(&history, args.json))
}
