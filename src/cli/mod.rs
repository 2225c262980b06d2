//! The command line: clap structs (one file per command) and the one printer ([`render`]).

pub mod bench;
pub mod demo;
pub mod diff;
pub mod heap;
pub mod plan;
pub mod render;
pub mod resume;
pub mod rollback;
pub mod run;
pub mod runs;
pub mod snapshot;
pub mod verify;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use backfill::selection::Selection;
use backfill::snapshot::{Cache, CacheReport};
use backfill::storage::Location;
use backfill::table::{self, DiscoverOptions, Table};

/// Backfill partitioned Parquet tables safely, and prove what changed.
///
/// TABLE is a folder of Hive-style `key=value/` partitions holding Parquet files:
/// a local path, file://PATH, or s3://BUCKET/PREFIX (settings from AWS_* variables).
///
/// Exit codes: 0 success / no differences, 1 differences found or partitions failed,
/// 2 error (bad input; nothing written), 75 busy (another run holds the table; retry).
#[derive(Parser, Debug)]
#[command(name = "backfill", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Plan(plan::PlanArgs),
    Run(run::RunArgs),
    Resume(resume::ResumeArgs),
    Rollback(rollback::RollbackArgs),
    Runs(runs::RunsArgs),
    Snapshot(snapshot::SnapshotArgs),
    Diff(diff::DiffArgs),
    Verify(verify::VerifyArgs),
    Bench(bench::BenchArgs),
    Demo(demo::DemoArgs),
}

/// Where the checksum cache is, or that there is none (snapshot, verify, diff).
#[derive(Args, Debug, Clone, Default)]
pub struct CacheArgs {
    /// Read every file: neither use nor fill the checksum cache
    #[arg(long, help_heading = "Checksum cache", conflicts_with = "cache_dir")]
    pub no_cache: bool,
    /// Keep the checksum cache in DIR (a local folder or s3://BUCKET/PREFIX) instead of
    /// the table's work area, e.g. when the table's storage is read-only for you
    #[arg(long, value_name = "DIR", help_heading = "Checksum cache")]
    pub cache_dir: Option<String>,
}

impl CacheArgs {
    /// The table's checksum cache, loaded; `None` with `--no-cache`.
    pub async fn open(&self, table: &Location) -> Result<Option<Arc<Cache>>> {
        if self.no_cache {
            return Ok(None);
        }
        let dir = match self.cache_dir.as_deref() {
            None => None,
            Some(d) => {
                // A local folder is made on first use; a bucket must exist.
                if !d.contains("://") {
                    std::fs::create_dir_all(d)
                        .with_context(|| format!("creating --cache-dir {d}"))?;
                }
                Some(Location::open(d).context("opening --cache-dir")?)
            }
        };
        Ok(Some(Arc::new(Cache::open(table, dir.as_ref()).await)))
    }
}

/// Saves what the cache learnt (merging its segments when there are many, or when
/// `prune`) and says on stderr what it did; the report is for `--json`.
pub async fn save_cache(
    cache: &Option<Arc<Cache>>,
    table: &Table,
    prune: bool,
    json: bool,
) -> Option<CacheReport> {
    let report = cache.as_ref()?.save(table, prune).await;
    if !json {
        render::cache(&report);
    }
    Some(report)
}

/// Which partitions to act on. Flags combine: a partition must pass all of them.
#[derive(Args, Debug, Clone, Default)]
pub struct SelectionArgs {
    /// SQL predicate over the partition keys, e.g. "region = 'eu' AND event_date >= DATE '2024-01-03'"
    #[arg(long = "where", value_name = "SQL", help_heading = "Selection")]
    pub filter: Option<String>,
    /// First value of the first partition key to include (inclusive), compared in the key's type
    #[arg(long, value_name = "V", help_heading = "Selection")]
    pub from: Option<String>,
    /// Last value of the first partition key to include (inclusive), compared in the key's type
    #[arg(long, value_name = "V", help_heading = "Selection")]
    pub to: Option<String>,
    /// One partition, as key=value[/key2=value2] (repeatable); leading keys only selects all below
    #[arg(
        long = "partition",
        value_name = "K=V[/K2=V2]",
        help_heading = "Selection"
    )]
    pub partitions: Vec<String>,
    /// Read a partition key's values as date, int or string (repeatable); others are inferred
    #[arg(
        long = "partition-type",
        value_name = "KEY:TYPE",
        help_heading = "Selection"
    )]
    pub partition_type: Vec<String>,
}

impl SelectionArgs {
    pub fn selection(&self) -> Selection {
        Selection {
            filter: self.filter.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            partitions: self.partitions.clone(),
        }
    }

    pub fn discover_options(&self) -> Result<DiscoverOptions> {
        let mut options = DiscoverOptions::default();
        for spec in &self.partition_type {
            options.add_type(spec)?;
        }
        Ok(options)
    }
}

/// Opens and discovers a table, then applies the selection: the partitions to act on.
pub async fn open_selected(location: &str, args: &SelectionArgs) -> Result<(Table, Vec<usize>)> {
    let loc = Location::open(location)?;
    let table = table::discover(&loc, &args.discover_options()?)
        .await
        .with_context(|| format!("discovering partitions of {}", loc.display))?;
    let selected = select(&table, &args.selection())?;
    Ok((table, selected))
}

pub fn select(table: &Table, selection: &Selection) -> Result<Vec<usize>> {
    let candidates: Vec<_> = table
        .partitions
        .iter()
        .map(|p| backfill::selection::Candidate {
            id: &p.id,
            typed: &p.typed,
        })
        .collect();
    Ok(selection.apply(&table.keys, &candidates)?)
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Snapshot(a) => snapshot::run(a).await,
        Command::Diff(a) => diff::run(a).await,
        Command::Verify(a) => verify::run(a).await,
        Command::Demo(a) => demo::run(a).await,
        Command::Plan(a) => plan::run(a).await,
        Command::Run(a) => run::run(a).await,
        Command::Resume(a) => resume::run(a).await,
        Command::Rollback(a) => rollback::run(a).await,
        Command::Runs(a) => runs::run(a).await,
        Command::Bench(a) => bench::run(a).await,
    }
}

/// Parses `--table NAME=TABLE` flags.
pub fn parse_tables(specs: &[String]) -> Result<Vec<(String, String)>> {
    specs
        .iter()
        .map(|s| match s.split_once('=') {
            Some((n, t)) if !n.is_empty() && !t.is_empty() => Ok((n.to_string(), t.to_string())),
            _ => Err(anyhow::anyhow!(
                "--table {s:?} should be NAME=TABLE, e.g. rates=lake/rates"
            )),
        })
        .collect()
}
