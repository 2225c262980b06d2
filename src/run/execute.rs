//! One partition at a time, `jobs` at once: read, transform, checksum, stage, prove,
//! commit and journal it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use crate::checksum::{self, Hasher};
use crate::commit::journal::{
    Committed, Committing, Deleted, Deleting, Event, Failed, Journal, Kept, RunDir, Side, Unchanged,
};
use crate::commit::{self};
use crate::error::{Error, Result};
use crate::lock::Lock;
use crate::plan::{OnEmpty, Plan, PlannedPartition, RunSettings};
use crate::storage::Location;
use crate::table::read;
use crate::table::PartitionKey;
use crate::transform::{self, ms, Transform};

use super::{PartitionReport, Progress, Status};

/// Everything a partition's processing needs, shared by the parallel tasks.
pub(super) struct Ctx {
    pub(super) loc: Location,
    pub(super) run: RunDir,
    pub(super) journal: Journal,
    pub(super) lock: Lock,
    pub(super) transform: Transform,
    pub(super) keys: Vec<PartitionKey>,
    pub(super) settings: RunSettings,
    pub(super) progress: Option<Progress>,
    /// Where the files this run writes are recorded for the next snapshot.
    pub(super) cache: Option<Arc<crate::snapshot::Cache>>,
}

/// Processes the partitions of `plan` that `done` does not already report, `jobs` at once,
/// in plan order.
pub(super) async fn execute(
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
pub(super) struct Slots {
    pub(super) compute: tokio::sync::Semaphore,
    pub(super) writing: tokio::sync::Semaphore,
}

const COMMITTING_AT_ONCE: usize = 16;
pub(super) const WRITE_BUDGET_MB: u32 = 256;

pub(super) async fn process(ctx: &Ctx, p: &PlannedPartition, slots: &Slots) -> PartitionReport {
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
        return Err(Error::PartitionChanged {
            partition: id.into(),
            reason: "its files differ".into(),
        });
    }
    let partition = p.to_partition(&ctx.loc, &ctx.keys)?;
    let closed = |e: tokio::sync::AcquireError| Error::Internal(e.to_string());
    let compute = slots.compute.acquire().await.map_err(closed)?;

    let t = Instant::now();
    let mut source = read::read_partition(&ctx.loc, &partition).await?;
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
    .map_err(|e| Error::OutputRejected {
        partition: id.into(),
        reason: e.to_string(),
    })?;
    report.phases.transform_ms = ms(t);
    report.schema_change = conformed.schema_change.clone();
    let old_files: Vec<String> = p.files.iter().map(|f| f.name.clone()).collect();

    if conformed.rows == 0 {
        report.rows_after = Some(0);
        match ctx.settings.on_empty {
            OnEmpty::Fail => {
                return Err(Error::OutputRejected {
                    partition: id.into(),
                    reason: "the transform returned no rows (choose --on-empty delete or keep)"
                        .into(),
                })
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
    let written_part = (logical, part);
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
    // What a snapshot would find in the new file, for the checksum cache.
    let written = crate::snapshot::scan_of_written(&file, written_part.0, written_part.1).ok();
    let written_size = file.len() as u64;
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
    let live_name = format!("{id}/{name}");
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
    if let (Some(cache), Some(scan)) = (&ctx.cache, &written) {
        cache
            .record_written(&ctx.loc, &live_name, written_size, scan)
            .await;
    }
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
