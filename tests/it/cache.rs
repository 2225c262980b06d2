//! The checksum cache: the same checksums with and without it, on every table in
//! `testdata/` and on S3; reading only what changed; ignoring what it cannot trust.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch};
use object_store::{path::Path as StorePath, ObjectStore, ObjectStoreExt, PutPayload};

use crate::support::{copy_dir, parquet_bytes, root, run_env, run_in, s3, small_table};

/// Rows, checksum and per-column checksums of every partition, and the cache's counts.
fn snap(dir: &Path, table: &str, extra: &[&str]) -> (Vec<String>, serde_json::Value) {
    let mut args = vec!["snapshot", table, "--json", "--columns"];
    args.extend_from_slice(extra);
    let out = run_in(dir, &args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let parts = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {} {} {}",
                p["partition"], p["rows"], p["checksum"], p["columns"]
            )
        })
        .collect();
    (parts, v["cache"].clone())
}

#[test]
fn the_cache_changes_no_checksum_of_any_table_in_testdata() {
    let (mut tables, mut refused) = (0, 0);
    for entry in std::fs::read_dir(root().join("testdata")).unwrap() {
        let from = entry.unwrap().path();
        if !from.is_dir() || from.file_name().unwrap().to_string_lossy().starts_with('.') {
            continue;
        }
        let name = from.file_name().unwrap().to_string_lossy().to_string();
        // A table, or a folder holding one as `t` (the journal fixture).
        let from = if from.join("t").is_dir() {
            from.join("t")
        } else {
            from
        };
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&from, &dir.path().join("t"));
        let cold = run_in(
            dir.path(),
            &["snapshot", "t", "--json", "--columns", "--no-cache"],
        );
        if cold.code != 0 {
            // Tables made to be refused (INT96 nanoseconds, Polars' Int128) are refused alike
            // with a cache.
            let cached = run_in(dir.path(), &["snapshot", "t", "--json", "--columns"]);
            assert_eq!(cached.code, cold.code, "{name}: {}", cached.stderr);
            refused += 1;
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&cold.stdout).unwrap();
        assert!(v.get("cache").is_none(), "{name}: --no-cache has no cache");
        let (filled, c1) = snap(dir.path(), "t", &[]);
        let (again, c2) = snap(dir.path(), "t", &[]);
        let (cold, _) = snap(dir.path(), "t", &["--no-cache"]);
        assert_eq!(filled, cold, "{name}: filling the cache");
        assert_eq!(again, cold, "{name}: from the cache");
        let files = v["totals"]["files"].as_u64().unwrap();
        assert_eq!(c1["files_read"], files, "{name}: {c1}");
        assert_eq!(c2["files_read"], 0, "{name}: {c2}");
        assert_eq!(c2["files_cached"], files, "{name}: {c2}");
        // Without per-column sums, from the same entries.
        let out = run_in(dir.path(), &["snapshot", "t", "--json"]);
        let plain: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(plain["cache"]["files_read"], 0, "{name}");
        tables += 1;
    }
    assert_eq!((tables, refused), (16, 2));
}

/// ids in an uncompressed, plainly encoded file: a value's 8 bytes can be found and
/// changed in place without changing the file's size.
fn plain_file(ids: &[i64]) -> Vec<u8> {
    let batch = RecordBatch::try_from_iter([(
        "id",
        Arc::new(Int64Array::from(ids.to_vec())) as Arc<dyn Array>,
    )])
    .unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
        .build();
    let mut out = Vec::new();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

#[test]
fn a_file_changed_in_place_behind_the_same_size_and_mtime_is_found_by_verify_deep() {
    let dir = tempfile::tempdir().unwrap();
    let marker: i64 = 0x0102_0304_0506_0708;
    for d in 1..=3 {
        let p = dir.path().join(format!("t/day=2024-01-0{d}"));
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("part-0.parquet"), plain_file(&[d, marker + d, 7])).unwrap();
    }
    let (before, _) = snap(dir.path(), "t", &[]);
    let out = run_in(dir.path(), &["verify", "t", "--deep", "--json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // Another writer changes one value of day 2, keeping the size and modification time.
    let file = dir.path().join("t/day=2024-01-02/part-0.parquet");
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == (marker + 2).to_le_bytes())
        .unwrap();
    bytes[at..at + 8].copy_from_slice(&(marker + 99).to_le_bytes());
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    use std::io::{Seek, Write};
    let mut f = f;
    f.seek(std::io::SeekFrom::Start(at as u64)).unwrap();
    f.write_all(&(marker + 99).to_le_bytes()).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), mtime);
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    // A plain snapshot is not fooled (the change time moved): it reads day 2 again.
    let (after, cache) = snap(dir.path(), "t", &[]);
    assert_eq!(cache["files_read"], 1, "{cache}");
    assert_ne!(after[1], before[1]);
    assert_eq!(after[0], before[0]);
    let (cold, _) = snap(dir.path(), "t", &["--no-cache"]);
    assert_eq!(after, cold);
    // verify --deep names the file whose content changed behind the same description.
    let out = run_in(dir.path(), &["verify", "t", "--deep", "--json"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let found: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [(
            "content_changed_in_place".to_string(),
            "day=2024-01-02/part-0.parquet".to_string()
        )]
    );
    assert_eq!(v["cache"]["files_read"], 3, "--deep reads every file");
    // Once handled, pruning drops the entry of the old content.
    let out = run_in(dir.path(), &["verify", "t", "--prune-cache", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["cache"]["entries"], 3, "{}", v["cache"]);
    let out = run_in(dir.path(), &["verify", "t", "--deep"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// The cache's segments.
fn segments(table_dir: &Path) -> Vec<std::path::PathBuf> {
    let dir = table_dir.join(".backfill/t/cache");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn a_snapshot_right_after_a_run_reads_nothing_and_equals_a_cold_one() {
    let (dir, _) = small_table(4);
    snap(dir.path(), "t", &[]);
    std::fs::write(
        dir.path().join("f.sql"),
        "SELECT id, upper(name) AS name FROM source WHERE id % 2 = 0",
    )
    .unwrap();
    let out = run_in(dir.path(), &["run", "t", "--sql", "f.sql", "--all"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = run_in(dir.path(), &["snapshot", "t", "--json"]);
    assert_eq!(out.code, 0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["cache"]["files_read"], 0, "{}", v["cache"]);
    let cold = run_in(dir.path(), &["snapshot", "t", "--json", "--no-cache"]);
    let c: serde_json::Value = serde_json::from_str(&cold.stdout).unwrap();
    assert_eq!(v["partitions"], c["partitions"]);
    // The run's files have no per-column sums in the cache: --columns reads them once.
    let (after, cache) = snap(dir.path(), "t", &[]);
    assert_eq!(cache["files_read"], 8, "{cache}");
    let (cold, _) = snap(dir.path(), "t", &["--no-cache"]);
    assert_eq!(after, cold);
}

#[test]
fn a_damaged_foreign_older_or_newer_cache_is_ignored_with_a_note_and_the_checksums_stay_right() {
    let (dir, _) = small_table(3);
    let (cold, _) = snap(dir.path(), "t", &["--no-cache"]);
    snap(dir.path(), "t", &[]);
    let seg = segments(dir.path()).remove(0);
    let good = std::fs::read(&seg).unwrap();
    let cases: [(&str, Vec<u8>); 4] = [
        ("damaged", good[..good.len() / 2].to_vec()),
        ("the cache of", {
            let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
            v["table"] = "/elsewhere/other".into();
            serde_json::to_vec(&v).unwrap()
        }),
        (
            "newer",
            String::from_utf8(good.clone())
                .unwrap()
                .replacen("\"format\":2", "\"format\":99", 1)
                .into_bytes(),
        ),
        // Format 1 wrote column types with every Parquet annotation.
        (
            "older",
            String::from_utf8(good.clone())
                .unwrap()
                .replacen("\"format\":2", "\"format\":1", 1)
                .into_bytes(),
        ),
    ];
    for (why, bytes) in cases {
        assert_ne!(bytes, good, "{why}");
        for s in segments(dir.path()) {
            std::fs::remove_file(s).unwrap();
        }
        std::fs::write(&seg, &bytes).unwrap();
        let (got, cache) = snap(dir.path(), "t", &[]);
        assert_eq!(got, cold, "{why}");
        assert_eq!(cache["files_read"], 6, "{why}: {cache}");
        let notes = cache["notes"].to_string();
        assert!(notes.contains(why), "{why}: {notes}");
        // The next command reads nothing: the files were recorded again.
        let (_, cache) = snap(dir.path(), "t", &[]);
        assert_eq!(cache["files_read"], 0, "{why}: {cache}");
    }
    // A damaged entry inside a readable segment is ignored the same way.
    for s in segments(dir.path()) {
        std::fs::remove_file(s).unwrap();
    }
    let text = String::from_utf8(good).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sum = v["entries"][0]["sum"].as_str().unwrap().to_string();
    std::fs::write(&seg, text.replacen(&sum, "not hex", 1)).unwrap();
    let (got, cache) = snap(dir.path(), "t", &[]);
    assert_eq!(got, cold);
    assert_eq!(cache["files_read"], 1, "{cache}");
    assert!(cache["notes"].to_string().contains("damaged"), "{cache}");
}

#[test]
fn concurrent_snapshots_filling_the_cache_leave_it_valid() {
    let (dir, _) = small_table(20);
    let (cold, _) = snap(dir.path(), "t", &["--no-cache"]);
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_backfill"))
                .args(["snapshot", "t", "--json", "--columns"])
                .current_dir(dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["cache"].get("notes").is_none(), "{}", v["cache"]);
    }
    let (got, cache) = snap(dir.path(), "t", &[]);
    assert_eq!(got, cold);
    assert_eq!(cache["files_read"], 0, "{cache}");
    assert!(cache.get("notes").is_none(), "{cache}");
    // Merging keeps it valid and bounded.
    for _ in 0..18 {
        std::fs::write(
            dir.path().join("t/day=2024-01-01/region=eu/extra.parquet"),
            crate::support::parquet_bytes(&crate::support::rows(&[(1, None)])),
        )
        .unwrap();
        snap(dir.path(), "t", &[]);
        std::fs::remove_file(dir.path().join("t/day=2024-01-01/region=eu/extra.parquet")).unwrap();
    }
    assert!(
        segments(dir.path()).len() <= 16,
        "{:?}",
        segments(dir.path())
    );
    let (got, cache) = snap(dir.path(), "t", &[]);
    assert_eq!(got, cold);
    assert_eq!(cache["files_read"], 0, "{cache}");
}

#[test]
fn a_work_area_that_cannot_be_written_skips_the_cache_with_a_note_and_cache_dir_moves_it() {
    let (dir, _) = small_table(2);
    let (cold, _) = snap(dir.path(), "t", &["--no-cache"]);
    // A file where the work area's folder would be: nothing can be written there.
    std::fs::write(dir.path().join(".backfill"), b"not a folder").unwrap();
    let (got, cache) = snap(dir.path(), "t", &[]);
    assert_eq!(got, cold);
    assert!(
        cache["notes"].to_string().contains("--cache-dir"),
        "{cache}"
    );
    let out = run_in(dir.path(), &["snapshot", "t"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stderr.contains("the checksum cache was not written"),
        "{}",
        out.stderr
    );
    let (got, _) = snap(dir.path(), "t", &["--cache-dir", "elsewhere"]);
    assert_eq!(got, cold);
    let (got, cache) = snap(dir.path(), "t", &["--cache-dir", "elsewhere"]);
    assert_eq!(got, cold);
    assert_eq!(cache["files_read"], 0, "{cache}");
    assert!(
        cache["location"].as_str().unwrap().contains("elsewhere"),
        "{cache}"
    );
}

#[test]
fn on_s3_a_snapshot_again_reads_only_what_changed() {
    let server = s3::server();
    let bucket = s3::bucket(server);
    let store: Arc<dyn ObjectStore> = s3::store(&server.endpoint, &bucket);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let batch = |first: i64| {
        RecordBatch::try_from_iter([(
            "id",
            Arc::new(Int64Array::from((first..first + 50).collect::<Vec<_>>())) as Arc<dyn Array>,
        )])
        .unwrap()
    };
    let put = |path: String, first: i64| {
        rt.block_on(async {
            store
                .put(
                    &StorePath::from(path.as_str()),
                    PutPayload::from(parquet_bytes(&batch(first))),
                )
                .await
                .unwrap();
        })
    };
    for d in 1..=6 {
        for f in 0..2 {
            put(
                format!("lake/t/day=2024-01-0{d}/part-{f}.parquet"),
                d * 100 + f * 50,
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let env = s3::env(&server.endpoint);
    let url = format!("s3://{bucket}/lake/t");
    let snap = |extra: &[&str]| {
        let mut args = vec!["snapshot", url.as_str(), "--json"];
        args.extend_from_slice(extra);
        let out = run_env(dir.path(), &args, &env);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let parts: Vec<String> = v["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("{} {} {}", p["partition"], p["rows"], p["checksum"]))
            .collect();
        (parts, v["cache"].clone())
    };
    let (cold, _) = snap(&["--no-cache"]);
    let (filled, c1) = snap(&[]);
    let (again, c2) = snap(&[]);
    assert_eq!((filled, again), (cold.clone(), cold.clone()));
    assert_eq!(
        (c1["files_read"].as_u64(), c2["files_read"].as_u64()),
        (Some(12), Some(0))
    );
    assert!(
        c2["location"].as_str().unwrap().starts_with("s3://"),
        "{c2}"
    );
    // Another job replaces one file: only it is read, and its new content counts.
    put("lake/t/day=2024-01-03/part-1.parquet".into(), 9_000);
    let (after, c3) = snap(&[]);
    assert_eq!(c3["files_read"], 1, "{c3}");
    let (cold_after, _) = snap(&["--no-cache"]);
    assert_eq!(after, cold_after);
    assert_ne!(after, cold);
    // A run records the files it writes: a snapshot right after it reads nothing.
    std::fs::write(dir.path().join("f.sql"), "SELECT id + 1 AS id FROM source").unwrap();
    let out = run_env(dir.path(), &["run", &url, "--sql", "f.sql", "--all"], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let (after_run, c4) = snap(&[]);
    assert_eq!(c4["files_read"], 0, "{c4}");
    assert_eq!(after_run, snap(&["--no-cache"]).0);
    assert_ne!(after_run, after);
}

/// On S3 a file read for the cache is read as the version the listing named (`If-Match`),
/// so filling the cache asks nothing more of the store than a cold read; a file replaced
/// between the listing and the read is read as it is now and is not cached.
#[test]
fn on_s3_files_are_read_as_listed_with_no_head_and_a_replaced_one_is_not_cached() {
    use crate::support::proxy::{self, Mode};
    let server = s3::server();
    let bucket = s3::bucket(server);
    let direct: Arc<dyn ObjectStore> = s3::store(&server.endpoint, &bucket);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let put = |path: &str, first: i64| {
        let batch = RecordBatch::try_from_iter([(
            "id",
            Arc::new(Int64Array::from((first..first + 20).collect::<Vec<_>>())) as Arc<dyn Array>,
        )])
        .unwrap();
        rt.block_on(direct.put(
            &StorePath::from(path),
            PutPayload::from(parquet_bytes(&batch)),
        ))
        .unwrap();
    };
    for d in 1..=3 {
        put(&format!("lake/t/day=2024-01-0{d}/part-0.parquet"), d * 100);
    }
    let p = proxy::start(&server.endpoint, Mode::PassThrough);
    let loc = s3::location(&p.endpoint, &bucket, "lake/t");
    let snapshot = |table: &backfill::table::Table,
                    cache: Option<Arc<backfill::snapshot::Cache>>| {
        let options = backfill::snapshot::ScanOptions {
            cache,
            ..Default::default()
        };
        let snap = rt
            .block_on(backfill::snapshot::snapshot(table, &options))
            .unwrap();
        snap.partitions
            .iter()
            .map(|p| format!("{} {} {}", p.partition, p.rows, p.checksum))
            .collect::<Vec<_>>()
    };
    let discover = || {
        rt.block_on(backfill::table::discover(&loc, &Default::default()))
            .unwrap()
    };
    let open = || Arc::new(rt.block_on(backfill::snapshot::Cache::open(&loc, None)));

    // Listed, then one file replaced before it is read.
    let table = discover();
    put("lake/t/day=2024-01-02/part-0.parquet", 9_000);
    p.seen.lock().unwrap().clear();
    let cache = open();
    let filled = snapshot(&table, Some(cache.clone()));
    let report = rt.block_on(cache.save(&table, false));
    let heads = p
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("HEAD "))
        .count();
    assert_eq!(heads, 0, "filling the cache asks for no HEAD");
    // The replaced file's rows are the new ones, as a cold read of the new table gives.
    let cold = snapshot(&discover(), None);
    assert_eq!(filled, cold);
    assert_eq!((report.files_read, report.entries), (3, 2), "{report:?}");
    // So the next snapshot reads that file, and only it.
    let cache = open();
    let table = discover();
    assert_eq!(snapshot(&table, Some(cache.clone())), cold);
    let report = rt.block_on(cache.save(&table, false));
    assert_eq!(
        (report.files_read, report.files_cached),
        (1, 2),
        "{report:?}"
    );
    // A plan takes its rows from the cache: no data file is asked for.
    let cache = open();
    p.seen.lock().unwrap().clear();
    let plan = rt
        .block_on(backfill::plan::build(
            &table,
            &Default::default(),
            backfill::plan::Order::OldestFirst,
            2,
            "(plan)",
            Some(&cache),
        ))
        .unwrap();
    let data_reads: Vec<String> = p
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(".parquet"))
        .cloned()
        .collect();
    assert!(data_reads.is_empty(), "{data_reads:?}");
    assert_eq!((plan.totals.files, plan.totals.rows), (3, 60));
}

/// A table named two ways (a relative path, an absolute one) is one table: one cache, no
/// note about another table's segments.
#[test]
fn a_table_named_two_ways_shares_one_cache() {
    let (dir, table) = small_table(2);
    let (first, c1) = snap(dir.path(), "t", &[]);
    assert_eq!(c1["files_read"], 4, "{c1}");
    let absolute = table.canonicalize().unwrap();
    let (again, c2) = snap(dir.path(), absolute.to_str().unwrap(), &[]);
    assert_eq!(again, first);
    assert_eq!(
        (&c2["files_read"], &c2["files_cached"]),
        (&0.into(), &4.into()),
        "{c2}"
    );
    assert!(c2.get("notes").is_none(), "{c2}");
}
