//! `verify`: each finding on a table made to have it, and a clean table passing.

use crate::support::{copy_dir, put, root, rows, run_in, small_table};

#[test]
fn a_clean_table_passes() {
    let (dir, _) = small_table(3);
    let out = assert_cli!(dir.path(), &["verify", "t", "--expect-every", "day"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn every_kind_of_finding() {
    let (dir, table) = small_table(5);
    // A gap (day 3), an empty partition, a zero-byte and a truncated file, a NULL
    // partition, a stray file, a file outside the layout, mixed schemas.
    std::fs::remove_dir_all(table.join("day=2024-01-03")).unwrap();
    put(
        &table,
        "day=2024-01-04/region=eu",
        "part-0.parquet",
        &rows(&[]),
    );
    std::fs::write(table.join("day=2024-01-04/region=us/empty.parquet"), b"").unwrap();
    let good = std::fs::read(table.join("day=2024-01-05/region=eu/part-0.parquet")).unwrap();
    std::fs::write(
        table.join("day=2024-01-05/region=eu/part-0.parquet"),
        &good[..good.len() / 2],
    )
    .unwrap();
    put(
        &table,
        "day=__HIVE_DEFAULT_PARTITION__/region=eu",
        "part-0.parquet",
        &rows(&[(1, None)]),
    );
    std::fs::write(table.join("day=2024-01-01/region=eu/README.md"), "x").unwrap();
    put(&table, "misc", "loose.parquet", &rows(&[(1, None)]));
    let ints = arrow::array::RecordBatch::try_from_iter([(
        "id",
        std::sync::Arc::new(arrow::array::Int64Array::from(vec![5])) as arrow::array::ArrayRef,
    )])
    .unwrap();
    put(&table, "day=2024-01-02/region=us", "part-1.parquet", &ints);

    let out = run_in(
        dir.path(),
        &["verify", "t", "--expect-every", "day", "--json"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let kinds: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["partition"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let want = [
        ("outside_layout", "-"),
        ("missing_partition", "2024-01-03"),
        ("stray_file", "day=2024-01-01/region=eu"),
        ("mixed_schema", "day=2024-01-02/region=us"),
        ("empty_partition", "day=2024-01-04/region=eu"),
        ("zero_byte_file", "day=2024-01-04/region=us"),
        ("unreadable_file", "day=2024-01-05/region=eu"),
        ("null_partition", "day=__HIVE_DEFAULT_PARTITION__/region=eu"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(kinds, want);
    assert_eq!(report["ok"], false);
}

#[test]
fn drift_against_a_snapshot_within_the_selection() {
    let (dir, table) = small_table(4);
    assert_eq!(
        run_in(
            dir.path(),
            &["snapshot", "t", "--columns", "--out", "s.json"]
        )
        .code,
        0
    );
    put(
        &table,
        "day=2024-01-02/region=eu",
        "part-0.parquet",
        &rows(&[(200, Some("a")), (201, None), (202, Some("x"))]),
    );
    std::fs::remove_dir_all(table.join("day=2024-01-03/region=us")).unwrap();
    std::fs::remove_dir_all(table.join("day=2024-01-04/region=us")).unwrap();

    let out = assert_cli!(
        dir.path(),
        &[
            "verify",
            "t",
            "--from",
            "2024-01-02",
            "--to",
            "2024-01-03",
            "--against",
            "s.json",
        ]
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("selected 3 partition(s)"),
        "{}",
        out.stderr
    );
}

#[test]
fn hourly_sequences_on_two_keys() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t");
    for h in [0, 1, 3] {
        put(
            &t,
            &format!("dt=2024-01-01/hour={h}"),
            "a.parquet",
            &rows(&[(h, None)]),
        );
    }
    let out = run_in(
        dir.path(),
        &["verify", "t", "--expect-every", "hour", "--json"],
    );
    assert_eq!(out.code, 1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["findings"][0]["partition"], "2024-01-01T02");
    assert_eq!(report["expected"]["count"], 4);
}

/// A column typed one way in some partitions and another way in others (a rewrite by
/// another tool, a writer upgrade) is a finding naming the column and the odd partition.
#[test]
fn a_column_typed_differently_across_partitions_is_found() {
    use arrow::array::{ArrayRef, FixedSizeBinaryArray, Int64Array, RecordBatch};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t");
    let with = |u: ArrayRef| {
        let id: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        RecordBatch::try_from_iter([("id", id), ("u", u)]).unwrap()
    };
    let blob: ArrayRef = Arc::new(arrow::array::BinaryArray::from(vec![&[7u8; 16][..]]));
    for day in ["2024-01-01", "2024-01-02"] {
        put(
            &table,
            &format!("day={day}"),
            "part-0.parquet",
            &with(blob.clone()),
        );
    }
    let uuid: ArrayRef =
        Arc::new(FixedSizeBinaryArray::try_from_iter(std::iter::once([7u8; 16].to_vec())).unwrap());
    put(&table, "day=2024-01-03", "part-0.parquet", &with(uuid));

    let out = run_in(dir.path(), &["verify", "t", "--json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["kind"], "mixed_column_types");
    assert_eq!(findings[0]["partition"], "day=2024-01-03");
    assert_eq!(
        findings[0]["detail"],
        "column u is Binary in 2 partition(s) (day=2024-01-01, day=2024-01-02) but FixedSizeBinary(16) in 1 partition(s) (day=2024-01-03); rewrite the odd partitions so the table has one type"
    );
}

/// A one-row file of `u` (16 bytes) and `s` (a string), annotated as `message` says.
fn annotated_file(table: &std::path::Path, partition: &str, message: &str) {
    use parquet::data_type::{ByteArray, ByteArrayType, FixedLenByteArrayType};
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;

    let schema = parquet::schema::parser::parse_message_type(message).unwrap();
    std::fs::create_dir_all(table.join(partition)).unwrap();
    let file = std::fs::File::create(table.join(partition).join("part-0.parquet")).unwrap();
    let mut w = SerializedFileWriter::new(file, Arc::new(schema), Default::default()).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut c = rg.next_column().unwrap().unwrap();
    let u = ByteArray::from(vec![7u8; 16]);
    c.typed::<FixedLenByteArrayType>()
        .write_batch(&[u.into()], None, None)
        .unwrap();
    c.close().unwrap();
    let mut c = rg.next_column().unwrap().unwrap();
    c.typed::<ByteArrayType>()
        .write_batch(&["x".into()], None, None)
        .unwrap();
    c.close().unwrap();
    rg.close().unwrap();
    w.close().unwrap();
}

#[test]
fn an_annotation_the_arrow_type_does_not_say_makes_another_type_a_legacy_one_does_not() {
    // Legacy writers (fastparquet, old Spark) give a string only the converted type UTF8;
    // newer ones the logical type String: one type to every reader. A UUID is not a bare
    // 16-byte binary to DuckDB or Spark, though both are FixedSizeBinary(16) to Arrow.
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t");
    let legacy = "message m { required fixed_len_byte_array(16) u; required binary s (UTF8); }";
    let logical = "message m { required fixed_len_byte_array(16) u; required binary s (STRING); }";
    let uuid =
        "message m { required fixed_len_byte_array(16) u (UUID); required binary s (STRING); }";
    annotated_file(&t, "p=1", legacy);
    annotated_file(&t, "p=2", logical);
    let findings = || {
        let out = run_in(dir.path(), &["verify", "t", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["detail"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(findings(), Vec::<String>::new());
    annotated_file(&t, "p=3", uuid);
    assert_eq!(
        findings(),
        ["column u is FixedSizeBinary(16) in 2 partition(s) (p=1, p=2) but FixedSizeBinary(16) (Uuid) in 1 partition(s) (p=3); rewrite the odd partitions so the table has one type"]
    );
}

#[test]
fn rows_anomaly_flags_a_dropped_and_a_doubled_day_but_not_weekends_or_a_ramp() {
    use arrow::array::{Array, Int64Array, RecordBatch};
    let dir = tempfile::tempdir().unwrap();
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    for i in 0..56i64 {
        let day = start + chrono::Duration::days(i);
        // Weekdays busy, weekends quiet, everything growing a little each week.
        let mut n = if i % 7 >= 5 { 30 } else { 100 } + i;
        if day.to_string() == "2024-02-07" {
            n = 3; // a load that lost most of its rows
        }
        if day.to_string() == "2024-02-17" {
            n *= 2; // a load that ran twice
        }
        for region in ["eu", "us"] {
            let ids: Vec<i64> = (0..n).collect();
            let batch = RecordBatch::try_from_iter([(
                "id",
                std::sync::Arc::new(Int64Array::from(ids)) as std::sync::Arc<dyn Array>,
            )])
            .unwrap();
            let n = if region == "us" { 1 } else { batch.num_rows() };
            crate::support::put(
                &dir.path().join("t"),
                &format!("day={day}/region={region}"),
                "part-0.parquet",
                &batch.slice(0, n),
            );
        }
    }
    let out = run_in(dir.path(), &["verify", "t", "--rows-anomaly", "--json"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let found = crate::support::finding_list(&out.stdout);
    // region=us holds one row every day: steady, never an anomaly.
    assert_eq!(
        found,
        [
            "row_count_anomaly day=2024-02-07/region=eu",
            "row_count_anomaly day=2024-02-17/region=eu"
        ]
    );
    let detail = v["findings"][0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("3 rows; expected ") && detail.contains("previous Weds with region=eu"),
        "{detail}"
    );
    // A looser threshold lets the doubled day through; the lost rows stay flagged.
    let out = run_in(
        dir.path(),
        &[
            "verify",
            "t",
            "--rows-anomaly",
            "--anomaly-threshold",
            "8",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 1, "{v}");
    // The flags that tune it need it.
    let out = run_in(dir.path(), &["verify", "t", "--anomaly-threshold", "3"]);
    assert_eq!(out.code, 2);
    // From footers alone, the same anomalies, and a damaged page goes unseen: the data
    // is not read (a full verify names the file).
    let damaged = dir.path().join("t/day=2024-01-10/region=eu/part-0.parquet");
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[4..24].fill(0xff);
    std::fs::write(&damaged, bytes).unwrap();
    let footers = run_in(
        dir.path(),
        &[
            "verify",
            "t",
            "--rows-anomaly",
            "--footers-only",
            "--json",
            "--no-cache",
        ],
    );
    assert_eq!(crate::support::finding_list(&footers.stdout), found);
    let f: serde_json::Value = serde_json::from_str(&footers.stdout).unwrap();
    assert_eq!((&f["footers_only"], &f["rows"]), (&true.into(), &v["rows"]));
    let full = run_in(dir.path(), &["verify", "t", "--json", "--no-cache"]);
    assert_eq!(
        crate::support::finding_list(&full.stdout),
        ["unreadable_file day=2024-01-10/region=eu"]
    );
}

#[test]
fn a_parquet_summary_that_disagrees_with_the_files_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t");
    copy_dir(&root().join("testdata/fastparquet_summary"), &t);
    let verify = || {
        let out = run_in(dir.path(), &["verify", "t", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let findings: Vec<(String, String, String)> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["kind"].as_str().unwrap().to_string(),
                    format!(
                        "{} {}",
                        f["partition"].as_str().unwrap_or("-"),
                        f["path"].as_str().unwrap()
                    ),
                    f["detail"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        (out.code, findings)
    };
    // As fastparquet wrote it, the summary agrees with the files.
    assert_eq!(verify(), (0, vec![]));

    // Another job replaces p=1's files and puts a file of other rows in p=2 under the
    // old name.
    std::fs::remove_file(t.join("p=1/part.0.parquet")).unwrap();
    std::fs::rename(t.join("p=1/part.1.parquet"), t.join("p=1/new.parquet")).unwrap();
    std::fs::copy(
        root().join("testdata/fastparquet_summary/p=1/part.0.parquet"),
        t.join("p=2/part.1.parquet"),
    )
    .unwrap();
    let (code, findings) = verify();
    assert_eq!(code, 1);
    let tail = "; readers that use it (fastparquet, dask) see other files and counts than the table holds: delete it, or write it again with the tool that wrote it";
    assert_eq!(
        findings,
        [(
            "stale_summary".to_string(),
            "- _metadata".to_string(),
            format!("the summary does not list p=1/new.parquet (and 3 more){tail}")
        )]
    );
    // One in a partition's folder names files relative to that folder, and covers that
    // partition only.
    std::fs::rename(t.join("_metadata"), t.join("p=2/_metadata")).unwrap();
    let (_, findings) = verify();
    assert_eq!(
        findings,
        [(
            "stale_summary".to_string(),
            "p=2 p=2/_metadata".to_string(),
            format!("the summary does not list p=2/part.1.parquet{tail}")
        )]
    );
}

/// What `script` prints, run by `engine`'s Python with the table folder as its argument.
fn python_on(engine: &str, script: &str, table: &std::path::Path) -> String {
    let out = std::process::Command::new(crate::support::engines::python(engine))
        .args(["-c", script])
        .arg(table)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn fastparquet_rebuilds_its_summary_over_rewritten_partitions() {
    // What a fastparquet user does after a run: move the summaries back in by rebuilding
    // them over the table's files, old and new. fastparquet refuses files whose schema
    // roots are named differently, so new files keep the source's root name.
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t");
    copy_dir(&root().join("testdata/fastparquet_summary"), &t);
    std::fs::remove_file(t.join("_metadata")).unwrap();
    std::fs::remove_file(t.join("_common_metadata")).unwrap();
    std::fs::write(
        dir.path().join("f.sql"),
        "SELECT * FROM source WHERE k <> 1",
    )
    .unwrap();
    let out = run_in(
        dir.path(),
        &["run", "t", "--sql", "f.sql", "--partition", "p=1"],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let script = "import fastparquet, glob, sys\n\
        t = sys.argv[1]\n\
        fastparquet.writer.merge(sorted(glob.glob(t + '/p=*/*.parquet')))\n\
        print(fastparquet.ParquetFile(t).count())";
    assert_eq!(python_on("fastparquet", script, &t), "5");
    assert!(t.join("_metadata").is_file());
    // The rebuilt summary mixes row groups with and without ordinals (the parquet crate
    // refuses such a footer); it agrees with the files.
    let out = run_in(dir.path(), &["verify", "t", "--json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        crate::support::finding_list(&out.stdout),
        Vec::<String>::new()
    );

    // Then another job (pyarrow) drops p=2's last row, in a file of another name: that
    // summary is compared too, and found stale. pyarrow annotates strings and integers as
    // logical types where fastparquet wrote converted ones: the same types to readers,
    // not `mixed_column_types`.
    let script = "import glob, os, sys, pyarrow.parquet as pq\n\
        d = sys.argv[1] + '/p=2'\n\
        old = sorted(glob.glob(d + '/*.parquet'))\n\
        t = pq.ParquetDataset(old).read()\n\
        pq.write_table(t.slice(0, t.num_rows - 1), d + '/fixed.parquet')\n\
        [os.remove(f) for f in old]\n\
        print(t.num_rows - 1)";
    assert_eq!(python_on("pyarrow", script, &t), "2");
    let out = run_in(dir.path(), &["verify", "t", "--json"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{}", out.stdout);
    assert_eq!(findings[0]["kind"], "stale_summary");
    assert_eq!(findings[0]["path"], "_metadata");
    assert!(
        findings[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("the summary does not list p=2/fixed.parquet (and 1 more)"),
        "{}",
        out.stdout
    );

    // A summary that is not a Parquet footer at all: readers that use it fail.
    std::fs::write(t.join("_metadata"), b"not parquet").unwrap();
    let out = run_in(dir.path(), &["verify", "t", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["findings"][0]["detail"],
        "the summary cannot be read: it is not a readable Parquet footer; readers that use it (fastparquet, dask) fail on it: delete it, or write it again with the tool that wrote it"
    );
}
