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
use backfill::table::{self, DiscoverOptions, KeyType, Table};

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
    /// Where `--cache-dir` points, checked before anything is read.
    pub fn location(&self) -> Result<Option<Location>> {
        let Some(d) = self.cache_dir.as_deref() else {
            return Ok(None);
        };
        // A local folder is made on first use; a bucket must exist.
        if !d.contains("://") {
            std::fs::create_dir_all(d).with_context(|| format!("creating --cache-dir {d}"))?;
        }
        Ok(Some(Location::open(d).context("opening --cache-dir")?))
    }

    /// The table's checksum cache (in `dir`, from [`CacheArgs::location`], or the table's
    /// work area), loaded; `None` with `--no-cache`.
    pub async fn open(
        &self,
        table: &Location,
        dir: Option<Location>,
    ) -> Result<Option<Arc<Cache>>> {
        if self.no_cache {
            return Ok(None);
        }
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
        help_heading = "Selection",
        value_parser = DiscoverOptions::parse_type
    )]
    pub partition_type: Vec<(String, KeyType)>,
}

impl SelectionArgs {
    /// The selection, its flags checked (before anything is read).
    pub fn selection(&self) -> Result<Selection> {
        let selection = Selection {
            filter: self.filter.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            partitions: self.partitions.clone(),
        };
        selection.check()?;
        Ok(selection)
    }

    pub fn discover_options(&self) -> DiscoverOptions {
        DiscoverOptions {
            key_types: self.partition_type.iter().cloned().collect(),
        }
    }
}

/// Discovers a table and narrows it to the selection: the partitions to act on.
pub async fn discover_selected(
    loc: &Location,
    args: &SelectionArgs,
    selection: &Selection,
) -> Result<Table> {
    let table = table::discover(loc, &args.discover_options())
        .await
        .with_context(|| format!("discovering partitions of {}", loc.display))?;
    Ok(table.select(selection)?)
}

/// `--table NAME=TABLE`, checked as the command line is parsed.
pub fn lookup_table(spec: &str) -> std::result::Result<(String, String), String> {
    match spec.split_once('=') {
        Some((n, t)) if !n.is_empty() && !t.is_empty() => {
            let local = t.strip_prefix("file://").unwrap_or(t);
            if t.contains("://")
                && !["s3://", "file://", "memory://"]
                    .iter()
                    .any(|s| t.starts_with(s))
            {
                return Err(format!(
                    "{t}: unknown scheme; use a local path, file:// or s3://"
                ));
            }
            if !t.contains("://") || t.starts_with("file://") {
                std::path::Path::new(local)
                    .try_exists()
                    .ok()
                    .filter(|e| *e)
                    .ok_or_else(|| format!("{t}: no such file or folder"))?;
            }
            Ok((n.to_string(), t.to_string()))
        }
        _ => Err("should be NAME=TABLE, e.g. rates=lake/rates".into()),
    }
}

/// `--html FILE`: the report page of what a command found.
#[derive(Args, Debug, Clone, Default)]
pub struct HtmlArgs {
    /// Also write a self-contained HTML report to FILE: a calendar of the partitions
    /// coloured by status or rows (hover for details), the summary and the tables
    #[arg(long, value_name = "FILE")]
    pub html: Option<std::path::PathBuf>,
}

impl HtmlArgs {
    /// Writes the page `page` makes, if asked, and says where on stderr.
    pub fn write(&self, page: impl FnOnce() -> String, json: bool) -> Result<()> {
        let Some(path) = &self.html else {
            return Ok(());
        };
        std::fs::write(path, page())
            .with_context(|| format!("writing the report to {}", path.display()))?;
        if !json {
            render::note(&format!("report written to {}", path.display()));
        }
        Ok(())
    }
}

/// Reads `--sql FILE` and checks it is one query (before anything else is read).
pub fn read_sql(path: &std::path::Path) -> Result<String> {
    let sql = std::fs::read_to_string(path)
        .with_context(|| format!("reading --sql {}", path.display()))?;
    backfill::transform::check_syntax(&sql)?;
    Ok(sql)
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
