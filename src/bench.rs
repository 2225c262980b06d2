//! Synthetic tables and throughput measurement for `backfill bench`.
//!
//! A bench never touches a user's table: it generates one, or copies a local table into a
//! scratch folder, then snapshots it and runs a rewrite there.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::journal::Phases;
use crate::run::RunReport;

/// Shape of a generated table.
#[derive(Debug, Clone, Serialize)]
pub struct SyntheticSpec {
    pub rows: u64,
    pub partitions: usize,
    /// Data columns besides `id` (cycling int64, float64, string, date, decimal(15,2)).
    pub columns: usize,
    /// 0 = equal partitions; s > 0: partition i gets a share proportional to 1/(i+1)^s.
    pub skew: f64,
    /// Fraction of NULLs in every data column.
    pub nulls: f64,
}

fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

const WORDS: [&str; 12] = [
    "quick",
    "final",
    "deposits",
    "haggle",
    "furiously",
    "regular",
    "accounts",
    "sleep",
    "carefully",
    "ironic",
    "pending",
    "packages",
];

/// Writes the synthetic table `dir/t` (days from 2024-01-01 as partitions) and returns it.
pub fn generate(dir: &Path, spec: &SyntheticSpec) -> Result<PathBuf> {
    let table = dir.join("t");
    if crate::storage::fs::real().exists(&table) {
        crate::storage::fs::real()
            .remove_dir_all(&table)
            .map_err(|e| Error::Io {
                path: table.clone(),
                error: e,
            })?;
    }
    let weights: Vec<f64> = (0..spec.partitions.max(1))
        .map(|i| 1.0 / ((i + 1) as f64).powf(spec.skew))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    for c in 0..spec.columns {
        let dt = match c % 5 {
            0 => DataType::Int64,
            1 => DataType::Float64,
            2 => DataType::Utf8,
            3 => DataType::Date32,
            _ => DataType::Decimal128(15, 2),
        };
        fields.push(Field::new(format!("c{c}"), dt, true));
    }
    let schema = Arc::new(Schema::new(fields));
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next_id = 0i64;
    for (p, w) in weights.iter().enumerate() {
        let n = ((spec.rows as f64) * w / total).round() as usize;
        let day = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("date")
            + chrono::Duration::days(p as i64);
        let mut batches = Vec::new();
        let mut left = n;
        while left > 0 {
            let m = left.min(65_536);
            left -= m;
            let mut cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
                next_id..next_id + m as i64,
            ))];
            next_id += m as i64;
            for (c, field) in schema.fields().iter().enumerate().skip(1) {
                let null = |s: &mut u64| (rng(s) % 10_000) as f64 / 10_000.0 < spec.nulls;
                let col: ArrayRef = match field.data_type() {
                    DataType::Int64 => Arc::new(Int64Array::from_iter((0..m).map(|_| {
                        (!null(&mut state)).then(|| (rng(&mut state) % 1_000_000) as i64)
                    }))),
                    DataType::Float64 => Arc::new(Float64Array::from_iter((0..m).map(|_| {
                        (!null(&mut state)).then(|| (rng(&mut state) % 100_000) as f64 / 7.0)
                    }))),
                    DataType::Utf8 => Arc::new(StringArray::from_iter((0..m).map(|_| {
                        (!null(&mut state)).then(|| {
                            let r = rng(&mut state);
                            format!(
                                "{} {} {} {}",
                                WORDS[(r % 12) as usize],
                                WORDS[(r / 12 % 12) as usize],
                                WORDS[(r / 144 % 12) as usize],
                                r % 9973 + c as u64
                            )
                        })
                    }))),
                    DataType::Date32 => Arc::new(Date32Array::from_iter((0..m).map(|_| {
                        (!null(&mut state)).then(|| 19_000 + (rng(&mut state) % 1_000) as i32)
                    }))),
                    _ => Arc::new(
                        Decimal128Array::from_iter((0..m).map(|_| {
                            (!null(&mut state)).then(|| (rng(&mut state) % 10_000_000) as i128)
                        }))
                        .with_precision_and_scale(15, 2)
                        .expect("valid decimal"),
                    ),
                };
                cols.push(col);
            }
            batches.push(
                RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::Arrow {
                    context: "generating benchmark rows".into(),
                    error: e,
                })?,
            );
        }
        let file = table.join(format!("day={day}")).join("part-0.parquet");
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(schema.clone()));
        }
        crate::demo::write_parquet(&file, &batches)?;
    }
    Ok(table)
}

/// Copies a local table folder into `dir/t` (the bench rewrites the copy, never the original).
pub fn copy_table(from: &Path, dir: &Path) -> Result<PathBuf> {
    let fs = crate::storage::fs::real();
    fn copy(fs: &dyn crate::storage::fs::Fs, from: &Path, to: &Path) -> std::io::Result<()> {
        fs.create_dir_all(to)?;
        for e in fs.read_dir(from)? {
            let target = to.join(&e.name);
            if fs.is_dir(&e.path)? {
                copy(fs, &e.path, &target)?;
            } else {
                fs.copy(&e.path, &target)?;
            }
        }
        Ok(())
    }
    let table = dir.join("t");
    if fs.exists(&table) {
        fs.remove_dir_all(&table).map_err(|e| Error::Io {
            path: table.clone(),
            error: e,
        })?;
    }
    copy(fs.as_ref(), from, &table).map_err(|e| Error::Io {
        path: from.into(),
        error: e,
    })?;
    Ok(table)
}

/// A transform that changes every row: `upper()` of the first string column, else `+ 1`
/// on the first integer column other than the partition keys.
pub fn default_sql(schema: &Schema) -> Result<String> {
    let target = schema
        .fields()
        .iter()
        .find(|f| {
            matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
        })
        .map(|f| (f.name().clone(), true))
        .or_else(|| {
            schema
                .fields()
                .iter()
                .find(|f| f.data_type().is_integer())
                .map(|f| (f.name().clone(), false))
        })
        .ok_or_else(|| {
            Error::Usage(
                "the table has no string or integer column for the default transform; pass --sql"
                    .into(),
            )
        })?;
    let cols: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let q = format!("\"{}\"", f.name().replace('"', "\"\""));
            if *f.name() == target.0 {
                if target.1 {
                    format!("upper({q}) AS {q}")
                } else {
                    format!("{q} + 1 AS {q}")
                }
            } else {
                q
            }
        })
        .collect();
    Ok(format!("SELECT {} FROM source", cols.join(", ")))
}

/// [`default_sql`] for a table, from the schema of its first data file.
pub async fn default_sql_of(table: &crate::table::Table) -> Result<String> {
    let first = table
        .partitions
        .iter()
        .flat_map(|p| p.files.first())
        .next()
        .ok_or_else(|| Error::Usage("the table has no data files".into()))?;
    let builder = crate::table::reader::open_footer(&table.location, first, "").await?;
    default_sql(&crate::table::reader::logical_schema(&builder))
}

/// The rewrite a bench runs: every given partition, `jobs` at once, oldest first.
pub fn rewrite_request(sql: String, jobs: usize) -> crate::run::RunRequest {
    crate::run::RunRequest {
        sql,
        selection: Default::default(),
        all: true,
        jobs,
        order: crate::plan::Order::OldestFirst,
        on_empty: crate::plan::OnEmpty::Keep,
        allow_schema_change: false,
        allow_nondeterministic: false,
        tables: vec![],
        lease: crate::lock::LeaseTimes::default(),
        progress: None,
        preflight_partition: None,
        slice_above_mib: crate::plan::SLICE_ABOVE_MIB,
    }
}

/// Throughput of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseRate {
    pub phase: String,
    /// Seconds spent in the phase, summed over jobs.
    pub seconds: f64,
    pub rows_per_second: f64,
    pub mb_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub table: String,
    pub generated: Option<SyntheticSpec>,
    pub partitions: usize,
    pub rows: u64,
    pub bytes: u64,
    pub jobs: usize,
    pub snapshot_seconds: f64,
    pub snapshot_rows_per_second: f64,
    pub run_seconds: f64,
    pub run_rows_per_second: f64,
    pub phases: Vec<PhaseRate>,
    pub partition_ms_p50: f64,
    pub partition_ms_p95: f64,
    /// The checksums' part of the computing phases (read, transform, checksum, encode),
    /// from 0 to 1: what checksums add to a run where storage is not the limit.
    pub checksum_share: f64,
    pub peak_rss_mb: f64,
    /// Partitions of the rewrite that failed or were not reached (the bench exits 1).
    pub failed: usize,
}

/// Peak resident memory of this process, from /proc (Linux), in MiB.
pub fn peak_rss_mb() -> f64 {
    crate::storage::fs::real()
        .read(Path::new("/proc/self/status"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Builds the report from a snapshot's duration and a run's report.
pub fn report(
    table: &str,
    generated: Option<SyntheticSpec>,
    bytes: u64,
    jobs: usize,
    snapshot: (f64, u64),
    run: &RunReport,
) -> BenchReport {
    let rows = run.summary.rows_before;
    let mb = bytes as f64 / 1e6;
    let Phases {
        read_ms,
        transform_ms,
        checksum_ms,
        encode_ms,
        write_ms,
        commit_ms,
    } = run.phases.clone();
    let phases = [
        ("read", read_ms),
        ("transform", transform_ms),
        ("checksum", checksum_ms),
        ("encode", encode_ms),
        ("write", write_ms),
        ("commit", commit_ms),
    ]
    .into_iter()
    .map(|(name, ms)| {
        let s = ms / 1000.0;
        PhaseRate {
            phase: name.into(),
            seconds: s,
            rows_per_second: if s > 0.0 { rows as f64 / s } else { 0.0 },
            mb_per_second: if s > 0.0 { mb / s } else { 0.0 },
        }
    })
    .collect();
    let computing = read_ms + transform_ms + checksum_ms + encode_ms;
    let checksum_share = if computing > 0.0 {
        checksum_ms / computing
    } else {
        0.0
    };
    let mut durations: Vec<f64> = run.partitions.iter().map(|p| p.duration_ms).collect();
    durations.sort_by(|a, b| a.total_cmp(b));
    let run_s = run.wall_ms / 1000.0;
    BenchReport {
        table: table.into(),
        generated,
        partitions: run.partitions.len(),
        rows,
        bytes,
        jobs,
        snapshot_seconds: snapshot.0,
        snapshot_rows_per_second: if snapshot.0 > 0.0 {
            snapshot.1 as f64 / snapshot.0
        } else {
            0.0
        },
        run_seconds: run_s,
        run_rows_per_second: if run_s > 0.0 {
            rows as f64 / run_s
        } else {
            0.0
        },
        phases,
        partition_ms_p50: percentile(&durations, 0.5),
        partition_ms_p95: percentile(&durations, 0.95),
        checksum_share,
        peak_rss_mb: peak_rss_mb(),
        failed: run.summary.failed + run.summary.skipped,
    }
}
