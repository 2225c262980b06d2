//! Every column type survives a rewrite, as the engine that wrote the table reads it back,
//! or is refused by name with nothing written.
//!
//! Tables: `testdata/make_type_tables.py` (DuckDB, pyarrow, Spark and Polars, every type each
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
    rewrite_as(engine, table, fix, Whole);
}

/// How the partitions are rewritten: whole, or a slice of rows at a time
/// (`--slice-above 0`), which a SQL of SELECT and WHERE allows, unless a column needs the
/// whole-partition encoding (INT96, INTERVAL).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Whole,
    Sliced,
    SlicedRefused,
}
use Mode::*;

fn rewrite_as(engine: &str, table: &str, fix: Fix, mode: Mode) {
    let work = tempfile::tempdir().unwrap();
    let t = work.path().join("t");
    copy_dir(&root().join("testdata").join(table), &t);
    // Summary files stop a run (`safety::a_run_over_files_a_parquet_summary_lists_is_refused`):
    // moved out first, as the refusal says.
    for summary in ["_metadata", "_common_metadata"] {
        let _ = std::fs::remove_file(t.join(summary));
    }
    let before = engines::read(engine, &t, (fix == Fix::DeleteRow).then_some("2"));
    let sql = sql_of(fix, &before);
    std::fs::write(work.path().join("f.sql"), &sql).unwrap();
    let files_before = file_hashes(&t);
    let mut args = vec!["run", "t", "--sql", "f.sql", "--all", "--json"];
    if mode != Whole {
        args.extend(["--slice-above", "0"]);
    }
    let out = run_in(work.path(), &args);
    let what = format!("{table} {fix:?} {mode:?}");
    assert_eq!(out.code, 0, "{what}: {}{}", out.stdout, out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    // p=1 holds k = 1, 2 and is rewritten either way: a new file replaced the old.
    let p1 = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partition"] == "p=1")
        .unwrap();
    assert_eq!(p1["status"], "rewritten", "{what}: {report}");
    match mode {
        Sliced => assert_eq!(p1["slices"], 1, "{what}: {p1}"),
        Whole | SlicedRefused => assert_eq!(p1.get("slices"), None, "{what}: {p1}"),
    }
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
            // DuckDB rows are "python value | text": NULL is "None | None"; pandas
            // (fastparquet) shows a missing string as nan.
            let s = r.get("s").and_then(Value::as_str).unwrap_or("None");
            if fix == Fix::UpperS && !s.starts_with("None") && s != "nan" {
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
fn polars_types_round_trip() {
    // Categorical and Enum (dictionaries with Polars' own Arrow schema), Array, Duration,
    // nanosecond times, zoned timestamps and a NULL column, as Polars reads them back.
    rewrite("polars", "polars_types", Fix::DeleteRow);
    rewrite("polars", "polars_types", Fix::UpperS);
}

#[test]
fn fastparquet_types_round_trip() {
    // pandas types as fastparquet writes them (categorical, nullable Int32, uint8, naive
    // and zoned datetimes, NaN and inf), as fastparquet reads them back.
    rewrite("fastparquet", "fastparquet_summary", Fix::DeleteRow);
    rewrite("fastparquet", "fastparquet_summary", Fix::UpperS);
}

#[test]
fn null_columns_round_trip() {
    // NULL columns as pyarrow (p=1), DuckDB (p=2) and Polars (p=3) write them. (Polars
    // itself reads DuckDB's file, which has no Arrow schema, as Int32 and refuses the mix;
    // `polars_types` has its NULL column.)
    rewrite("duckdb", "null_columns", Fix::DeleteRow);
    rewrite("pyarrow", "null_columns", Fix::DeleteRow);
}

#[test]
fn every_type_round_trips_a_slice_at_a_time() {
    // The same, with each partition read, transformed, encoded and proven a row group at
    // a time; INT96 and INTERVAL columns need the whole-partition encoding.
    for fix in [Fix::DeleteRow, Fix::UpperS] {
        rewrite_as("duckdb", "duckdb_types", fix, Sliced);
        rewrite_as("pyarrow", "pyarrow_alltypes", fix, Sliced);
        rewrite_as("spark", "spark_types_micros", fix, Sliced);
        rewrite_as("polars", "polars_types", fix, Sliced);
        rewrite_as("spark", "spark_types", fix, SlicedRefused);
        rewrite_as("duckdb", "duckdb_intervals", fix, SlicedRefused);
    }
}

#[test]
fn spark_legacy_format_round_trips() {
    // `writeLegacyFormat` (Hive-compatible tables): fixed-length decimals, `bag`/`array`
    // lists and `key_value` maps are written again in the same layout.
    rewrite("spark", "spark_types_legacy", Fix::DeleteRow);
    rewrite("spark", "spark_types_legacy", Fix::UpperS);
}

#[test]
fn spark4_variant_round_trips() {
    // Spark 4 writes VARIANT as a group of `metadata` and `value` binaries with its schema
    // in the file's metadata; Spark 4 reads the same VARIANT values back.
    rewrite("spark4", "spark4_variant", Fix::DeleteRow);
    rewrite("spark4", "spark4_variant", Fix::UpperS);
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
fn duckdb_intervals_round_trip_with_their_months() {
    // 14 months 3 days 4 hours, 2 months, the largest months and days DuckDB writes, and
    // intervals in a list and a struct: DuckDB reads back the same INTERVALs.
    rewrite("duckdb", "duckdb_intervals", Fix::DeleteRow);
    rewrite("duckdb", "duckdb_intervals", Fix::UpperS);
}

#[test]
fn duckdb_decimals_keep_their_width() {
    // DuckDB stores DECIMAL(19..35) in 16 bytes, more than the precision needs, at the top
    // level, in a struct and in a list; the Arrow writer sizes values by precision. Each
    // is encoded again at its stored width, whole and a slice at a time.
    rewrite("duckdb", "duckdb_decimals", Fix::DeleteRow);
    rewrite_as("duckdb", "duckdb_decimals", Fix::DeleteRow, Sliced);
    rewrite("duckdb", "duckdb_decimals", Fix::UpperS);
    rewrite("pyarrow", "duckdb_decimals", Fix::DeleteRow);
}

#[test]
fn decimals_the_arrow_writer_cannot_store_alike_are_stored_at_their_precision() {
    // On a variable-length byte array (as parquet-mr may write them) the Arrow writer has
    // no way to write a decimal: it is written in the fixed-length array its precision
    // needs. A 32-byte array for precision 20 is kept, filled as a 76-digit decimal.
    use std::sync::Arc;

    use parquet::data_type::{
        ByteArray, ByteArrayType, FixedLenByteArray, FixedLenByteArrayType, Int64Type,
    };
    use parquet::file::writer::SerializedFileWriter;

    let work = tempfile::tempdir().unwrap();
    let t = work.path().join("t");
    let message = "message m { required int64 k; optional binary d (DECIMAL(10,2)); \
                   optional fixed_len_byte_array(32) e (DECIMAL(20,2)); optional binary s (UTF8); }";
    let schema = parquet::schema::parser::parse_message_type(message).unwrap();
    std::fs::create_dir_all(t.join("p=1")).unwrap();
    let file = std::fs::File::create(t.join("p=1/part-0.parquet")).unwrap();
    let mut w = SerializedFileWriter::new(file, Arc::new(schema), Default::default()).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut c = rg.next_column().unwrap().unwrap();
    c.typed::<Int64Type>()
        .write_batch(&[1, 2, 3], None, None)
        .unwrap();
    c.close().unwrap();
    // 123.45, -0.01 (one byte, 0xff), NULL: minimal big-endian two's complement.
    let mut c = rg.next_column().unwrap().unwrap();
    let d: Vec<ByteArray> = vec![vec![0x30, 0x39].into(), vec![0xff].into()];
    c.typed::<ByteArrayType>()
        .write_batch(&d, Some(&[1, 1, 0]), None)
        .unwrap();
    c.close().unwrap();
    // -123456789012345678.91 and 1.00, sign-extended to 32 bytes.
    let wide = |v: i128| -> FixedLenByteArray {
        let mut b = vec![if v < 0 { 0xff } else { 0 }; 16];
        b.extend_from_slice(&v.to_be_bytes());
        ByteArray::from(b).into()
    };
    let mut c = rg.next_column().unwrap().unwrap();
    c.typed::<FixedLenByteArrayType>()
        .write_batch(
            &[wide(-12345678901234567891), wide(100)],
            Some(&[1, 0, 1]),
            None,
        )
        .unwrap();
    c.close().unwrap();
    let mut c = rg.next_column().unwrap().unwrap();
    let s: Vec<ByteArray> = vec!["a".into(), "b".into(), "c".into()];
    c.typed::<ByteArrayType>()
        .write_batch(&s, Some(&[1, 1, 1]), None)
        .unwrap();
    c.close().unwrap();
    rg.close().unwrap();
    w.close().unwrap();

    let before = engines::read("duckdb", &t, Some("2"));
    std::fs::write(
        work.path().join("f.sql"),
        "SELECT * FROM source WHERE k <> 2",
    )
    .unwrap();
    let out = run_in(work.path(), &["run", "t", "--sql", "f.sql", "--all"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("1 rewritten"), "{}", out.stdout);
    let after = engines::read("duckdb", &t, None);
    assert_eq!(after["types"], before["types"]);
    assert_eq!(after["rows"], before["rows"]);
    assert_eq!(
        before["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["d"].as_str().unwrap(), r["e"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [
            (
                "Decimal('123.45') | 123.45",
                "Decimal('-123456789012345678.91') | -123456789012345678.91"
            ),
            ("None | None", "Decimal('1.00') | 1.00")
        ]
    );
    assert_eq!(
        after["parquet"]["d"],
        serde_json::json!([
            "FIXED_LEN_BYTE_ARRAY(5) Decimal(precision=10, scale=2) DECIMAL def=1 rep=0"
        ])
    );
    assert_eq!(after["parquet"]["e"], before["parquet"]["e"]);
}

#[test]
fn an_interval_filter_sees_the_months() {
    // 14 months and 2 months are longer than 10 days; read without months they are not.
    let work = tempfile::tempdir().unwrap();
    let t = work.path().join("t");
    copy_dir(&root().join("testdata/duckdb_intervals"), &t);
    std::fs::write(work.path().join("same.sql"), "SELECT * FROM source").unwrap();
    let out = run_in(work.path(), &["run", "t", "--sql", "same.sql", "--all"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("0 rewritten, 2 unchanged"),
        "{}",
        out.stdout
    );
    std::fs::write(
        work.path().join("f.sql"),
        "SELECT * FROM source WHERE iv IS NULL OR iv < INTERVAL '10 days'",
    )
    .unwrap();
    let out = run_in(
        work.path(),
        &["run", "t", "--sql", "f.sql", "--all", "--json"],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let got = engines::read("duckdb", &t, None);
    let kept: Vec<(&str, &str)> = got["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["k"].as_str().unwrap(), r["iv"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kept,
        [
            ("3 | 3", "None | 1 day 00:00:00.001"),
            ("4 | 4", "None | None")
        ]
    );
}

#[test]
fn intervals_engines_cannot_write_are_refused_by_name() {
    // A Parquet INTERVAL holds unsigned months, days and milliseconds.
    refused(
        "duckdb_intervals",
        "SELECT k, s, iv - INTERVAL '3 months' AS iv, liv, siv FROM source",
        &[],
        &["column iv holds the interval", "cannot hold"],
    );
    refused(
        "duckdb_intervals",
        "SELECT k, s, iv + INTERVAL '1 microsecond' AS iv, liv, siv FROM source",
        &[],
        &["column iv holds the interval", "cannot hold"],
    );
    // A lookup table's interval would be read without its months.
    let work = tempfile::tempdir().unwrap();
    copy_dir(
        &root().join("testdata/duckdb_events"),
        &work.path().join("t"),
    );
    std::fs::write(
        work.path().join("f.sql"),
        "SELECT e.* FROM source e JOIN iv ON e.user_id = iv.k",
    )
    .unwrap();
    let lookup = root().join("testdata/duckdb_intervals/p=1/data_0.parquet");
    let arg = format!("iv={}", lookup.display());
    let before = file_hashes(&work.path().join("t"));
    let out = run_in(
        work.path(),
        &["run", "t", "--sql", "f.sql", "--all", "--table", &arg],
    );
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("iv"), "{}", out.stderr);
    assert!(out.stderr.contains("INTERVAL"), "{}", out.stderr);
    assert_eq!(file_hashes(&work.path().join("t")), before);
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
        &["snapshot", "pyarrow_int96_nanos", "--no-cache"],
    );
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("column ts is a Parquet INT96"),
        "{}",
        out.stderr
    );
    let out = run_in(
        &root().join("testdata"),
        &[
            "snapshot",
            "pyarrow_int96_nanos",
            "--partition",
            "p=2",
            "--no-cache",
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}
