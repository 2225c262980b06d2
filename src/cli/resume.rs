use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use backfill::lock::LeaseTimes;
use backfill::run;
use backfill::storage::Location;

use super::render;

/// Finish an interrupted run from its journal
///
/// Reads the run's frozen plan (partitions, SQL, options, clock) from the journal; never
/// recomputes it. Partitions already committed or unchanged are kept; interrupted commits
/// are completed; the others (including failed ones) are processed again.
#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// Table root
    pub table: String,
    /// The run to resume (default: the latest one that did not finish cleanly)
    pub run_id: Option<String>,
    /// When the table or a partition is busy (another run or worker holds it), keep
    /// trying for up to SECS seconds; partitions still busy then are reported busy and
    /// the exit code is 75 (retry later)
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub wait: u64,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: ResumeArgs) -> Result<ExitCode> {
    let loc = Location::open(&args.table)?;
    let run_id = match &args.run_id {
        Some(id) => id.clone(),
        None => run::resumable(&loc).await?,
    };
    if !args.json {
        render::note(&format!("resuming run {run_id}"));
    }
    // Unreadable journals are reported by `resume` itself, with the run's context.
    if let Ok(largest) = run::largest_planned_partition(&loc, &run_id).await {
        super::heap::size_for(largest);
    }
    let wait = std::time::Duration::from_secs(args.wait);
    let report = run::resume(&loc, &run_id, LeaseTimes::from_env(), wait, None)
        .await
        .with_context(|| format!("resuming run {run_id} on {}", loc.display))?;
    Ok(render::emit(&report, args.json))
}
