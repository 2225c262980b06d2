//! Tables written by other tools (testdata/README.md says how each was made).

use crate::support::{checksums, root, run, snapshot_json};

#[test]
fn duckdb_pyarrow_and_spark_tables_of_the_same_rows_have_the_same_checksums() {
    let duck = snapshot_json(&root(), "testdata/duckdb_events", &["--columns"]);
    let arrow = snapshot_json(&root(), "testdata/pyarrow_events", &["--columns"]);
    let spark = snapshot_json(&root(), "testdata/spark_events", &["--columns"]);
    assert_eq!(checksums(&duck).len(), 7);
    assert_eq!(checksums(&duck), checksums(&arrow), "DuckDB vs pyarrow");
    assert_eq!(checksums(&duck), checksums(&spark), "DuckDB vs Spark");
    for (a, b) in duck["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(spark["partitions"].as_array().unwrap())
    {
        assert_eq!(
            a["columns"], b["columns"],
            "column checksums of {}",
            a["partition"]
        );
        assert_eq!(a["rows"], b["rows"]);
    }
}

#[test]
fn checksums_equal_the_reference_implementation_on_real_files() {
    // From: python testdata/checksum_reference.py testdata/duckdb_events/event_date=2024-01-01/region=eu
    //       testdata/pyarrow_types/city=a%2Fb%3Ac
    let duck = snapshot_json(
        &root(),
        "testdata/duckdb_events",
        &["--partition", "event_date=2024-01-01/region=eu"],
    );
    assert_eq!(
        duck["partitions"][0]["checksum"],
        "1e21ec39b21f07e5d6217269a4ec36386bd434af7598b37accb341822d2c5cda"
    );
    let types = snapshot_json(
        &root(),
        "testdata/pyarrow_types",
        &["--where", "city = 'a/b:c'"],
    );
    assert_eq!(
        types["partitions"][0]["checksum"],
        "31645efa81c4e22311675a4410923c9e7c1fe40c118dabee26f5cadcd8b4372e"
    );
    // INT96 from year 1 to 2262, top-level and nested: the instants Spark wrote.
    // From: python testdata/checksum_reference.py testdata/spark_types/p=1 testdata/spark_types/p=2
    let spark = snapshot_json(&root(), "testdata/spark_types", &[]);
    let got: Vec<&str> = spark["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["checksum"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        [
            "5a0c6a73f0c160d56775549a37ea2c58c750c5e4b0eedae3826042fc1ab74b68",
            "15c48c51fcfb83c2743e984a52293c937ada2f3bbef373563e482ea0c25d87cb"
        ]
    );
    // Parquet INTERVAL with its months, top-level, in a list and in a struct.
    // From: python testdata/checksum_reference.py testdata/duckdb_intervals/p=1 testdata/duckdb_intervals/p=2
    let intervals = snapshot_json(&root(), "testdata/duckdb_intervals", &[]);
    let got: Vec<&str> = intervals["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["checksum"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        [
            "626b6e26301f4eb57944045c010677f18c9a2ee26d050e72cd9e8954cad2d41e",
            "3a584b3d4fb60cb99dbb650dea7459462eb7d6879c21d3fa30cea9c31d59d529"
        ]
    );
}

#[test]
fn duckdb_snapshot_table() {
    let out = run(&["snapshot", "testdata/duckdb_events"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn spark_markers_and_crc_files_are_skipped() {
    let spark = snapshot_json(&root(), "testdata/spark_events", &[]);
    // Each partition has two part files beside two .crc files; _SUCCESS sits at the root.
    assert_eq!(spark["partitions"][0]["files"], 2);
    assert_eq!(spark["totals"]["files"], 13);
    assert_eq!(spark["outside_layout"], serde_json::json!([]));
}

#[test]
fn escaped_and_null_partition_values_are_decoded() {
    let snap = snapshot_json(&root(), "testdata/pyarrow_types", &["--columns"]);
    let values: Vec<_> = snap["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["values"]["city"].clone())
        .collect();
    assert_eq!(
        values,
        [
            serde_json::json!("São Paulo"),
            serde_json::json!("a/b:c"),
            serde_json::Value::Null
        ]
    );
    assert_eq!(
        snap["keys"],
        serde_json::json!([{"name": "city", "type": "string"}])
    );
    let schema = snap["partitions"][0]["schema"].as_str().unwrap();
    assert_eq!(
        schema,
        "bin:binary, dec38:decimal(38,21), dict_s:string, f32:float64, fixed:binary, i8:int64, large_s:string, \
         list_i:list<int64>, mp:map<string,int64>, st:struct<a:int64,b:string>, t_us:time, ts_ms_utc:timestamptz, \
         ts_ns:timestamp, u64:uint64"
    );
}

#[test]
fn null_partitions_of_each_writer_read_as_null() {
    for t in [
        "testdata/duckdb_events",
        "testdata/pyarrow_events",
        "testdata/spark_events",
    ] {
        let snap = snapshot_json(&root(), t, &["--where", "region IS NULL"]);
        let p = &snap["partitions"][0];
        assert_eq!(
            p["partition"], "event_date=2024-01-03/region=__HIVE_DEFAULT_PARTITION__",
            "{t}"
        );
        assert_eq!(
            p["values"],
            serde_json::json!({"event_date": "2024-01-03", "region": null}),
            "{t}"
        );
        assert_eq!(p["rows"], 1, "{t}");
    }
}
