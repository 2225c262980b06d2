//! A partition rewritten a slice of rows at a time (`run --slice-above MIB`): the same
//! rows, in the same order, with the same checksums as when it is rewritten whole; SQL
//! that needs the whole partition at once is never sliced; a partition whose rows do not
//! change, or that the SQL empties, is left as it was.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::support::{copy_dir, file_hashes, outcome, parquet_files, run_json, snapshot_json, sql};

/// One row as written and read back: `a`, `s`, and `x`'s bits (NaN and -0.0 compare).
type Row = (i64, Option<String>, u64);
/// What a SQL does to one row (`None`: deleted).
type RowFix = fn(&Row) -> Option<Row>;
/// What a SQL does to a partition's rows.
type PartitionFix = fn(&[Row]) -> Vec<Row>;
/// A row group: its rows, and each column's chunk bytes by name.
type Group = (i64, Vec<(String, Vec<u8>)>);

fn batch(rows: &[Row], order: &[&str]) -> RecordBatch {
    let a: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0)));
    let s: ArrayRef = Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1.clone())));
    let x: ArrayRef = Arc::new(Float64Array::from_iter_values(
        rows.iter().map(|r| f64::from_bits(r.2)),
    ));
    let col = |n: &str| match n {
        "a" => ("a", a.clone()),
        "s" => ("s", s.clone()),
        _ => ("x", x.clone()),
    };
    RecordBatch::try_from_iter(order.iter().map(|n| col(n))).unwrap()
}

/// The rows of partition `d`: `a` from `d * 100_000`, NULL `s` every 7th row, NaN and
/// -0.0 among the `x`.
fn source_rows(d: i64) -> Vec<Row> {
    (0..12_000)
        .map(|i| {
            let a = d * 100_000 + i;
            let s = (i % 7 != 0).then(|| format!("row {i} of day {d}"));
            let x = match i % 5 {
                0 => f64::NAN,
                1 => -0.0,
                _ => i as f64 / 3.0,
            };
            (a, s, x.to_bits())
        })
        .collect()
}

/// Table `t` in `dir`: two days, each three files (5,000, 5,000 and 2,000 rows, the
/// second with its columns in another order) in row groups of 1,500 rows, as arrow-rs
/// writes them (with a page index).
fn table(dir: &Path) -> PathBuf {
    table_with(dir, true)
}

/// [`table`]; without `page_index`, the files have none (as DuckDB writes them), and a
/// sliced rewrite copies the chunks of the columns it passes through.
fn table_with(dir: &Path, page_index: bool) -> PathBuf {
    let t = dir.join("t");
    for d in 1..=2 {
        let rows = source_rows(d);
        let folder = t.join(format!("day=2024-01-0{d}"));
        std::fs::create_dir_all(&folder).unwrap();
        let files: [(&[Row], &[&str]); 3] = [
            (&rows[..5_000], &["a", "s", "x"]),
            (&rows[5_000..10_000], &["s", "x", "a"]),
            (&rows[10_000..], &["a", "s", "x"]),
        ];
        for (f, (part, order)) in files.iter().enumerate() {
            let b = batch(part, order);
            let mut props = WriterProperties::builder().set_max_row_group_row_count(Some(1_500));
            if !page_index {
                props = props
                    .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Chunk)
                    .set_offset_index_disabled(true);
            }
            let props = props.build();
            let file = std::fs::File::create(folder.join(format!("part-{f}.parquet"))).unwrap();
            let mut w = ArrowWriter::try_new(file, b.schema(), Some(props)).unwrap();
            w.write(&b).unwrap();
            w.close().unwrap();
        }
    }
    t
}

/// Every row of every file of `partition`, in file name order, as the parquet crate reads
/// them.
fn read_rows(partition: &Path) -> Vec<Row> {
    let mut out = Vec::new();
    for f in parquet_files(partition) {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
            std::fs::File::open(&f).unwrap(),
            1024,
        )
        .unwrap();
        for b in reader {
            let b = b.unwrap();
            let col = |n: &str| b.column_by_name(n).unwrap().clone();
            let a = col("a");
            let a = a.as_any().downcast_ref::<Int64Array>().unwrap();
            let s = col("s");
            let s = s.as_any().downcast_ref::<StringArray>().unwrap();
            let x = col("x");
            let x = x.as_any().downcast_ref::<Float64Array>().unwrap();
            out.extend((0..b.num_rows()).map(|i| {
                (
                    a.value(i),
                    (!s.is_null(i)).then(|| s.value(i).to_string()),
                    x.value(i).to_bits(),
                )
            }));
        }
    }
    out
}

/// Each row group of each file of `partition` (in name order): its rows and each
/// column's chunk bytes, by name.
fn chunks(partition: &Path) -> Vec<Group> {
    let mut out = Vec::new();
    for f in parquet_files(partition) {
        let bytes = std::fs::read(&f).unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.clone())).unwrap();
        for rg in reader.metadata().row_groups() {
            let cols = rg
                .columns()
                .iter()
                .map(|c| {
                    let (at, len) = c.byte_range();
                    let chunk = bytes[at as usize..(at + len) as usize].to_vec();
                    (c.column_path().string(), chunk)
                })
                .collect();
            out.push((rg.num_rows(), cols));
        }
    }
    out
}

/// The row counts of the row groups of the one file in `partition`.
fn row_groups(partition: &Path) -> Vec<i64> {
    let files = parquet_files(partition);
    assert_eq!(files.len(), 1, "{files:?}");
    let reader = SerializedFileReader::new(std::fs::File::open(&files[0]).unwrap()).unwrap();
    reader
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| rg.num_rows())
        .collect()
}

/// `run TABLE --sql SQL --all --json --slice-above 0 EXTRA...` in `dir`.
fn run_sliced(dir: &Path, table: &str, sql: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "run",
        table,
        "--sql",
        sql,
        "--all",
        "--json",
        "--slice-above",
        "0",
    ];
    args.extend(extra);
    run_json(dir, &args)
}

/// A snapshot of `<dir>/t` finds the rows and checksums the run reported.
fn snapshot_agrees(dir: &Path, outcome: &[(String, String, u64, String, u64)]) {
    let after = snapshot_json(dir, "t", &[]);
    for (p, _, rows, checksum, _) in outcome {
        let s = after["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["partition"] == p.as_str())
            .unwrap();
        assert_eq!(
            (s["rows"].as_u64().unwrap(), s["checksum"].as_str().unwrap()),
            (*rows, checksum.as_str()),
            "{p}: a snapshot of the new file"
        );
    }
}

#[test]
fn a_partition_rewritten_a_slice_at_a_time_holds_what_a_whole_rewrite_holds() {
    let fixes: [(&str, RowFix); 3] = [
        ("SELECT a, upper(s) AS s, x FROM source", |r| {
            Some((r.0, r.1.as_ref().map(|s| s.to_uppercase()), r.2))
        }),
        // Rows deleted here and there: slices give fewer rows than they read.
        (
            "SELECT a, s, x * 2 AS x FROM source WHERE a % 7 <> 3",
            |r| (r.0 % 7 != 3).then(|| (r.0, r.1.clone(), (f64::from_bits(r.2) * 2.0).to_bits())),
        ),
        // Only the last file's rows are kept: the first slices give no rows at all.
        ("SELECT * FROM source WHERE a % 100000 >= 10500", |r| {
            (r.0 % 100_000 >= 10_500).then(|| r.clone())
        }),
    ];
    for (text, fix) in fixes {
        let work = tempfile::tempdir().unwrap();
        let t = table(work.path());
        copy_dir(&t, &work.path().join("whole"));
        let q = sql(work.path(), "f.sql", text);
        let sliced = run_sliced(work.path(), "t", &q, &[]);
        let whole = run_json(
            work.path(),
            &["run", "whole", "--sql", &q, "--all", "--json"],
        );
        // The preflight checks a sliced partition on its first slice: the first file's
        // first row group.
        assert_eq!(sliced["preflight"]["sample"]["rows"], 1_500, "{text}");
        assert_eq!(sliced["preflight"]["sample"]["same"], true, "{text}");
        assert_eq!(whole["preflight"]["sample"]["rows"], 12_000, "{text}");
        let (sliced, whole) = (outcome(&sliced), outcome(&whole));
        for ((p, status, rows, checksum, slices), w) in sliced.iter().zip(&whole) {
            assert_eq!(status, "rewritten", "{text}: {p}");
            // 12,000 rows in row groups of 1,500; a file's last one, of 500, goes with the
            // next file's first.
            assert_eq!(*slices, 8, "{text}: {p}");
            assert_eq!(w.4, 0, "{text}: {p}: the default is whole");
            assert_eq!(
                (status, rows, checksum),
                (&w.1, &w.2, &w.3),
                "{text}: {p}: as rewritten whole"
            );
        }
        snapshot_agrees(work.path(), &sliced);
        for d in 1..=2 {
            let p = format!("day=2024-01-0{d}");
            let want: Vec<Row> = source_rows(d).iter().filter_map(fix).collect();
            let got = read_rows(&t.join(&p));
            assert_eq!(got.len(), want.len(), "{text}: {p}");
            assert!(got == want, "{text}: {p}: rows or their order differ");
            assert_eq!(got, read_rows(&work.path().join("whole").join(&p)));
            // Row groups as large as the largest source one, the last one shorter.
            let groups = row_groups(&t.join(&p));
            let (last, full) = groups.split_last().unwrap();
            assert!(full.iter().all(|n| *n == 1_500), "{text}: {p}: {groups:?}");
            assert!(*last > 0 && *last <= 1_500, "{text}: {p}: {groups:?}");
            assert_eq!(groups.iter().sum::<i64>() as usize, want.len());
        }
    }
}

#[test]
fn sql_that_needs_the_whole_partition_is_not_sliced() {
    let work = tempfile::tempdir().unwrap();
    let t = table(work.path());
    let cases: [(&str, PartitionFix); 4] = [
        // A window over all the partition's rows: numbered 1..12,000 across files.
        (
            "SELECT CAST(row_number() OVER (ORDER BY a) AS BIGINT) AS a, s, x FROM source",
            |rows| {
                rows.iter()
                    .enumerate()
                    .map(|(i, r)| (i as i64 + 1, r.1.clone(), r.2))
                    .collect()
            },
        ),
        // A subquery over all of them: the rows above the partition's mean.
        (
            "SELECT * FROM source WHERE a > (SELECT avg(a) FROM source)",
            |rows| {
                let mean = rows.iter().map(|r| r.0 as f64).sum::<f64>() / rows.len() as f64;
                rows.iter().filter(|r| r.0 as f64 > mean).cloned().collect()
            },
        ),
        // An order over all of them (rows that only move would leave the checksum).
        (
            "SELECT a, upper(s) AS s, x FROM source ORDER BY a DESC",
            |rows| {
                rows.iter()
                    .rev()
                    .map(|r| (r.0, r.1.as_ref().map(|s| s.to_uppercase()), r.2))
                    .collect()
            },
        ),
        // A limit over all of them.
        ("SELECT * FROM source ORDER BY a LIMIT 10", |rows| {
            rows[..10].to_vec()
        }),
    ];
    for (text, want) in cases {
        copy_dir(&t, &work.path().join("c"));
        let q = sql(work.path(), "f.sql", text);
        let report = run_sliced(work.path(), "c", &q, &[]);
        for (p, status, _, _, slices) in outcome(&report) {
            assert_eq!((status.as_str(), slices), ("rewritten", 0), "{text}: {p}");
        }
        for d in 1..=2 {
            let p = format!("day=2024-01-0{d}");
            let got = read_rows(&work.path().join("c").join(&p));
            assert!(got == want(&source_rows(d)), "{text}: {p}");
        }
        std::fs::remove_dir_all(work.path().join("c")).unwrap();
    }
}

#[test]
fn a_sliced_partition_that_does_not_change_or_is_emptied_keeps_every_byte() {
    let work = tempfile::tempdir().unwrap();
    let t = table(work.path());
    let before = file_hashes(&t);
    let same = sql(work.path(), "same.sql", "SELECT s, x, a FROM source");
    let report = run_sliced(work.path(), "t", &same, &[]);
    for (p, status, rows, _, slices) in outcome(&report) {
        assert_eq!((status.as_str(), rows), ("unchanged", 12_000), "{p}");
        assert_eq!(slices, 8, "{p}");
    }
    let none = sql(work.path(), "none.sql", "SELECT * FROM source WHERE a < 0");
    let report = run_sliced(work.path(), "t", &none, &["--on-empty", "keep"]);
    for p in report["partitions"].as_array().unwrap() {
        assert_eq!(p["status"], "kept", "{p}");
    }
    let after = file_hashes(&t);
    let data = |h: &std::collections::BTreeMap<String, String>| {
        h.iter()
            .filter(|(f, _)| f.ends_with(".parquet"))
            .map(|(f, h)| (f.clone(), h.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(data(&after), data(&before), "the data files are untouched");
    let report = run_sliced(work.path(), "t", &none, &["--on-empty", "delete"]);
    for p in report["partitions"].as_array().unwrap() {
        assert_eq!(p["status"], "deleted", "{p}");
    }
    for d in 1..=2 {
        assert!(read_rows(&t.join(format!("day=2024-01-0{d}"))).is_empty());
    }
}

#[test]
fn a_sliced_partition_copies_the_chunks_of_the_columns_it_passes_through() {
    // Files without a page index, as DuckDB writes them: `a` and `x` pass through and are
    // copied byte for byte, in the source's row groups one for one; `s` is encoded.
    let work = tempfile::tempdir().unwrap();
    let t = table_with(work.path(), false);
    let before: Vec<_> = (1..=2)
        .map(|d| chunks(&t.join(format!("day=2024-01-0{d}"))))
        .collect();
    let q = sql(
        work.path(),
        "f.sql",
        "SELECT a, upper(s) AS s, x FROM source",
    );
    let report = run_sliced(work.path(), "t", &q, &[]);
    for (p, status, rows, _, slices) in outcome(&report) {
        // Row groups of 1,500 rows; the 500 rows ending a file go with the next 1,500.
        assert_eq!(
            (status.as_str(), rows, slices),
            ("rewritten", 12_000, 8),
            "{p}"
        );
    }
    for d in 1..=2i64 {
        let p = t.join(format!("day=2024-01-0{d}"));
        let after = chunks(&p);
        let source = &before[d as usize - 1];
        assert_eq!(
            after.iter().map(|g| g.0).collect::<Vec<_>>(),
            source.iter().map(|g| g.0).collect::<Vec<_>>(),
            "day {d}: the source's row groups"
        );
        for (g, ((_, new), (_, old))) in after.iter().zip(source).enumerate() {
            for (name, bytes) in new {
                let was = &old.iter().find(|(c, _)| c == name).unwrap().1;
                if name == "s" {
                    assert_ne!(bytes, was, "day {d} row group {g}: s is encoded");
                } else {
                    assert_eq!(bytes, was, "day {d} row group {g}: {name} is copied");
                }
            }
        }
        let want: Vec<Row> = source_rows(d)
            .iter()
            .map(|r| (r.0, r.1.as_ref().map(|s| s.to_uppercase()), r.2))
            .collect();
        assert!(read_rows(&p) == want, "day {d}: rows or their order differ");
    }
    snapshot_agrees(work.path(), &outcome(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_rewritten_while_it_is_read_is_refused() {
    // A partition read a slice at a time reads its files range by range: another writer
    // putting a file back in between (here its very bytes, a new version all the same)
    // must not go unnoticed.
    let work = tempfile::tempdir().unwrap();
    let t = table(work.path());
    let loc = backfill::storage::Location::open(t.to_str().unwrap()).unwrap();
    let table = backfill::table::discover(&loc, &Default::default())
        .await
        .unwrap();
    let partition = &table.partitions[0];
    let mut rows = backfill::table::read::Streaming::open(&loc, partition)
        .await
        .unwrap();
    assert!(rows.next().await.unwrap().is_some());
    let file = t.join(partition.id.as_str()).join("part-0.parquet");
    let bytes = std::fs::read(&file).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&file, bytes).unwrap();
    let err = loop {
        match rows.next().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the partition was read to its end"),
            Err(e) => break e,
        }
    };
    assert!(
        err.to_string()
            .contains("part-0.parquet was rewritten while it was read"),
        "{err}"
    );
}
