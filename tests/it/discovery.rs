//! Discovery rules: layout, skipped files, types, and tables on the in-memory store.

use std::sync::Arc;

use backfill::storage::Location;
use backfill::table::{discover, DiscoverOptions, KeyType};
use object_store::{memory::InMemory, path::Path, ObjectStore, ObjectStoreExt, PutPayload};

use crate::support::{put, rows, run_in, small_table, snapshot_json};

#[test]
fn skipped_names_stray_files_and_files_outside_the_layout() {
    let (dir, table) = small_table(1);
    let b = rows(&[(1, Some("x"))]);
    put(&table, "day=2024-01-01/region=eu", "_tmp.parquet", &b);
    put(&table, "day=2024-01-01/region=eu", ".hidden.parquet", &b);
    put(
        &table,
        "_temporary/0/day=2024-01-01/region=eu",
        "part-9.parquet",
        &b,
    );
    put(&table, "", "stray-root.parquet", &b);
    std::fs::write(table.join("day=2024-01-01/region=eu/notes.txt"), "hello").unwrap();
    std::fs::create_dir_all(table.join("day=2024-01-02/region=eu")).unwrap();
    std::fs::write(table.join("day=2024-01-02/region=eu/_SUCCESS"), "").unwrap();

    let snap = snapshot_json(dir.path(), "t", &[]);
    let ids: Vec<_> = snap["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_str().unwrap(),
                p["rows"].as_u64().unwrap(),
                p["files"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("day=2024-01-01/region=eu", 3, 1),
            ("day=2024-01-01/region=us", 3, 1),
            ("day=2024-01-02/region=eu", 0, 0)
        ]
    );
    assert_eq!(
        snap["outside_layout"],
        serde_json::json!(["stray-root.parquet"])
    );
    let out = run_in(dir.path(), &["snapshot", "t"]);
    assert!(out.stdout.contains("warning: 1 Parquet file(s) outside the key=value layout were not read:\n  stray-root.parquet"), "{}", out.stdout);
}

#[test]
fn key_types_are_inferred_and_can_be_given() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t");
    for (d, h) in [
        ("2024-01-01", "9"),
        ("2024-01-01", "10"),
        ("2024-01-02", "1"),
    ] {
        put(
            &t,
            &format!("dt={d}/hour={h}"),
            "a.parquet",
            &rows(&[(1, None)]),
        );
    }
    let snap = snapshot_json(dir.path(), "t", &[]);
    assert_eq!(
        snap["keys"],
        serde_json::json!([{"name": "dt", "type": "date"}, {"name": "hour", "type": "int"}])
    );
    // Typed order: hour 9 before hour 10.
    let ids: Vec<_> = snap["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["partition"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        [
            "dt=2024-01-01/hour=9",
            "dt=2024-01-01/hour=10",
            "dt=2024-01-02/hour=1"
        ]
    );
    assert_eq!(
        snap["partitions"][0]["values"],
        serde_json::json!({"dt": "2024-01-01", "hour": 9})
    );

    let snap = snapshot_json(
        dir.path(),
        "t",
        &[
            "--partition-type",
            "hour:string",
            "--partition-type",
            "dt:string",
        ],
    );
    assert_eq!(
        snap["keys"],
        serde_json::json!([{"name": "dt", "type": "string"}, {"name": "hour", "type": "string"}])
    );
    let ids: Vec<_> = snap["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["partition"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        [
            "dt=2024-01-01/hour=10",
            "dt=2024-01-01/hour=9",
            "dt=2024-01-02/hour=1"
        ]
    );
}

#[tokio::test]
async fn discovery_works_on_the_in_memory_store() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut buf = Vec::new();
    {
        let b = rows(&[(1, Some("a")), (2, None)]);
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, b.schema(), None).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
    }
    for p in [
        "lake/ev/d=2024-01-02/r=a%2Fb/x.parquet",
        "lake/ev/d=2024-01-01/r=eu/x.parquet",
        "lake/ev/d=2024-01-01/r=eu/_SUCCESS",
        "lake/ev/_metadata",
        "lake/ev/d=2024-01-02/r=a%2Fb/_common_metadata",
    ] {
        store
            .put(&Path::parse(p).unwrap(), PutPayload::from(buf.clone()))
            .await
            .unwrap();
    }
    let loc = Location::in_memory(store, "lake/ev");
    let table = discover(&loc, &DiscoverOptions::default()).await.unwrap();
    assert_eq!(table.key_names(), ["d", "r"]);
    assert_eq!(table.keys[0].key_type, KeyType::Date);
    let got: Vec<_> = table
        .partitions
        .iter()
        .map(|p| (p.id.as_str(), p.values.raw()[1].as_deref(), p.files.len()))
        .collect();
    assert_eq!(
        got,
        [
            ("d=2024-01-01/r=eu", Some("eu"), 1),
            ("d=2024-01-02/r=a%2Fb", Some("a/b"), 1)
        ]
    );
    // Parquet summary files, beside the partitions and in one (object listings name them
    // as local folders do): what a run refuses to leave false.
    assert_eq!(table.summaries, ["_metadata"]);
    assert_eq!(
        table.summaries_over(|p| p.as_str() == "d=2024-01-02/r=a%2Fb"),
        ["_metadata", "d=2024-01-02/r=a%2Fb/_common_metadata"]
    );
    assert_eq!(
        table.summaries_over(|p| p.as_str() == "d=2024-01-01/r=eu"),
        ["_metadata"]
    );
    let snap = backfill::snapshot::snapshot(&table, &Default::default())
        .await
        .unwrap();
    assert_eq!(snap.totals.rows, 4);
    assert_eq!(snap.partitions[0].checksum, snap.partitions[1].checksum);
}
