use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use backfill::snapshot::{self, ScanOptions};
use backfill::storage::Location;

use super::{discover_selected, render, save_cache, CacheArgs, SelectionArgs};

/// Per-partition row counts and content checksums of a table
///
/// Reads every selected file in full, in parallel. The checksum follows docs/CHECKSUM.md
/// (checksum version 2): it ignores file layout, row order and encoding, and changes
/// when any value, row or duplicate changes.
///
/// Each file's contribution is kept in a checksum cache in the table's work area
/// (`.backfill/<table>/cache/`), keyed by the file's path, size and version (ETag, or
/// inode and modification time): the next snapshot reads only files that changed, with
/// the same checksums. --no-cache reads everything.
#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// Table root: a local folder, file://PATH or s3://BUCKET/PREFIX
    pub table: String,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Also compute one checksum per column (lets `diff` name the changed columns)
    #[arg(long)]
    pub columns: bool,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
    /// Write the snapshot as JSON to FILE, for a later `diff` or `verify --against`
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
    /// Files decoded at once (default: the number of cores); as many more are fetched from
    /// storage meanwhile, so no core waits on a read
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Checksums as version N of docs/CHECKSUM.md: 2 (the default), or 1 to compare with
    /// a snapshot file taken before version 2 (`diff` and `verify --against` do this by
    /// themselves when one side is a table)
    #[arg(long, value_name = "N", default_value_t = backfill::checksum::VERSION,
          value_parser = clap::value_parser!(u32).range(1..=backfill::checksum::VERSION as i64))]
    pub checksum_version: u32,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub html: super::HtmlArgs,
}

pub async fn run(args: SnapshotArgs) -> Result<ExitCode> {
    let selection = args.selection.selection()?;
    let loc = Location::open(&args.table)?;
    let cache_dir = args.cache.location()?;
    let table = discover_selected(&loc, &args.selection, &selection).await?;
    super::heap::for_reading(table.largest_partition());
    let cache = args.cache.open(&table.location, cache_dir).await?;
    let bar = render::progress("snapshot", table.files() as u64, table.bytes());
    let options = ScanOptions {
        columns: args.columns,
        jobs: args.jobs.unwrap_or_else(snapshot::default_jobs),
        progress: bar.as_ref().map(|b| b.1.clone()),
        checksum_version: args.checksum_version,
        cache: cache.clone(),
        ..ScanOptions::default()
    };
    let mut snap = snapshot::snapshot(&table, &options)
        .await
        .with_context(|| format!("taking a snapshot of {}", table.location))?;
    if let Some((bar, _)) = bar {
        bar.finish_and_clear();
    }
    snap.cache = save_cache(&cache, &table, false, args.json).await;
    if let Some(path) = &args.out {
        snap.write(path)
            .with_context(|| format!("writing the snapshot to {}", path.display()))?;
    }
    let code = render::emit(&snap, args.json);
    args.html
        .write(|| backfill::report::snapshot(&snap), args.json)?;
    if let (Some(path), false) = (&args.out, args.json) {
        render::note(&format!("snapshot written to {}", path.display()));
    }
    Ok(code)
}
