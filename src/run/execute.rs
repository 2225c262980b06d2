//! One partition at a time, `jobs` at once: read, transform, checksum, stage, prove,
//! commit and journal it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
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
use crate::table::{Partition, PartitionId, PartitionKey};
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
    done: &HashMap<PartitionId, PartitionReport>,
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

/// A partition's pipeline, step by step; each step returns what the next one needs, and
/// a partition leaves it at the first step that settles it (kept, deleted, unchanged) or
/// fails.
async fn process_inner(
    ctx: &Ctx,
    p: &PlannedPartition,
    slots: &Slots,
    report: &mut PartitionReport,
) -> Result<()> {
    ctx.lock.check()?;
    let listed = check_still_planned(ctx, p).await?;
    let mut partition = p.to_partition(&ctx.loc, &ctx.keys)?;
    // On object stores, its files are read as this listing found them (`If-Match` on
    // their ETags): no request to ask each file's version before reading it.
    if !ctx.loc.is_local() {
        for f in &mut partition.files {
            let name = f.relative.rsplit('/').next().unwrap_or_default();
            f.e_tag = listed
                .iter()
                .find(|(n, _, _)| n == name)
                .and_then(|(_, _, e)| e.clone());
        }
    }
    let compute = slots.compute.acquire().await.map_err(closed)?;

    let how = How {
        transform: &ctx.transform,
        keys: &ctx.keys,
        allow_schema_change: ctx.settings.allow_schema_change,
    };
    let sliced = match sliceable(&ctx.loc, &how, ctx.settings.slice_above_mib, &partition).await? {
        Some(rows) => rewrite_sliced(&how, &partition, rows, report).await?,
        None => None,
    };
    let (before, outcome) = match sliced {
        Some(done) => done,
        None => rewrite_whole(ctx, &partition, report).await?,
    };
    let proven = match outcome {
        Outcome::Empty => {
            drop(compute);
            report.rows_after = Some(0);
            report.status = settle_empty(ctx, p, before).await?;
            return Ok(());
        }
        Outcome::Unchanged => {
            drop(compute);
            ctx.journal
                .note(Event::Unchanged(Unchanged {
                    partition: p.partition.clone(),
                    before,
                    phases: report.phases.clone(),
                }))
                .await?;
            report.status = Status::Unchanged;
            return Ok(());
        }
        Outcome::New(proven) => proven,
    };
    let mb = u32::try_from(proven.file.len() >> 20).unwrap_or(u32::MAX);
    let _writing = slots
        .writing
        .acquire_many(mb.clamp(1, WRITE_BUDGET_MB))
        .await
        .map_err(closed)?;
    // What is left is storage work: let the next partition compute meanwhile.
    drop(compute);
    let staged = stage(ctx, p, proven, report).await?;
    report.bytes_written = Some(staged.size);
    commit_staged(ctx, p, before, staged, report).await?;
    report.status = Status::Rewritten;
    Ok(())
}

/// What the transform made of a partition, before anything is written.
pub(super) enum Outcome {
    /// No rows: settled by `--on-empty`.
    Empty,
    /// The same rows: nothing to write.
    Unchanged,
    New(Proven),
}

/// The partition read, transformed, checksummed, encoded and proven whole.
async fn rewrite_whole(
    ctx: &Ctx,
    partition: &Partition,
    report: &mut PartitionReport,
) -> Result<(Side, Outcome)> {
    let (source, before) = read_before(ctx, partition, report).await?;
    let conformed = transform_rows(ctx, partition, &source, report).await?;
    if conformed.rows == 0 {
        return Ok((before, Outcome::Empty));
    }
    let candidate = checksum_after(source, conformed, report)?;
    if candidate.after == before {
        return Ok((before, Outcome::Unchanged));
    }
    let proven = encode_and_prove(candidate, partition.bytes() as usize, report)?;
    Ok((before, Outcome::New(proven)))
}

/// What transforming a partition needs, in a run or in its preflight.
pub(super) struct How<'a> {
    pub(super) transform: &'a Transform,
    pub(super) keys: &'a [PartitionKey],
    pub(super) allow_schema_change: bool,
}

/// A partition to rewrite a slice at a time, opened: one larger on storage than
/// `slice_above_mib` whose SQL handles each row on its own ([`Transform::row_by_row`]).
/// When the SQL passes columns through as they are from files with a page index, a whole
/// rewrite copies their chunks and a sliced one cannot: then only a partition
/// [`COPYING_SLICE_FACTOR`] times larger is sliced.
pub(super) async fn sliceable(
    loc: &Location,
    how: &How<'_>,
    slice_above_mib: u64,
    partition: &Partition,
) -> Result<Option<read::Streaming>> {
    let above = slice_above_mib.saturating_mul(1 << 20);
    if partition.bytes() <= above {
        return Ok(None);
    }
    let rows = read::Streaming::open(loc, partition).await?;
    let (row_by_row, passes_through) = how
        .transform
        .row_by_row(how.keys, partition, &rows.schema)
        .await?;
    // Chunks are copied into a sliced file only from a source without a page index.
    let above = if passes_through && rows.layout.page_index {
        above.saturating_mul(COPYING_SLICE_FACTOR)
    } else {
        above
    };
    Ok((row_by_row && partition.bytes() > above).then_some(rows))
}

/// See [`sliceable`].
pub(super) const COPYING_SLICE_FACTOR: u64 = 4;

/// A slice of a partition's rows, and the (file, row group) each batch comes from when
/// every batch holds rows of one row group.
pub(super) struct Slice {
    pub(super) batches: Vec<RecordBatch>,
    origin: Option<Vec<(usize, usize)>>,
    /// Each row's hash, as [`read::Source::row_hashes`].
    row_hashes: Option<Vec<u128>>,
}

/// The next slice of `rows`: whole row groups of the source, at least as many rows as its
/// largest one, or the last rows; empty after the last.
pub(super) async fn next_slice(rows: &mut read::Streaming) -> Result<Slice> {
    let mut batches = Vec::new();
    let mut origin = Some(Vec::new());
    let mut row_hashes = Some(Vec::new());
    let mut n = 0;
    while let Some(s) = rows.next().await? {
        n += s.batch.num_rows();
        match (origin.as_mut(), s.origin) {
            (Some(v), Some(o)) => v.push(o),
            _ => origin = None,
        }
        match (row_hashes.as_mut(), s.row_hashes) {
            (Some(all), Some(these)) => all.extend(these),
            _ => row_hashes = None,
        }
        batches.push(s.batch);
        if n >= rows.layout.row_group_rows && (s.ends_row_group || s.origin.is_none()) {
            break;
        }
    }
    Ok(Slice {
        batches,
        origin,
        row_hashes,
    })
}

/// Runs the SQL on one slice of a partition's rows and makes the output fit the table.
pub(super) async fn transform_slice(
    how: &How<'_>,
    partition: &Partition,
    schema: &arrow::datatypes::SchemaRef,
    slice: &[RecordBatch],
) -> Result<transform::Conformed> {
    let (out_schema, batches, lineage) = how
        .transform
        .apply_with_lineage(how.keys, partition, schema, slice)
        .await?;
    let mut conformed = transform::conform(
        how.keys,
        partition,
        schema,
        &out_schema,
        batches,
        how.allow_schema_change,
    )
    .map_err(|e| Error::OutputRejected {
        partition: partition.id.to_string(),
        reason: e.to_string(),
    })?;
    conformed.lineage = lineage;
    Ok(conformed)
}

/// The partition rewritten a slice of rows at a time (about a row group of the source:
/// read, transformed, checksummed, then encoded and proven a row group at a time), so
/// that memory does not grow with the partition. `None` when the new file needs the
/// whole-partition encoding ([`crate::stage::sliced::Encoder::new`]); nothing is written
/// before that is known.
pub(super) async fn rewrite_sliced(
    how: &How<'_>,
    partition: &Partition,
    mut rows: read::Streaming,
    report: &mut PartitionReport,
) -> Result<Option<(Side, Outcome)>> {
    let props = crate::stage::properties(&rows.layout);
    let mut encoder: Option<crate::stage::sliced::Encoder> = None;
    let mut after: Option<Hasher> = None;
    // The slices' rows that are old rows as they were, summed from their hashes as read.
    let mut reused = checksum::Part::default();
    let mut schema_change = None;
    loop {
        let t = Instant::now();
        let checksummed = rows.checksum_ms;
        let slice = next_slice(&mut rows).await?;
        report.phases.read_ms += ms(t) - (rows.checksum_ms - checksummed);
        if slice.batches.is_empty() {
            break;
        }
        report.slices += 1;
        let t = Instant::now();
        let conformed = transform_slice(how, partition, &rows.schema, &slice.batches).await?;
        report.phases.transform_ms += ms(t);
        schema_change = conformed.schema_change.clone();

        let t = Instant::now();
        let hasher = match &mut after {
            Some(h) => h,
            None => after.insert(Hasher::new(&conformed.schema, false)?),
        };
        let before = Before {
            schema: &rows.schema,
            logical: &rows.logical,
            batches: &slice.batches,
            row_hashes: slice.row_hashes.as_deref(),
        };
        checksum_new_rows(&before, &conformed, hasher, &mut reused)?;
        report.phases.checksum_ms += ms(t);

        let t = Instant::now();
        if encoder.is_none() {
            let Some(e) = crate::stage::sliced::Encoder::new(
                &conformed.schema,
                &rows.layout,
                props.clone(),
                partition.bytes() as usize,
            )?
            else {
                report.slices = 0;
                report.phases = Default::default();
                return Ok(None);
            };
            encoder = Some(e);
        }
        let encoder = encoder.as_mut().expect("set above");
        // Columns the SQL passed through are copied from the slice's row groups.
        let reuse = slice.origin.as_deref().and_then(|origin| {
            crate::stage::reuse::plan(
                &rows.files,
                Some(origin),
                &slice.batches,
                &conformed.schema,
                &conformed.batches,
                &props,
            )
        });
        drop(slice);
        match reuse.filter(|r| encoder.can_copy(r)) {
            Some(reuse) => encoder.push_copied(conformed.batches, &reuse, &rows.files)?,
            None => encoder.push(conformed.batches)?,
        }
        rows.release();
        report.phases.encode_ms += ms(t);
    }
    report.phases.checksum_ms += rows.checksum_ms;
    let before = Side {
        rows: rows.part().rows,
        checksum: checksum::digest(&rows.logical, rows.part()),
    };
    report.rows_before = Some(before.rows);
    report.checksum_before = Some(before.checksum.clone());
    report.schema_change = schema_change.clone();
    let (Some(hasher), Some(encoder)) = (after, encoder) else {
        return Ok(Some((before, Outcome::Empty)));
    };
    let (logical, mut part) = hasher.finish();
    part.add(&reused);
    if part.rows == 0 {
        return Ok(Some((before, Outcome::Empty)));
    }
    let after = Side {
        rows: part.rows,
        checksum: checksum::digest(&logical, &part),
    };
    report.rows_after = Some(after.rows);
    report.checksum_after = Some(after.checksum.clone());
    if after == before {
        return Ok(Some((before, Outcome::Unchanged)));
    }
    let t = Instant::now();
    if encoder.rows() != after.rows {
        return Err(Error::Internal(format!(
            "{} rows encoded, {} checksummed",
            encoder.rows(),
            after.rows
        )));
    }
    let file = encoder.finish()?;
    let scan = crate::snapshot::scan_of_written(&file, logical, part).ok();
    report.phases.encode_ms += ms(t);
    Ok(Some((
        before,
        Outcome::New(Proven {
            file,
            after,
            schema_change,
            scan,
        }),
    )))
}

fn closed(e: tokio::sync::AcquireError) -> Error {
    Error::Internal(e.to_string())
}

/// The partition must still hold the files the plan froze, or it is left alone. Returns
/// the listing (names, sizes, ETags).
async fn check_still_planned(
    ctx: &Ctx,
    p: &PlannedPartition,
) -> Result<Vec<(String, u64, Option<String>)>> {
    let mut planned: Vec<(String, u64)> =
        p.files.iter().map(|f| (f.name.clone(), f.size)).collect();
    planned.sort();
    let live = commit::live_objects(&ctx.loc, &p.partition).await?;
    if !live
        .iter()
        .map(|(n, s, _)| (n, s))
        .eq(planned.iter().map(|(n, s)| (n, s)))
    {
        return Err(Error::PartitionChanged {
            partition: p.partition.to_string(),
            reason: "its files differ".into(),
        });
    }
    Ok(live)
}

/// Reads the old files once: the rows, and on the way the before-checksum.
async fn read_before(
    ctx: &Ctx,
    partition: &Partition,
    report: &mut PartitionReport,
) -> Result<(read::Source, Side)> {
    let t = Instant::now();
    let source = read::read_partition(&ctx.loc, partition).await?;
    report.phases.read_ms = ms(t) - source.checksum_ms;
    report.phases.checksum_ms = source.checksum_ms;
    let before = Side {
        rows: source.part.rows,
        checksum: checksum::digest(&source.logical, &source.part),
    };
    report.rows_before = Some(before.rows);
    report.checksum_before = Some(before.checksum.clone());
    Ok((source, before))
}

/// Runs the SQL and makes its output fit the table, or rejects it with the reason.
async fn transform_rows(
    ctx: &Ctx,
    partition: &Partition,
    source: &read::Source,
    report: &mut PartitionReport,
) -> Result<transform::Conformed> {
    let t = Instant::now();
    let (out_schema, batches, lineage) = ctx
        .transform
        .apply_with_lineage(&ctx.keys, partition, &source.schema, &source.batches)
        .await?;
    let mut conformed = transform::conform(
        &ctx.keys,
        partition,
        &source.schema,
        &out_schema,
        batches,
        ctx.settings.allow_schema_change,
    )
    .map_err(|e| Error::OutputRejected {
        partition: partition.id.to_string(),
        reason: e.to_string(),
    })?;
    conformed.lineage = lineage;
    report.phases.transform_ms = ms(t);
    report.schema_change = conformed.schema_change.clone();
    Ok(conformed)
}

/// A transform that returned no rows, settled by `--on-empty`.
async fn settle_empty(ctx: &Ctx, p: &PlannedPartition, before: Side) -> Result<Status> {
    let id = &p.partition;
    match ctx.settings.on_empty {
        OnEmpty::Fail => Err(Error::OutputRejected {
            partition: id.to_string(),
            reason: "the transform returned no rows (choose --on-empty delete or keep)".into(),
        }),
        OnEmpty::Keep => {
            ctx.journal
                .append(Event::Kept(Kept {
                    partition: id.clone(),
                    before,
                    reason: "the transform returned no rows".into(),
                }))
                .await?;
            Ok(Status::Kept)
        }
        OnEmpty::Delete => {
            ctx.lock.check()?;
            let deleting = Deleting {
                partition: id.clone(),
                old_files: p.files.iter().map(|f| f.name.clone()).collect(),
                before: before.clone(),
            };
            commit::remove(&ctx.loc, &ctx.run, &ctx.journal, &deleting)
                .await
                .map_err(|e| unknown(ctx, id, e))?;
            ctx.journal
                .append(Event::Deleted(Deleted {
                    partition: id.clone(),
                    before,
                }))
                .await
                .map_err(|e| unknown(ctx, id, e))?;
            Ok(Status::Deleted)
        }
    }
}

/// New rows whose after-checksum is known, with what encoding them needs.
pub(super) struct Candidate {
    conformed: transform::Conformed,
    pub(super) after: Side,
    /// The new file's logical schema and checksum part, for the checksum cache.
    part: (checksum::LogicalSchema, checksum::Part),
    layout: read::Layout,
    props: parquet::file::properties::WriterProperties,
    /// Column chunks copied from the old files, and those files.
    reuse: Option<(crate::stage::reuse::Reuse, Vec<read::SourceFile>)>,
}

/// The after-checksum of the new rows; the old rows are let go here (a large partition's
/// memory is held while it is rewritten), keeping only the files chunks are copied from.
pub(super) fn checksum_after(
    mut source: read::Source,
    conformed: transform::Conformed,
    report: &mut PartitionReport,
) -> Result<Candidate> {
    let props = crate::stage::properties(&source.layout);
    let layout = std::mem::take(&mut source.layout);
    let reuse = crate::stage::reuse::plan(
        &source.files,
        source.batch_row_groups.as_deref(),
        &source.batches,
        &conformed.schema,
        &conformed.batches,
        &props,
    )
    .map(|r| (r, std::mem::take(&mut source.files)));
    let t = Instant::now();
    let before = Before {
        schema: &source.schema,
        logical: &source.logical,
        batches: &source.batches,
        row_hashes: source.row_hashes.as_deref(),
    };
    let mut hasher = Hasher::new(&conformed.schema, false)?;
    let mut reused = checksum::Part::default();
    checksum_new_rows(&before, &conformed, &mut hasher, &mut reused)?;
    drop(source);
    let (logical, mut part) = hasher.finish();
    part.add(&reused);
    let after = Side {
        rows: part.rows,
        checksum: checksum::digest(&logical, &part),
    };
    report.phases.checksum_ms += ms(t);
    report.rows_after = Some(after.rows);
    report.checksum_after = Some(after.checksum.clone());
    Ok(Candidate {
        conformed,
        after,
        part: (logical, part),
        layout,
        props,
        reuse,
    })
}

/// Old rows as read, with their hashes ([`read::Source::row_hashes`]).
struct Before<'a> {
    schema: &'a arrow::datatypes::SchemaRef,
    logical: &'a checksum::LogicalSchema,
    batches: &'a [RecordBatch],
    row_hashes: Option<&'a [u128]>,
}

/// Hashes the new rows into `hasher`, except those the plan shows are old rows as they
/// were ([`transform::Lineage`]): their hashes, taken when they were read, are added to
/// `reused` instead. Hashing them again could only give the same hashes: the spec defines
/// a row's hash by its values alone.
fn checksum_new_rows(
    before: &Before<'_>,
    conformed: &transform::Conformed,
    hasher: &mut Hasher,
    reused: &mut checksum::Part,
) -> Result<()> {
    let Some(hashes) = reusable(before, conformed)? else {
        for b in &conformed.batches {
            hasher.update(b)?;
        }
        return Ok(());
    };
    let mut row = 0;
    let mut add = |h: &[u128], same: &arrow::buffer::BooleanBuffer| {
        for (h, keep) in h.iter().zip(same.iter()) {
            if keep {
                reused.rows += 1;
                reused.sum = reused.sum.wrapping_add(*h);
            }
        }
    };
    match &conformed.lineage {
        transform::Lineage::Kept(kept) => {
            let mut kept_rows = 0;
            for mask in kept {
                add(&hashes[row..row + mask.len()], mask.values());
                kept_rows += mask.true_count() as u64;
                row += mask.len();
            }
            if kept_rows != conformed.rows {
                return Err(Error::Internal(format!(
                    "the rows kept ({kept_rows}) are not the rows written ({})",
                    conformed.rows
                )));
            }
        }
        transform::Lineage::RowForRow => {
            for (old, new) in before.batches.iter().zip(&conformed.batches) {
                let n = new.num_rows();
                match same_rows(old, new) {
                    Some(same) if same.count_set_bits() > 0 => {
                        add(&hashes[row..row + n], &same);
                        if same.count_set_bits() < n {
                            let changed = arrow::array::BooleanArray::new(!&same, None);
                            let changed = arrow::compute::filter_record_batch(new, &changed)
                                .map_err(|e| Error::Arrow {
                                    context: "picking the changed rows to hash".into(),
                                    error: e,
                                })?;
                            hasher.update(&changed)?;
                        }
                    }
                    _ => hasher.update(new)?,
                }
                row += n;
            }
        }
        transform::Lineage::Unknown => unreachable!("not reusable"),
    }
    Ok(())
}

/// The old rows' hashes, when the new rows' lineage lets some be reused: they have exactly
/// the old files' columns, of the very same Arrow types (a cast may change a value), and
/// line up with the old rows batch for batch.
fn reusable<'a>(
    before: &Before<'a>,
    conformed: &transform::Conformed,
) -> Result<Option<&'a [u128]>> {
    let Some(hashes) = before.row_hashes else {
        return Ok(None);
    };
    let rows = |sizes: &mut dyn Iterator<Item = usize>| {
        sizes.zip(before.batches).all(|(n, b)| n == b.num_rows())
    };
    let lined_up = match &conformed.lineage {
        transform::Lineage::Unknown => return Ok(None),
        transform::Lineage::Kept(kept) => {
            kept.len() == before.batches.len() && rows(&mut kept.iter().map(|k| k.len()))
        }
        transform::Lineage::RowForRow => {
            conformed.batches.len() == before.batches.len()
                && rows(&mut conformed.batches.iter().map(|b| b.num_rows()))
        }
    };
    let total: usize = before.batches.iter().map(|b| b.num_rows()).sum();
    if !lined_up || hashes.len() != total {
        return Ok(None);
    }
    let logical = checksum::LogicalSchema::of(&conformed.schema)?;
    let same_types = logical.same_columns(before.logical)
        && conformed.schema.fields().iter().all(|f| {
            before
                .schema
                .field_with_name(f.name())
                .is_ok_and(|s| s.data_type() == f.data_type())
        });
    Ok(same_types.then_some(hashes))
}

/// Which rows of `new` equal the row in their place in `old`, column by column by name;
/// `None` where a column cannot be compared (nested types), or where a column's first
/// rows all changed (a fix that changes every row need not pay for comparing them all):
/// then every row is hashed.
fn same_rows(old: &RecordBatch, new: &RecordBatch) -> Option<arrow::buffer::BooleanBuffer> {
    const PROBE: usize = 64;
    let mut same: Option<arrow::buffer::BooleanBuffer> = None;
    for (field, column) in new.schema().fields().iter().zip(new.columns()) {
        let was = old.column_by_name(field.name())?;
        // A column passed through is the old array itself.
        if column.to_data().ptr_eq(&was.to_data()) {
            continue;
        }
        let probe = PROBE.min(column.len());
        let probed = arrow::compute::kernels::cmp::not_distinct(
            &column.slice(0, probe),
            &was.slice(0, probe),
        )
        .ok()?;
        if probed.true_count() == 0 {
            return None;
        }
        let equal = arrow::compute::kernels::cmp::not_distinct(column, was).ok()?;
        same = Some(match same {
            None => equal.values().clone(),
            Some(s) => &s & equal.values(),
        });
    }
    Some(same.unwrap_or_else(|| arrow::buffer::BooleanBuffer::new_set(new.num_rows())))
}

/// A new file, encoded and proven to decode to the rows it was made from.
pub(super) struct Proven {
    pub(super) file: bytes::Bytes,
    after: Side,
    schema_change: Option<String>,
    /// What a snapshot would find in the file, for the checksum cache.
    scan: Option<crate::snapshot::FileScan>,
}

pub(super) fn encode_and_prove(
    candidate: Candidate,
    size_hint: usize,
    report: &mut PartitionReport,
) -> Result<Proven> {
    let t = Instant::now();
    let Candidate {
        conformed,
        after,
        part,
        layout,
        props,
        reuse,
    } = candidate;
    // Copied columns are done with once the after-checksum is taken.
    let batches = match &reuse {
        Some((r, _)) => r
            .encoded_only(conformed.batches)
            .map_err(|e| Error::Internal(e.to_string()))?,
        None => conformed.batches,
    };
    let reuse = reuse.as_ref().map(|(r, files)| (r, &files[..]));
    let file = crate::stage::encode(
        &conformed.schema,
        &batches,
        &layout,
        props,
        reuse,
        size_hint,
    )?;
    crate::stage::check_decodes(&file, &conformed.schema, &batches, reuse)?;
    let scan = crate::snapshot::scan_of_written(&file, part.0, part.1).ok();
    report.phases.encode_ms = ms(t);
    Ok(Proven {
        file,
        after,
        schema_change: conformed.schema_change,
        scan,
    })
}

/// A proven file written to the run's stage, fsynced and read back.
struct Staged {
    name: String,
    size: u64,
    after: Side,
    schema_change: Option<String>,
    scan: Option<crate::snapshot::FileScan>,
}

async fn stage(
    ctx: &Ctx,
    p: &PlannedPartition,
    proven: Proven,
    report: &mut PartitionReport,
) -> Result<Staged> {
    let t = Instant::now();
    commit::clear_stage(&ctx.loc, &ctx.run, &p.partition).await?;
    let name = format!("part-{}-0.parquet", ctx.journal.run_id());
    let path = ctx.run.stage(&p.partition).join(name.as_str());
    let size = proven.file.len() as u64;
    crate::stage::write(&ctx.loc, &path, proven.file).await?;
    report.phases.write_ms = ms(t);
    Ok(Staged {
        name,
        size,
        after: proven.after,
        schema_change: proven.schema_change,
        scan: proven.scan,
    })
}

/// Journals the swap, makes it, journals its end, and records the new file in the
/// checksum cache.
async fn commit_staged(
    ctx: &Ctx,
    p: &PlannedPartition,
    before: Side,
    staged: Staged,
    report: &mut PartitionReport,
) -> Result<()> {
    let id = &p.partition;
    ctx.lock.check()?;
    let t = Instant::now();
    let committing = Committing {
        partition: id.clone(),
        new_files: vec![staged.name.clone()],
        old_files: p.files.iter().map(|f| f.name.clone()).collect(),
        before: before.clone(),
        after: staged.after.clone(),
        schema_change: staged.schema_change,
    };
    commit::commit(&ctx.loc, &ctx.run, &ctx.journal, &committing)
        .await
        .map_err(|e| unknown(ctx, id, e))?;
    report.phases.commit_ms = ms(t);
    ctx.journal
        .note(Event::Committed(Committed {
            partition: id.clone(),
            before,
            after: staged.after,
            phases: report.phases.clone(),
        }))
        .await
        .map_err(|e| unknown(ctx, id, e))?;
    if let (Some(cache), Some(scan)) = (&ctx.cache, &staged.scan) {
        let live_name = format!("{id}/{}", staged.name);
        cache
            .record_written(&ctx.loc, &live_name, staged.size, scan)
            .await;
    }
    Ok(())
}

fn unknown(ctx: &Ctx, partition: &PartitionId, e: Error) -> Error {
    match e {
        Error::LockLost { .. } | Error::OutcomeUnknown { .. } => e,
        e => Error::OutcomeUnknown {
            run_id: ctx.journal.run_id().into(),
            partition: partition.to_string(),
            reason: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, DictionaryArray, Float64Array, Int32Array, StringArray};
    use arrow::datatypes::Int32Type;

    fn hash_of(b: &RecordBatch, row: usize) -> u128 {
        let mut h = Hasher::new(&b.schema(), false).unwrap();
        h.update(&b.slice(row, 1)).unwrap();
        h.finish().1.sum
    }

    /// A row `same_rows` calls equal must hash alike: that is what lets its hash be reused.
    #[test]
    fn rows_found_the_same_hash_the_same() {
        let dict = |keys: Vec<i32>, values: Vec<&str>| -> ArrayRef {
            Arc::new(
                DictionaryArray::<Int32Type>::try_new(
                    Int32Array::from(keys),
                    Arc::new(StringArray::from(values)),
                )
                .unwrap(),
            )
        };
        let nan2 = f64::from_bits(0x7FF8_0000_0000_0001);
        let old = RecordBatch::try_from_iter([
            (
                "x",
                Arc::new(Float64Array::from(vec![
                    Some(0.0),
                    Some(f64::NAN),
                    Some(1.0),
                    None,
                    Some(2.0),
                ])) as ArrayRef,
            ),
            ("d", dict(vec![0, 1, 0, 1, 0], vec!["a", "b"])),
        ])
        .unwrap();
        // The same values in other bits (0.0 and -0.0, two NaNs) and another dictionary,
        // but row 2's `x` and row 4's `d` differ.
        let new = RecordBatch::try_from_iter([
            (
                "x",
                Arc::new(Float64Array::from(vec![
                    Some(-0.0),
                    Some(nan2),
                    Some(3.0),
                    None,
                    Some(2.0),
                ])) as ArrayRef,
            ),
            ("d", dict(vec![1, 0, 1, 0, 2], vec!["b", "a", "c"])),
        ])
        .unwrap();
        let same = same_rows(&old, &new).expect("flat columns compare");
        // Rows not found the same are hashed again, which is always right (-0.0 against
        // 0.0 may be either); rows found the same must hash alike.
        for row in (0..5).filter(|r| same.value(*r)) {
            assert_eq!(hash_of(&old, row), hash_of(&new, row), "row {row}");
        }
        assert!(!same.value(2) && !same.value(4), "changed rows are found");
        assert!(
            same.value(3),
            "NULL is NULL, and the dictionaries' values are compared"
        );
    }
}
