//! Every column type survives a rewrite, as the engine that wrote the table reads it back,
//! or is refused by name with nothing written.
//!
//! Tables: `testdata/make_type_tables.py` (DuckDB, pyarrow and Spark, every type each
//! writes, NULLs and extreme values). Each is rewritten by a fix that deletes a row (every
//! column is encoded again) and by one that changes only `s` (the others are copied), then
//! read back by its writer through `testdata/engine_read.py`: the same types, the same
//! values, the same Parquet descriptions of every column, the file metadata kept.

use serde_json::Value;

use crate::support::{copy_dir, engines, file_hashes, root, run_in};

/// How a fix changes what the writer reads: the row `k = 2` gone, or `s` in upper case.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Fix {
    DeleteRow,
    UpperS,
}

fn sql_of(fix: Fix, before: &Value) -> String {
    match fix {
        Fix::DeleteRow => "SELECT * FROM source WHERE k <> 2".into(),
        Fix::UpperS => {
            let others: Vec<&str> = before["types"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .filter(|c| !["p", "s"].contains(c))
                .collect();
            format!("SELECT {}, upper(s) AS s FROM source", others.join(", "))
        }
    }
}

fn rewrite(engine: &str, table: &str, fix: Fix) {
    let work = tempfile::tempdir().unwrap();
    let t = work.path().join("t");
    copy_dir(&root().join("testdata").join(table), &t);
    let before = engines::read(engine, &t, (fix == Fix::DeleteRow).then_some("2"));
    let sql = sql_of(fix, &before);
    std::fs::write(work.path().join("f.sql"), &sql).unwrap();
    let files_before = file_hashes(&t);
    let out = run_in(work.path(), &["run", "t", "--sql", "f.sql", "--all"]);
    let what = format!("{table} {fix:?}");
    assert_eq!(out.code, 0, "{what}: {}{}", out.stdout, out.stderr);
    // p=1 holds k = 1, 2 and is rewritten either way: a new file replaced the old.
    assert!(out.stdout.contains("rewritten"), "{what}: {}", out.stdout);
    let files_after = file_hashes(&t);
    assert!(
        files_after
            .keys()
            .any(|f| f.starts_with("p=1/part-") && !files_before.contains_key(f)),
        "{what}: no new file in p=1: {files_after:?}"
    );

    let after = engines::read(engine, &t, None);
    assert_eq!(
        after["types"], before["types"],
        "{what}: types as {engine} reads them"
    );
    assert_eq!(
        after["parquet"], before["parquet"],
        "{what}: Parquet descriptions of the columns"
    );
    for key in before["metadata_keys"].as_array().unwrap() {
        assert!(
            after["metadata_keys"].as_array().unwrap().contains(key),
            "{what}: file metadata {key} was dropped"
        );
    }
    let want: Vec<Value> = before["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if fix == Fix::UpperS && r["s"] != "None" {
                r["s"] = Value::String(r["s"].as_str().unwrap().to_uppercase());
            }
            r
        })
        .collect();
    assert_eq!(
        after["rows"].as_array().unwrap(),
        &want,
        "{what}: values as {engine} reads them"
    );
}

#[test]
fn duckdb_types_round_trip() {
    rewrite("duckdb", "duckdb_types", Fix::DeleteRow);
    rewrite("duckdb", "duckdb_types", Fix::UpperS);
}

#[test]
fn pyarrow_types_round_trip() {
    rewrite("pyarrow", "pyarrow_alltypes", Fix::DeleteRow);
    rewrite("pyarrow", "pyarrow_alltypes", Fix::UpperS);
}

#[test]
fn spark_types_round_trip() {
    rewrite("spark", "spark_types_micros", Fix::DeleteRow);
    rewrite("spark", "spark_types_micros", Fix::UpperS);
}

#[test]
fn spark_int96_timestamps_round_trip_from_year_1_to_9999_nested_or_not() {
    // INT96 `ts` (0001-01-01 and 2262-04-12, beyond 64-bit nanoseconds), in a list
    // (`lts`) and a struct (`sts`): written as INT96 again, Spark reads the same instants.
    rewrite("spark", "spark_types", Fix::DeleteRow);
    rewrite("spark", "spark_types", Fix::UpperS);
}

/// A rewrite that cannot carry a column is refused naming it, and leaves every byte.
fn refused(table: &str, sql: &str, extra: &[&str], needles: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let t = work.path().join("t");
    copy_dir(&root().join("testdata").join(table), &t);
    std::fs::write(work.path().join("f.sql"), sql).unwrap();
    let before = file_hashes(&t);
    let mut args = vec!["run", "t", "--sql", "f.sql", "--all"];
    args.extend(extra);
    let out = run_in(work.path(), &args);
    assert_ne!(out.code, 0, "{table}: {}", out.stdout);
    let text = format!("{}{}", out.stdout, out.stderr);
    for n in needles {
        assert!(text.contains(n), "{table}: {n:?} not in {text}");
    }
    assert_eq!(file_hashes(&t), before, "{table}: the table changed");
}

#[test]
fn intervals_are_refused_by_every_command_not_read_without_their_months() {
    // Arrow's reader gives a Parquet INTERVAL's days and milliseconds only.
    refused(
        "duckdb_intervals",
        "SELECT * FROM source WHERE k <> 2",
        &[],
        &["column iv is a Parquet INTERVAL", "without its months"],
    );
    let work = tempfile::tempdir().unwrap();
    copy_dir(
        &root().join("testdata/duckdb_intervals"),
        &work.path().join("t"),
    );
    std::fs::write(work.path().join("f.sql"), "SELECT * FROM source").unwrap();
    let out = run_in(work.path(), &["run", "t", "--sql", "f.sql", "--all"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let out = run_in(&root().join("testdata"), &["snapshot", "duckdb_intervals"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("column iv is a Parquet INTERVAL"),
        "{}",
        out.stderr
    );
}

#[test]
fn int96_holding_nanoseconds_is_refused_not_truncated() {
    // p=1 holds ...123456789 ns (refused: INT96 is read at microseconds); p=2 whole
    // microseconds only, read and left unchanged.
    refused(
        "pyarrow_int96_nanos",
        "SELECT * FROM source WHERE k <> 2",
        &[],
        &[
            "p=1",
            "column ts is a Parquet INT96 timestamp holding 789 ns more than a whole microsecond",
        ],
    );
    let out = run_in(
        &root().join("testdata"),
        &["snapshot", "pyarrow_int96_nanos"],
    );
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("column ts is a Parquet INT96"),
        "{}",
        out.stderr
    );
    let out = run_in(
        &root().join("testdata"),
        &["snapshot", "pyarrow_int96_nanos", "--partition", "p=2"],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}
