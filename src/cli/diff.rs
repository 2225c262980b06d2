use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use backfill::snapshot::{self, ScanOptions, Snapshot};

use super::{render, save_cache, select, CacheArgs, SelectionArgs};

/// Compare two snapshots or tables, partition by partition
///
/// BEFORE and AFTER are each a snapshot file (from `snapshot --out`) or a table.
/// Reports partitions unchanged, changed (rows before/after, which columns), only in
/// BEFORE (missing), only in AFTER (new), and schema changes.
/// Exit 0 when identical, 1 when different, 2 on error.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// A snapshot file, or a table to snapshot now
    pub before: String,
    /// A snapshot file, or a table to snapshot now
    pub after: String,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// A side given as a snapshot file.
fn file_side(arg: &str, selection: &SelectionArgs) -> Result<Option<Snapshot>> {
    let path = std::path::Path::new(arg);
    if !path.is_file() {
        return Ok(None);
    }
    let mut snap = Snapshot::read(path)?;
    snap.retain_selected(&selection.selection())?;
    Ok(Some(snap))
}

/// A side given as a table, hashed as checksum `version`.
async fn table_side(
    arg: &str,
    selection: &SelectionArgs,
    cache_args: &CacheArgs,
    version: u32,
    json: bool,
) -> Result<Snapshot> {
    let loc = backfill::storage::Location::open(arg)?;
    let table = backfill::table::discover(&loc, &selection.discover_options()?)
        .await
        .with_context(|| format!("discovering partitions of {}", loc.display))?;
    let selected = match select(&table, &selection.selection()) {
        Ok(s) => s,
        Err(e) if matches!(e.downcast_ref(), Some(backfill::Error::EmptySelection(_))) => {
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    super::heap::for_reading(table.largest_partition(&selected));
    // Per-column checksums let the diff say which columns changed.
    let cache = cache_args.open(&table.location).await?;
    let options = ScanOptions {
        columns: true,
        checksum_version: version,
        cache: cache.clone(),
        ..ScanOptions::default()
    };
    let snap = snapshot::snapshot(&table, &selected, &options)
        .await
        .with_context(|| format!("taking a snapshot of {}", loc.display))?;
    save_cache(&cache, &table, false, json).await;
    Ok(snap)
}

pub async fn run(args: DiffArgs) -> Result<ExitCode> {
    let before_file = file_side(&args.before, &args.selection)
        .with_context(|| format!("reading BEFORE ({})", args.before))?;
    let after_file = file_side(&args.after, &args.selection)
        .with_context(|| format!("reading AFTER ({})", args.after))?;
    // A table is hashed as the snapshot file it is compared with was (a v1 file against
    // a table compares v1 with v1).
    let version = before_file
        .as_ref()
        .or(after_file.as_ref())
        .map_or(backfill::checksum::VERSION, |s| s.checksum_version);
    let before = match before_file {
        Some(s) => s,
        None => table_side(
            &args.before,
            &args.selection,
            &args.cache,
            version,
            args.json,
        )
        .await
        .with_context(|| format!("reading BEFORE ({})", args.before))?,
    };
    let after = match after_file {
        Some(s) => s,
        None => table_side(
            &args.after,
            &args.selection,
            &args.cache,
            version,
            args.json,
        )
        .await
        .with_context(|| format!("reading AFTER ({})", args.after))?,
    };
    if !args.selection.selection().is_everything()
        && before.partitions.is_empty()
        && after.partitions.is_empty()
    {
        return Err(backfill::Error::EmptySelection(format!(
            "{} on either side",
            args.selection.selection().describe()
        ))
        .into());
    }
    before
        .comparable(&after)
        .map_err(|e| anyhow::anyhow!("BEFORE and AFTER cannot be compared: {e}"))?;
    let mut d = backfill::diff::diff(&before, &after);
    d.before = args.before.clone();
    d.after = args.after.clone();
    if args.json {
        render::json(&d);
    } else {
        render::out(&render::diff(&d));
    }
    Ok(if d.identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
