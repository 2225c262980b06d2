use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use backfill::selection::Selection;
use backfill::snapshot::{self, ScanOptions, Snapshot};
use backfill::storage::Location;

use super::{render, save_cache, CacheArgs, SelectionArgs};

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
    #[command(flatten)]
    pub html: super::HtmlArgs,
}

/// A side given as a snapshot file.
fn file_side(arg: &str, selection: &Selection) -> Result<Option<Snapshot>> {
    let path = std::path::Path::new(arg);
    if !path.is_file() {
        return Ok(None);
    }
    let mut snap = Snapshot::read(path)?;
    snap.retain_selected(selection)?;
    Ok(Some(snap))
}

/// A side given as a table, hashed as checksum `version`.
async fn table_side(
    loc: Location,
    args: &DiffArgs,
    selection: &Selection,
    cache_dir: Option<Location>,
    version: u32,
) -> Result<Snapshot> {
    let table = backfill::table::discover(&loc, &args.selection.discover_options())
        .await
        .with_context(|| format!("discovering partitions of {}", loc.display))?;
    let table = match table.clone().select(selection) {
        Ok(t) => t,
        // A side may lack the selected partitions; the diff says they are missing.
        Err(backfill::Error::EmptySelection(_)) => table.retain(|_| false),
        Err(e) => return Err(e.into()),
    };
    super::heap::for_reading(table.largest_partition());
    // Per-column checksums let the diff say which columns changed.
    let cache = args.cache.open(&table.location, cache_dir).await?;
    let options = ScanOptions {
        columns: true,
        checksum_version: version,
        cache: cache.clone(),
        ..ScanOptions::default()
    };
    let snap = snapshot::snapshot(&table, &options)
        .await
        .with_context(|| format!("taking a snapshot of {}", loc.display))?;
    save_cache(&cache, &table, false, args.json).await;
    Ok(snap)
}

/// A side as given: a snapshot file, or a table opened (not yet read).
enum Side {
    File(Snapshot),
    Table(Location),
}

fn side(arg: &str, selection: &Selection) -> Result<Side> {
    Ok(match file_side(arg, selection)? {
        Some(s) => Side::File(s),
        None => Side::Table(Location::open(arg)?),
    })
}

pub async fn run(args: DiffArgs) -> Result<ExitCode> {
    let selection = args.selection.selection()?;
    let before = side(&args.before, &selection)
        .with_context(|| format!("reading BEFORE ({})", args.before))?;
    let after =
        side(&args.after, &selection).with_context(|| format!("reading AFTER ({})", args.after))?;
    let cache_dir = args.cache.location()?;
    // A table is hashed as the snapshot file it is compared with was (a v1 file against
    // a table compares v1 with v1).
    let version = [&before, &after]
        .iter()
        .find_map(|s| match s {
            Side::File(s) => Some(s.checksum_version),
            Side::Table(_) => None,
        })
        .unwrap_or(backfill::checksum::VERSION);
    let read = |side: Side, name: &'static str, arg: &str| {
        let context = format!("reading {name} ({arg})");
        let (args, selection, cache_dir) = (&args, &selection, cache_dir.clone());
        async move {
            match side {
                Side::File(s) => Ok(s),
                Side::Table(loc) => table_side(loc, args, selection, cache_dir, version)
                    .await
                    .context(context),
            }
        }
    };
    let before = read(before, "BEFORE", &args.before).await?;
    let after = read(after, "AFTER", &args.after).await?;
    if !selection.is_everything() && before.partitions.is_empty() && after.partitions.is_empty() {
        return Err(backfill::Error::EmptySelection(format!(
            "{} on either side",
            selection.describe()
        ))
        .into());
    }
    before
        .comparable(&after)
        .map_err(|e| anyhow::anyhow!("BEFORE and AFTER cannot be compared: {e}"))?;
    let mut d = backfill::diff::diff(&before, &after);
    d.before = args.before.clone();
    d.after = args.after.clone();
    let code = render::emit(&d, args.json);
    args.html
        .write(|| backfill::report::diff(&d, &before, &after), args.json)?;
    Ok(code)
}
