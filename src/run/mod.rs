//! Runs: plan, transform, stage, verify, commit and journal each partition; resume,
//! rollback and list runs. See `commit` for the swap itself and README "Safety".
//!
//! - `mod.rs`: what a run is asked ([`RunRequest`]) and reports ([`RunReport`]); starting one.
//! - `execute`: the per-partition pipeline, `jobs` at once.
//! - `resume`, `rollback`: finishing and undoing a run from its journal.
//! - `worker`: frozen runs, one partition per task.
//! - `history`: run states as the journal leaves them; `runs`, `release`.

mod execute;
mod history;
mod preflight;
mod resume;
mod rollback;
mod worker;

pub use history::{
    history, release, run_detail, unfinished_steps, PartitionProgress, PartitionState, RunDetail,
    RunHistory, RunInfo, UnfinishedStep,
};
pub use preflight::{
    check_sql, first_sample, refuse_order_dependent, sample, sample_partitions, sample_read,
    time_more, Preflight, Sample, SampleCheck, SampleSettings, Timed,
};
pub use resume::{largest_planned_partition, resumable, resume};
pub use rollback::{rollback, RollbackEntry, RollbackReport};
pub use worker::{freeze, planned_partitions, run_partition};

use execute::{execute, Ctx};
use history::refuse_unfinished;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::commit::journal::{self, Event, Journal, Phases, RunDir};
use crate::error::{Error, Result};
use crate::lock::{LeaseTimes, Lock};
use crate::plan::{self, OnEmpty, Order, Plan, RunSettings};
use crate::selection::Selection;
use crate::snapshot::Cache;
use crate::table::{PartitionId, Table};
use crate::transform::{ms, Transform};

/// What the user asked a run to do.
#[derive(Clone)]
pub struct RunRequest {
    /// The transform's SQL text.
    pub sql: String,
    /// The selection flags, recorded in the plan.
    pub selection: Selection,
    /// Required to act on a whole table without a selection.
    pub all: bool,
    /// Partitions computed at once.
    pub jobs: usize,
    /// The execution order.
    pub order: Order,
    /// The policy for a transform that returns no rows.
    pub on_empty: OnEmpty,
    /// Accept other columns or types than the table's.
    pub allow_schema_change: bool,
    /// Go on although the transform calls volatile functions.
    pub allow_nondeterministic: bool,
    /// `NAME=TABLE` tables registered for joins.
    pub tables: Vec<(String, String)>,
    /// How long leases live (object stores).
    pub lease: LeaseTimes,
    /// Called as each partition finishes.
    pub progress: Option<Progress>,
    /// The partition the preflight runs the transform on (default: the median by bytes).
    pub preflight_partition: Option<String>,
    /// See [`RunSettings::slice_above_mib`].
    pub slice_above_mib: u64,
}

/// Called after each partition finishes.
pub type Progress = Arc<dyn Fn(&PartitionReport) + Send + Sync>;

/// What became of a partition in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Its new files are live.
    Rewritten,
    /// Its new content equals the old: nothing was written.
    Unchanged,
    /// It failed and was left as it was.
    Failed,
    /// It was removed (`--on-empty delete`).
    Deleted,
    /// It was kept as it was (`--on-empty keep`).
    Kept,
    /// Not reached (the run stopped before it).
    Skipped,
}

impl Status {
    /// The status's name in output.
    pub fn name(self) -> &'static str {
        match self {
            Status::Rewritten => "rewritten",
            Status::Unchanged => "unchanged",
            Status::Failed => "failed",
            Status::Deleted => "deleted",
            Status::Kept => "kept",
            Status::Skipped => "skipped",
        }
    }
}

/// One partition of a run's report.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionReport {
    /// The partition.
    pub partition: PartitionId,
    /// What became of it.
    pub status: Status,
    /// Rows before, once read.
    pub rows_before: Option<u64>,
    /// Rows after, once transformed.
    pub rows_after: Option<u64>,
    /// Checksum before, once read.
    pub checksum_before: Option<String>,
    /// Checksum after, once transformed.
    pub checksum_after: Option<String>,
    /// Wall time of its pipeline.
    pub duration_ms: f64,
    /// Time per phase.
    pub phases: Phases,
    /// What differs from the table's columns (allowed by `--allow-schema-change`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_change: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Bytes of its new file, when it was rewritten (by this try).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_written: Option<u64>,
    /// What a worker found and did instead of transforming (done already by an earlier
    /// try, or an interrupted commit finished).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// It failed only because another run or worker held it: try again later.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub busy: bool,
    /// The slices of rows it was rewritten in, when it was rewritten a slice at a time
    /// (`--slice-above`); 0 when it was rewritten whole.
    #[serde(skip_serializing_if = "is_zero")]
    pub slices: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl PartitionReport {
    /// A partition that failed only because another run or worker held it.
    pub fn busy(partition: &str, error: &Error) -> PartitionReport {
        let mut r = PartitionReport::new(partition, Status::Failed);
        r.busy = true;
        r.error = Some(error.to_string());
        r
    }

    fn new(partition: &str, status: Status) -> PartitionReport {
        PartitionReport {
            partition: partition.into(),
            status,
            rows_before: None,
            rows_after: None,
            checksum_before: None,
            checksum_after: None,
            duration_ms: 0.0,
            phases: Phases::default(),
            schema_change: None,
            error: None,
            bytes_written: None,
            note: None,
            busy: false,
            slices: 0,
        }
    }
}

/// A run's counts and row totals.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    /// Partitions planned.
    pub partitions: usize,
    /// Partitions rewritten.
    pub rewritten: usize,
    /// Partitions unchanged.
    pub unchanged: usize,
    /// Partitions failed.
    pub failed: usize,
    /// Partitions deleted.
    pub deleted: usize,
    /// Partitions kept.
    pub kept: usize,
    /// Partitions not reached.
    pub skipped: usize,
    /// Rows before.
    pub rows_before: u64,
    /// Rows after (a partition left as it was counts its old rows).
    pub rows_after: u64,
    /// `rows_after - rows_before`.
    pub rows_delta: i64,
    /// Bytes of the new files written (beside the plan's estimate of them).
    pub bytes_written: u64,
}

/// What a run, resume or worker reports.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The run's id.
    pub run_id: String,
    /// The table, as the user named it.
    pub table: String,
    /// The first 16 hex digits of the SQL's BLAKE3.
    pub sql_hash: String,
    /// Each partition, in plan order.
    pub partitions: Vec<PartitionReport>,
    /// Counts and row totals.
    pub summary: RunSummary,
    /// Time spent per phase, summed over partitions (they overlap with `--jobs` > 1).
    pub phases: Phases,
    /// Wall time of the whole run.
    pub wall_ms: f64,
    /// What the SQL's preflight found before any partition was touched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preflight: Option<Preflight>,
    /// What the plan estimated before the run (to set beside `wall_ms` and `phases`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<plan::Estimate>,
}

impl RunReport {
    fn new(plan: &Plan, partitions: Vec<PartitionReport>, wall_ms: f64) -> RunReport {
        let sql_hash = plan
            .settings
            .as_ref()
            .map(|s| s.sql_hash.clone())
            .unwrap_or_default();
        let mut r = RunReport::new_for(&plan.run_id, &plan.table, &sql_hash, partitions, wall_ms);
        r.preflight = plan.settings.as_ref().and_then(|s| s.preflight.clone());
        r.estimate = plan.estimate.clone();
        r
    }

    fn new_for(
        run_id: &str,
        table: &str,
        sql_hash: &str,
        partitions: Vec<PartitionReport>,
        wall_ms: f64,
    ) -> RunReport {
        let mut s = RunSummary {
            partitions: partitions.len(),
            ..Default::default()
        };
        let mut phases = Phases::default();
        for p in &partitions {
            match p.status {
                Status::Rewritten => s.rewritten += 1,
                Status::Unchanged => s.unchanged += 1,
                Status::Failed => s.failed += 1,
                Status::Deleted => s.deleted += 1,
                Status::Kept => s.kept += 1,
                Status::Skipped => s.skipped += 1,
            }
            let before = p.rows_before.unwrap_or(0);
            s.rows_before += before;
            // A partition left as it was still holds its old rows.
            s.rows_after += match p.status {
                Status::Rewritten | Status::Unchanged => p.rows_after.unwrap_or(before),
                Status::Deleted => 0,
                _ => before,
            };
            phases.add(&p.phases);
            s.bytes_written += p.bytes_written.unwrap_or(0);
        }
        s.rows_delta = s.rows_after as i64 - s.rows_before as i64;
        RunReport {
            run_id: run_id.into(),
            table: table.into(),
            sql_hash: sql_hash.into(),
            partitions,
            summary: s,
            phases,
            wall_ms,
            preflight: None,
            estimate: None,
        }
    }

    /// Whether every partition succeeded (none failed or skipped).
    pub fn ok(&self) -> bool {
        self.summary.failed == 0 && self.summary.skipped == 0
    }

    /// Not ok only because partitions were busy (held by another run or worker): the
    /// same command later may finish them.
    pub fn busy(&self) -> bool {
        !self.ok()
            && self.summary.skipped == 0
            && self
                .partitions
                .iter()
                .filter(|p| p.status == Status::Failed)
                .all(|p| p.busy)
    }

    /// A report of no partition (a shard of a run with fewer partitions than shards).
    pub fn empty(run_id: &str, table: &str) -> RunReport {
        RunReport::new_for(run_id, table, "", Vec::new(), 0.0)
    }

    /// The same run's report over other partitions (a worker doing several).
    pub fn set_partitions(&mut self, partitions: Vec<PartitionReport>) {
        let preflight = self.preflight.take();
        let estimate = self.estimate.take();
        *self = RunReport::new_for(
            &self.run_id,
            &self.table,
            &self.sql_hash,
            partitions,
            self.wall_ms,
        );
        self.preflight = preflight;
        self.estimate = estimate;
    }
}

/// A journalled plan without the settings every run records.
fn no_settings(run_id: &str) -> Error {
    Error::JournalDamaged {
        path: format!("of run {run_id}"),
        reason: "its plan has no run settings".into(),
    }
}

/// The first 16 hex digits of the BLAKE3 of `sql`: how runs name their SQL.
pub fn sql_hash(sql: &str) -> String {
    blake3::hash(sql.as_bytes()).to_hex()[..16].to_string()
}

/// Refuses a whole-table run without `--all`, and an empty one.
pub fn check_scope(selection: &Selection, all: bool, partitions: usize) -> Result<()> {
    if selection.is_everything() && !all {
        return Err(Error::Usage(
            "no selection: give --where, --from/--to or --partition, or --all to rewrite every partition".into(),
        ));
    }
    if partitions == 0 {
        return Err(Error::EmptySelection("the table has no partitions".into()));
    }
    Ok(())
}

/// What every new run checks before it plans: its scope, and its SQL against the table
/// (columns, schema change, volatile functions).
async fn prepare(table: &Table, req: &RunRequest) -> Result<(Transform, Preflight)> {
    check_scope(&req.selection, req.all, table.partitions.len())?;
    let transform = Transform::new(&req.sql, &req.tables).await?;
    let (_, _, preflight) = check_sql(
        table,
        &transform,
        req.allow_schema_change,
        req.allow_nondeterministic,
    )
    .await?;
    Ok((transform, preflight))
}

/// The plan of run `run_id` over the selected partitions, with the request's settings.
async fn plan_run(
    table: &Table,
    req: &RunRequest,
    run_id: &str,
    preflight: Preflight,
) -> Result<Plan> {
    let cache = Cache::open(&table.location, None).await;
    let mut plan = plan::build(
        table,
        &req.selection,
        req.order,
        req.jobs,
        run_id,
        Some(&cache),
    )
    .await?;
    refuse_summary_files(table, &plan)?;
    plan.settings = Some(RunSettings {
        sql: req.sql.clone(),
        sql_hash: sql_hash(&req.sql),
        order: req.order,
        on_empty: req.on_empty,
        allow_schema_change: req.allow_schema_change,
        tables: req.tables.clone(),
        jobs: req.jobs,
        preflight: Some(preflight),
        slice_above_mib: req.slice_above_mib,
    });
    Ok(plan)
}

/// Refuses a run over partitions that Parquet summary files describe: the run would leave
/// them false (docs/DECISIONS.md says why refusing beats keeping, removing or rebuilding).
pub fn refuse_summary_files(table: &Table, plan: &Plan) -> Result<()> {
    let planned: std::collections::HashSet<&PartitionId> =
        plan.partitions.iter().map(|p| &p.partition).collect();
    let files = table.summaries_over(|p| planned.contains(p));
    if files.is_empty() {
        return Ok(());
    }
    Err(Error::SummaryFiles {
        table: table.location.display.clone(),
        files: files.join(", "),
    })
}

/// The preflight's sample of a new run's plan: the transform run twice on one partition
/// (refused if the two differ, unless allowed), the rest of its pipeline timed, and the
/// plan's estimate made from it. Nothing is written.
/// `thorough` times at least one partition like the sample too, for a better estimate
/// (`plan --freeze`); a run, about to do every partition anyway, times more only when the
/// sample was too quick to time well.
async fn sample_plan(
    loc: &crate::storage::Location,
    plan: &mut Plan,
    transform: &Transform,
    req: &RunRequest,
    thorough: bool,
) -> Result<()> {
    let candidates: Vec<plan::PlannedPartition> =
        preflight::sample_partitions(plan, req.preflight_partition.as_deref())?
            .into_iter()
            .cloned()
            .collect();
    let settings = preflight::SampleSettings {
        allow_schema_change: req.allow_schema_change,
        on_empty: req.on_empty,
        slice_above_mib: req.slice_above_mib,
    };
    let refs: Vec<&plan::PlannedPartition> = candidates.iter().collect();
    let Some(mut sample) = preflight::first_sample(
        loc,
        &plan.keys,
        &refs,
        transform,
        &settings,
        req.preflight_partition.is_some(),
    )
    .await?
    else {
        return Ok(());
    };
    preflight::refuse_order_dependent(&sample.check, req.allow_nondeterministic)?;
    preflight::time_more(
        &mut sample,
        loc,
        &plan.keys,
        plan,
        transform,
        &settings,
        thorough,
    )
    .await;
    let estimate = plan::estimate(
        plan,
        &sample.measured(),
        req.jobs,
        loc.is_local(),
        plan::Prices::default(),
    );
    plan.estimated_seconds = estimate.seconds;
    plan.estimate = Some(estimate);
    let settings = plan
        .settings
        .as_mut()
        .ok_or_else(|| no_settings(&plan.run_id))?;
    let preflight = settings.preflight.get_or_insert_with(Preflight::default);
    preflight.allowed |= sample.check.same == Some(false);
    preflight.sample = Some(sample.check);
    Ok(())
}

/// Starts a run over the partitions of `table` (narrowed to the request's selection).
pub async fn run(table: &Table, req: RunRequest) -> Result<RunReport> {
    let started = Instant::now();
    let (transform, preflight) = prepare(table, &req).await?;
    let run_id = journal::new_run_id();
    let loc = table.location.clone();
    let lock = Lock::acquire(&loc, &run_id, req.lease).await?;
    let result = async {
        let mut plan = plan_run(table, &req, &run_id, preflight).await?;
        refuse_unfinished(&loc, &run_id, &plan).await?;
        sample_plan(&loc, &mut plan, &transform, &req, false).await?;
        let journal = Journal::create(&loc, &plan).await?;
        Ok::<_, Error>((plan, journal))
    }
    .await;
    let (plan, journal) = match result {
        Ok(x) => x,
        Err(e) => {
            let _ = lock.release().await;
            return Err(e);
        }
    };
    let settings = plan.settings.clone().expect("set above");
    let ctx = Arc::new(Ctx {
        run: RunDir::new(&loc, &run_id),
        loc,
        journal,
        lock,
        transform,
        keys: plan.keys.clone(),
        settings,
        progress: req.progress,
        cache: Some(Arc::new(Cache::for_writing(&table.location))),
    });
    let reports = execute(&ctx, &plan, &HashMap::new()).await;
    finish(ctx, &plan, reports, started).await
}

async fn finish(
    ctx: Arc<Ctx>,
    plan: &Plan,
    reports: Vec<PartitionReport>,
    started: Instant,
) -> Result<RunReport> {
    let report = RunReport::new(plan, reports, ms(started));
    let s = &report.summary;
    let finished = ctx
        .journal
        .append(Event::Finished {
            rewritten: s.rewritten + s.deleted,
            unchanged: s.unchanged,
            failed: s.failed,
        })
        .await;
    if let Some(cache) = &ctx.cache {
        cache.save_written().await;
    }
    let ctx =
        Arc::try_unwrap(ctx).map_err(|_| Error::Internal("run context still shared".into()))?;
    ctx.lock.release().await?;
    finished?;
    Ok(report)
}

/// `f`'s result, tried again every second while it is busy (another run or worker holds
/// what it needs), until `deadline`.
pub async fn retrying<T, F, Fut>(deadline: Instant, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    loop {
        match f().await {
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            r => return r,
        }
    }
}
