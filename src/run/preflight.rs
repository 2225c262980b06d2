//! Preflight: what a transform is checked for before any partition is touched.
//!
//! - Its plan, without data: its output columns against the table's, and the volatile
//!   functions it calls (`random()`, `uuid()`: another value on every call).
//! - Its output, on one sample partition: run twice, the second time on the same rows in
//!   the reverse order. A transform is a function of the partition's content, or a
//!   resumed run would mix two versions of the fix and a rerun would never find a
//!   partition unchanged; rows come out of Parquet files in whatever order their writer
//!   left them, so an output that depends on that order (a `LIMIT` without a total
//!   `ORDER BY`, `row_number()` over ties, `first_value()` of an unordered group) is not
//!   one. The checksum ignores row order, so a deterministic transform gives the same
//!   checksum both times; the columns whose checksums differ are named.
//! - The same sample, run through the rest of the pipeline (checksums, encoding, the
//!   proof; nothing is written) and timed: what the plan's estimate is made from.

use std::time::Instant;

use arrow::array::{RecordBatch, UInt32Array};
use serde::{Deserialize, Serialize};

use crate::checksum::Hasher;
use crate::commit::journal::Phases;
use crate::error::{Error, Result};
use crate::plan::{OnEmpty, Plan, PlannedPartition};
use crate::storage::Location;
use crate::table::{read, PartitionId, PartitionKey, Table};
use crate::transform::{self, ms, Transform};

use super::execute::{
    checksum_after, encode_and_prove, next_slice, rewrite_sliced, sliceable, transform_slice, How,
    Outcome,
};
use super::{PartitionReport, Status};

/// What the preflight found before any partition was touched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Preflight {
    /// The volatile functions it calls, with where (empty: none).
    pub volatile: Vec<String>,
    /// Whether the run went on although the transform is not deterministic
    /// (`--allow-nondeterministic`).
    pub allowed: bool,
    /// The transform run twice on a sample partition (journals before it have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<SampleCheck>,
}

/// The transform run twice on one partition, the second time on its rows reversed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleCheck {
    /// The partition it ran on.
    pub partition: PartitionId,
    /// The rows it ran on: the partition's, or the first slice's of a partition rewritten
    /// a slice at a time.
    pub rows: u64,
    /// Whether both runs gave the same rows; `None` when it could not be told (the
    /// partition has fewer than two rows, or its output cannot be written).
    pub same: Option<bool>,
    /// What differed, or why it could not be told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What the check cost: a read and two transforms (nothing is written).
    pub ms: f64,
}

/// A sample partition run through the pipeline up to the proof of its new file, timed.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The determinism check.
    pub check: SampleCheck,
    /// The sample's bytes and files.
    pub bytes: u64,
    /// Its data files.
    pub files: usize,
    /// Time per phase of one pass (read, transform, checksums, encode); write and
    /// commit are not run.
    pub phases: Phases,
    /// What the transform costs whatever the rows: the same plan run on no rows.
    pub fixed_ms: f64,
    /// Bytes of the new file (0 when the output is empty or unchanged).
    pub bytes_written: u64,
    /// What a run does with the sample partition: rewritten, unchanged, kept...
    pub status: Status,
    /// Milliseconds the whole sample took (a run's preflight does it again).
    pub total_ms: f64,
    /// Partitions timed through the pipeline (the sample, and more like it when one is
    /// too quick to time well), their bytes, computing milliseconds and new files' bytes.
    pub timed: Timed,
}

/// Partitions timed through a run's computing phases.
#[derive(Debug, Clone, Default)]
pub struct Timed {
    /// Partitions.
    pub partitions: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Their read, transform, checksums, encode and proof.
    pub compute_ms: f64,
    /// Bytes of the new files of those a run would rewrite.
    pub written: u64,
    /// Bytes of the partitions a run would rewrite.
    pub rewritten_bytes: u64,
    /// Each partition's bytes and computing milliseconds.
    pub each: Vec<(u64, f64)>,
}

impl Timed {
    fn add(&mut self, bytes: u64, phases: &Phases, written: Option<u64>) {
        let ms = phases.read_ms + phases.transform_ms + phases.checksum_ms + phases.encode_ms;
        self.partitions += 1;
        self.bytes += bytes;
        self.compute_ms += ms;
        self.each.push((bytes, ms));
        if let Some(w) = written {
            self.written += w;
            self.rewritten_bytes += bytes;
        }
    }
}

/// Partitions like the sample are timed until they and the sample took this long: a
/// partition of a few milliseconds is timed with an error as large as itself.
const TIMED_ENOUGH_MS: f64 = 60.0;
/// Partitions timed at most besides the sample.
const TIMED_MORE: usize = 8;
/// Partitions timed at least besides the sample when the estimate matters (`plan`): the
/// estimate takes their median rate, which one slow timing on a busy machine cannot move.
const TIMED_AT_LEAST: usize = 3;

/// Times more partitions of `plan` near the sample's size through the computing phases,
/// until their time is enough to scale from (nothing is written); with `warm`, at least
/// [`TIMED_AT_LEAST`]: the sample, first through the pipeline, also paid for the process's
/// first use of its memory and code, and one timing alone is at the mercy of the machine.
pub async fn time_more(
    sample: &mut Sample,
    loc: &Location,
    keys: &[PartitionKey],
    plan: &Plan,
    transform: &Transform,
    settings: &SampleSettings,
    warm: bool,
) {
    let mut near: Vec<&PlannedPartition> = plan
        .partitions
        .iter()
        .filter(|p| {
            p.partition != sample.check.partition
                && p.rows > 0
                && p.files.iter().all(|f| f.error.is_none())
        })
        .collect();
    near.sort_by_key(|p| (p.bytes.abs_diff(sample.bytes), p.partition.clone()));
    let started = Instant::now();
    let p = &sample.phases;
    let own = p.read_ms + p.transform_ms + p.checksum_ms + p.encode_ms;
    for p in near.into_iter().take(TIMED_MORE) {
        let enough = if warm { TIMED_AT_LEAST } else { 0 };
        if sample.timed.partitions >= enough && own + sample.timed.compute_ms >= TIMED_ENOUGH_MS {
            break;
        }
        // A partition that does not go through is left to the run to report.
        if let Ok((phases, bytes, written)) = time_one(loc, keys, p, transform, settings).await {
            sample.timed.add(bytes, &phases, written);
        }
    }
    sample.total_ms += ms(started);
}

/// Partition `p` through the computing phases of a run, timed: phases, bytes, and the new
/// file's bytes if a run would write one.
async fn time_one(
    loc: &Location,
    keys: &[PartitionKey],
    p: &PlannedPartition,
    transform: &Transform,
    settings: &SampleSettings,
) -> Result<(Phases, u64, Option<u64>)> {
    let partition = p.to_partition(loc, keys)?;
    let bytes = partition.bytes();
    let mut report = PartitionReport::new(&p.partition, Status::Failed);
    let how = How {
        transform,
        keys,
        allow_schema_change: settings.allow_schema_change,
    };
    if let Some(rows) = sliceable(loc, &how, settings.slice_above_mib, &partition).await? {
        match rewrite_sliced(&how, &partition, rows, &mut report).await? {
            Some((_, Outcome::New(proven))) => {
                return Ok((report.phases, bytes, Some(proven.file.len() as u64)))
            }
            Some(_) => return Ok((report.phases, bytes, None)),
            None => report = PartitionReport::new(&p.partition, Status::Failed),
        }
    }
    let (source, _, conformed) =
        read_and_transform(loc, keys, &partition, transform, settings, &mut report).await?;
    let conformed = match conformed {
        Ok(c) if c.rows > 0 => c,
        _ => return Ok((report.phases, bytes, None)),
    };
    let before = crate::checksum::digest(&source.logical, &source.part);
    let candidate = checksum_after(source, conformed, &mut report)?;
    if candidate.after.checksum == before {
        return Ok((report.phases, bytes, None));
    }
    let proven = encode_and_prove(candidate, bytes as usize, &mut report)?;
    Ok((report.phases, bytes, Some(proven.file.len() as u64)))
}

impl Sample {
    /// What the plan's estimate scales.
    pub fn measured(&self) -> crate::plan::Measured {
        let p = &self.phases;
        crate::plan::Measured {
            partition: self.check.partition.clone(),
            bytes: self.bytes,
            compute_ms: p.read_ms + p.transform_ms + p.checksum_ms + p.encode_ms,
            fixed_ms: self.fixed_ms,
            bytes_written: (self.status == Status::Rewritten).then_some(self.bytes_written),
            run: true,
            preflight_ms: self.total_ms,
            more: (self.timed.partitions > 0).then_some(crate::plan::MoreTimed {
                partitions: self.timed.partitions,
                bytes: self.timed.bytes,
                compute_ms: self.timed.compute_ms,
                written: self.timed.written,
                rewritten_bytes: self.timed.rewritten_bytes,
                per_byte_ms: median_rate(&self.timed.each, self.fixed_ms),
            }),
            cores: crate::snapshot::default_jobs(),
        }
    }
}

/// The median over partitions of their computing milliseconds per byte, beyond what any
/// partition costs (`fixed_ms`).
fn median_rate(each: &[(u64, f64)], fixed_ms: f64) -> f64 {
    let mut rates: Vec<f64> = each
        .iter()
        .map(|(bytes, ms)| (ms - fixed_ms).max(0.0) / (*bytes).max(1) as f64)
        .collect();
    rates.sort_by(f64::total_cmp);
    match rates.len() {
        0 => 0.0,
        n if n % 2 == 1 => rates[n / 2],
        n => (rates[n / 2 - 1] + rates[n / 2]) / 2.0,
    }
}

/// Plans the SQL over the first partition's schema, without data: the output columns, the
/// schema change, and the volatile functions it calls (refused unless
/// `allow_nondeterministic`).
pub async fn check_sql(
    table: &Table,
    transform: &Transform,
    allow_schema_change: bool,
    allow_nondeterministic: bool,
) -> Result<(arrow::datatypes::SchemaRef, Option<String>, Preflight)> {
    // The first readable file gives the schema; unreadable ones fail their partition later.
    let mut found = None;
    let mut unreadable = None;
    for p in &table.partitions {
        for file in &p.files {
            match crate::table::reader::open_footer(&table.location, file, &p.id).await {
                Ok(read) => {
                    found = Some((p, read));
                    break;
                }
                Err(e) => {
                    unreadable.get_or_insert(e);
                }
            }
        }
        if found.is_some() {
            break;
        }
    }
    let Some((first, read)) = found else {
        // With no file to plan the SQL over, why the first one could not be read.
        return Err(unreadable.unwrap_or_else(|| {
            Error::Usage(
                "no selected partition has a data file; there is nothing to transform".into(),
            )
        }));
    };
    // The schema as every partition is read for the transform (INT96 as microseconds).
    let file_schema = crate::table::reader::logical_schema(&read);
    let (out, volatile) = transform.check(&table.keys, first, &file_schema).await?;
    if !volatile.is_empty() && !allow_nondeterministic {
        return Err(Error::Nondeterministic {
            functions: volatile.join(", "),
        });
    }
    let preflight = Preflight {
        allowed: !volatile.is_empty(),
        volatile,
        sample: None,
    };
    let conformed = transform::conform(&table.keys, first, &file_schema, &out, Vec::new(), true)
        .map_err(Error::Usage)?;
    if conformed.schema_change.is_some() && !allow_schema_change {
        return Err(Error::Usage(transform::schema_change_refused(
            "the transform's columns",
            &conformed.schema_change.unwrap_or_default(),
        )));
    }
    Ok((out, conformed.schema_change, preflight))
}

/// The partitions the sample may be taken from, best first: the one given
/// (`--preflight-partition`), or those holding rows from the median by bytes outwards:
/// what most partitions look like. (The smallest is often a partial day of a few rows, on
/// which a `LIMIT` takes everything and whose timing is all fixed cost.) The next is tried
/// when one cannot be read: the run reports that partition, as it would without a sample.
pub fn sample_partitions<'a>(
    plan: &'a Plan,
    given: Option<&str>,
) -> Result<Vec<&'a PlannedPartition>> {
    if let Some(g) = given {
        let g = g.trim_matches('/');
        return plan
            .partitions
            .iter()
            .find(|p| p.partition == g)
            .map(|p| vec![p])
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--preflight-partition {g} is not one of the {} selected partitions; give one as `plan --json` lists them",
                    plan.partitions.len()
                ))
            });
    }
    let mut holding: Vec<&PlannedPartition> = plan
        .partitions
        .iter()
        .filter(|p| p.rows > 0 && p.files.iter().all(|f| f.error.is_none()))
        .collect();
    holding.sort_by_key(|p| (p.bytes, p.partition.clone()));
    // From the median outwards, by place in that order.
    let median = holding.len() / 2;
    let mut order: Vec<usize> = (0..holding.len()).collect();
    order.sort_by_key(|i| (i.abs_diff(median), *i));
    Ok(order.into_iter().map(|i| holding[i]).collect())
}

/// The sample of the first of `candidates` that reads ([`sample`]); `None` if none does.
/// A partition the user `given` (`--preflight-partition`) is the only candidate, and its
/// error is the command's: the check the user asked for is not skipped quietly.
pub async fn first_sample(
    loc: &Location,
    keys: &[PartitionKey],
    candidates: &[&PlannedPartition],
    transform: &Transform,
    settings: &SampleSettings,
    given: bool,
) -> Result<Option<Sample>> {
    const TRIES: usize = 3;
    for p in candidates.iter().take(TRIES) {
        match sample(loc, keys, p, transform, settings).await {
            Ok(s) => return Ok(Some(s)),
            Err(Error::Unreadable { .. } | Error::MixedSchema { .. }) if !given => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// How the sample's output is judged: the run's own settings.
pub struct SampleSettings {
    /// Other columns or types than the table's are accepted.
    pub allow_schema_change: bool,
    /// What a run does with no rows.
    pub on_empty: OnEmpty,
    /// Partitions larger than this many MiB go through a slice at a time, as in a run.
    pub slice_above_mib: u64,
}

/// Runs the transform on partition `p` twice (its rows, then its rows reversed) and once
/// more on no rows, then the rest of the pipeline up to the proof of the new file: the
/// determinism check and the timing of one partition. Nothing is written.
pub async fn sample(
    loc: &Location,
    keys: &[PartitionKey],
    p: &PlannedPartition,
    transform: &Transform,
    settings: &SampleSettings,
) -> Result<Sample> {
    let started = Instant::now();
    let partition = p.to_partition(loc, keys)?;
    let how = How {
        transform,
        keys,
        allow_schema_change: settings.allow_schema_change,
    };
    if let Some(rows) = sliceable(loc, &how, settings.slice_above_mib, &partition).await? {
        if let Some(s) = sample_sliced(loc, &how, p, &partition, rows, settings, started).await? {
            return Ok(s);
        }
    }
    let mut report = PartitionReport::new(&p.partition, Status::Failed);
    let (source, out_schema, conformed) =
        read_and_transform(loc, keys, &partition, transform, settings, &mut report).await?;
    let rows = source.part.rows;

    let reversed = reverse(&source.batches)?;
    // Timed as a run's partitions are: the first pass also planned the SQL, which a run
    // does once.
    let t = Instant::now();
    let (_, again) = transform
        .apply_rows(keys, &partition, &source.schema, &reversed)
        .await?;
    let again = transform::conform(
        keys,
        &partition,
        &source.schema,
        &out_schema,
        again,
        settings.allow_schema_change,
    );
    report.phases.transform_ms = ms(t);
    let (same, detail) = match (&conformed, &again) {
        (Err(e), _) | (_, Err(e)) => (None, Some(format!("not compared: {e}"))),
        (Ok(first), Ok(second)) => compare(first, second, rows)?,
    };
    drop(again);
    let check_ms = ms(started);

    let t = Instant::now();
    transform
        .apply_rows(keys, &partition, &source.schema, &[])
        .await?;
    let fixed_ms = ms(t);

    let bytes = partition.bytes();
    let mut sample = Sample {
        check: SampleCheck {
            partition: p.partition.clone(),
            rows,
            same,
            detail,
            ms: check_ms,
        },
        bytes,
        files: partition.files.len(),
        phases: Phases::default(),
        fixed_ms,
        bytes_written: 0,
        status: Status::Failed,
        total_ms: 0.0,
        timed: Timed::default(),
    };
    let Ok(conformed) = conformed else {
        sample.phases = report.phases;
        sample.total_ms = ms(started);
        return Ok(sample);
    };
    if conformed.rows == 0 {
        sample.status = match settings.on_empty {
            OnEmpty::Fail => Status::Failed,
            OnEmpty::Keep => Status::Kept,
            OnEmpty::Delete => Status::Deleted,
        };
        sample.phases = report.phases;
        sample.total_ms = ms(started);
        return Ok(sample);
    }
    let before = crate::checksum::digest(&source.logical, &source.part);
    let candidate = checksum_after(source, conformed, &mut report)?;
    if candidate.after.checksum == before {
        sample.status = Status::Unchanged;
        sample.phases = report.phases;
        sample.total_ms = ms(started);
        return Ok(sample);
    }
    let proven = encode_and_prove(candidate, bytes as usize, &mut report)?;
    sample.bytes_written = proven.file.len() as u64;
    sample.status = Status::Rewritten;
    sample.phases = report.phases;
    sample.total_ms = ms(started);
    Ok(sample)
}

/// [`sample`] of a partition a run rewrites a slice at a time, in bounded memory as the run
/// does it: the determinism check on its first slice (the SQL handles each row on its
/// own, so a slice shows what order does to it), then the whole partition through the
/// sliced pipeline, timed.
async fn sample_sliced(
    loc: &Location,
    how: &How<'_>,
    p: &PlannedPartition,
    partition: &crate::table::Partition,
    mut rows: read::Streaming,
    settings: &SampleSettings,
    started: Instant,
) -> Result<Option<Sample>> {
    let slice = next_slice(&mut rows).await?.batches;
    let checked: u64 = slice.iter().map(|b| b.num_rows() as u64).sum();
    let first = transform_slice(how, partition, &rows.schema, &slice).await;
    let again = transform_slice(how, partition, &rows.schema, &reverse(&slice)?).await;
    let (same, detail) = match (&first, &again) {
        (Err(e), _) | (_, Err(e)) => (None, Some(format!("not compared: {e}"))),
        (Ok(a), Ok(b)) => compare(a, b, checked)?,
    };
    drop((slice, first, again));
    let check_ms = ms(started);
    let t = Instant::now();
    how.transform
        .apply_rows(how.keys, partition, &rows.schema, &[])
        .await?;
    let fixed_ms = ms(t);
    drop(rows);

    let mut report = PartitionReport::new(&p.partition, Status::Failed);
    let rows = read::Streaming::open(loc, partition).await?;
    let done = rewrite_sliced(how, partition, rows, &mut report).await;
    let (status, bytes_written) = match done {
        Ok(Some((_, Outcome::Empty))) => (
            match settings.on_empty {
                OnEmpty::Fail => Status::Failed,
                OnEmpty::Keep => Status::Kept,
                OnEmpty::Delete => Status::Deleted,
            },
            0,
        ),
        Ok(Some((_, Outcome::Unchanged))) => (Status::Unchanged, 0),
        Ok(Some((_, Outcome::New(proven)))) => (Status::Rewritten, proven.file.len() as u64),
        // Columns only the whole-partition encoding writes: the run rewrites it whole.
        Ok(None) => return Ok(None),
        // The run will fail it alike.
        Err(Error::OutputRejected { .. }) => (Status::Failed, 0),
        Err(e) => return Err(e),
    };
    Ok(Some(Sample {
        check: SampleCheck {
            partition: p.partition.clone(),
            rows: checked,
            same,
            detail,
            ms: check_ms,
        },
        bytes: partition.bytes(),
        files: partition.files.len(),
        phases: report.phases,
        fixed_ms,
        bytes_written,
        status,
        total_ms: ms(started),
        timed: Timed::default(),
    }))
}

/// Partition `p` read and checksummed, timed: what a snapshot's estimate scales.
pub async fn sample_read(
    loc: &Location,
    keys: &[PartitionKey],
    p: &PlannedPartition,
) -> Result<crate::plan::Measured> {
    let partition = p.to_partition(loc, keys)?;
    let t = Instant::now();
    let mut bytes = 0;
    for file in &partition.files {
        crate::snapshot::scan_file(loc, file, false, crate::checksum::VERSION, None, None).await?;
        bytes += file.size;
    }
    Ok(crate::plan::Measured {
        partition: p.partition.clone(),
        bytes,
        compute_ms: ms(t),
        fixed_ms: 0.0,
        bytes_written: None,
        run: false,
        preflight_ms: 0.0,
        more: None,
        cores: crate::snapshot::default_jobs(),
    })
}

/// Partition `partition` read (the before-checksum on the way) and transformed, timed
/// into `report`: the source, the output's schema, and the output made to fit the table
/// (or why it does not).
async fn read_and_transform(
    loc: &Location,
    keys: &[PartitionKey],
    partition: &crate::table::Partition,
    transform: &Transform,
    settings: &SampleSettings,
    report: &mut PartitionReport,
) -> Result<(
    read::Source,
    arrow::datatypes::SchemaRef,
    std::result::Result<transform::Conformed, String>,
)> {
    let t = Instant::now();
    let source = read::read_partition(loc, partition).await?;
    report.phases.read_ms = ms(t) - source.checksum_ms;
    report.phases.checksum_ms = source.checksum_ms;
    let t = Instant::now();
    let (out_schema, batches) = transform.apply(keys, partition, &source).await?;
    let conformed = transform::conform(
        keys,
        partition,
        &source.schema,
        &out_schema,
        batches,
        settings.allow_schema_change,
    );
    report.phases.transform_ms = ms(t);
    Ok((source, out_schema, conformed))
}

/// The rows of `batches` in the reverse order.
fn reverse(batches: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    batches
        .iter()
        .rev()
        .map(|b| {
            let n = b.num_rows() as u32;
            let idx = UInt32Array::from_iter_values((0..n).rev());
            let columns = b
                .columns()
                .iter()
                .map(|c| arrow::compute::take(c.as_ref(), &idx, None))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Arrow {
                    context: "reversing the sample's rows".into(),
                    error: e,
                })?;
            RecordBatch::try_new(b.schema(), columns).map_err(|e| Error::Arrow {
                context: "reversing the sample's rows".into(),
                error: e,
            })
        })
        .collect()
}

/// Whether two outputs hold the same rows, and if not, how they differ.
fn compare(
    first: &transform::Conformed,
    second: &transform::Conformed,
    rows: u64,
) -> Result<(Option<bool>, Option<String>)> {
    if rows < 2 {
        return Ok((
            None,
            Some(format!(
                "not compared: the sample holds {rows} row(s), in one order only"
            )),
        ));
    }
    let part =
        |c: &transform::Conformed, columns: bool| -> Result<(Vec<String>, crate::checksum::Part)> {
            let mut h = Hasher::new(&c.schema, columns)?;
            for b in &c.batches {
                h.update(b)?;
            }
            let (logical, part) = h.finish();
            Ok((logical.columns.into_iter().map(|c| c.name).collect(), part))
        };
    // The whole rows first; per-column sums (several times the work) only to say which
    // columns differ.
    if part(first, false)?.1 == part(second, false)?.1 {
        return Ok((Some(true), None));
    }
    let ((names, a), (_, b)) = (part(first, true)?, part(second, true)?);
    let differ: Vec<String> = names
        .iter()
        .zip(a.columns.iter().zip(&b.columns))
        .filter(|(_, (x, y))| x != y)
        .map(|(n, _)| n.clone())
        .collect();
    let detail = if a.rows != b.rows {
        format!(
            "{} rows from the rows in file order, {} from the same rows reversed",
            a.rows, b.rows
        )
    } else {
        format!(
            "its rows read in another order gave {} rows both times, but other values in column(s) {}",
            a.rows,
            differ.join(", ")
        )
    };
    Ok((Some(false), Some(detail)))
}

/// Refuses a transform the sample showed is not deterministic, unless allowed.
pub fn refuse_order_dependent(check: &SampleCheck, allow: bool) -> Result<()> {
    if check.same == Some(false) && !allow {
        return Err(Error::OrderDependent {
            partition: check.partition.to_string(),
            detail: check.detail.clone().unwrap_or_default(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_rate_ignores_one_slow_timing() {
        let each = [(1_000, 10.0), (2_000, 20.0), (1_000, 100.0)];
        assert_eq!(median_rate(&each, 0.0), 0.01);
        assert_eq!(median_rate(&each[..2], 0.0), 0.01);
        assert_eq!(median_rate(&[], 0.0), 0.0);
    }
}
