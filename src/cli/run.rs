use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use backfill::lock::LeaseTimes;
use backfill::plan::{OnEmpty, Order};
use backfill::run::{self, RunRequest};
use backfill::storage::Location;

use super::{discover_selected, render, SelectionArgs};

/// Rewrite the selected partitions with a SQL transform, safely and resumably
///
/// The SQL file is one query over the table `source` (one partition's rows, with the
/// partition keys as columns); `this_partition` is a one-row table of the partition's
/// values. Each partition is read, transformed, checked (rows must belong to it, columns
/// must be the table's), encoded and decoded again to prove the new file holds exactly
/// those rows, staged outside the table and read back byte for byte, then committed
/// so that it is always wholly old or wholly new. A partition whose content does not change
/// is not rewritten. Every step is journalled: `backfill resume` finishes an interrupted
/// run, `backfill rollback` undoes one. Exit 0 when every partition succeeded, 1 when some
/// failed (they are listed and left as they were), 2 on bad input (nothing written).
///
/// As a worker of a run frozen by `backfill plan --freeze`: `--run ID --partition P`
/// does P for that run (any number of workers at once, on any machines, each on its own
/// partitions; only P is listed). A retried task is safe: a partition done already is
/// reported and not transformed again, an interrupted commit is finished. Exit 75 when
/// the partition (or the table) is busy: retry later.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Table root: a local folder, file://PATH or s3://BUCKET/PREFIX
    pub table: String,
    /// The transform: a SQL query over the table `source` (not with --run: the frozen
    /// run has its own)
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "run",
        conflicts_with = "run"
    )]
    pub sql: Option<std::path::PathBuf>,
    /// Work on partitions (--partition, or --shard) of this frozen run (`backfill plan --freeze`)
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["all", "jobs", "order", "on_empty", "allow_schema_change", "allow_nondeterministic", "tables", "slice_above"])]
    pub run: Option<String>,
    /// With --run: the K-th of N shards of the run's partitions (those at plan positions
    /// K, K+N, K+2N...; K from 0), for orchestrators that map fewer tasks than partitions
    #[arg(long, value_name = "K/N", requires = "run", value_parser = shard)]
    pub shard: Option<(usize, usize)>,
    /// When the table or the partition is busy (another run or worker holds it), keep
    /// trying for up to SECS seconds instead of exiting 75 at once
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub wait: u64,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Act on every partition (required when no selection is given)
    #[arg(long)]
    pub all: bool,
    /// Partitions rewritten at once (default: the number of cores)
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// A partition larger than this on storage is rewritten a slice of rows (a source row
    /// group) at a time, so memory does not grow with it, when the SQL handles each row on
    /// its own (SELECT and WHERE over `source`); smaller ones, and other SQL, are
    /// rewritten whole. Columns passed through are copied either way, except from files
    /// with a page index, where only a whole rewrite copies them: such partitions are
    /// sliced only above 4 times this
    #[arg(long, value_name = "MIB", default_value_t = backfill::plan::SLICE_ABOVE_MIB)]
    pub slice_above: u64,
    /// Execution order
    #[arg(long, value_name = "ORDER", value_enum, default_value_t = Order::OldestFirst)]
    pub order: Order,
    /// When the transform returns no rows: fail (leave the partition, report it), delete
    /// the partition, or keep it as it was
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = OnEmpty::Fail)]
    pub on_empty: OnEmpty,
    /// Accept output columns or types that differ from the table's (reported per partition)
    #[arg(long)]
    pub allow_schema_change: bool,
    /// Go on although the SQL calls volatile functions (random(), uuid()...), which give
    /// other rows on every run: refused by default, recorded in the journal when allowed
    #[arg(long)]
    pub allow_nondeterministic: bool,
    /// The partition the preflight runs the transform on twice (default: the median by
    /// bytes of the selected partitions; see `plan --help`)
    #[arg(long, value_name = "K=V[/K2=V2]", conflicts_with = "run")]
    pub preflight_partition: Option<String>,
    /// Register another table for joins, as NAME=TABLE (repeatable)
    #[arg(long = "table", value_name = "NAME=TABLE", value_parser = super::lookup_table)]
    pub tables: Vec<(String, String)>,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub html: super::HtmlArgs,
}

/// `--shard K/N`, checked as the command line is parsed.
fn shard(spec: &str) -> std::result::Result<(usize, usize), String> {
    spec.split_once('/')
        .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .filter(|(k, n)| *n > 0 && k < n)
        .ok_or_else(|| "should be K/N with 0 <= K < N, e.g. --shard 0/8".to_string())
}

pub async fn run(args: RunArgs) -> Result<ExitCode> {
    if let Some(run_id) = &args.run {
        return work(&args, run_id).await;
    }
    let selection = args.selection.selection()?;
    let path = args
        .sql
        .as_ref()
        .expect("clap requires --sql without --run");
    let sql = super::read_sql(path)?;
    let loc = Location::open(&args.table)?;
    let table = discover_selected(&loc, &args.selection, &selection).await?;
    if !args.json {
        let ids: Vec<&str> = table.partitions.iter().map(|p| p.id.as_str()).collect();
        render::resolved(&ids);
    }
    super::heap::size_for(table.largest_partition());
    let bar = render::run_progress(&table);
    let req = RunRequest {
        sql,
        selection,
        all: args.all,
        jobs: args.jobs.unwrap_or_else(backfill::snapshot::default_jobs),
        order: args.order,
        on_empty: args.on_empty,
        allow_schema_change: args.allow_schema_change,
        allow_nondeterministic: args.allow_nondeterministic,
        tables: args.tables.clone(),
        lease: LeaseTimes::from_env(),
        progress: bar.as_ref().map(|(_, p)| Arc::clone(p)),
        preflight_partition: args.preflight_partition.clone(),
        slice_above_mib: args.slice_above,
    };
    let report = waiting(args.wait, || run::run(&table, req.clone()))
        .await
        .with_context(|| format!("running a backfill on {}", table.location))?;
    if let Some((bar, _)) = bar {
        bar.finish_and_clear();
    }
    let code = render::emit(&report, args.json);
    write_html(&args, &table.location, &report).await?;
    Ok(code)
}

/// `--html`: the run's page, with the table's run history.
async fn write_html(
    args: &RunArgs,
    loc: &Location,
    report: &backfill::run::RunReport,
) -> Result<()> {
    if args.html.html.is_none() {
        return Ok(());
    }
    let history = run::history(loc).await.ok();
    args.html.write(
        || backfill::report::run(report, history.as_ref()),
        args.json,
    )
}

/// A worker's task: the given partitions of a frozen run, one after the other.
async fn work(args: &RunArgs, run_id: &str) -> Result<ExitCode> {
    let s = &args.selection;
    if args.shard.is_some() && !s.partitions.is_empty() {
        anyhow::bail!(backfill::Error::Usage(
            "--shard and --partition both name the partitions: give one of them".into()
        ));
    }
    if (args.shard.is_none() && s.partitions.is_empty())
        || s.filter.is_some()
        || s.from.is_some()
        || s.to.is_some()
    {
        anyhow::bail!(backfill::Error::Usage(format!(
            "--run {run_id} takes the partitions to work on as --partition K=V[/K2=V2], as `backfill plan --freeze --json` listed them, or as --shard K/N (the run's plan has the rest)"
        )));
    }
    let loc = Location::open(&args.table)?;
    let wanted: Vec<String> = match args.shard {
        Some((k, n)) => run::planned_partitions(&loc, run_id)
            .await?
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % n == k)
            .map(|(_, p)| p.to_string())
            .collect(),
        None => s.partitions.clone(),
    };
    if wanted.is_empty() {
        let report = run::RunReport::empty(run_id, &loc.display);
        return Ok(render::emit(&report, args.json));
    }
    let mut partitions = Vec::new();
    let mut last = None;
    for p in &wanted {
        let report = waiting(args.wait, || {
            run::run_partition(&loc, run_id, p, LeaseTimes::from_env())
        })
        .await;
        let report = match report {
            // Of several partitions, a busy one is reported and the others go on; the
            // exit code is 75 if nothing else failed.
            Err(e) if e.is_retryable() && wanted.len() > 1 => {
                partitions.push(run::PartitionReport::busy(p, &e));
                continue;
            }
            r => r.with_context(|| format!("partition {p} of run {run_id} on {}", loc.display))?,
        };
        partitions.extend(report.partitions.iter().cloned());
        last = Some(report);
    }
    let mut report = last.unwrap_or_else(|| run::RunReport::empty(run_id, &loc.display));
    report.set_partitions(partitions);
    let code = render::emit(&report, args.json);
    write_html(args, &loc, &report).await?;
    Ok(code)
}

/// `f`'s result, tried again every second while it is busy (retryable), for up to `secs`.
async fn waiting<T, F, Fut>(secs: u64, f: F) -> backfill::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = backfill::Result<T>>,
{
    run::retrying(
        std::time::Instant::now() + std::time::Duration::from_secs(secs),
        f,
    )
    .await
}
