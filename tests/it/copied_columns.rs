//! Columns a transform leaves as they are: their column chunks are copied from the source
//! files byte for byte, and the new file has the source's row groups; anything else
//! (moved rows, columns trading places) is encoded from the output.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch};
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::support::{copy_dir, parquet_files, root, run_in, snapshot_json, sql};

/// One row group of a file: its row count and each column's chunk bytes, by name.
struct Group {
    rows: i64,
    chunks: Vec<(String, Vec<u8>)>,
}

fn groups(file: &Path) -> Vec<Group> {
    let bytes = std::fs::read(file).unwrap();
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.clone())).unwrap();
    reader
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| Group {
            rows: rg.num_rows(),
            chunks: rg
                .columns()
                .iter()
                .map(|c| {
                    let (start, len) = c.byte_range();
                    let (start, len) = (start as usize, len as usize);
                    (c.column_path().string(), bytes[start..start + len].to_vec())
                })
                .collect(),
        })
        .collect()
}

/// Rewrites all of `<dir>/t` with `sql_text`; returns the run's JSON report.
fn rewrite(dir: &Path, sql_text: &str) -> serde_json::Value {
    let q = sql(dir, "t.sql", sql_text);
    let out = run_in(dir, &["run", "t", "--sql", &q, "--all", "--json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// `partition -> column -> checksum` of a `snapshot --columns` of `<dir>/t`.
fn column_checksums(
    dir: &Path,
) -> std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>> {
    let s = snapshot_json(dir, "t", &["--columns"]);
    s["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_str().unwrap().to_string(),
                p["columns"].as_object().unwrap().clone(),
            )
        })
        .collect()
}

/// Rewrites one column of a copy of `testdata/<table>` and checks every partition: the
/// other columns' chunks are the source's bytes in the source's row groups (files in
/// name order), and their column checksums are unchanged while `changed`'s is not.
fn one_column_rewritten(table: &str, sql_text: &str, changed: &str) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("testdata").join(table), &dir.path().join("t"));
    let before_sums = column_checksums(dir.path());
    let mut before = std::collections::BTreeMap::new();
    for p in before_sums.keys() {
        let files = parquet_files(&dir.path().join("t").join(p));
        before.insert(
            p.clone(),
            files.iter().flat_map(|f| groups(f)).collect::<Vec<_>>(),
        );
    }
    let report = rewrite(dir.path(), sql_text);
    assert!(
        report["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"] == "rewritten"),
        "{report}"
    );
    let after_sums = column_checksums(dir.path());
    assert_eq!(after_sums.len(), before_sums.len());
    for (p, source) in &before {
        let files = parquet_files(&dir.path().join("t").join(p));
        assert_eq!(files.len(), 1, "{p}: {files:?}");
        let new = groups(&files[0]);
        assert_eq!(
            new.iter().map(|g| g.rows).collect::<Vec<_>>(),
            source.iter().map(|g| g.rows).collect::<Vec<_>>(),
            "{p}: the source's row groups"
        );
        for (g, (n, s)) in new.iter().zip(source).enumerate() {
            for (name, bytes) in &n.chunks {
                let old = &s.chunks.iter().find(|(c, _)| c == name).unwrap().1;
                if name == changed {
                    assert_ne!(bytes, old, "{p} row group {g}: {name} was rewritten");
                } else if !name.contains('.') {
                    assert_eq!(bytes, old, "{p} row group {g}: {name} copied");
                }
            }
        }
        for (column, sum) in &before_sums[p] {
            let after = &after_sums[p][column];
            if column == changed {
                assert_ne!(after, sum, "{p}: {column}");
            } else {
                assert_eq!(after, sum, "{p}: {column} reads back as it was");
            }
        }
    }
}

#[test]
fn unchanged_columns_of_several_files_and_row_groups_are_copied() {
    // pyarrow: two files per partition, row groups of two rows.
    one_column_rewritten(
        "pyarrow_events",
        "SELECT id, user_id, upper(kind) AS kind, amount, score, ok, created FROM source",
        "kind",
    );
}

#[test]
fn unchanged_columns_keep_another_writers_parquet_types() {
    // DuckDB annotates INT64 as Int(64, signed) and writes decimals as INT64, unlike
    // arrow-rs: the copied chunks keep DuckDB's description and still read as before.
    one_column_rewritten(
        "duckdb_events",
        "SELECT id, user_id, upper(kind) AS kind, amount, score, ok, created FROM source",
        "kind",
    );
}

#[test]
fn every_type_family_reads_back_the_same_when_copied() {
    // Nested columns (list, struct, map) are encoded again; the rest are copied. Either
    // way every untouched column's checksum is unchanged.
    one_column_rewritten(
        "pyarrow_types",
        "SELECT CAST(i8 / 2 AS TINYINT) AS i8, u64, f32, dec38, ts_ms_utc, ts_ns, t_us, \
         large_s, dict_s, bin, fixed, list_i, st, mp FROM source",
        "i8",
    );
}

fn pairs(a: &[i64], b: &[i64]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("a", Arc::new(Int64Array::from(a.to_vec())) as _),
        ("b", Arc::new(Int64Array::from(b.to_vec())) as _),
    ])
    .unwrap()
}

fn read_pairs(partition: &Path) -> Vec<(i64, i64)> {
    let files = parquet_files(partition);
    assert_eq!(files.len(), 1);
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
        std::fs::File::open(&files[0]).unwrap(),
        1024,
    )
    .unwrap();
    let mut out = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let col = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone()
        };
        let (a, bb) = (col("a"), col("b"));
        out.extend((0..b.num_rows()).map(|i| (a.value(i), bb.value(i))));
    }
    out
}

#[test]
fn columns_that_trade_places_and_rows_that_move_are_not_copied() {
    let dir = tempfile::tempdir().unwrap();
    let partition = dir.path().join("t/k=1");
    std::fs::create_dir_all(&partition).unwrap();
    // Row groups of two rows, so that a moved row crosses row groups.
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(2))
        .build();
    let batch = pairs(&[1, 2, 3], &[10, 20, 30]);
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(partition.join("a.parquet")).unwrap(),
        batch.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    rewrite(dir.path(), "SELECT b AS a, a AS b FROM source");
    assert_eq!(read_pairs(&partition), [(10, 1), (20, 2), (30, 3)]);
    // Rows in another order alone leave the checksum, and so the partition, as it was.
    rewrite(
        dir.path(),
        "SELECT a, b * 10 AS b FROM source ORDER BY a DESC",
    );
    assert_eq!(read_pairs(&partition), [(30, 30), (20, 20), (10, 10)]);
    rewrite(dir.path(), "SELECT a, b FROM source WHERE a <> 20");
    assert_eq!(read_pairs(&partition), [(30, 30), (10, 10)]);
    rewrite(dir.path(), "SELECT a, b + 1 AS b FROM source");
    assert_eq!(read_pairs(&partition), [(30, 31), (10, 11)]);
}

#[test]
fn files_that_describe_a_column_differently_get_it_encoded() {
    // One file from DuckDB (INT64 annotated as a 64-bit integer, decimals as INT64) and
    // one from arrow-rs with the same rows (plain INT64, decimals as arrow-rs writes
    // them): chunks cannot be copied across both descriptions, so those columns are
    // encoded; the rows must all be there, unchanged but for `kind`.
    let dir = tempfile::tempdir().unwrap();
    let partition = dir.path().join("t/event_date=2024-01-01/region=eu");
    copy_dir(
        &root().join("testdata/duckdb_events/event_date=2024-01-01/region=eu"),
        &partition,
    );
    let duck = partition.join("data_0.parquet");
    let batches: Vec<RecordBatch> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
            std::fs::File::open(&duck).unwrap(),
            1024,
        )
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(partition.join("data_1.parquet")).unwrap(),
        batches[0].schema(),
        None,
    )
    .unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
    let id = |f: &Path| {
        let r = SerializedFileReader::new(std::fs::File::open(f).unwrap()).unwrap();
        let descr = r.metadata().file_metadata().schema_descr_ptr();
        descr.column(0).self_type().clone()
    };
    let (duck_id, arrow_id) = (id(&duck), id(&partition.join("data_1.parquet")));
    assert_ne!(duck_id, arrow_id);
    let before = column_checksums(dir.path());
    let report = rewrite(
        dir.path(),
        "SELECT id, user_id, upper(kind) AS kind, amount, score, ok, created FROM source",
    );
    let p = &report["partitions"][0];
    assert_eq!(p["status"], "rewritten", "{report}");
    assert_eq!(p["rows_after"], p["rows_before"]);
    let after = column_checksums(dir.path());
    let key = "event_date=2024-01-01/region=eu";
    for (column, sum) in &before[key] {
        if column == "kind" {
            assert_ne!(&after[key][column], sum);
        } else {
            assert_eq!(&after[key][column], sum, "{column}");
        }
    }
    let files = parquet_files(&partition);
    assert_eq!(files.len(), 1);
    // `id` was encoded (the files describe it differently, so no chunk is copied), and
    // described as the first source file describes it.
    assert_eq!(id(&files[0]), duck_id);
}
