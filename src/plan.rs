//! The plan: the resolved, frozen list of partitions a run will act on, with their files,
//! bytes and rows (from Parquet footers, no data read), in execution order. Pure once
//! built; serialised as the first journal record.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::selection::Selection;
use crate::storage::Location;
use crate::table::{DataFile, Partition, PartitionId, PartitionKey, PartitionValues, Table};

/// Execution order of partitions.
///
/// Its names (`oldest-first`, `newest-first`) are the same for the command line (clap) and
/// the journal (serde).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Oldest partition first (by the first key, then the others)
    #[default]
    OldestFirst,
    /// Newest partition first
    NewestFirst,
}

/// What to do with a partition for which the transform returns no rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnEmpty {
    /// Leave the partition as it was and report it as failed.
    #[default]
    Fail,
    /// Remove the partition (its files become the backup).
    Delete,
    /// Leave the partition as it was and report it as kept.
    Keep,
}

/// One data file of a planned partition, as its footer described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedFile {
    /// File name inside the partition folder.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Rows, from the footer.
    pub rows: u64,
    /// Why the footer could not be read (the partition will fail; others proceed).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// One partition of a plan, frozen: the files the run will replace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedPartition {
    /// The partition.
    pub partition: PartitionId,
    /// The partition's values as its folder names say them (typed again, never guessed,
    /// when the plan is carried out).
    pub raw_values: PartitionValues,
    /// Its data files when the plan was made.
    pub files: Vec<PlannedFile>,
    /// Bytes of its files.
    pub bytes: u64,
    /// Rows of its files.
    pub rows: u64,
}

/// Options a run was started with, frozen in its plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// The transform's SQL text.
    pub sql: String,
    /// The first 16 hex digits of the SQL's BLAKE3.
    pub sql_hash: String,
    /// The execution order.
    pub order: Order,
    /// The policy for a transform that returns no rows.
    pub on_empty: OnEmpty,
    /// Whether other columns or types than the table's are accepted.
    pub allow_schema_change: bool,
    /// `NAME=TABLE` registered for joins.
    pub tables: Vec<(String, String)>,
    /// Partitions computed at once.
    pub jobs: usize,
    /// What the SQL's preflight found (journals before it have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<crate::run::Preflight>,
    /// Partitions larger than this many MiB on storage are rewritten a slice of rows at a
    /// time when the SQL handles each row on its own.
    #[serde(default = "default_slice_above_mib")]
    pub slice_above_mib: u64,
}

/// See [`RunSettings::slice_above_mib`]: below this, a partition rewritten whole holds a
/// few times its size in memory, and keeps the copying of unchanged column chunks.
pub const SLICE_ABOVE_MIB: u64 = 16;

fn default_slice_above_mib() -> u64 {
    SLICE_ABOVE_MIB
}

/// A plan's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PlanTotals {
    /// Partitions.
    pub partitions: usize,
    /// Data files.
    pub files: usize,
    /// Bytes of the data files.
    pub bytes: u64,
    /// Rows, from the footers.
    pub rows: u64,
}

/// A frozen plan.
///
/// - `partitions` are in execution order and never change after the plan is journalled;
/// - `started_at` is the run's clock: anything time-dependent reads it, not "now".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The run's id (`(plan)` for a plan that is only shown).
    pub run_id: String,
    /// The table, as the user named it.
    pub table: String,
    /// When the plan was made (RFC 3339): the run's clock.
    pub started_at: String,
    /// The selection flags as given.
    pub selection: Selection,
    /// The partition keys and their types.
    pub keys: Vec<PartitionKey>,
    /// The partitions, in execution order.
    pub partitions: Vec<PlannedPartition>,
    /// Their totals.
    pub totals: PlanTotals,
    /// Estimated wall seconds ([`Estimate::seconds`]; 0 until the sample is measured).
    #[serde(default)]
    pub estimated_seconds: f64,
    /// What a run of the plan should take and cost, from a sample partition measured
    /// before it ([`estimate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
    /// The run's settings (every journalled plan has them).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub settings: Option<RunSettings>,
    /// Frozen by `plan --freeze` for workers (`run --run ID --partition P`): each
    /// partition's records are in its own journal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frozen: bool,
}

/// Reads the row count in a file's footer.
pub async fn footer_rows(loc: &Location, file: &DataFile) -> Result<u64> {
    let meta = crate::table::reader::open_footer(loc, file, "").await?;
    Ok(meta.metadata().file_metadata().num_rows().max(0) as u64)
}

/// Builds the plan of the partitions of `table` (narrowed to `selection`): each file's rows
/// from the checksum cache when it holds the file in the version listed, else from its
/// footer (read in parallel).
pub async fn build(
    table: &Table,
    selection: &Selection,
    order: Order,
    jobs: usize,
    run_id: &str,
    cache: Option<&crate::snapshot::Cache>,
) -> Result<Plan> {
    let mut parts: Vec<&Partition> = table.partitions.iter().collect();
    if order == Order::NewestFirst {
        parts.reverse();
    }
    let loc = Arc::new(table.location.clone());
    let units: Vec<(usize, DataFile, PartitionId)> = parts
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.files.iter().map(move |f| (i, f.clone(), p.id.clone())))
        .collect();
    let rows: Vec<(usize, String, u64, u64, Option<String>)> = futures::stream::iter(units)
        .map(|(i, f, id)| {
            let loc = loc.clone();
            async move {
                let cached = match cache {
                    Some(c) => c.rows_of(&loc, &f).await,
                    None => None,
                };
                let read = match cached {
                    Some(rows) => Ok(rows),
                    None => footer_rows(&loc, &f).await,
                };
                let (rows, error) = match read {
                    Ok(r) => (r, None),
                    Err(Error::Unreadable { reason, .. }) => (0, Some(format!("{id}: {reason}"))),
                    Err(e) => return Err(e),
                };
                let name = f
                    .relative
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                Ok::<_, Error>((i, name, f.size, rows, error))
            }
        })
        .buffered(jobs.max(1) * 8)
        .try_collect()
        .await?;
    let mut partitions: Vec<PlannedPartition> = parts
        .iter()
        .map(|p| PlannedPartition {
            partition: p.id.clone(),
            raw_values: p.values.clone(),
            files: Vec::new(),
            bytes: 0,
            rows: 0,
        })
        .collect();
    for (i, name, size, r, error) in rows {
        let p = &mut partitions[i];
        p.files.push(PlannedFile {
            name,
            size,
            rows: r,
            error,
        });
        p.bytes += size;
        p.rows += r;
    }
    let totals = PlanTotals {
        partitions: partitions.len(),
        files: partitions.iter().map(|p| p.files.len()).sum(),
        bytes: partitions.iter().map(|p| p.bytes).sum(),
        rows: partitions.iter().map(|p| p.rows).sum(),
    };
    Ok(Plan {
        run_id: run_id.to_string(),
        table: table.location.display.clone(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        selection: selection.clone(),
        keys: table.keys.clone(),
        partitions,
        totals,
        estimated_seconds: 0.0,
        estimate: None,
        settings: None,
        frozen: false,
    })
}

/// What a run of a plan (or a snapshot of its partitions, without SQL) should take and
/// cost, scaled from one partition measured before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// What is estimated: `run` (the transform's pipeline) or `snapshot` (read and
    /// checksum, when there is no SQL).
    pub of: String,
    /// How, in words: the sample, what it took, and how it was scaled.
    pub method: String,
    /// The partition measured.
    pub sample: PartitionId,
    /// Wall seconds.
    pub seconds: f64,
    /// What it reads, writes, asks of the store and keeps.
    pub cost: Cost,
}

/// The cost of a run in the units a user pays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Cost {
    /// Bytes of the files read.
    pub bytes_read: u64,
    /// Bytes of the new files, as the sample's new file scales.
    pub bytes_written: u64,
    /// Bytes of old files kept as backups until the run is released (`runs --release`).
    pub backup_bytes: u64,
    /// Requests to the object store, by kind (none on local disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<Requests>,
    /// The price at the user's rates (`--price-per-gb` on bytes read and written,
    /// `--price-per-1k-requests`), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
}

/// Object-store requests, by kind, as the commit protocol makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Requests {
    /// Listings.
    pub list: u64,
    /// Reads (a footer, then the data, per file).
    pub get: u64,
    /// Looks at an object's size and version.
    pub head: u64,
    /// Writes: staged files (in parts above 10 MiB), journal records, the lock, the
    /// checksum cache.
    pub put: u64,
    /// Server-side copies: old files to the backup, new files into the partition.
    pub copy: u64,
    /// Deletes of old files.
    pub delete: u64,
}

impl Requests {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.list + self.get + self.head + self.put + self.copy + self.delete
    }
}

/// One partition measured before a run: what the estimate is scaled from.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The partition.
    pub partition: PartitionId,
    /// Its bytes (the files read).
    pub bytes: u64,
    /// Milliseconds of its computing phases (read, transform, checksums, encode and
    /// proof; or read and checksum for a snapshot).
    pub compute_ms: f64,
    /// Milliseconds any partition costs whatever its rows (the transform on no rows).
    pub fixed_ms: f64,
    /// Bytes of its new file, or `None` if a run would not write it (unchanged, kept).
    pub bytes_written: Option<u64>,
    /// Whether this is the transform's pipeline (a run) or a read (a snapshot).
    pub run: bool,
    /// What the run's own preflight costs (the sample again), before its first partition.
    pub preflight_ms: f64,
    /// More partitions timed besides the sample, when it alone was too quick to time well.
    pub more: Option<MoreTimed>,
    /// Cores of the machine that measured (and will run).
    pub cores: usize,
}

/// Partitions timed through a run's computing phases besides the sample.
#[derive(Debug, Clone, PartialEq)]
pub struct MoreTimed {
    /// Partitions.
    pub partitions: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Their computing milliseconds.
    pub compute_ms: f64,
    /// Bytes of the new files of those a run would rewrite.
    pub written: u64,
    /// Bytes of the partitions a run would rewrite.
    pub rewritten_bytes: u64,
    /// Their median computing milliseconds per byte, beyond what any partition costs.
    pub per_byte_ms: f64,
}

/// Prices to put on a run's cost.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Prices {
    /// Per GB (10^9 bytes) read or written.
    pub per_gb: Option<f64>,
    /// Per 1,000 requests.
    pub per_1k_requests: Option<f64>,
}

/// Processor time per partition on local disk for staging the new file, its fsync, the
/// journal record, the rename exchange and the folders' fsyncs: the kernel's work, which
/// takes the same cores as computing (docs/PERFORMANCE.md, "Estimates").
const LOCAL_COMMIT_CPU_MS: f64 = 1.1;
/// Processor time for writing new bytes on local disk, per MB (about half of the kernel's
/// time copying them: the rest overlaps computing threads waiting on reads).
const LOCAL_WRITE_CPU_MS_PER_MB: f64 = 1.5;
/// The journal's fsync before each partition's swap, one after the other (one log file).
const LOCAL_FSYNC_MS: f64 = 1.3;
/// One object-store request, round trip (an S3 request in the same region).
const REQUEST_MS: f64 = 20.0;
/// Partitions writing and committing at once (`run::execute`).
const COMMITTING_AT_ONCE: f64 = 16.0;
/// A run's own work on local disk besides its partitions: the lock, the plan's footers,
/// the journal, and the last partition's writing and commit, which no computing overlaps
/// (a run of one small partition: 15-19 ms in all, 5 ms of it the partition's phases and
/// 2 ms the preflight; docs/PERFORMANCE.md, "Estimates").
const LOCAL_START_MS: f64 = 10.0;

/// What running `plan` (or snapshotting its partitions) should take and cost, from one
/// measured partition: each partition's computing time is the sample's scaled by bytes
/// (what any partition costs, `fixed_ms`, plus the rest in proportion), `jobs` at a time;
/// writing and committing overlap with computing, 16 partitions at a time, and cost what
/// the storage does per partition.
pub fn estimate(plan: &Plan, m: &Measured, jobs: usize, local: bool, prices: Prices) -> Estimate {
    // The partitions timed after the sample, if any: the sample, first through the
    // pipeline, also paid for the process's first use of its memory and code.
    let (n, bytes, compute, written, rewritten) = match &m.more {
        None => (
            1.0,
            m.bytes,
            m.compute_ms,
            m.bytes_written.unwrap_or(0),
            m.bytes_written.map_or(0, |_| m.bytes),
        ),
        Some(t) => (
            t.partitions as f64,
            t.bytes,
            t.compute_ms,
            t.written,
            t.rewritten_bytes,
        ),
    };
    let per_byte = match &m.more {
        Some(t) => t.per_byte_ms,
        None => (compute - n * m.fixed_ms).max(0.0) / bytes.max(1) as f64,
    };
    let written_ratio = (rewritten > 0).then(|| written as f64 / rewritten as f64);
    let mut compute_ms = 0.0;
    let mut storage_ms = 0.0;
    let mut cost = Cost::default();
    let mut requests = Requests::default();
    for p in &plan.partitions {
        compute_ms += m.fixed_ms + per_byte * p.bytes as f64;
        cost.bytes_read += p.bytes;
        let files = p.files.len() as u64;
        requests.list += 1;
        // A small object is fetched whole; a larger one is its footer, then its rows.
        requests.get += p
            .files
            .iter()
            .map(|f| {
                if f.size <= crate::table::reader::WHOLE_OBJECT_LIMIT {
                    1
                } else {
                    2
                }
            })
            .sum::<u64>();
        if !m.run {
            continue;
        }
        // A sample the run would not rewrite says little of the others: count them as
        // rewritten, at their own size.
        let written = (p.bytes as f64 * written_ratio.unwrap_or(1.0)) as u64;
        cost.bytes_written += written;
        cost.backup_bytes += p.bytes;
        let parts = if written > 10 << 20 {
            written.div_ceil(10 << 20) + 2
        } else {
            1
        };
        let p_requests = Requests {
            list: 1,
            get: 0,
            // Copies into the backup and into the partition; reads are pinned to the
            // ETags of the listing above.
            head: files + 1,
            put: parts + 3,
            copy: files + 1,
            delete: files,
        };
        requests.list += p_requests.list;
        requests.head += p_requests.head;
        requests.put += p_requests.put;
        requests.copy += p_requests.copy;
        requests.delete += p_requests.delete;
        storage_ms += if local {
            LOCAL_COMMIT_CPU_MS + LOCAL_WRITE_CPU_MS_PER_MB * written as f64 / 1e6
        } else {
            (p_requests.total() + 2 * files) as f64 * REQUEST_MS
        };
    }
    // The run's own records: the lock, the plan, its end, the cache's segment.
    requests.list += 2;
    requests.put += if m.run { 4 } else { 1 };
    // Computing is processor work: more jobs than cores do not go faster.
    let busy = jobs.clamp(1, m.cores.max(1)) as f64;
    let jobs = jobs.max(1) as f64;
    let start_ms = match (m.run, local) {
        (false, _) => 0.0,
        (true, true) => LOCAL_START_MS + m.preflight_ms,
        (true, false) => 8.0 * REQUEST_MS + m.preflight_ms,
    };
    // On local disk writing and committing take processor time beside computing; on an
    // object store they wait on requests, 16 partitions at a time, while others compute.
    let parallel_ms = if local {
        ((compute_ms + storage_ms) / busy).max(LOCAL_FSYNC_MS * plan.partitions.len() as f64)
    } else {
        (compute_ms / busy).max(storage_ms / COMMITTING_AT_ONCE)
    };
    let seconds = (start_ms + parallel_ms) / 1000.0
        + if local {
            0.0
        } else {
            // Reads wait on the store too; `jobs` partitions at a time.
            (2 * plan.totals.files) as f64 * REQUEST_MS / jobs / 1000.0
        };
    let price = match (prices.per_gb, prices.per_1k_requests) {
        (None, None) => None,
        (gb, req) => Some(
            gb.unwrap_or(0.0) * (cost.bytes_read + cost.bytes_written) as f64 / 1e9
                + if local {
                    0.0
                } else {
                    req.unwrap_or(0.0) * requests.total() as f64 / 1000.0
                },
        ),
    };
    cost.requests = (!local).then_some(requests);
    cost.price = price;
    let what = if m.run {
        "read, transform, checksums, encode and proof"
    } else {
        "read and checksum"
    };
    let timed = match &m.more {
        None => format!("{} ({})", m.partition, human_bytes(m.bytes)),
        Some(t) => format!(
            "{} partition(s) like {} ({})",
            t.partitions,
            m.partition,
            human_bytes(bytes)
        ),
    };
    let scaled = if m.more.is_some() {
        "their median rate"
    } else {
        "it"
    };
    let method = format!(
        "measured on {timed}: {what} took {compute:.0} ms, of which {:.1} ms per partition whatever its rows; {scaled} scaled by bytes to {} partitions ({}), {} at a time{}",
        m.fixed_ms,
        plan.partitions.len(),
        human_bytes(plan.totals.bytes),
        jobs,
        match (m.run, written_ratio) {
            (true, None) => "; none of them would be rewritten, so every partition is counted as rewritten at its own size",
            _ => "",
        }
    );
    Estimate {
        of: if m.run { "run" } else { "snapshot" }.into(),
        method,
        sample: m.partition.clone(),
        seconds,
        cost,
    }
}

/// Bytes as people read them (KiB, MiB...).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl PlannedPartition {
    /// The partition as discovery would give it, from the frozen plan. A value that no
    /// longer reads as its key's type is an error, never a NULL: the transform sees the
    /// partition's values.
    pub fn to_partition(&self, loc: &Location, keys: &[PartitionKey]) -> Result<Partition> {
        let typed = self
            .raw_values
            .typed(keys)
            .map_err(|e| Error::JournalDamaged {
                path: format!("plan of partition {}", self.partition),
                reason: format!(
                    "the planned {e}, so the plan cannot be carried out as it was made"
                ),
            })?;
        let files = self
            .files
            .iter()
            .map(|f| {
                let relative = format!("{}/{}", self.partition, f.name);
                DataFile {
                    path: loc.child(&relative),
                    relative,
                    size: f.size,
                    tag: None,
                    e_tag: None,
                }
            })
            .collect();
        Ok(Partition {
            id: self.partition.clone(),
            values: self.raw_values.clone(),
            typed,
            files,
            stray: Vec::new(),
            summaries: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(sizes: &[u64]) -> Plan {
        let partitions: Vec<PlannedPartition> = sizes
            .iter()
            .enumerate()
            .map(|(i, b)| PlannedPartition {
                partition: PartitionId::new(format!("k={i}")),
                raw_values: PartitionValues::new(vec![Some(i.to_string())]),
                files: vec![PlannedFile {
                    name: "part-0.parquet".into(),
                    size: *b,
                    rows: 10,
                    error: None,
                }],
                bytes: *b,
                rows: 10,
            })
            .collect();
        Plan {
            run_id: "(plan)".into(),
            table: "t".into(),
            started_at: String::new(),
            selection: Selection::default(),
            keys: Vec::new(),
            totals: PlanTotals {
                partitions: partitions.len(),
                files: partitions.len(),
                bytes: sizes.iter().sum(),
                rows: 10 * partitions.len() as u64,
            },
            partitions,
            estimated_seconds: 0.0,
            estimate: None,
            settings: None,
            frozen: false,
        }
    }

    fn measured(more: Option<MoreTimed>) -> Measured {
        Measured {
            partition: PartitionId::new("k=0"),
            bytes: 1_000_000,
            compute_ms: 100.0,
            fixed_ms: 0.0,
            bytes_written: Some(500_000),
            run: true,
            preflight_ms: 0.0,
            more,
            cores: 2,
        }
    }

    #[test]
    fn an_estimate_scales_the_sample_by_bytes_and_costs_what_a_run_moves() {
        let plan = plan_of(&[1_000_000, 3_000_000]);
        let e = estimate(&plan, &measured(None), 2, true, Prices::default());
        // 100 ms per MB: 400 ms of computing over 2 cores, plus the kernel's share of
        // writing and committing (2 x 1.1 ms, 2 MB at 1.5 ms), plus the run's start.
        let want = (LOCAL_START_MS + (400.0 + 2.0 * LOCAL_COMMIT_CPU_MS + 3.0) / 2.0) / 1000.0;
        assert!((e.seconds - want).abs() < 1e-9, "{} vs {want}", e.seconds);
        assert_eq!(
            (e.cost.bytes_read, e.cost.bytes_written, e.cost.backup_bytes),
            (4_000_000, 2_000_000, 4_000_000)
        );
        assert_eq!(e.cost.requests, None, "local disk");
        let s3 = estimate(&plan, &measured(None), 2, false, Prices::default());
        let r = s3.cost.requests.unwrap();
        // Per partition: a listing, the file fetched whole (up to 8 MiB), the old file
        // backed up and the new one copied in, the old one deleted; then the run's own
        // records.
        assert_eq!((r.list, r.get, r.copy, r.delete), (2 * 2 + 2, 2, 4, 2));
        // A larger file is its footer, then its rows.
        let large = plan_of(&[1_000_000, 9 << 20]);
        let r = estimate(&large, &measured(None), 2, false, Prices::default());
        assert_eq!(r.cost.requests.unwrap().get, 1 + 2);
    }

    #[test]
    fn partitions_timed_beside_the_sample_give_their_median_rate() {
        let plan = plan_of(&[1_000_000]);
        // Three partitions like the sample at 50 ms per MB, and one timed on a busy
        // machine at 500: the median is 50.
        let more = MoreTimed {
            partitions: 4,
            bytes: 4_000_000,
            compute_ms: 650.0,
            written: 2_000_000,
            rewritten_bytes: 4_000_000,
            per_byte_ms: 50.0 / 1e6,
        };
        let e = estimate(&plan, &measured(Some(more)), 1, true, Prices::default());
        let want =
            (LOCAL_START_MS + 50.0 + LOCAL_COMMIT_CPU_MS + 0.75).max(LOCAL_FSYNC_MS) / 1000.0;
        assert!((e.seconds - want).abs() < 1e-9, "{} vs {want}", e.seconds);
        assert!(e.method.contains("their median rate"), "{}", e.method);
    }
}
