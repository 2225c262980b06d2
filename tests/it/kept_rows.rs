//! Rows a fix leaves as they were are not hashed again: a fix that only deletes rows
//! (`SELECT ... FROM source WHERE ...`, bare columns) is run as a row filter and its
//! after-checksum summed from the kept rows' hashes taken when they were read; a fix that
//! changes some values (`CASE WHEN ... THEN ... ELSE col END`) hashes only the rows it
//! changed. The rows and checksums must be exactly those of a table holding what the fix
//! gives, written independently, whether or not a partition's files let that apply.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};

use crate::support::{outcome, partitions_of, put, run_json, snapshot_json, sql};

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
/// are cast to the partition's types when read and the shortcut does not apply. Each row
/// as `fix` makes it (`None`: deleted).
fn table(dir: &Path, name: &str, fix: fn(&Row) -> Option<Row>) -> PathBuf {
    let t = dir.join(name);
    for d in 1..=3 {
        let rows: Vec<Row> = source_rows(d).iter().filter_map(fix).collect();
        let (first, second) = rows.split_at(rows.len() / 2);
        let partition = format!("day=2024-01-0{d}");
        put(&t, &partition, "part-0.parquet", &batch(first, false));
        put(&t, &partition, "part-1.parquet", &batch(second, d == 3));
    }
    t
}

#[test]
fn a_fix_that_only_deletes_rows_gives_the_checksums_of_the_rows_it_keeps() {
    // NULL conditions drop the row, as in any SQL engine.
    let fixes: [(&str, Fix); 3] = [
        ("SELECT * FROM source WHERE x > 100 OR s IS NULL", |r| {
            let x = r.2.map(f64::from_bits);
            // NaN sorts above every number in DataFusion, as in Postgres.
            (x.is_some_and(|x| x.is_nan() || x > 100.0) || r.1.is_none()).then(|| r.clone())
        }),
        ("SELECT x, s, a FROM source WHERE a % 3 <> 0", |r| {
            (r.0 % 3 != 0).then(|| r.clone())
        }),
        ("SELECT a, s, x FROM source WHERE s LIKE '%9 of%'", |r| {
            r.1.as_deref()
                .is_some_and(|s| s.contains("9 of"))
                .then(|| r.clone())
        }),
    ];
    check_fixes(&fixes);
}

#[test]
fn a_fix_that_changes_some_rows_gives_the_checksums_of_the_rows_it_makes() {
    let fixes: [(&str, Fix); 4] = [
        (
            "SELECT a, CASE WHEN a % 10 = 0 THEN upper(s) ELSE s END AS s, x FROM source",
            |r| {
                let s =
                    r.1.clone()
                        .map(|s| if r.0 % 10 == 0 { s.to_uppercase() } else { s });
                Some((r.0, s, r.2))
            },
        ),
        // Every row as it was, some recomputed to the same value: unchanged.
        (
            "SELECT x, CASE WHEN a % 2 = 0 THEN trim(s) ELSE s END AS s, a FROM source",
            |r| Some(r.clone()),
        ),
        // A float changed on some rows, NaN, -0.0 and NULL among them.
        (
            "SELECT a, s, CASE WHEN a % 4 = 1 THEN x * 2 ELSE x END AS x FROM source",
            |r| {
                let x = r.2.map(f64::from_bits);
                let x = if r.0 % 4 == 1 { x.map(|x| x * 2.0) } else { x };
                Some((r.0, r.1.clone(), x.map(f64::to_bits)))
            },
        ),
        // Every row changed.
        ("SELECT a + 1 AS a, s, x FROM source", |r| {
            Some((r.0 + 1, r.1.clone(), r.2))
        }),
    ];
    check_fixes(&fixes);
}

/// What a fix does to one row (`None`: deleted).
type Fix = fn(&Row) -> Option<Row>;

/// Runs each fix on a fresh table, whole and a slice (a source row group) at a time, and
/// checks its statuses, rows and checksums against a table of what the fix gives, written
/// directly. Day 3's slices of its first file take the shortcut, those of its second
/// cannot.
fn check_fixes(fixes: &[(&str, Fix)]) {
    for (text, fix) in fixes {
        for slice_above in ["16", "0"] {
            let dir = tempfile::tempdir().unwrap();
            let source = table(dir.path(), "t", |r| Some(r.clone()));
            let want = table(dir.path(), "want", *fix);
            let old = crate::support::checksums(&snapshot_json(
                dir.path(),
                source.to_str().unwrap(),
                &[],
            ));
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
            let slices = if slice_above == "0" { 2 } else { 0 };
            let expected = snapshot_json(dir.path(), want.to_str().unwrap(), &[]);
            let expected: Vec<(String, String, u64, String, u64)> = expected["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .zip(&old)
                .map(|(p, (_, was))| {
                    let checksum = p["checksum"].as_str().unwrap().to_string();
                    let status = if &checksum == was {
                        "unchanged"
                    } else {
                        "rewritten"
                    };
                    (
                        p["partition"].as_str().unwrap().to_string(),
                        status.to_string(),
                        p["rows"].as_u64().unwrap(),
                        checksum,
                        slices,
                    )
                })
                .collect();
            let rows: Vec<u64> = (1..=3)
                .map(|d| source_rows(d).iter().filter_map(fix).count() as u64)
                .collect();
            assert_eq!(
                expected.iter().map(|e| e.2).collect::<Vec<_>>(),
                rows,
                "{text}"
            );
            assert_eq!(
                outcome(&report),
                expected,
                "{text}, --slice-above {slice_above}"
            );
            // The files written hold those rows: a reading of them gives the same checksums.
            let after = snapshot_json(dir.path(), "t", &[]);
            assert_eq!(
                crate::support::checksums(&after),
                crate::support::checksums(&snapshot_json(dir.path(), want.to_str().unwrap(), &[])),
                "{text}"
            );
        }
    }
}

#[test]
fn a_fix_that_deletes_every_row_of_a_partition_empties_it_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    table(dir.path(), "t", |r| Some(r.clone()));
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
    assert_eq!(
        partitions_of(&report),
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
