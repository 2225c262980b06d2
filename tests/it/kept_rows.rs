//! A fix that only deletes rows (`SELECT ... FROM source WHERE ...`, bare columns) is
//! run as a row filter, and its after-checksum is summed from the kept rows' hashes taken
//! when they were read. Its rows and checksums must be exactly those of a table holding
//! the rows the fix keeps, written independently, whether or not a partition's files
//! let that shortcut apply.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};

use crate::support::{put, run_in, snapshot_json, sql};

/// `a`, `s`, and `x`'s bits (NaN and -0.0 compare).
type Row = (i64, Option<String>, Option<u64>);

/// The rows of day `d`: NULL `s` every 7th row, NULL `x` every 11th, NaN and -0.0
/// among the others.
fn source_rows(d: i64) -> Vec<Row> {
    (0..3_000)
        .map(|i| {
            let s = (i % 7 != 0).then(|| format!("row {i} of day {d}"));
            let x = (i % 11 != 0).then(|| match i % 5 {
                0 => f64::NAN,
                1 => -0.0,
                _ => i as f64 / 3.0,
            });
            (d * 10_000 + i, s, x.map(f64::to_bits))
        })
        .collect()
}

/// `a` as Int64, or as Int32 (the same logical type, another Arrow type) with `narrow`.
fn batch(rows: &[Row], narrow: bool) -> RecordBatch {
    let a: ArrayRef = if narrow {
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.0 as i32),
        ))
    } else {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0)))
    };
    let s: ArrayRef = Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1.clone())));
    let x: ArrayRef = Arc::new(Float64Array::from_iter(
        rows.iter().map(|r| r.2.map(f64::from_bits)),
    ));
    RecordBatch::try_from_iter([("a", a), ("s", s), ("x", x)]).unwrap()
}

/// Days 1 and 2 as two files each; day 3's second file holds `a` as Int32, so its rows
/// are cast to the partition's types when read and the shortcut does not apply.
fn table(dir: &Path, name: &str, fix: fn(&Row) -> bool) -> PathBuf {
    let t = dir.join(name);
    for d in 1..=3 {
        let rows: Vec<Row> = source_rows(d).into_iter().filter(fix).collect();
        let (first, second) = rows.split_at(rows.len() / 2);
        let partition = format!("day=2024-01-0{d}");
        put(&t, &partition, "part-0.parquet", &batch(first, false));
        put(&t, &partition, "part-1.parquet", &batch(second, d == 3));
    }
    t
}

fn run_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = run_in(dir, args);
    assert_eq!(out.code, 0, "{args:?}: {}{}", out.stdout, out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// `(partition, status, rows_after, checksum_after)` of each partition of a run.
fn outcome(report: &serde_json::Value) -> Vec<(String, String, u64, String)> {
    report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
                p["rows_after"].as_u64().unwrap(),
                p["checksum_after"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_fix_that_only_deletes_rows_gives_the_checksums_of_the_rows_it_keeps() {
    // (SQL, which rows it keeps). NULL conditions drop the row, as in any SQL engine.
    type Keeps = fn(&Row) -> bool;
    let fixes: [(&str, Keeps); 3] = [
        ("SELECT * FROM source WHERE x > 100 OR s IS NULL", |r| {
            let x = r.2.map(f64::from_bits);
            // NaN sorts above every number in DataFusion, as in Postgres.
            x.is_some_and(|x| x.is_nan() || x > 100.0) || r.1.is_none()
        }),
        ("SELECT x, s, a FROM source WHERE a % 3 <> 0", |r| {
            r.0 % 3 != 0
        }),
        ("SELECT a, s, x FROM source WHERE s LIKE '%9 of%'", |r| {
            r.1.as_deref().is_some_and(|s| s.contains("9 of"))
        }),
    ];
    // Whole, and a slice (a source row group) at a time: day 3's slices of its first
    // file take the shortcut, those of its second cannot.
    for ((text, keeps), slice_above) in fixes.iter().flat_map(|f| [(*f, "16"), (*f, "0")]) {
        let dir = tempfile::tempdir().unwrap();
        table(dir.path(), "t", |_| true);
        let want = table(dir.path(), "want", keeps);
        let f = sql(dir.path(), "f.sql", text);
        let report = run_json(
            dir.path(),
            &[
                "run",
                "t",
                "--sql",
                &f,
                "--all",
                "--json",
                "--slice-above",
                slice_above,
            ],
        );
        let slices: Vec<u64> = report["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.get("slices").and_then(|s| s.as_u64()).unwrap_or(0))
            .collect();
        let want_slices = if slice_above == "0" { 2 } else { 0 };
        assert_eq!(slices, [want_slices; 3], "{text}");
        let expected = snapshot_json(dir.path(), want.to_str().unwrap(), &[]);
        let expected: Vec<(String, String, u64, String)> = expected["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["partition"].as_str().unwrap().to_string(),
                    "rewritten".to_string(),
                    p["rows"].as_u64().unwrap(),
                    p["checksum"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let kept: Vec<u64> = (1..=3)
            .map(|d| source_rows(d).iter().filter(|r| keeps(r)).count() as u64)
            .collect();
        assert_eq!(
            expected.iter().map(|e| e.2).collect::<Vec<_>>(),
            kept,
            "{text}"
        );
        assert!(
            kept.iter().all(|k| *k > 0 && *k < 3_000),
            "{text}: {kept:?}"
        );
        assert_eq!(outcome(&report), expected, "{text}");
        // The files written hold those rows: a reading of them gives the same checksums.
        let after = snapshot_json(dir.path(), "t", &[]);
        assert_eq!(
            crate::support::checksums(&after),
            crate::support::checksums(&snapshot_json(dir.path(), want.to_str().unwrap(), &[])),
            "{text}"
        );
    }
}

#[test]
fn a_fix_that_deletes_every_row_of_a_partition_empties_it_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    table(dir.path(), "t", |_| true);
    let f = sql(
        dir.path(),
        "f.sql",
        "SELECT * FROM source WHERE a < 20000 OR a >= 30000",
    );
    let report = run_json(
        dir.path(),
        &[
            "run",
            "t",
            "--sql",
            &f,
            "--all",
            "--on-empty",
            "delete",
            "--json",
        ],
    );
    let statuses: Vec<(String, String)> = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("day=2024-01-01", "unchanged"),
            ("day=2024-01-02", "deleted"),
            ("day=2024-01-03", "unchanged"),
        ]
        .map(|(p, s)| (p.to_string(), s.to_string()))
    );
    assert!(!dir.path().join("t/day=2024-01-02").exists());
    assert!(dir.path().join("t/day=2024-01-03/part-1.parquet").exists());
}
