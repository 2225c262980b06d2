//! `diff` between snapshots and tables: outcomes, exit codes, table-shaped output.

use crate::support::{put, rows, run_in, small_table};

#[test]
fn a_table_against_its_own_snapshot_is_identical() {
    let (dir, _) = small_table(3);
    let out = run_in(
        dir.path(),
        &["snapshot", "t", "--columns", "--out", "before.json"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run_in(dir.path(), &["diff", "before.json", "t"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .ends_with("6 unchanged, 0 changed, 0 missing, 0 new; rows 18 -> 18 (+0)\nidentical\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn changes_missing_and_new_partitions_are_reported() {
    let (dir, table) = small_table(3);
    assert_eq!(
        run_in(
            dir.path(),
            &["snapshot", "t", "--columns", "--out", "before.json"]
        )
        .code,
        0
    );
    // A changed value in one column, a duplicated row, a lost partition, a new one.
    put(
        &table,
        "day=2024-01-01/region=eu",
        "part-0.parquet",
        &rows(&[(100, Some("CHANGED")), (101, None), (102, Some(""))]),
    );
    put(
        &table,
        "day=2024-01-02/region=us",
        "part-1.parquet",
        &rows(&[(210, Some("a"))]),
    );
    std::fs::remove_dir_all(table.join("day=2024-01-03/region=eu")).unwrap();
    put(
        &table,
        "day=2024-01-04/region=eu",
        "part-0.parquet",
        &rows(&[(1, None)]),
    );

    let out = assert_cli!(dir.path(), &["diff", "before.json", "t"]);
    assert_eq!(out.code, 1, "{}", out.stderr);

    let json = run_in(dir.path(), &["diff", "before.json", "t", "--json"]);
    let d: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(d["identical"], false);
    assert_eq!(
        d["summary"],
        serde_json::json!({
            "unchanged": 3, "changed": 2, "missing": 1, "new": 1, "schema_changed": 0,
            "rows_before": 18, "rows_after": 17, "rows_delta": -1
        })
    );
    assert_eq!(d["changed"][0]["columns"], serde_json::json!(["name"]));
    assert_eq!(
        d["changed"][1]["columns"],
        serde_json::json!(["id", "name"])
    );
    assert_eq!(d["changed"][1]["rows_delta"], 1);
}

#[test]
fn a_new_column_is_a_schema_change() {
    let (dir, table) = small_table(1);
    assert_eq!(
        run_in(
            dir.path(),
            &["snapshot", "t", "--columns", "--out", "before.json"]
        )
        .code,
        0
    );
    let b = rows(&[(100, Some("a")), (101, None), (102, Some(""))]);
    let extra: arrow::array::ArrayRef =
        std::sync::Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3]));
    let mut cols: Vec<(String, arrow::array::ArrayRef)> = b
        .schema()
        .fields()
        .iter()
        .zip(b.columns())
        .map(|(f, c)| (f.name().clone(), c.clone()))
        .collect();
    cols.push(("score".into(), extra));
    let wider = arrow::array::RecordBatch::try_from_iter(cols).unwrap();
    put(&table, "day=2024-01-01/region=eu", "part-0.parquet", &wider);
    let out = run_in(dir.path(), &["diff", "before.json", "t", "--json"]);
    assert_eq!(out.code, 1);
    let d: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let c = &d["changed"][0];
    assert_eq!(c["columns_added"], serde_json::json!(["score"]));
    assert_eq!(
        c["columns"],
        serde_json::json!([]),
        "existing columns are unchanged"
    );
    assert_eq!(c["schema"]["after"], "id:int64, name:string, score:int64");
    assert_eq!(d["summary"]["schema_changed"], 1);
}

#[test]
fn two_tables_and_a_selection() {
    let (dir, _) = small_table(2);
    let (dir2, table2) = small_table(2);
    put(
        &table2,
        "day=2024-01-02/region=us",
        "part-0.parquet",
        &rows(&[(1, None)]),
    );
    let other = table2.display().to_string();
    let out = run_in(
        dir.path(),
        &["diff", "t", &other, "--partition", "day=2024-01-01"],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("2 unchanged, 0 changed"),
        "{}",
        out.stdout
    );
    let out = run_in(dir.path(), &["diff", "t", &other, "--json"]);
    assert_eq!(out.code, 1);
    let d: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(d["changed"][0]["partition"], "day=2024-01-02/region=us");
    assert_eq!(d["changed"][0]["rows_delta"], -2);
    drop(dir2);
}

/// Snapshots of checksum v1 (before Decimal256 columns of precision <= 38 were hashed at
/// their precision's width) still compare with today's, except where that column is.
#[test]
fn a_v1_snapshot_compares_with_a_table_and_with_v2_files_unless_a_column_differs_in_v1() {
    use arrow::array::{Decimal256Array, Int64Array, RecordBatch};
    use arrow::datatypes::i256;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    for (table, wide) in [("plain", false), ("dec", true)] {
        let id: arrow::array::ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        let mut cols = vec![("id", id)];
        if wide {
            let d = Decimal256Array::from(vec![Some(i256::from_i128(-100)), None])
                .with_precision_and_scale(20, 2)
                .unwrap();
            cols.push(("amount", Arc::new(d)));
        }
        let batch = RecordBatch::try_from_iter(cols).unwrap();
        put(
            &dir.path().join(table),
            "day=2024-01-01",
            "part-0.parquet",
            &batch,
        );
        let v1 = format!("{table}-v1.json");
        let v2 = format!("{table}-v2.json");
        let out = run_in(dir.path(), &["snapshot", table, "--out", &v2]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let out = run_in(
            dir.path(),
            &["snapshot", table, "--checksum-version", "1", "--out", &v1],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        let read = |f: &str| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(f)).unwrap()).unwrap()
        };
        let (s1, s2) = (read(&v1), read(&v2));
        assert_eq!(s1["checksum_version"], 1);
        assert_eq!(s2["checksum_version"], 2);
        let sum = |s: &serde_json::Value| s["partitions"][0]["checksum"].clone();
        // v1 and v2 agree on everything but the narrow decimal256.
        assert_eq!(sum(&s1) == sum(&s2), !wide);
        // A table against a v1 file is hashed as v1.
        let out = run_in(dir.path(), &["diff", &v1, table]);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        let out = run_in(dir.path(), &["verify", table, "--against", &v1]);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        // Two files of different versions compare only where v1 and v2 agree.
        let out = run_in(dir.path(), &["diff", &v1, &v2]);
        if wide {
            assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
            assert!(
                out.stderr.contains(
                    "partition day=2024-01-01 has a column v1 hashed differently (a decimal256 of precision <= 38"
                ),
                "{}",
                out.stderr
            );
            assert!(
                out.stderr.contains("--checksum-version 1"),
                "{}",
                out.stderr
            );
        } else {
            assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        }
    }
}
