use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use backfill::lock::LeaseTimes;
use backfill::run;
use backfill::storage::Location;

use super::render;

/// Put back the old content of every partition a run committed
///
/// Undoes the run's commits newest first, from the backups it kept. A partition whose files
/// changed after the run (another run or job wrote it) is skipped and reported. Exit 0 when
/// everything was put back, 1 when some partitions were skipped.
#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// Table root
    pub table: String,
    /// The run to undo (see `backfill runs`)
    pub run_id: String,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: RollbackArgs) -> Result<ExitCode> {
    let loc = Location::open(&args.table)?;
    let report = run::rollback(&loc, &args.run_id, LeaseTimes::from_env())
        .await
        .with_context(|| format!("rolling back run {} on {}", args.run_id, loc.display))?;
    Ok(render::emit(&report, args.json))
}
