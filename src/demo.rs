//! The built-in example lake for `backfill demo`: written locally, no download.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};

pub const DAYS: [&str; 7] = [
    "2024-01-01",
    "2024-01-02",
    "2024-01-03",
    "2024-01-04",
    "2024-01-05",
    "2024-01-06",
    "2024-01-07",
];
pub const REGIONS: [&str; 2] = ["eu", "us"];

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.into(),
        error: e,
    }
}

pub fn events_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int32, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, true),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

/// The rows of one partition: deterministic, 150-250 rows.
pub fn events(day_index: usize, region_index: usize) -> RecordBatch {
    let seed = (day_index * 2 + region_index) as i64;
    let n = 150 + ((seed * 37) % 100) as usize;
    let base_id = seed * 1_000;
    let types = ["view", "click", "purchase", "refund"];
    let day_start_us = (1_704_067_200 + day_index as i64 * 86_400) * 1_000_000;
    let ids: Vec<i64> = (0..n as i64).map(|i| base_id + i).collect();
    let users: Vec<i32> = ids.iter().map(|i| ((i * 7919) % 500) as i32).collect();
    let kinds: Vec<&str> = ids.iter().map(|i| types[(i % 7 % 4) as usize]).collect();
    let amounts: Vec<Option<f64>> = ids
        .iter()
        .zip(&kinds)
        .map(|(i, k)| (*k == "purchase" || *k == "refund").then(|| (i % 997) as f64 / 4.0))
        .collect();
    let ts: Vec<i64> = ids
        .iter()
        .map(|i| {
            day_start_us + (i * 86_399_000_000 / (base_id + n as i64)).rem_euclid(86_400_000_000)
        })
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(Int32Array::from(users)),
        Arc::new(StringArray::from(kinds)),
        Arc::new(Float64Array::from(amounts)),
        Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
    ];
    RecordBatch::try_new(events_schema(), columns).expect("demo batch matches its schema")
}

/// Writes `batches` as one snappy Parquet file.
pub fn write_parquet(path: &Path, batches: &[RecordBatch]) -> Result<()> {
    let fs = crate::storage::fs::real();
    if let Some(dir) = path.parent() {
        fs.create_dir_all(dir).map_err(io(dir))?;
    }
    let mut file = Vec::new();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(events_schema);
    let mut writer =
        ArrowWriter::try_new(&mut file, schema, Some(props)).map_err(|e| Error::Io {
            path: path.into(),
            error: std::io::Error::other(e),
        })?;
    for b in batches {
        writer.write(b).map_err(|e| Error::Io {
            path: path.into(),
            error: std::io::Error::other(e),
        })?;
    }
    writer.close().map_err(|e| Error::Io {
        path: path.into(),
        error: std::io::Error::other(e),
    })?;
    fs.write(path, &file).map_err(io(path))
}

/// Writes the example table `events` under `dir` (7 days x 2 regions) and returns its path.
pub fn write_example(dir: &Path) -> Result<PathBuf> {
    let table = dir.join("events");
    if crate::storage::fs::real().exists(&table) {
        crate::storage::fs::real()
            .remove_dir_all(&table)
            .map_err(io(&table))?;
    }
    for (d, day) in DAYS.iter().enumerate() {
        for (r, region) in REGIONS.iter().enumerate() {
            let part = table
                .join(format!("event_date={day}"))
                .join(format!("region={region}"));
            write_parquet(&part.join("part-0.parquet"), &[events(d, r)])?;
        }
    }
    Ok(table)
}

/// What another job might do wrong: duplicate a partition's rows (written as a second
/// file), and lose a partition altogether.
pub fn damage(table: &Path) -> Result<(String, String)> {
    let dup = "event_date=2024-01-03/region=eu";
    let lost = "event_date=2024-01-05/region=us";
    let b = events(2, 0);
    write_parquet(&table.join(dup).join("part-1.parquet"), &[b.slice(0, 40)])?;
    let lost_dir = table.join("event_date=2024-01-05");
    crate::storage::fs::real()
        .remove_dir_all(&lost_dir.join("region=us"))
        .map_err(io(&lost_dir))?;
    Ok((dup.to_string(), lost.to_string()))
}
