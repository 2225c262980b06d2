//! `plan`, `run`, `rollback` and `runs` from the command line, on local tables.

use crate::support::{
    file_hashes, partitions_of, put, rows, run_in, small_table, snapshot_json, sql,
};

const UPPER_FROM_DAY_2: &str =
    "SELECT id, CASE WHEN id >= 200 THEN upper(name) ELSE name END AS name FROM source";

/// Writes `batch` as `<dir>/t/<partition>/a.parquet` with the given writer settings.
fn put_with(
    dir: &std::path::Path,
    partition: &str,
    batch: &arrow::array::RecordBatch,
    props: parquet::file::properties::WriterProperties,
) {
    let path = dir.join("t").join(partition).join("a.parquet");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        batch.schema(),
        Some(props),
    )
    .unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// Runs `sql_text` over every partition of `<dir>/t`; returns the run id.
fn rewrite_all(dir: &std::path::Path, sql_text: &str) -> String {
    let q = sql(dir, "t.sql", sql_text);
    let out = run_in(
        dir,
        &["run", "t", "--sql", &q, "--all", "--jobs", "1", "--json"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    r["run_id"].as_str().unwrap().to_string()
}

/// The file a run wrote into a partition of `<dir>/t`.
fn new_file(dir: &std::path::Path, partition: &str, run_id: &str) -> std::fs::File {
    std::fs::File::open(dir.join(format!("t/{partition}/part-{run_id}-0.parquet"))).unwrap()
}

/// The first column chunk's metadata of the file a run wrote into a partition.
fn new_file_first_chunk(
    dir: &std::path::Path,
    partition: &str,
    run_id: &str,
) -> parquet::file::metadata::ColumnChunkMetaData {
    use parquet::file::reader::FileReader;
    let reader =
        parquet::file::reader::SerializedFileReader::new(new_file(dir, partition, run_id)).unwrap();
    reader.metadata().row_group(0).column(0).clone()
}

/// The rows of the file a run wrote into a partition, as `id:name` (`NULL` for nulls).
fn new_rows(dir: &std::path::Path, partition: &str, run_id: &str) -> Vec<String> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
        new_file(dir, partition, run_id),
        1024,
    )
    .unwrap();
    let text = |a: &dyn arrow::array::Array, i: usize| {
        if a.is_null(i) {
            "NULL".to_string()
        } else {
            arrow::util::display::array_value_to_string(a, i).unwrap()
        }
    };
    let mut out = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let (ids, names) = (
            b.column_by_name("id").unwrap(),
            b.column_by_name("name").unwrap(),
        );
        for i in 0..b.num_rows() {
            out.push(format!("{}:{}", text(ids, i), text(names, i)));
        }
    }
    out
}

#[test]
fn plan_lists_partitions_in_order_without_writing() {
    let (dir, table) = small_table(3);
    let q = sql(dir.path(), "t.sql", UPPER_FROM_DAY_2);
    let before = file_hashes(dir.path());
    let out = assert_cli!(
        dir.path(),
        &[
            "plan",
            "t",
            "--from",
            "2024-01-02",
            "--order",
            "newest-first",
            "--sql",
            &q,
            "--jobs",
            "2",
        ]
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(file_hashes(dir.path()), before, "plan wrote something");
    let out = run_in(
        dir.path(),
        &[
            "plan",
            "t",
            "--partition",
            "day=2024-01-01/region=eu",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["partitions"][0]["files"][0]["rows"], 3);
    assert_eq!(v["totals"]["rows"], 3);
    drop(table);
}

#[test]
fn a_run_rewrites_the_selection_and_nothing_else() {
    let (dir, table) = small_table(3);
    let before = file_hashes(&table);
    let q = sql(dir.path(), "t.sql", UPPER_FROM_DAY_2);
    let out = run_in(
        dir.path(),
        &["run", "t", "--sql", &q, "--to", "2024-01-02", "--json"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        partitions_of(&report),
        [
            (
                "day=2024-01-01/region=eu".to_string(),
                "unchanged".to_string()
            ),
            ("day=2024-01-01/region=us".into(), "unchanged".into()),
            ("day=2024-01-02/region=eu".into(), "rewritten".into()),
            ("day=2024-01-02/region=us".into(), "rewritten".into()),
        ]
    );
    let after = file_hashes(&table);
    // Outside the selection, and unchanged partitions: not a byte touched.
    for (path, hash) in &before {
        if !path.starts_with("day=2024-01-02") {
            assert_eq!(after.get(path), Some(hash), "{path} changed");
        } else {
            assert!(
                !after.contains_key(path),
                "{path} should have been replaced"
            );
        }
    }
    let run_id = report["run_id"].as_str().unwrap();
    let new_file = format!("day=2024-01-02/region=eu/part-{run_id}-0.parquet");
    assert!(after.contains_key(&new_file), "{after:?}");

    // The new content is exactly what the SQL says: compare with a table written directly.
    let want_dir = tempfile::tempdir().unwrap();
    let want = want_dir.path().join("t");
    put(
        &want,
        "day=2024-01-02/region=eu",
        "x.parquet",
        &rows(&[(200, Some("A")), (201, None), (202, Some(""))]),
    );
    put(
        &want,
        "day=2024-01-02/region=us",
        "x.parquet",
        &rows(&[(210, Some("A")), (211, None), (212, Some(""))]),
    );
    let got = snapshot_json(dir.path(), "t", &["--partition", "day=2024-01-02"]);
    let expected = snapshot_json(want_dir.path(), "t", &[]);
    assert_eq!(
        crate::support::checksums(&got),
        crate::support::checksums(&expected)
    );
    assert_eq!(
        report["partitions"][2]["checksum_after"],
        expected["partitions"][0]["checksum"]
    );

    // The work area is beside the table, not in it.
    assert!(dir
        .path()
        .join(".backfill/t/runs")
        .join(run_id)
        .join("journal")
        .is_dir());
}

#[test]
fn human_report() {
    let (dir, _) = small_table(2);
    let q = sql(dir.path(), "t.sql", UPPER_FROM_DAY_2);
    let out = assert_cli!(dir.path(), &["run", "t", "--sql", &q, "--all"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn a_run_needs_a_selection_or_all() {
    let (dir, table) = small_table(1);
    let q = sql(dir.path(), "t.sql", "SELECT * FROM source");
    let before = file_hashes(dir.path());
    let out = run_in(dir.path(), &["run", "t", "--sql", &q]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--all"), "{}", out.stderr);
    assert_eq!(file_hashes(dir.path()), before);
    drop(table);
}

#[test]
fn bad_transforms_write_nothing() {
    let (dir, _) = small_table(2);
    let before = file_hashes(dir.path());
    for (text, needle) in [
        ("SELEC id FROM source", "the transform SQL failed"),
        ("SELECT nope FROM source", "nope"),
        ("SELECT * FROM elsewhere", "elsewhere"),
        ("CREATE TABLE x AS SELECT 1", "the transform SQL failed"),
        ("", "the SQL file is empty"),
        (
            "SELECT id, name, 1 AS extra FROM source",
            "--allow-schema-change",
        ),
        (
            "SELECT id, CAST(name AS INT) AS name FROM source",
            "retyped [name: Utf8 -> Int32]; to keep the table's type, CAST the expression to it",
        ),
    ] {
        let q = sql(dir.path(), "bad.sql", text);
        let out = run_in(dir.path(), &["run", "t", "--sql", &q, "--all"]);
        assert_eq!(out.code, 2, "{text}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(needle), "{text}: {}", out.stderr);
        std::fs::remove_file(dir.path().join("bad.sql")).unwrap();
    }
    let out = run_in(dir.path(), &["run", "t", "--sql", "missing.sql", "--all"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("reading --sql missing.sql"),
        "{}",
        out.stderr
    );
    assert_eq!(file_hashes(dir.path()), before);
}

#[test]
fn rows_of_another_partition_fail_only_that_partition() {
    let (dir, table) = small_table(2);
    let before = file_hashes(&table);
    let q = sql(
        dir.path(),
        "t.sql",
        "SELECT id, upper(name) AS name, CASE WHEN id = 201 THEN DATE '2024-01-09' ELSE day END AS day FROM source",
    );
    let out = run_in(dir.path(), &["run", "t", "--sql", &q, "--all", "--json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let failed = &report["partitions"][2];
    assert_eq!(failed["partition"], "day=2024-01-02/region=eu");
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("1 output row(s) belong to another partition (day=2024-01-09"),
        "{failed}"
    );
    assert_eq!(report["summary"]["rewritten"], 3);
    let after = file_hashes(&table);
    for (path, hash) in &before {
        if path.starts_with("day=2024-01-02/region=eu") {
            assert_eq!(
                after.get(path),
                Some(hash),
                "the failed partition must stay as it was"
            );
        }
    }
}

#[test]
fn schema_changes_with_consent() {
    let (dir, _) = small_table(1);
    let q = sql(
        dir.path(),
        "t.sql",
        "SELECT *, id * 2 AS doubled FROM source",
    );
    let out = run_in(
        dir.path(),
        &[
            "run",
            "t",
            "--sql",
            &q,
            "--all",
            "--allow-schema-change",
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["partitions"][0]["schema_change"], "added [doubled]");
    let snap = snapshot_json(dir.path(), "t", &[]);
    assert_eq!(
        snap["partitions"][0]["schema"],
        "doubled:int64, id:int64, name:string"
    );
}

#[test]
fn empty_output_follows_the_policy() {
    let (dir, table) = small_table(1);
    let q = sql(
        dir.path(),
        "t.sql",
        "SELECT id, name FROM source WHERE region = 'us'",
    );
    let before = file_hashes(&table);

    let out = run_in(dir.path(), &["run", "t", "--sql", &q, "--all", "--json"]);
    assert_eq!(out.code, 1);
    let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        partitions_of(&r)[0],
        ("day=2024-01-01/region=eu".to_string(), "failed".to_string())
    );
    assert!(r["partitions"][0]["error"]
        .as_str()
        .unwrap()
        .contains("--on-empty"));
    assert_eq!(file_hashes(&table), before);

    let out = run_in(
        dir.path(),
        &[
            "run",
            "t",
            "--sql",
            &q,
            "--all",
            "--on-empty",
            "keep",
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(partitions_of(&r)[0].1, "kept");
    assert_eq!(file_hashes(&table), before);

    let out = run_in(
        dir.path(),
        &[
            "run",
            "t",
            "--sql",
            &q,
            "--all",
            "--on-empty",
            "delete",
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(partitions_of(&r)[0].1, "deleted");
    assert!(!table.join("day=2024-01-01/region=eu").exists());
    assert_eq!(r["summary"]["rows_delta"], -3);

    let run_id = r["run_id"].as_str().unwrap();
    let out = run_in(dir.path(), &["rollback", "t", run_id]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(file_hashes(&table), before);
}

#[test]
fn rollback_restores_every_byte_and_runs_records_it() {
    let (dir, table) = small_table(3);
    std::fs::write(table.join("day=2024-01-03/region=eu/_SUCCESS"), "").unwrap();
    let before = file_hashes(&table);
    let q = sql(dir.path(), "t.sql", "SELECT id + 1 AS id, name FROM source");
    let out = run_in(dir.path(), &["run", "t", "--sql", &q, "--all", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let run_id = r["run_id"].as_str().unwrap().to_string();
    assert_eq!(r["summary"]["rewritten"], 6);
    // Markers move with their partition.
    assert!(table.join("day=2024-01-03/region=eu/_SUCCESS").exists());

    let out = run_in(dir.path(), &["rollback", "t", &run_id]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("6 rolled back, 0 skipped"),
        "{}",
        out.stdout
    );
    assert_eq!(file_hashes(&table), before);

    let out = run_in(dir.path(), &["runs", "t", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["runs"][0]["run_id"], run_id.as_str());
    assert_eq!(v["runs"][0]["status"], "rolled_back");
    assert_eq!(v["runs"][0]["partitions"], 6);

    let out = run_in(dir.path(), &["runs", "t", "--release", &run_id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!dir
        .path()
        .join(".backfill/t/runs")
        .join(&run_id)
        .join("backup")
        .exists());
    let out = run_in(dir.path(), &["rollback", "t", &run_id]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("released"), "{}", out.stderr);
}

#[test]
fn rollback_skips_partitions_changed_since() {
    let (dir, table) = small_table(1);
    let q = sql(dir.path(), "t.sql", "SELECT id + 1 AS id, name FROM source");
    let out = run_in(dir.path(), &["run", "t", "--sql", &q, "--all", "--json"]);
    let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let run_id = r["run_id"].as_str().unwrap().to_string();
    put(
        &table,
        "day=2024-01-01/region=us",
        "later.parquet",
        &rows(&[(1, None)]),
    );
    let out = run_in(dir.path(), &["rollback", "t", &run_id, "--json"]);
    assert_eq!(out.code, 1);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["rolled_back"], 1);
    let us = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partition"] == "day=2024-01-01/region=us")
        .unwrap();
    assert_eq!(us["status"], "skipped");
    assert!(
        us["reason"].as_str().unwrap().contains("later.parquet"),
        "{us}"
    );
}

#[test]
fn the_partition_values_and_other_tables_are_usable_in_sql() {
    let (dir, _) = small_table(2);
    let lookup = dir.path().join("names");
    put(
        &lookup,
        "",
        "n.parquet",
        &rows(&[(100, Some("first")), (210, Some("second"))]),
    );
    let q = sql(
        dir.path(),
        "t.sql",
        "SELECT s.id, COALESCE(n.name, s.name) AS name FROM source s LEFT JOIN names n ON n.id = s.id \
         WHERE s.day = (SELECT day FROM this_partition)",
    );
    let out = run_in(
        dir.path(),
        &[
            "run",
            "t",
            "--sql",
            &q,
            "--all",
            "--table",
            "names=names/n.parquet",
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let statuses: Vec<String> = partitions_of(&r).into_iter().map(|p| p.1).collect();
    assert_eq!(
        statuses,
        ["rewritten", "unchanged", "unchanged", "rewritten"]
    );
}

#[test]
fn the_tables_codec_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    put_with(
        dir.path(),
        "k=1",
        &rows(&[(1, Some("x")), (2, Some("y"))]),
        props,
    );
    let id = rewrite_all(dir.path(), "SELECT id, upper(name) AS name FROM source");
    let codec = new_file_first_chunk(dir.path(), "k=1", &id).compression();
    assert!(
        matches!(codec, parquet::basic::Compression::ZSTD(_)),
        "{codec:?}"
    );
}

#[test]
fn a_corrupt_file_fails_its_partition_only() {
    let (dir, table) = small_table(2);
    let f = table.join("day=2024-01-02/region=us/part-0.parquet");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 12]).unwrap();
    let q = sql(dir.path(), "t.sql", "SELECT id + 1 AS id, name FROM source");
    let out = run_in(
        dir.path(),
        &["run", "t", "--sql", &q, "--from", "2024-01-02", "--json"],
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        partitions_of(&r),
        [
            (
                "day=2024-01-02/region=eu".to_string(),
                "rewritten".to_string()
            ),
            ("day=2024-01-02/region=us".into(), "failed".into()),
        ]
    );
    assert!(
        r["partitions"][1]["error"]
            .as_str()
            .unwrap()
            .contains("day=2024-01-02/region=us/part-0.parquet"),
        "{r}"
    );
    assert_eq!(std::fs::read(&f).unwrap(), &bytes[..bytes.len() - 12]);
}

#[test]
fn partitions_with_other_column_types_or_order_each_get_the_right_rows() {
    // The SQL is planned once per `source` schema: a partition whose files have another
    // type (int32 ids, columns in another order) must be planned for its own schema, not
    // run through the first partition's plan.
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t");
    put(
        &table,
        "k=1",
        "a.parquet",
        &rows(&[(1, Some("a")), (2, Some("b"))]),
    );
    let narrow = rows(&[(3, Some("c")), (4, None)]);
    let narrow = arrow::array::RecordBatch::try_from_iter([
        ("name", narrow.column(1).clone()),
        (
            "id",
            arrow::compute::cast(narrow.column(0), &arrow::datatypes::DataType::Int32).unwrap(),
        ),
    ])
    .unwrap();
    put(&table, "k=2", "a.parquet", &narrow);
    put(&table, "k=3", "a.parquet", &rows(&[(5, Some("e"))]));
    let id = rewrite_all(
        dir.path(),
        "SELECT id, upper(name) AS name FROM source WHERE k = (SELECT k FROM this_partition)",
    );
    assert_eq!(new_rows(dir.path(), "k=1", &id), ["1:A", "2:B"]);
    assert_eq!(new_rows(dir.path(), "k=2", &id), ["3:C", "4:NULL"]);
    assert_eq!(new_rows(dir.path(), "k=3", &id), ["5:E"]);
}

#[test]
fn new_files_keep_the_sources_statistics_level() {
    // A source without a page index gets new files without one (cheaper to write); a
    // source with one keeps it.
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    let dir = tempfile::tempdir().unwrap();
    let b = rows(&[(1, Some("x")), (2, Some("y"))]);
    for (partition, stats) in [
        ("k=1", EnabledStatistics::Chunk),
        ("k=2", EnabledStatistics::Page),
    ] {
        let props = WriterProperties::builder()
            .set_statistics_enabled(stats)
            .build();
        put_with(dir.path(), partition, &b, props);
    }
    let id = rewrite_all(dir.path(), "SELECT id, upper(name) AS name FROM source");
    let page_index = |partition: &str| {
        let meta = new_file_first_chunk(dir.path(), partition, &id);
        (
            meta.column_index_offset().is_some(),
            meta.statistics().is_some(),
        )
    };
    assert_eq!(page_index("k=1"), (false, true), "chunk statistics only");
    assert_eq!(page_index("k=2"), (true, true), "page index kept");
}

#[test]
fn every_partition_of_a_run_sees_the_same_now() {
    let (dir, _) = small_table(3);
    let id = rewrite_all(
        dir.path(),
        "SELECT id, CAST(now() AS VARCHAR) AS name FROM source",
    );
    let mut seen = std::collections::BTreeSet::new();
    for day in 1..=3 {
        for region in ["eu", "us"] {
            let partition = format!("day=2024-01-0{day}/region={region}");
            let rows = new_rows(dir.path(), &partition, &id);
            assert_eq!(rows.len(), 3, "{partition}");
            seen.extend(
                rows.into_iter()
                    .map(|r| r.split_once(':').unwrap().1.to_string()),
            );
        }
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
}

/// The SQL is planned once per run: plans of stateless nodes are run again for each
/// partition, others planned again. Either way each partition sees only its own rows,
/// including where a plan could hold one partition's count, top rows or built table.
#[test]
fn each_partition_is_transformed_with_its_own_rows_whatever_the_query() {
    let cases: [(&str, [&[&str]; 3]); 5] = [
        (
            "SELECT id * 2 AS id, upper(name) AS name FROM source WHERE id <> 2",
            [&["2:A", "6:C"], &["20:D", "40:NULL"], &["200:F"]],
        ),
        (
            "SELECT id + (SELECT count(*) FROM source) AS id, name FROM source",
            [&["4:a", "5:b", "6:c"], &["12:d", "22:NULL"], &["101:f"]],
        ),
        (
            "SELECT id + 1 AS id, name FROM source ORDER BY id DESC LIMIT 2",
            [&["4:c", "3:b"], &["21:NULL", "11:d"], &["101:f"]],
        ),
        (
            "SELECT max(id) + 1 AS id, min(name) AS name FROM source",
            [&["4:a"], &["21:d"], &["101:f"]],
        ),
        (
            "SELECT s.id, p.label AS name FROM source s \
             JOIN (SELECT k, 'k' || CAST(k AS VARCHAR) AS label FROM this_partition) p \
             ON s.k = p.k WHERE s.id > 1",
            [&["2:k1", "3:k1"], &["10:k2", "20:k2"], &["100:k3"]],
        ),
    ];
    for (query, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("t");
        put(
            &table,
            "k=1",
            "a.parquet",
            &rows(&[(1, Some("a")), (2, Some("b")), (3, Some("c"))]),
        );
        put(
            &table,
            "k=2",
            "a.parquet",
            &rows(&[(10, Some("d")), (20, None)]),
        );
        put(&table, "k=3", "a.parquet", &rows(&[(100, Some("f"))]));
        let id = rewrite_all(dir.path(), query);
        for (k, want) in (1..=3).zip(want) {
            assert_eq!(
                new_rows(dir.path(), &format!("k={k}"), &id),
                want,
                "{query}"
            );
        }
    }
}

#[test]
fn a_journal_of_the_previous_format_resumes_and_rolls_back() {
    // testdata/journal_format_1: a run journalled before the format was recorded, cut
    // off as a crash would: day=2024-01-02 committed, day=2024-01-01 `committing` with
    // its new file staged and the swap not done.
    let dir = tempfile::tempdir().unwrap();
    crate::support::copy_dir(
        &crate::support::root().join("testdata/journal_format_1"),
        dir.path(),
    );
    let run_id = "20261204T010942Z-7a3ca7";
    let out = run_in(dir.path(), &["runs", "t", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let runs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(runs["runs"][0]["status"], "interrupted", "{runs}");
    assert_eq!(runs["runs"][0]["rewritten"], 1, "{runs}");

    let out = run_in(dir.path(), &["resume", "t", "--json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        partitions_of(&r),
        [
            ("day=2024-01-01".to_string(), "rewritten".to_string()),
            ("day=2024-01-02".to_string(), "rewritten".to_string())
        ]
    );
    let sums = |dir: &std::path::Path| -> Vec<(String, String)> {
        crate::support::checksums(&snapshot_json(dir, "t", &[]))
    };
    let want_after = [
        ("day=2024-01-01", "3b0f1f0e5135cd13013737b575ff9b4c"),
        ("day=2024-01-02", "d6f94e8ed909be185c4e951fc21addd1"),
    ];
    let prefixes = |v: Vec<(String, String)>| -> Vec<(String, String)> {
        v.into_iter()
            .map(|(p, c)| (p, c[..32].to_string()))
            .collect()
    };
    let owned = |w: &[(&str, &str)]| -> Vec<(String, String)> {
        w.iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect()
    };
    assert_eq!(prefixes(sums(dir.path())), owned(&want_after));
    let t = dir.path().join("t");
    assert!(t
        .join(format!("day=2024-01-01/part-{run_id}-0.parquet"))
        .exists());
    assert!(!t.join("day=2024-01-01/part-0.parquet").exists());

    let out = run_in(dir.path(), &["rollback", "t", run_id]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let before = [
        ("day=2024-01-01", "473732f3f03389587e62d7b9cc90ad0b"),
        ("day=2024-01-02", "a5aba27b6aa1c33186b867f85245440f"),
    ];
    assert_eq!(prefixes(sums(dir.path())), owned(&before));
    let files: Vec<String> = file_hashes(&t).into_keys().collect();
    assert_eq!(
        files,
        [
            "day=2024-01-01/part-0.parquet",
            "day=2024-01-02/part-0.parquet"
        ]
    );
}

#[test]
fn a_transform_calling_volatile_functions_is_refused_before_anything_is_touched() {
    let (dir, table) = small_table(2);
    let before = file_hashes(&table);
    std::fs::write(
        dir.path().join("r.sql"),
        "SELECT id, name FROM source WHERE random() < 0.5 ORDER BY uuid()",
    )
    .unwrap();
    for cmd in [
        &["plan", "t", "--sql", "r.sql"][..],
        &["plan", "t", "--sql", "r.sql", "--all", "--freeze"],
        &["run", "t", "--sql", "r.sql", "--all"],
    ] {
        let out = run_in(dir.path(), cmd);
        assert_eq!(out.code, 2, "{cmd:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(
                "the transform calls random() in a WHERE or HAVING condition, uuid() in an ORDER BY"
            ) && out.stderr.contains("--allow-nondeterministic"),
            "{cmd:?}: {}",
            out.stderr
        );
    }
    assert_eq!(file_hashes(&table), before);
    let runs = run_in(dir.path(), &["runs", "t", "--json"]);
    assert!(runs.stdout.contains("\"runs\": []"), "{}", runs.stdout);
    // now() is one value per run: not refused.
    std::fs::write(
        dir.path().join("n.sql"),
        "SELECT id, name FROM source WHERE now() > TIMESTAMP '2000-01-01'",
    )
    .unwrap();
    let out = run_in(dir.path(), &["plan", "t", "--sql", "n.sql"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Allowed, the run goes on and says what it accepted, in its report and its journal.
    let out = run_in(
        dir.path(),
        &[
            "run",
            "t",
            "--sql",
            "r.sql",
            "--all",
            "--allow-nondeterministic",
            "--json",
        ],
    );
    assert!(
        out.code == 0 || out.code == 1,
        "{}{}",
        out.stdout,
        out.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (&v["preflight"]["volatile"], &v["preflight"]["allowed"]),
        (
            &serde_json::json!([
                "random() in a WHERE or HAVING condition",
                "uuid() in an ORDER BY"
            ]),
            &serde_json::json!(true)
        )
    );
    assert!(v["preflight"]["sample"]["partition"].is_string(), "{v}");
    let run = std::fs::read_dir(dir.path().join(".backfill/t/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let journal = std::fs::read_to_string(run.join("journal/log.jsonl")).unwrap();
    assert!(
        journal.contains(r#""preflight":{"volatile":["random() in a WHERE or HAVING condition","uuid() in an ORDER BY"],"allowed":true,"sample":{"#),
        "{journal}"
    );
}

/// A table of one day whose rows tie on `name`: `x` twice, then `y`.
fn ties_table() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for d in 1..=3 {
        let b = rows(&[
            (d * 10 + 1, Some("x")),
            (d * 10 + 2, Some("x")),
            (d * 10 + 3, Some("y")),
        ]);
        put(
            &dir.path().join("t"),
            &format!("day=2024-01-0{d}"),
            "part-0.parquet",
            &b,
        );
    }
    dir
}

/// A transform whose output depends on the order rows are read in is refused by `plan` and
/// `run` before anything is touched, naming the partition and the column; with
/// `--allow-nondeterministic` the run goes on and its journal says what the sample found.
#[test]
fn a_transform_that_depends_on_row_order_is_refused_before_anything_is_touched() {
    let dir = ties_table();
    let table = dir.path().join("t");
    let before = file_hashes(&table);
    let cases = [
        // A LIMIT without an ORDER BY: the first rows, whichever they are.
        (
            "limit.sql",
            "SELECT id, name FROM source LIMIT 2",
            "2 rows both times, but other values in column(s) id, name",
        ),
        // row_number() over ties: which `x` is first depends on the order.
        (
            "ties.sql",
            "SELECT CASE WHEN row_number() OVER (ORDER BY name) = 1 THEN id ELSE id + 100 END AS id, name FROM source",
            "3 rows both times, but other values in column(s) id",
        ),
    ];
    for (file, text, why) in cases {
        let q = sql(dir.path(), file, text);
        for cmd in [
            &["plan", "t", "--sql", &q][..],
            &["run", "t", "--sql", &q, "--all"],
            &["plan", "t", "--sql", &q, "--all", "--freeze"],
        ] {
            let out = run_in(dir.path(), cmd);
            assert_eq!(out.code, 2, "{cmd:?}: {}{}", out.stdout, out.stderr);
            assert!(
                out.stderr
                    .contains("the transform is not deterministic: on partition day=2024-01-02")
                    && out.stderr.contains(why)
                    && out.stderr.contains("--allow-nondeterministic"),
                "{cmd:?}: {}",
                out.stderr
            );
        }
    }
    assert_eq!(file_hashes(&table), before);
    assert!(!dir.path().join(".backfill/t/runs").exists());
    // A total order makes the same transforms deterministic.
    let q = sql(
        dir.path(),
        "total.sql",
        "SELECT id, name FROM source ORDER BY name, id LIMIT 2",
    );
    let out = run_in(dir.path(), &["plan", "t", "--sql", &q, "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        plan["transform"]["sample"],
        serde_json::json!({"partition": "day=2024-01-02", "rows": 3, "same": true, "ms": plan["transform"]["sample"]["ms"]})
    );
    // Allowed: the run goes on, and says so.
    let out = run_in(
        dir.path(),
        &[
            "run",
            "t",
            "--sql",
            "limit.sql",
            "--all",
            "--allow-nondeterministic",
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["preflight"]["allowed"], true);
    assert_eq!(v["preflight"]["sample"]["same"], false);
    assert_eq!(v["summary"]["rows_after"], 6);
}

/// The plan's estimate: measured on a sample (the median partition, or the one given),
/// with the cost in bytes and the time; without SQL, of a snapshot.
#[test]
fn a_plan_estimates_time_and_cost_from_a_measured_sample() {
    let dir = ties_table();
    let q = sql(
        dir.path(),
        "u.sql",
        "SELECT id, upper(name) AS name FROM source",
    );
    let out = run_in(
        dir.path(),
        &[
            "plan",
            "t",
            "--sql",
            &q,
            "--preflight-partition",
            "day=2024-01-03",
            "--price-per-gb",
            "1000",
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let e = &plan["estimate"];
    assert_eq!(
        (&e["of"], &e["sample"]),
        (&"run".into(), &"day=2024-01-03".into())
    );
    let bytes = plan["totals"]["bytes"].as_u64().unwrap();
    assert_eq!(e["cost"]["bytes_read"], bytes);
    assert_eq!(e["cost"]["backup_bytes"], bytes);
    assert!(e["cost"]["bytes_written"].as_u64().unwrap() > 0, "{e}");
    assert!(e["cost"].get("requests").is_none(), "local disk: {e}");
    let price = e["cost"]["price"].as_f64().unwrap();
    let want = 1000.0 * (bytes + e["cost"]["bytes_written"].as_u64().unwrap()) as f64 / 1e9;
    assert!((price - want).abs() < 1e-9, "{price} vs {want}");
    let seconds = e["seconds"].as_f64().unwrap();
    assert!(
        seconds > 0.0 && plan["estimated_seconds"] == seconds,
        "{plan}"
    );
    assert!(
        e["method"].as_str().unwrap().contains("day=2024-01-03"),
        "{e}"
    );
    // Without SQL: a snapshot's estimate, reading only.
    let out = run_in(dir.path(), &["plan", "t", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["estimate"]["of"], "snapshot");
    assert_eq!(plan["estimate"]["cost"]["bytes_written"], 0);
    // A partition outside the selection is refused by name.
    let out = run_in(
        dir.path(),
        &[
            "plan",
            "t",
            "--sql",
            &q,
            "--from",
            "2024-01-02",
            "--preflight-partition",
            "day=2024-01-01",
        ],
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains(
            "--preflight-partition day=2024-01-01 is not one of the 2 selected partitions"
        ),
        "{}",
        out.stderr
    );
    // The run reports the plan's estimate beside what it took.
    let out = run_in(dir.path(), &["run", "t", "--sql", &q, "--all", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        v["estimate"]["seconds"].as_f64().unwrap() > 0.0 && v["wall_ms"].as_f64().unwrap() > 0.0,
        "{v}"
    );
}

/// `runs` and a run's start read an ended run from its summary (`runs/ID/summary.json`),
/// not its whole journal; a record written since (here `--release`'s) makes the summary
/// stale, and the journal is read again. Shown by editing the summary: what it says is what
/// `runs` shows and what a run refuses, until the journal grows.
#[test]
fn ended_runs_are_read_from_their_summary_until_their_journal_grows() {
    let (dir, table) = small_table(2);
    let q = sql(
        dir.path(),
        "fix.sql",
        "SELECT id + 1 AS id, name FROM source",
    );
    let out = run_in(dir.path(), &["run", "t", "--sql", &q, "--all", "--json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let run_id = v["run_id"].as_str().unwrap().to_string();
    let summary = dir
        .path()
        .join(".backfill/t/runs")
        .join(&run_id)
        .join("summary.json");
    assert!(!summary.exists(), "nothing has read the history yet");
    let history = |dir: &std::path::Path| -> serde_json::Value {
        let out = run_in(dir, &["runs", "t", "--json"]);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["run_id"] == run_id.as_str())
            .unwrap()
            .clone()
    };
    let first = history(dir.path());
    assert_eq!(
        (&first["status"], &first["rewritten"], &first["released"]),
        (&"finished".into(), &4.into(), &false.into()),
        "{first}"
    );
    // The first reader wrote the summary, from the journal.
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(written["brief"]["info"], first);
    assert_eq!(written["brief"]["open_steps"], serde_json::json!([]));
    assert_eq!(written["brief"]["settled"], true);

    // Edited, the summary is what is read: the journal has not grown.
    let mut edited = written.clone();
    edited["brief"]["info"]["status"] = "edited".into();
    edited["brief"]["open_steps"] = serde_json::json!([["day=2024-01-01/region=eu", "commit"]]);
    std::fs::write(&summary, serde_json::to_vec(&edited).unwrap()).unwrap();
    assert_eq!(history(dir.path())["status"], "edited");
    let before = file_hashes(&table);
    let out = run_in(
        dir.path(),
        &[
            "run",
            "t",
            "--sql",
            &q,
            "--partition",
            "day=2024-01-01/region=eu",
        ],
    );
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "partition day=2024-01-01/region=eu holds an unfinished commit of run {run_id}"
        )),
        "{}",
        out.stderr
    );
    // So does a frozen run's worker, which looks at other runs one partition at a time.
    let out = run_in(
        dir.path(),
        &[
            "plan",
            "t",
            "--sql",
            &q,
            "--partition",
            "day=2024-01-01/region=eu",
            "--freeze",
            "--json",
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let frozen: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let frozen = frozen["run_id"].as_str().unwrap();
    let out = run_in(
        dir.path(),
        &[
            "run",
            "t",
            "--run",
            frozen,
            "--partition",
            "day=2024-01-01/region=eu",
        ],
    );
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "partition day=2024-01-01/region=eu holds an unfinished commit of run {run_id}"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(file_hashes(&table), before);

    // Releasing the run appends to its journal: the summary is stale, and the journal says
    // what is true again.
    let out = run_in(dir.path(), &["runs", "t", "--release", &run_id]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let after = history(dir.path());
    assert_eq!(
        (&after["status"], &after["rewritten"], &after["released"]),
        (&"finished".into(), &4.into(), &true.into()),
        "{after}"
    );
    let rewritten: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(rewritten["brief"]["info"], after);
    assert_ne!(rewritten["extent"], written["extent"]);
    let out = run_in(
        dir.path(),
        &[
            "run",
            "t",
            "--sql",
            &q,
            "--partition",
            "day=2024-01-01/region=eu",
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}
