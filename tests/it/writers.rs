//! Tables written by other tools (testdata/README.md says how each was made).

use crate::support::{checksums, root, snapshot_json};

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
    assert_eq!(
        partition_checksums("testdata/spark_types", &[]),
        [
            "5a0c6a73f0c160d56775549a37ea2c58c750c5e4b0eedae3826042fc1ab74b68",
            "15c48c51fcfb83c2743e984a52293c937ada2f3bbef373563e482ea0c25d87cb"
        ]
    );
    // Parquet INTERVAL with its months, top-level, in a list and in a struct.
    // From: python testdata/checksum_reference.py testdata/duckdb_intervals/p=1 testdata/duckdb_intervals/p=2
    assert_eq!(
        partition_checksums("testdata/duckdb_intervals", &[]),
        [
            "626b6e26301f4eb57944045c010677f18c9a2ee26d050e72cd9e8954cad2d41e",
            "3a584b3d4fb60cb99dbb650dea7459462eb7d6879c21d3fa30cea9c31d59d529"
        ]
    );
    // DECIMAL(19..38) in 16 bytes whatever the precision, top-level and nested.
    // From: python testdata/checksum_reference.py testdata/duckdb_decimals/p=1 testdata/duckdb_decimals/p=2
    assert_eq!(
        partition_checksums("testdata/duckdb_decimals", &[]),
        [
            "4da946cd02b5b916edf40f1b85155573097e3e87109f07fa8cca5637866cb4ec",
            "298d7e376d2117b7aee442b61d388d2cee506f2faaa722472eaf6d2f0a5ea6f4"
        ]
    );
    // Every type pyarrow writes.
    // From: python testdata/checksum_reference.py testdata/pyarrow_alltypes/p=1 testdata/pyarrow_alltypes/p=2
    assert_eq!(
        partition_checksums("testdata/pyarrow_alltypes", &[]),
        [
            "e1267a992e21bd5ae4e68838915f6ec260784ab3cea9e3d6e76134a25a8a3c4e",
            "1a3ac8aea6cb70d06cf54bf0d01a6768d493ddfda151487dd900b7e8ac580ddd"
        ]
    );
    // Every type DuckDB writes (UUID and JSON, HUGEINT, VARIANT, GEOMETRY among them). p=1
    // holds a list column pyarrow cannot read ("list offsets larger than values array").
    // From: python testdata/checksum_reference.py testdata/duckdb_types/p=2
    assert_eq!(
        partition_checksums("testdata/duckdb_types", &["--partition", "p=2"]),
        ["d13d91a0376110d713a6f6f8e82ea4ababaee950559a55a6640b28f4bcaf4675"]
    );
    // The same rows in Spark's legacy layout (`writeLegacyFormat`: decimals as fixed-length
    // bytes, lists as `bag`/`array` groups): the same checksums as Spark's standard layout.
    // From: python testdata/checksum_reference.py testdata/spark_types_legacy/p=1 (p=2)
    assert_eq!(
        partition_checksums("testdata/spark_types_legacy", &[]),
        [
            "5a0c6a73f0c160d56775549a37ea2c58c750c5e4b0eedae3826042fc1ab74b68",
            "15c48c51fcfb83c2743e984a52293c937ada2f3bbef373563e482ea0c25d87cb"
        ]
    );
    // Spark with TIMESTAMP_MICROS, and Spark 4's VARIANT.
    // From: python testdata/checksum_reference.py testdata/spark_types_micros/p=1 (p=2),
    //       testdata/spark4_variant/p=1 (p=2)
    assert_eq!(
        partition_checksums("testdata/spark_types_micros", &[]),
        [
            "86e9e14411b7cefb648c205b537149c2ed7f1a2370293b06b0ad1c8f6b1fe538",
            "2e87bd3dc5d8de112e3362214b4ecfe7b65361932d851304e8a29de6c10d4be9"
        ]
    );
    assert_eq!(
        partition_checksums("testdata/spark4_variant", &[]),
        [
            "e0ca365301f2882915ef23d872d4e67ba482e025a4965758a312c170407f730a",
            "c3de8428fa792e2651252cfeebf4306361ca5b904fad2d8c84be6df70c6645db"
        ]
    );
    // Every type Polars writes: Categorical, Enum, Array, Duration, Null among them.
    // From: python testdata/checksum_reference.py testdata/polars_types/p=1 testdata/polars_types/p=2
    assert_eq!(
        partition_checksums("testdata/polars_types", &[]),
        [
            "16523454fba4a113695de8011e7a1979bcaa64d925120fb82520f72c0dabdd7c",
            "d6141f79e6a074cce1df04c42183a8700bfb797a930bfe2503e4ed6e69cd01bc"
        ]
    );
    // pandas types as fastparquet writes them (its summary files beside them are not read).
    // From: python testdata/checksum_reference.py testdata/fastparquet_summary/p=1 (p=2)
    assert_eq!(
        partition_checksums("testdata/fastparquet_summary", &[]),
        [
            "c532012673a1201fbdc606e09ebdf7bfa4200201d7c4873f7b720635fdfaa1d1",
            "444e74e79faf437860b3e68775d13c894a62268cbd72319ecfda2aa55b1f3931"
        ]
    );
}

#[test]
fn null_columns_as_pyarrow_duckdb_and_polars_write_them_are_read() {
    // A column of type NULL (`SELECT NULL AS n`, pa.null(), pl.Null) is stored as an INT32
    // annotated UNKNOWN; pyarrow (p=1), DuckDB (p=2) and Polars (p=3) wrote the same rows.
    // From: python testdata/checksum_reference.py testdata/null_columns/p=1 (p=2, p=3 alike)
    let reference = "f6bad7c975dd0eca05d2e6c029e7e128614ed3bd6233fae6ab8025edf6dbf152";
    assert_eq!(
        partition_checksums("testdata/null_columns", &[]),
        [reference; 3]
    );
    let snap = snapshot_json(&root(), "testdata/null_columns", &["--columns"]);
    assert_eq!(snap["partitions"][0]["schema"], "k:int64, n:null", "{snap}");
}

/// Each partition's checksum of a table in `testdata/`, in order.
fn partition_checksums(table: &str, extra: &[&str]) -> Vec<String> {
    let snap = snapshot_json(&root(), table, extra);
    snap["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["checksum"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn version_1_checksums_are_still_computed_as_they_were() {
    // v1: decimal256 32 bytes wide, INT96 as wrapping nanoseconds, INTERVAL as Arrow's
    // signed days and milliseconds without months (docs/CHECKSUM.md, "Versioning").
    // From: python testdata/checksum_reference.py --v1 DIR... (each partition)
    let v1 = ["--checksum-version", "1"];
    assert_eq!(
        partition_checksums("testdata/spark_types", &v1),
        [
            "85401f2498b408936c6b26cd34b6a4b7da30ed2e04d51b933dca10c13664bc53",
            "19db6a6ec4695bf0a645cc482fd8330ffe925f3c044273e73dc14e4dacf9009f"
        ]
    );
    assert_eq!(
        partition_checksums("testdata/duckdb_intervals", &v1),
        [
            "ebe4a80e2d062cc16812f303fe48a7cb0f16ff2821bbbc73b936e22e2b71843c",
            "562ac847093c290c7989c6bd99989d9fa45e22f7dcb319dc7a38b1f14fe1fb78"
        ]
    );
    assert_eq!(
        partition_checksums("testdata/pyarrow_alltypes", &v1),
        [
            "cf76956e1fb6ff45cda2edde78ef455d8534b1bb2cd01f214ff9746047d478ca",
            "c19d586eb41f81c2634c24241cc9beedac210978db7c1753a06b8f09241f0232"
        ]
    );
    // Where v1 and v2 agree, they give the same checksums.
    assert_eq!(
        partition_checksums("testdata/duckdb_events", &v1),
        partition_checksums("testdata/duckdb_events", &[])
    );
}

#[test]
fn duckdb_snapshot_table() {
    let root = crate::support::root();
    let out = assert_cli!(&root, &["snapshot", "testdata/duckdb_events", "--no-cache"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
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
