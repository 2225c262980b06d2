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
    /// Estimated wall time of a run, from rows and the measured rewrite rate.
    pub estimated_seconds: f64,
    /// The run's settings (every journalled plan has them).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub settings: Option<RunSettings>,
    /// Frozen by `plan --freeze` for workers (`run --run ID --partition P`): each
    /// partition's records are in its own journal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frozen: bool,
}

/// Rows a run rewrites per second per job, for a rough estimate of its wall time
/// (the order of lineitem SF1 by month in docs/PERFORMANCE.md).
pub const ROWS_PER_SECOND_PER_JOB: f64 = 1_000_000.0;

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
    let estimated_seconds = totals.rows as f64 / (ROWS_PER_SECOND_PER_JOB * jobs.max(1) as f64)
        + partitions.len() as f64 * 0.002;
    Ok(Plan {
        run_id: run_id.to_string(),
        table: table.location.display.clone(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        selection: selection.clone(),
        keys: table.keys.clone(),
        partitions,
        totals,
        estimated_seconds,
        settings: None,
        frozen: false,
    })
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
        })
    }
}
