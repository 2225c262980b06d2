use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use backfill::snapshot::{self, ScanOptions, Snapshot};
use backfill::verify::{self, Every, VerifyOptions};

use super::{open_selected, render, SelectionArgs};

/// Check a table (or the partitions another job wrote) for problems
///
/// Finds: partitions missing from an expected sequence (--expect-every, between --from and
/// --to or the first and last present), empty partitions, zero-byte or unreadable files,
/// Parquet files outside the key=value layout, stray files, NULL partition values, mixed
/// schemas, and drift against a snapshot (--against). Every selected file is read in full.
/// Exit 0 when nothing is found, 1 when something is, 2 on error.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Table root: a local folder, file://PATH or s3://BUCKET/PREFIX
    pub table: String,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Expect one partition per hour, day or month on the first key and report gaps
    #[arg(long, value_name = "STEP", value_parser = ["hour", "day", "month"])]
    pub expect_every: Option<String>,
    /// A snapshot file to compare the table with (drift: changed, missing, new partitions)
    #[arg(long, value_name = "SNAPSHOT")]
    pub against: Option<std::path::PathBuf>,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
    /// Files read at once (default: the number of cores)
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
}

pub async fn run(args: VerifyArgs) -> Result<ExitCode> {
    let against = args
        .against
        .as_deref()
        .map(|p| Snapshot::read(p).with_context(|| "reading --against"))
        .transpose()?;
    let (table, selected) = open_selected(&args.table, &args.selection).await?;
    super::heap::for_reading(table.largest_partition(&selected));
    let ids: Vec<&str> = selected
        .iter()
        .map(|i| table.partitions[*i].id.as_str())
        .collect();
    if !args.json {
        render::resolved(&ids);
    }
    let files: u64 = selected
        .iter()
        .map(|i| table.partitions[*i].files.len() as u64)
        .sum();
    let bytes: u64 = selected.iter().map(|i| table.partitions[*i].bytes()).sum();
    let bar = render::progress("verify", files, bytes);
    let options = VerifyOptions {
        every: args.expect_every.as_deref().and_then(Every::parse),
        from: args.selection.from.clone(),
        to: args.selection.to.clone(),
        selection: args.selection.selection(),
        scan: ScanOptions {
            columns: against.as_ref().is_some_and(|s| s.has_columns()),
            jobs: args.jobs.unwrap_or_else(snapshot::default_jobs),
            progress: bar.as_ref().map(|b| b.1.clone()),
            // The table is hashed as the snapshot it is checked against was.
            checksum_version: against
                .as_ref()
                .map_or(backfill::checksum::VERSION, |s| s.checksum_version),
        },
        against,
    };
    let report = verify::verify(&table, &selected, &options)
        .await
        .with_context(|| format!("verifying {}", table.location))?;
    if let Some((bar, _)) = bar {
        bar.finish_and_clear();
    }
    if args.json {
        render::json(&report);
    } else {
        render::out(&render::verify(&report));
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
