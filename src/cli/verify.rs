use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use backfill::snapshot::{self, ScanOptions, Snapshot};
use backfill::storage::Location;
use backfill::table;
use backfill::verify::{self, Every, VerifyOptions};

use super::{discover_selected, render, save_cache, CacheArgs, SelectionArgs};

/// Check a table (or the partitions another job wrote) for problems
///
/// Finds: partitions missing from an expected sequence (--expect-every, between --from and
/// --to or the first and last present), empty partitions, zero-byte or unreadable files,
/// Parquet files outside the key=value layout, stray files, NULL partition values, mixed
/// schemas, and drift against a snapshot (--against). Every selected file is read in full,
/// except those the checksum cache holds for the same size and version (see `snapshot
/// --help`); --deep reads those too and reports any whose content changed in place.
///
/// After a run (one process or many workers), --run RUN_ID checks each of the run's
/// partitions holds exactly what the run's journal recorded leaving in it (rows and
/// checksum), and that none is pending, failed or mid-commit: no snapshot file and no
/// shared disk needed.
///
/// Exit 0 when nothing is found, 1 when something is, 2 on error.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Table root: a local folder, file://PATH or s3://BUCKET/PREFIX
    pub table: String,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Expect one partition per hour, day or month on the first key and report gaps
    #[arg(long, value_name = "STEP", value_enum)]
    pub expect_every: Option<Every>,
    /// A snapshot file to compare the table with (drift: changed, missing, new partitions)
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "run")]
    pub against: Option<std::path::PathBuf>,
    /// Check the partitions of run RUN_ID against what its journal recorded
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["filter", "from", "to", "partitions"])]
    pub run: Option<String>,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
    /// Files decoded at once (default: the number of cores); as many more are fetched from
    /// storage meanwhile, so no core waits on a read
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Read every file, even those the checksum cache has, and compare with the cache:
    /// finds files whose content changed while their size and version did not
    #[arg(long, help_heading = "Checksum cache", conflicts_with = "no_cache")]
    pub deep: bool,
    /// Read only footers (and the checksum cache), not the data: rows, schemas, column
    /// types and the layout are checked, pages and checksums are not. Cheap on any lake,
    /// e.g. with --rows-anomaly
    #[arg(long, conflicts_with_all = ["against", "run", "deep"])]
    pub footers_only: bool,
    /// Drop cache entries of files no longer in the table and merge the cache into one
    /// segment
    #[arg(long, help_heading = "Checksum cache", conflicts_with = "no_cache")]
    pub prune_cache: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub html: super::HtmlArgs,
    /// Flag partitions whose row count is far from what earlier partitions of the same
    /// group predict (median and MAD of a trailing window; same weekday for date keys)
    #[arg(long, help_heading = "Row-count anomalies")]
    pub rows_anomaly: bool,
    /// Robust standard deviations from the median that count as an anomaly
    #[arg(long, value_name = "Z", default_value_t = backfill::verify::anomaly::THRESHOLD,
          requires = "rows_anomaly", help_heading = "Row-count anomalies",
          value_parser = positive)]
    pub anomaly_threshold: f64,
    /// Earlier partitions each one is compared with (default: 8 of the same weekday for
    /// date keys, else 14)
    #[arg(long, value_name = "N", requires = "rows_anomaly", help_heading = "Row-count anomalies",
          value_parser = clap::value_parser!(u64).range(4..))]
    pub anomaly_window: Option<u64>,
}

fn positive(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(z) if z > 0.0 && z.is_finite() => Ok(z),
        _ => Err(format!(
            "{s:?} is not a positive number (3.5 is the default)"
        )),
    }
}

pub async fn run(args: VerifyArgs) -> Result<ExitCode> {
    let selection = args.selection.selection()?;
    let against = args
        .against
        .as_deref()
        .map(|p| Snapshot::read(p).with_context(|| "reading --against"))
        .transpose()?;
    let loc = Location::open(&args.table)?;
    let cache_dir = args.cache.location()?;
    let (table, run) = match &args.run {
        None => (
            discover_selected(&loc, &args.selection, &selection).await?,
            None,
        ),
        Some(id) => {
            let run = backfill::run::run_detail(&loc, id)
                .await
                .with_context(|| format!("reading run {id} of {}", loc.display))?;
            if run.checksum_version.is_none() {
                anyhow::bail!(
                    "run {id} was journalled by an older backfill whose checksum version the journal does not say; check the table against a snapshot instead (`backfill verify TABLE --against FILE`)"
                );
            }
            let table = table::discover(&loc, &args.selection.discover_options())
                .await
                .with_context(|| format!("discovering partitions of {}", loc.display))?;
            let planned: std::collections::HashSet<&str> = run
                .partitions
                .iter()
                .map(|p| p.partition.as_str())
                .collect();
            let table = table.retain(|p| planned.contains(p.id.as_str()));
            (table, Some(run))
        }
    };
    super::heap::for_reading(table.largest_partition());
    if !args.json {
        let ids: Vec<&str> = table.partitions.iter().map(|p| p.id.as_str()).collect();
        render::resolved(&ids);
    }
    let cache = args.cache.open(&table.location, cache_dir).await?;
    let bar = render::progress("verify", table.files() as u64, table.bytes());
    let options = VerifyOptions {
        every: args.expect_every,
        from: args.selection.from.clone(),
        to: args.selection.to.clone(),
        selection,
        scan: ScanOptions {
            columns: against.as_ref().is_some_and(|s| s.has_columns()),
            jobs: args.jobs.unwrap_or_else(snapshot::default_jobs),
            progress: bar.as_ref().map(|b| b.1.clone()),
            // The table is hashed as the snapshot it is checked against was.
            checksum_version: against.as_ref().map_or(
                run.as_ref()
                    .and_then(|r| r.checksum_version)
                    .unwrap_or(backfill::checksum::VERSION),
                |s| s.checksum_version,
            ),
            cache,
            deep: args.deep,
            footers_only: args.footers_only,
        },
        against,
        run,
        anomalies: args.rows_anomaly.then(|| verify::anomaly::AnomalyOptions {
            threshold: args.anomaly_threshold,
            window: args.anomaly_window.map(|w| w as usize),
        }),
    };
    let mut report = verify::verify(&table, &options)
        .await
        .with_context(|| format!("verifying {}", table.location))?;
    if let Some((bar, _)) = bar {
        bar.finish_and_clear();
    }
    report.cache = save_cache(&options.scan.cache, &table, args.prune_cache, args.json).await;
    let code = render::emit(&report, args.json);
    args.html
        .write(|| backfill::report::verify(&report), args.json)?;
    Ok(code)
}
