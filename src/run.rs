//! Runs: plan, transform, stage, verify, commit and journal each partition; resume,
//! rollback and list runs. See `commit` for the swap itself and README "Safety".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

use crate::checksum::{self, Hasher};
use crate::commit::journal::{
    self, Committed, Committing, Deleted, Deleting, Event, Failed, Journal, Kept, Phases,
    RollbackSkipped, RunDir, Side, Unchanged,
};
use crate::commit::{self, OpenStep, Recovered, RunState};
use crate::error::{Error, Result};
use crate::lock::{LeaseTimes, Lock};
use crate::plan::{self, OnEmpty, Order, Plan, PlannedPartition, RunSettings};
use crate::selection::Selection;
use crate::storage::Location;
use crate::table::{PartitionKey, Table};
use crate::transform::{self, ms, Transform};

/// What the user asked a run to do.
#[derive(Clone)]
pub struct RunRequest {
    pub sql: String,
    pub selection: Selection,
    /// Required to act on a whole table without a selection.
    pub all: bool,
    pub jobs: usize,
    pub order: Order,
    pub on_empty: OnEmpty,
    pub allow_schema_change: bool,
    pub tables: Vec<(String, String)>,
    pub lease: LeaseTimes,
    pub progress: Option<Progress>,
}

/// Called after each partition finishes.
pub type Progress = Arc<dyn Fn(&PartitionReport) + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Rewritten,
    Unchanged,
    Failed,
    Deleted,
    Kept,
    /// Not reached (the run stopped before it).
    Skipped,
}

impl Status {
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

#[derive(Debug, Clone, Serialize)]
pub struct PartitionReport {
    pub partition: String,
    pub status: Status,
    pub rows_before: Option<u64>,
    pub rows_after: Option<u64>,
    pub checksum_before: Option<String>,
    pub checksum_after: Option<String>,
    pub duration_ms: f64,
    pub phases: Phases,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_change: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What a worker found and did instead of transforming (done already by an earlier
    /// try, or an interrupted commit finished).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl PartitionReport {
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
            note: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub partitions: usize,
    pub rewritten: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub deleted: usize,
    pub kept: usize,
    pub skipped: usize,
    pub rows_before: u64,
    pub rows_after: u64,
    pub rows_delta: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub table: String,
    pub sql_hash: String,
    pub partitions: Vec<PartitionReport>,
    pub summary: RunSummary,
    /// Time spent per phase, summed over partitions (they overlap with `--jobs` > 1).
    pub phases: Phases,
    pub wall_ms: f64,
}

impl RunReport {
    fn new(plan: &Plan, partitions: Vec<PartitionReport>, wall_ms: f64) -> RunReport {
        let sql_hash = plan
            .settings
            .as_ref()
            .map(|s| s.sql_hash.clone())
            .unwrap_or_default();
        RunReport::new_for(&plan.run_id, &plan.table, &sql_hash, partitions, wall_ms)
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
        }
    }

    pub fn ok(&self) -> bool {
        self.summary.failed == 0 && self.summary.skipped == 0
    }

    /// A report of no partition (a shard of a run with fewer partitions than shards).
    pub fn empty(run_id: &str, table: &str) -> RunReport {
        RunReport::new_for(run_id, table, "", Vec::new(), 0.0)
    }

    /// The same run's report over other partitions (a worker doing several).
    pub fn set_partitions(&mut self, partitions: Vec<PartitionReport>) {
        *self = RunReport::new_for(
            &self.run_id,
            &self.table,
            &self.sql_hash,
            partitions,
            self.wall_ms,
        );
    }
}

/// Everything a partition's processing needs, shared by the parallel tasks.
struct Ctx {
    loc: Location,
    run: RunDir,
    journal: Journal,
    lock: Lock,
    transform: Transform,
    keys: Vec<PartitionKey>,
    settings: RunSettings,
    progress: Option<Progress>,
}

pub fn sql_hash(sql: &str) -> String {
    blake3::hash(sql.as_bytes()).to_hex()[..16].to_string()
}

/// Refuses a whole-table run without `--all`, and an empty one.
pub fn check_scope(selection: &Selection, all: bool, selected: usize) -> Result<()> {
    if selection.is_everything() && !all {
        return Err(Error::Usage(
            "no selection: give --where, --from/--to or --partition, or --all to rewrite every partition".into(),
        ));
    }
    if selected == 0 {
        return Err(Error::EmptySelection("the table has no partitions".into()));
    }
    Ok(())
}

/// Plans the SQL over the first selected partition's schema, without data.
pub async fn check_sql(
    table: &Table,
    selected: &[usize],
    transform: &Transform,
    allow_schema_change: bool,
) -> Result<(arrow::datatypes::SchemaRef, Option<String>)> {
    // The first readable file gives the schema; unreadable ones fail their partition later.
    let mut found = None;
    for p in selected.iter().map(|i| &table.partitions[*i]) {
        for file in &p.files {
            let reader = crate::table::reader::FileReader::new(
                table.location.store.clone(),
                file.path.clone(),
                file.size,
            );
            let mut reader = reader;
            let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new();
            let read =
                parquet::arrow::arrow_reader::ArrowReaderMetadata::load_async(&mut reader, options)
                    .await;
            if let Ok(read) = read {
                found = Some((p, read));
                break;
            }
        }
        if found.is_some() {
            break;
        }
    }
    let Some((first, read)) = found else {
        return Err(Error::Usage(
            "no selected partition has a readable data file; there is nothing to transform".into(),
        ));
    };
    // The schema as every partition is read for the transform (INT96 as microseconds).
    let builder = crate::table::reader::reading(read, Default::default(), false)
        .map_err(|e| Error::Usage(format!("partition {}: {e}", first.id)))?;
    let file_schema = crate::table::reader::logical_schema(&builder);
    let out = transform.check(&table.keys, first, &file_schema).await?;
    let conformed = transform::conform(&table.keys, first, &file_schema, &out, Vec::new(), true)
        .map_err(Error::Usage)?;
    if conformed.schema_change.is_some() && !allow_schema_change {
        return Err(Error::Usage(format!(
            "the transform's columns differ from the table's: {}; pass --allow-schema-change if that is intended",
            conformed.schema_change.unwrap_or_default()
        )));
    }
    Ok((out, conformed.schema_change))
}

/// The plan of run `run_id` over the selected partitions, with the request's settings.
async fn plan_run(
    table: &Table,
    selected: &[usize],
    req: &RunRequest,
    run_id: &str,
) -> Result<Plan> {
    let mut plan =
        plan::build(table, selected, &req.selection, req.order, req.jobs, run_id).await?;
    plan.settings = Some(RunSettings {
        sql: req.sql.clone(),
        sql_hash: sql_hash(&req.sql),
        order: req.order,
        on_empty: req.on_empty,
        allow_schema_change: req.allow_schema_change,
        tables: req.tables.clone(),
        jobs: req.jobs,
    });
    Ok(plan)
}

/// Starts a run over the selected partitions.
pub async fn run(table: &Table, selected: &[usize], req: RunRequest) -> Result<RunReport> {
    let started = Instant::now();
    check_scope(&req.selection, req.all, selected.len())?;
    let transform = Transform::new(&req.sql, &req.tables).await?;
    check_sql(table, selected, &transform, req.allow_schema_change).await?;
    let run_id = journal::new_run_id();
    let loc = table.location.clone();
    let lock = Lock::acquire(&loc, &run_id, req.lease).await?;
    let result = async {
        let plan = plan_run(table, selected, &req, &run_id).await?;
        refuse_unfinished(&loc, &run_id, &plan).await?;
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
    let ctx = Arc::try_unwrap(ctx)
        .map_err(|_| Error::Run("internal: run context still shared".into()))?;
    ctx.lock.release().await?;
    finished?;
    Ok(report)
}

/// Processes the partitions of `plan` that `done` does not already report, `jobs` at once,
/// in plan order.
async fn execute(
    ctx: &Arc<Ctx>,
    plan: &Plan,
    done: &HashMap<String, PartitionReport>,
) -> Vec<PartitionReport> {
    let jobs = ctx.settings.jobs.max(1);
    let slots = Arc::new(Slots {
        compute: tokio::sync::Semaphore::new(jobs),
        writing: tokio::sync::Semaphore::new(WRITE_BUDGET_MB as usize),
    });
    let todo: Vec<(usize, PlannedPartition)> = plan
        .partitions
        .iter()
        .cloned()
        .enumerate()
        .filter(|(_, p)| !done.contains_key(&p.partition))
        .collect();
    let mut results: Vec<(usize, PartitionReport)> = futures::stream::iter(todo)
        .map(|(i, p)| {
            let ctx = ctx.clone();
            let slots = slots.clone();
            async move {
                let id = p.partition.clone();
                let handle = tokio::spawn(async move { process(&ctx, &p, &slots).await });
                let report = handle.await.unwrap_or_else(|e| {
                    let mut r = PartitionReport::new(&id, Status::Failed);
                    r.error = Some(format!("internal error: {e}"));
                    r
                });
                (i, report)
            }
        })
        .buffer_unordered(jobs + COMMITTING_AT_ONCE)
        .collect()
        .await;
    for (i, p) in plan.partitions.iter().enumerate() {
        if let Some(r) = done.get(&p.partition) {
            results.push((i, r.clone()));
        }
    }
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// `jobs` partitions compute at once (read, transform, checksum, encode, prove). A
/// partition whose new file is proven gives its compute slot up to write, fsync and
/// commit, which is mostly waiting on storage: up to [`COMMITTING_AT_ONCE`] partitions do
/// that at once (on local disk, concurrent fsyncs share the filesystem's flushes), holding
/// at most [`WRITE_BUDGET_MB`] of encoded files between them.
struct Slots {
    compute: tokio::sync::Semaphore,
    writing: tokio::sync::Semaphore,
}

const COMMITTING_AT_ONCE: usize = 16;
const WRITE_BUDGET_MB: u32 = 256;

async fn process(ctx: &Ctx, p: &PlannedPartition, slots: &Slots) -> PartitionReport {
    let started = Instant::now();
    let mut report = PartitionReport::new(&p.partition, Status::Failed);
    match process_inner(ctx, p, slots, &mut report).await {
        Ok(()) => {}
        Err(e) => {
            report.status = Status::Failed;
            report.error = Some(e.to_string());
            // A commit that did not finish is not "failed": resume must find its state.
            if !matches!(e, Error::OutcomeUnknown { .. } | Error::LockLost { .. }) {
                let _ = ctx
                    .journal
                    .append(Event::Failed(Failed {
                        partition: p.partition.clone(),
                        error: e.to_string(),
                    }))
                    .await;
            }
        }
    }
    report.duration_ms = ms(started);
    if let Some(progress) = &ctx.progress {
        progress(&report);
    }
    report
}

async fn process_inner(
    ctx: &Ctx,
    p: &PlannedPartition,
    slots: &Slots,
    report: &mut PartitionReport,
) -> Result<()> {
    ctx.lock.check()?;
    let id = p.partition.as_str();
    // The partition must still be what the plan froze.
    let mut planned: Vec<(String, u64)> =
        p.files.iter().map(|f| (f.name.clone(), f.size)).collect();
    planned.sort();
    let live = commit::live_files(&ctx.loc, id).await?;
    if live != planned {
        return Err(Error::Run(format!("partition {id} changed since the plan was made (its files differ); it was left as it is")));
    }
    let partition = p.to_partition(&ctx.loc, &ctx.keys)?;
    let closed = |e: tokio::sync::AcquireError| Error::Internal(e.to_string());
    let compute = slots.compute.acquire().await.map_err(closed)?;

    let t = Instant::now();
    let mut source = transform::read_partition(&ctx.loc, &partition).await?;
    report.phases.read_ms = ms(t) - source.checksum_ms;
    report.phases.checksum_ms = source.checksum_ms;
    let before = Side {
        rows: source.part.rows,
        checksum: checksum::digest(&source.logical, &source.part),
    };
    report.rows_before = Some(before.rows);
    report.checksum_before = Some(before.checksum.clone());

    let t = Instant::now();
    let (out_schema, batches) = ctx.transform.apply(&ctx.keys, &partition, &source).await?;
    let conformed = transform::conform(
        &ctx.keys,
        &partition,
        &source.schema,
        &out_schema,
        batches,
        ctx.settings.allow_schema_change,
    )
    .map_err(|e| Error::Run(format!("partition {id}: {e}; it was left as it was")))?;
    report.phases.transform_ms = ms(t);
    report.schema_change = conformed.schema_change.clone();
    let old_files: Vec<String> = p.files.iter().map(|f| f.name.clone()).collect();

    if conformed.rows == 0 {
        report.rows_after = Some(0);
        match ctx.settings.on_empty {
            OnEmpty::Fail => {
                return Err(Error::Run(format!(
                    "the transform returned no rows for {id}; it was left as it was (choose --on-empty delete or keep)"
                )))
            }
            OnEmpty::Keep => {
                drop(compute);
                ctx.journal
                    .append(Event::Kept(Kept {
                        partition: id.into(),
                        before,
                        reason: "the transform returned no rows".into(),
                    }))
                    .await?;
                report.status = Status::Kept;
                return Ok(());
            }
            OnEmpty::Delete => {
                drop(compute);
                ctx.lock.check()?;
                let t = Instant::now();
                let deleting = Deleting {
                    partition: id.into(),
                    old_files,
                    before: before.clone(),
                };
                commit::remove(&ctx.loc, &ctx.run, &ctx.journal, &deleting)
                    .await
                    .map_err(|e| unknown(ctx, id, e))?;
                ctx.journal
                    .append(Event::Deleted(Deleted {
                        partition: id.into(),
                        before,
                    }))
                    .await
                    .map_err(|e| unknown(ctx, id, e))?;
                report.phases.commit_ms = ms(t);
                report.status = Status::Deleted;
                return Ok(());
            }
        }
    }

    // Which columns the new file copies is known now; the old rows can go (the memory of
    // a large partition is held while it is rewritten).
    let props = crate::stage::properties(&source.layout);
    let layout = std::mem::take(&mut source.layout);
    let reuse = crate::stage::reuse::plan(
        &source.files,
        source.batch_row_groups.as_deref(),
        &source.batches,
        &conformed.schema,
        &conformed.batches,
        &props,
    );
    let files = match reuse {
        Some(_) => std::mem::take(&mut source.files),
        None => Vec::new(),
    };
    drop(source);

    let t = Instant::now();
    let mut hasher = Hasher::new(&conformed.schema, false)?;
    for b in &conformed.batches {
        hasher.update(b)?;
    }
    let (logical, part) = hasher.finish();
    let after = Side {
        rows: part.rows,
        checksum: checksum::digest(&logical, &part),
    };
    report.phases.checksum_ms += ms(t);
    report.rows_after = Some(after.rows);
    report.checksum_after = Some(after.checksum.clone());
    if after == before {
        drop(compute);
        ctx.journal
            .note(Event::Unchanged(Unchanged {
                partition: id.into(),
                before,
                phases: report.phases.clone(),
            }))
            .await?;
        report.status = Status::Unchanged;
        return Ok(());
    }

    let t = Instant::now();
    // Copied columns are done with once the after-checksum is taken.
    let batches = match &reuse {
        Some(r) => r
            .encoded_only(conformed.batches)
            .map_err(|e| Error::Internal(e.to_string()))?,
        None => conformed.batches,
    };
    let reuse = reuse.as_ref().map(|r| (r, &files[..]));
    let file = crate::stage::encode(
        &conformed.schema,
        &batches,
        &layout,
        props,
        reuse,
        partition.bytes() as usize,
    )?;
    crate::stage::check_decodes(&file, &conformed.schema, &batches, reuse)?;
    drop(files);
    drop(batches);
    report.phases.encode_ms = ms(t);
    let mb = u32::try_from(file.len() >> 20).unwrap_or(u32::MAX);
    let _writing = slots
        .writing
        .acquire_many(mb.clamp(1, WRITE_BUDGET_MB))
        .await
        .map_err(closed)?;
    // What is left is storage work: let the next partition compute meanwhile.
    drop(compute);
    let t = Instant::now();
    commit::clear_stage(&ctx.loc, &ctx.run, id).await?;
    let name = format!("part-{}-0.parquet", ctx.journal.run_id());
    let path = ctx.run.stage(id).join(name.as_str());
    crate::stage::write(&ctx.loc, &path, file).await?;
    report.phases.write_ms = ms(t);

    ctx.lock.check()?;
    let t = Instant::now();
    let committing = Committing {
        partition: id.into(),
        new_files: vec![name],
        old_files,
        before: before.clone(),
        after: after.clone(),
        schema_change: conformed.schema_change,
    };
    commit::commit(&ctx.loc, &ctx.run, &ctx.journal, &committing)
        .await
        .map_err(|e| unknown(ctx, id, e))?;
    report.phases.commit_ms = ms(t);
    ctx.journal
        .note(Event::Committed(Committed {
            partition: id.into(),
            before,
            after,
            phases: report.phases.clone(),
        }))
        .await
        .map_err(|e| unknown(ctx, id, e))?;
    report.status = Status::Rewritten;
    Ok(())
}

fn unknown(ctx: &Ctx, partition: &str, e: Error) -> Error {
    match e {
        Error::LockLost { .. } | Error::OutcomeUnknown { .. } => e,
        e => Error::OutcomeUnknown {
            run_id: ctx.journal.run_id().into(),
            partition: partition.into(),
            reason: e.to_string(),
        },
    }
}

/// The report a partition's final journal record stands for, if it has one.
fn final_report(ev: &Event) -> Option<PartitionReport> {
    let (partition, status, before, after, phases) = match ev {
        Event::Committed(c) => (
            &c.partition,
            Status::Rewritten,
            &c.before,
            Some(&c.after),
            Some(&c.phases),
        ),
        Event::Unchanged(u) => (
            &u.partition,
            Status::Unchanged,
            &u.before,
            Some(&u.before),
            Some(&u.phases),
        ),
        Event::Deleted(d) => (&d.partition, Status::Deleted, &d.before, None, None),
        Event::Kept(k) => (&k.partition, Status::Kept, &k.before, None, None),
        _ => return None,
    };
    let mut r = PartitionReport::new(partition, status);
    r.rows_before = Some(before.rows);
    r.checksum_before = Some(before.checksum.clone());
    if let Some(after) = after {
        r.rows_after = Some(after.rows);
        r.checksum_after = Some(after.checksum.clone());
    }
    if status == Status::Deleted {
        r.rows_after = Some(0);
    }
    if let Some(phases) = phases {
        r.phases = phases.clone();
    }
    r.duration_ms = 0.0;
    Some(r)
}

/// Every run of the table folded from its journal, oldest first; a run whose journal has
/// no plan (it stopped before it started) is left out.
async fn run_states(loc: &Location) -> Result<Vec<RunState>> {
    let mut out = Vec::new();
    for id in journal::run_ids(loc).await? {
        if let Some(state) = run_state(loc, &id, None).await? {
            out.push(state);
        }
    }
    Ok(out)
}

/// Run `id` folded from its journal and, for a frozen run, its partitions' journals (all
/// of them, or only `only`'s); `None` when its journal has no plan.
async fn run_state(loc: &Location, id: &str, only: Option<&str>) -> Result<Option<RunState>> {
    let records = journal::read(loc, id).await?;
    let Ok(state) = RunState::from_records(id, &records) else {
        return Ok(None);
    };
    if !state.plan.frozen {
        return Ok(Some(state));
    }
    let mut partitions = Vec::new();
    for p in &state.plan.partitions {
        if only.is_none_or(|o| o == p.partition) {
            partitions.push(journal::read_partition(loc, id, &p.partition).await?);
        }
    }
    RunState::from_journals(id, &records, &partitions).map(Some)
}

/// A partition another run left between the first and last step of a commit, a delete
/// or a rollback: on object stores its files may be part old and part new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedStep {
    pub run_id: String,
    pub partition: String,
    /// `commit`, `delete` or `rollback`.
    pub step: &'static str,
}

/// Every partition some run left mid-step, oldest run first. Read under the table lock,
/// so none of those runs is still working.
pub async fn unfinished_steps(loc: &Location) -> Result<Vec<UnfinishedStep>> {
    let mut out = Vec::new();
    for run in run_states(loc).await? {
        for (partition, step) in run.open_steps() {
            out.push(UnfinishedStep {
                run_id: run.run_id.clone(),
                partition: partition.to_string(),
                step: step.step(),
            });
        }
    }
    Ok(out)
}

/// Refuses to start on a partition that holds another run's unfinished step: its files
/// would be read as one version when they are two.
async fn refuse_unfinished(loc: &Location, run_id: &str, plan: &Plan) -> Result<()> {
    let unfinished = unfinished_steps(loc).await?;
    if unfinished.is_empty() {
        return Ok(());
    }
    let wanted: std::collections::HashSet<&str> = plan
        .partitions
        .iter()
        .map(|p| p.partition.as_str())
        .collect();
    match unfinished
        .into_iter()
        .find(|u| u.run_id != run_id && wanted.contains(u.partition.as_str()))
    {
        Some(u) => Err(Error::Unfinished {
            table: loc.display.clone(),
            partition: u.partition,
            run_id: u.run_id,
            step: u.step,
        }),
        None => Ok(()),
    }
}

/// The latest run with unfinished business (not finished, or finished with failures).
pub async fn resumable(loc: &Location) -> Result<String> {
    let ids = journal::run_ids(loc).await?;
    for id in ids.iter().rev() {
        let records = journal::read(loc, id).await?;
        // No plan recorded: the run stopped before it started anything.
        if records.is_empty() {
            continue;
        }
        match RunState::from_records(id, &records) {
            Ok(run) if run.settled() => {}
            // Unsettled, or a journal `resume` must report on.
            _ => return Ok(id.clone()),
        }
    }
    Err(Error::Run(format!(
        "no interrupted run in the journal of {}; `backfill runs` lists them",
        loc.display
    )))
}

/// Finishes an interrupted run from its journal; never recomputes the plan.
/// The bytes of the largest partition a run planned to rewrite (from its journal), to size
/// memory settings before resuming it.
pub async fn largest_planned_partition(loc: &Location, run_id: &str) -> Result<u64> {
    let records = journal::read(loc, run_id).await?;
    let run = RunState::from_records(run_id, &records)?;
    Ok(run
        .plan
        .partitions
        .iter()
        .map(|p| p.bytes)
        .max()
        .unwrap_or(0))
}

pub async fn resume(
    loc: &Location,
    run_id: &str,
    lease: LeaseTimes,
    progress: Option<Progress>,
) -> Result<RunReport> {
    let started = Instant::now();
    if let Some(state) = run_state(loc, run_id, None).await? {
        if state.plan.frozen {
            if state.rolling_back || state.rolled_back || state.released {
                return Err(Error::Run(format!(
                    "run {run_id} was rolled back or released; start a new run instead"
                )));
            }
            return resume_frozen(loc, &state, lease, progress).await;
        }
    }
    let lock = Lock::acquire(loc, run_id, lease).await?;
    let opened = async {
        let (journal, records) = Journal::open(loc, run_id).await?;
        let state = RunState::from_records(run_id, &records)?;
        let plan = state.plan.clone();
        if state.rolling_back || state.rolled_back {
            return Err(Error::Run(format!(
                "run {run_id} was rolled back; start a new run instead"
            )));
        }
        if state.released {
            return Err(Error::Run(format!(
                "run {run_id} was released; start a new run instead"
            )));
        }
        let settings = plan
            .settings
            .clone()
            .ok_or_else(|| Error::Run("the plan has no run settings".into()))?;
        let transform = Transform::new(&settings.sql, &settings.tables).await?;
        refuse_unfinished(loc, run_id, &plan).await?;
        journal.append(Event::Resumed).await?;
        Ok::<_, Error>((journal, state, plan, settings, transform))
    }
    .await;
    let (journal, state, plan, settings, transform) = match opened {
        Ok(x) => x,
        Err(e) => {
            let _ = lock.release().await;
            return Err(e);
        }
    };
    let ctx = Arc::new(Ctx {
        loc: loc.clone(),
        run: RunDir::new(loc, run_id),
        journal,
        lock,
        transform,
        keys: plan.keys.clone(),
        settings,
        progress,
    });
    let mut done = HashMap::new();
    for p in &plan.partitions {
        let Some(partition) = state.partitions.get(&p.partition) else {
            continue;
        };
        if let Some(r) = final_report(&partition.last) {
            done.insert(p.partition.clone(), r);
            continue;
        }
        let Some(step) = partition.open_step() else {
            continue;
        };
        match commit::recover(&ctx.loc, &ctx.run, &ctx.journal, &step).await {
            Ok(Recovered::Done) => {
                if let Some(ev) = step.closing() {
                    ctx.journal.append(ev.clone()).await?;
                    if let Some(r) = final_report(&ev) {
                        done.insert(p.partition.clone(), r);
                    }
                }
            }
            Ok(Recovered::NotStarted) => {}
            Err(e) => {
                let mut r = PartitionReport::new(&p.partition, Status::Failed);
                r.error = Some(e.to_string());
                done.insert(p.partition.clone(), r);
            }
        }
    }
    let reports = execute(&ctx, &plan, &done).await;
    finish(ctx, &plan, reports, started).await
}

/// What rollback did to one partition.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackEntry {
    pub partition: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub run_id: String,
    pub table: String,
    pub partitions: Vec<RollbackEntry>,
    pub rolled_back: usize,
    pub skipped: usize,
}

/// Puts back the old content of every partition `run_id` committed, newest commit first.
pub async fn rollback(loc: &Location, run_id: &str, lease: LeaseTimes) -> Result<RollbackReport> {
    let lock = Lock::acquire(loc, run_id, lease).await?;
    let result = rollback_locked(loc, run_id).await;
    let released = lock.release().await;
    let report = result?;
    released?;
    Ok(report)
}

async fn rollback_locked(loc: &Location, run_id: &str) -> Result<RollbackReport> {
    let (journal, records) = Journal::open(loc, run_id).await?;
    let state = match run_state(loc, run_id, None).await? {
        Some(s) => s,
        None => RunState::from_records(run_id, &records)?,
    };
    if state.released {
        return Err(Error::Run(format!(
            "run {run_id} was released: its backups are gone and it cannot be rolled back"
        )));
    }
    let run = RunDir::new(loc, run_id);
    let mut entries = Vec::new();
    // The newest change first.
    for p in state.change_order.iter().rev() {
        let partition = &state.partitions[p];
        let Some(change) = &partition.change else {
            continue;
        };
        let entry = |status: &str, reason: Option<String>| RollbackEntry {
            partition: p.to_string(),
            status: status.into(),
            reason,
        };
        // A frozen run's partition records are in the partition's own journal.
        let own = match state.plan.frozen {
            true => Some(Journal::open_partition(loc, run_id, p).await?.0),
            false => None,
        };
        let journal = own.as_ref().unwrap_or(&journal);
        if matches!(partition.last, Event::RolledBack(_)) {
            entries.push(entry(
                "rolled_back",
                Some("already, by an earlier rollback".into()),
            ));
            continue;
        }
        match partition.open_step() {
            // An interrupted rollback of this partition: finish it.
            Some(step @ OpenStep::RollingBack(_)) => {
                commit::recover(loc, &run, journal, &step).await?;
                entries.push(entry("rolled_back", None));
                continue;
            }
            // Bring an interrupted commit to a definite state first.
            Some(step)
                if commit::recover(loc, &run, journal, &step).await? == Recovered::NotStarted =>
            {
                entries.push(entry("untouched", Some("its commit never started".into())));
                continue;
            }
            _ => {}
        }
        match commit::undo(loc, &run, journal, change).await? {
            None => entries.push(entry("rolled_back", None)),
            Some(reason) => {
                journal
                    .append(Event::RollbackSkipped(RollbackSkipped {
                        partition: p.to_string(),
                        reason: reason.clone(),
                    }))
                    .await?;
                entries.push(entry("skipped", Some(reason)));
            }
        }
    }
    journal.append(Event::RollbackFinished).await?;
    let rolled_back = entries.iter().filter(|e| e.status == "rolled_back").count();
    let skipped = entries.iter().filter(|e| e.status == "skipped").count();
    Ok(RollbackReport {
        run_id: run_id.into(),
        table: state.plan.table,
        partitions: entries,
        rolled_back,
        skipped,
    })
}

/// One line of the run history.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub run_id: String,
    pub started_at: String,
    pub sql_hash: String,
    pub selection: String,
    pub partitions: usize,
    pub rewritten: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub status: String,
    pub released: bool,
}

/// The run history of a table, oldest first.
pub async fn history(loc: &Location) -> Result<Vec<RunInfo>> {
    let mut out = Vec::new();
    for run in run_states(loc).await? {
        let failed = run.count(|e| matches!(e, Event::Failed(_)));
        // A frozen run ends partition by partition: its workers write no `finished`.
        let finished = run.finished.is_some() || (run.plan.frozen && run.all_final());
        let status = if run.rolled_back {
            "rolled_back"
        } else if finished && failed > 0 {
            "finished_with_failures"
        } else if finished {
            "finished"
        } else if run.plan.frozen {
            "open"
        } else {
            "interrupted"
        };
        out.push(RunInfo {
            run_id: run.run_id.clone(),
            started_at: run.plan.started_at.clone(),
            sql_hash: run
                .plan
                .settings
                .as_ref()
                .map(|s| s.sql_hash.clone())
                .unwrap_or_default(),
            selection: run.plan.selection.describe(),
            partitions: run.plan.partitions.len(),
            rewritten: run.count(|e| {
                matches!(
                    e,
                    Event::Committed(_)
                        | Event::Deleted(_)
                        | Event::RolledBack(_)
                        | Event::RollbackSkipped(_)
                )
            }),
            unchanged: run.count(|e| matches!(e, Event::Unchanged(_))),
            failed,
            status: status.into(),
            released: run.released,
        });
    }
    Ok(out)
}

/// Deletes a finished run's backups; it can no longer be rolled back.
pub async fn release(loc: &Location, run_id: &str, lease: LeaseTimes) -> Result<()> {
    let lock = Lock::acquire(loc, run_id, lease).await?;
    let result = async {
        let (journal, records) = Journal::open(loc, run_id).await?;
        let state = match run_state(loc, run_id, None).await? {
            Some(s) => s,
            None => RunState::from_records(run_id, &records)?,
        };
        let settled = state.finished.is_some()
            || state.rolled_back
            || (state.plan.frozen && state.all_final());
        let open = state.open_steps().next().map(|(p, _)| p.to_string());
        if !settled || open.is_some() {
            let which = open
                .map(|p| format!(" (partition {p} is mid-commit)"))
                .unwrap_or_default();
            return Err(Error::Run(format!(
                "run {run_id} is not finished{which}; resume or roll it back before releasing its backups"
            )));
        }
        journal.append(Event::Released).await?;
        commit::release(loc, &RunDir::new(loc, run_id)).await
    }
    .await;
    let released = lock.release().await;
    result?;
    released
}

/// Plans a run and freezes it into its journal for workers, without touching a partition:
/// `run --run ID --partition P` then does P, on any machine, any number at once.
pub async fn freeze(table: &Table, selected: &[usize], req: RunRequest) -> Result<Plan> {
    check_scope(&req.selection, req.all, selected.len())?;
    let transform = Transform::new(&req.sql, &req.tables).await?;
    check_sql(table, selected, &transform, req.allow_schema_change).await?;
    let run_id = journal::new_run_id();
    let mut plan = plan_run(table, selected, &req, &run_id).await?;
    plan.frozen = true;
    // A new run's folder: no other process writes it, so no lock is needed.
    Journal::create(&table.location, &plan).await?;
    Ok(plan)
}

/// The partitions frozen run `run_id` planned, in plan order.
pub async fn planned_partitions(loc: &Location, run_id: &str) -> Result<Vec<String>> {
    let records = journal::read(loc, run_id).await?;
    if records.is_empty() {
        return Err(Error::Run(format!(
            "no run {run_id} in the journal of {}; `backfill runs {}` lists them",
            loc.display, loc.display
        )));
    }
    let state = RunState::from_records(run_id, &records)?;
    Ok(state
        .plan
        .partitions
        .into_iter()
        .map(|p| p.partition)
        .collect())
}

/// One worker's task: partition `partition` of frozen run `run_id`.
///
/// Retry-safe: a partition the run already committed (or found unchanged, deleted or
/// kept) is reported from the journal and not transformed again; one whose commit was
/// interrupted is finished, as `resume` would; otherwise it is processed as `run` does.
/// Busy (another worker holds the partition, or a whole-table operation holds the
/// table) is [`Error::Locked`]: retry later.
pub async fn run_partition(
    loc: &Location,
    run_id: &str,
    partition: &str,
    lease: LeaseTimes,
) -> Result<RunReport> {
    let started = Instant::now();
    let Some(state) = run_state(loc, run_id, Some(partition)).await? else {
        return Err(Error::Run(format!(
            "no run {run_id} in the journal of {}; `backfill runs {}` lists them",
            loc.display, loc.display
        )));
    };
    let plan = state.plan.clone();
    if !plan.frozen {
        return Err(Error::Usage(format!(
            "run {run_id} was not frozen by `backfill plan --freeze`, so it takes no workers; `backfill resume {} {run_id}` finishes it",
            loc.display
        )));
    }
    let Some(planned) = plan
        .partitions
        .iter()
        .find(|p| p.partition == partition)
        .cloned()
    else {
        let first: Vec<&str> = plan
            .partitions
            .iter()
            .take(3)
            .map(|p| p.partition.as_str())
            .collect();
        return Err(Error::Usage(format!(
            "partition {partition} is not in run {run_id}'s plan, whose {} partitions are {}{}; give one of them as it is spelled there",
            plan.partitions.len(),
            first.join(", "),
            if plan.partitions.len() > 3 { ", ..." } else { "" }
        )));
    };
    if state.rolling_back || state.rolled_back || state.released {
        return Err(Error::Run(format!(
            "run {run_id} was rolled back or released; plan a new run instead"
        )));
    }
    let lock = Lock::partition(loc, run_id, partition, lease).await?;
    let result = work_partition(loc, run_id, &plan, &planned, lock).await;
    let report = result?;
    Ok(RunReport::new(&plan, vec![report], ms(started)))
}

async fn work_partition(
    loc: &Location,
    run_id: &str,
    plan: &Plan,
    planned: &PlannedPartition,
    lock: Lock,
) -> Result<PartitionReport> {
    let id = planned.partition.as_str();
    let run = RunDir::new(loc, run_id);
    let opened = async {
        // Read again under the lease: an earlier try may have ended meanwhile.
        let (journal, records) = Journal::open_partition(loc, run_id, id).await?;
        let main = journal::read(loc, run_id).await?;
        let state = RunState::from_journals(run_id, &main, &[records])?;
        Ok::<_, Error>((journal, state))
    }
    .await;
    let (journal, state) = match opened {
        Ok(x) => x,
        Err(e) => {
            let _ = lock.release().await;
            return Err(e);
        }
    };
    let done = async {
        if let Some(p) = state.partitions.get(id) {
            if let Some(mut r) = final_report(&p.last) {
                r.note = Some("done already by an earlier try; not transformed again".into());
                return Ok(Some(r));
            }
            if let Some(step) = p.open_step() {
                if commit::recover(loc, &run, &journal, &step).await? == Recovered::Done {
                    if let Some(ev) = step.closing() {
                        journal.append(ev.clone()).await?;
                        let mut r = final_report(&ev).expect("a closing record is final");
                        r.note =
                            Some("an interrupted commit of an earlier try was finished".into());
                        return Ok(Some(r));
                    }
                }
            }
        }
        // Another run's unfinished step on this partition: its files are two versions.
        for other in journal::run_ids(loc).await? {
            if other == run_id {
                continue;
            }
            if let Some(st) = run_state(loc, &other, Some(id)).await? {
                if let Some(step) = st.partitions.get(id).and_then(|p| p.open_step()) {
                    return Err(Error::Unfinished {
                        table: loc.display.clone(),
                        partition: id.into(),
                        run_id: other,
                        step: step.step(),
                    });
                }
            }
        }
        Ok::<_, Error>(None)
    }
    .await;
    let done = match done {
        Ok(d) => d,
        Err(e) => {
            let _ = lock.release().await;
            return Err(e);
        }
    };
    if let Some(r) = done {
        lock.release().await?;
        return Ok(r);
    }
    let settings = match plan.settings.clone() {
        Some(s) => s,
        None => {
            let _ = lock.release().await;
            return Err(Error::Run("the plan has no run settings".into()));
        }
    };
    let transform = match Transform::new(&settings.sql, &settings.tables).await {
        Ok(t) => t,
        Err(e) => {
            let _ = lock.release().await;
            return Err(e);
        }
    };
    let ctx = Ctx {
        loc: loc.clone(),
        run,
        journal,
        lock,
        transform,
        keys: plan.keys.clone(),
        settings,
        progress: None,
    };
    let slots = Slots {
        compute: tokio::sync::Semaphore::new(1),
        writing: tokio::sync::Semaphore::new(WRITE_BUDGET_MB as usize),
    };
    let report = process(&ctx, planned, &slots).await;
    // The last record of a try must be durable: no later append of this worker will be.
    let flushed = ctx.journal.flush().await;
    ctx.lock.release().await?;
    flushed?;
    Ok(report)
}

/// Finishes a frozen run as its workers would: every partition not yet done, `jobs` at
/// once, each under its own lease.
async fn resume_frozen(
    loc: &Location,
    state: &RunState,
    lease: LeaseTimes,
    progress: Option<Progress>,
) -> Result<RunReport> {
    let started = Instant::now();
    let jobs = state.plan.settings.as_ref().map_or(1, |s| s.jobs.max(1));
    let reports: Vec<Result<RunReport>> = futures::stream::iter(state.plan.partitions.clone())
        .map(|p| {
            let loc = loc.clone();
            let run_id = state.run_id.clone();
            let progress = progress.clone();
            async move {
                let r = run_partition(&loc, &run_id, &p.partition, lease).await;
                if let (Ok(r), Some(progress)) = (&r, &progress) {
                    progress(&r.partitions[0]);
                }
                r
            }
        })
        .buffered(jobs)
        .collect()
        .await;
    let mut partitions = Vec::new();
    for (p, r) in state.plan.partitions.iter().zip(reports) {
        partitions.push(match r {
            Ok(mut r) => r.partitions.remove(0),
            Err(e) => {
                let mut r = PartitionReport::new(&p.partition, Status::Failed);
                r.error = Some(e.to_string());
                r
            }
        });
    }
    Ok(RunReport::new(&state.plan, partitions, ms(started)))
}
