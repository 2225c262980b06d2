//! One backfill over many workers: `plan --freeze`, then `run --run ID --partition P`
//! processes, at once, retried, killed; on local disk and on a real S3 server (moto).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, Int64Array, RecordBatch};
use object_store::{path::Path as StorePath, ObjectStore, ObjectStoreExt, PutPayload};

use crate::support::{file_hashes, parquet_bytes, put, run_env, run_in, s3};

/// Deliberately not idempotent: a partition transformed twice shows.
const SQL: &str = "SELECT id + 1000000 AS id FROM source";

fn ids(first: i64, n: i64) -> RecordBatch {
    RecordBatch::try_from_iter([(
        "id",
        Arc::new(Int64Array::from((first..first + n).collect::<Vec<_>>())) as Arc<dyn Array>,
    )])
    .unwrap()
}

/// `days` partitions of `files` files of 100 ids each.
fn table(dir: &Path, days: u32, files: u32) {
    for d in 1..=days {
        for f in 0..files {
            let first = (d * 10_000 + f * 100) as i64;
            put(
                &dir.join("t"),
                &format!("day=2024-01-{d:02}"),
                &format!("part-{f}.parquet"),
                &ids(first, 100),
            );
        }
    }
}

/// Every id of every data file under `t`, by partition, sorted.
fn ids_by_partition(t: &Path) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (f, _) in file_hashes(t) {
        let (p, _) = f.rsplit_once('/').unwrap();
        let bytes = bytes::Bytes::from(std::fs::read(t.join(&f)).unwrap());
        out.entry(p.to_string()).or_default().extend(ids_in(bytes));
    }
    out.values_mut().for_each(|v| v.sort());
    out
}

/// The ids of one Parquet file.
fn ids_in(bytes: bytes::Bytes) -> Vec<i64> {
    let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    r.flat_map(|b| {
        let b = b.unwrap();
        let c = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        c.values().to_vec()
    })
    .collect()
}

/// Every id of every data file under `prefix` in `store`, by partition, sorted.
fn s3_ids_by_partition(
    rt: &tokio::runtime::Runtime,
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
) -> BTreeMap<String, Vec<i64>> {
    rt.block_on(async {
        use futures::TryStreamExt;
        let mut got: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let objects: Vec<_> = store
            .list(Some(&StorePath::from(prefix)))
            .try_collect()
            .await
            .unwrap();
        let depth = prefix.split('/').count();
        for m in objects {
            let p = m
                .location
                .as_ref()
                .split('/')
                .nth(depth)
                .unwrap()
                .to_string();
            let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap();
            got.entry(p).or_default().extend(ids_in(bytes));
        }
        got.values_mut().for_each(|v| v.sort());
        got
    })
}

/// The ids each partition should hold: the originals, transformed exactly once.
fn transformed_once(days: u32, files: u32) -> BTreeMap<String, Vec<i64>> {
    (1..=days)
        .map(|d| {
            let mut v: Vec<i64> = (0..files)
                .flat_map(|f| {
                    let first = (d * 10_000 + f * 100) as i64;
                    (first..first + 100).map(|x| x + 1_000_000)
                })
                .collect();
            v.sort();
            (format!("day=2024-01-{d:02}"), v)
        })
        .collect()
}

/// Holds partition `partition` of frozen run `run` on the local table `t`, as another
/// worker would, until the lock is released (on the returned runtime).
fn hold_partition(
    t: &Path,
    run: &str,
    partition: &str,
) -> (tokio::runtime::Runtime, backfill::lock::Lock) {
    let loc = backfill::storage::Location::open(t.to_str().unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let held = rt
        .block_on(backfill::lock::Lock::partition(
            &loc,
            run,
            partition,
            Default::default(),
        ))
        .unwrap();
    (rt, held)
}

/// A `--json` run report's partitions: (partition, status, busy).
fn partition_rows(stdout: &str) -> Vec<(String, String, bool)> {
    let r: serde_json::Value = serde_json::from_str(stdout).unwrap();
    r["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
                p["busy"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn row(partition: &str, status: &str, busy: bool) -> (String, String, bool) {
    (partition.to_string(), status.to_string(), busy)
}

fn freeze(dir: &Path, table: &str, env: &[(&str, String)]) -> String {
    std::fs::write(dir.join("f.sql"), SQL).unwrap();
    let out = run_env(
        dir,
        &[
            "plan", table, "--sql", "f.sql", "--all", "--freeze", "--json",
        ],
        env,
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["frozen"], true);
    plan["run_id"].as_str().unwrap().to_string()
}

fn worker(dir: &Path, table: &str, run: &str, p: &str, env: &[(&str, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_backfill"));
    c.args(["run", table, "--run", run, "--partition", p, "--json"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn status_of(stdout: &str) -> (String, Option<String>) {
    let r: serde_json::Value = serde_json::from_str(stdout).unwrap();
    let p = &r["partitions"][0];
    (
        p["status"].as_str().unwrap().to_string(),
        p["note"].as_str().map(str::to_string),
    )
}

/// Every partition's worker at once, then each retried: all succeed, none waits for
/// another, the retries do nothing, and every row is transformed exactly once.
fn workers_at_once_then_retried(
    dir: &Path,
    table: &str,
    ids: &dyn Fn() -> BTreeMap<String, Vec<i64>>,
    env: &[(&str, String)],
) {
    let run = freeze(dir, table, env);
    let partitions: Vec<String> = (1..=6).map(|d| format!("day=2024-01-{d:02}")).collect();
    let children: Vec<_> = partitions
        .iter()
        .map(|p| worker(dir, table, &run, p, env).spawn().unwrap())
        .collect();
    for (p, c) in partitions.iter().zip(children) {
        let out = c.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{p}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(status_of(&stdout), ("rewritten".to_string(), None), "{p}");
    }
    // An orchestrator retries a task that succeeded: nothing is transformed again.
    for p in &partitions[..3] {
        let out = worker(dir, table, &run, p, env).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{p}: {stdout}");
        let (status, note) = status_of(&stdout);
        assert_eq!(status, "rewritten");
        assert!(note.unwrap().contains("done already"), "{p}");
    }
    assert_eq!(ids(), transformed_once(6, 3));
    let out = run_env(dir, &["runs", table, "--json"], env);
    let runs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(runs["runs"][0]["status"], "finished", "{runs}");
    assert_eq!(runs["runs"][0]["rewritten"], 6, "{runs}");
    let out = run_env(dir, &["verify", table], env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    check_run_finished(dir, table, &run, 6, env);
    // And the whole of it undoes as one run, after which each partition holds its old
    // content, as the journal says.
    let out = run_env(dir, &["rollback", table, &run], env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("6 rolled back"), "{}", out.stdout);
    let out = run_env(dir, &["verify", table, "--run", &run], env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn workers_of_a_frozen_run_on_local_disk_work_at_once_and_retries_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    table(dir.path(), 6, 3);
    let t = dir.path().join("t");
    let original = file_hashes(&t);
    workers_at_once_then_retried(dir.path(), "t", &|| ids_by_partition(&t), &[]);
    assert_eq!(file_hashes(&t), original, "rollback restores every byte");
}

#[test]
fn a_worker_is_busy_beside_a_worker_of_its_partition_or_a_whole_table_run() {
    let dir = tempfile::tempdir().unwrap();
    table(dir.path(), 3, 1);
    let run = freeze(dir.path(), "t", &[]);
    let loc = backfill::storage::Location::open(dir.path().join("t").to_str().unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Another worker holds day=2024-01-01.
    let held = rt
        .block_on(backfill::lock::Lock::partition(
            &loc,
            &run,
            "day=2024-01-01",
            Default::default(),
        ))
        .unwrap();
    let busy = worker(dir.path(), "t", &run, "day=2024-01-01", &[])
        .output()
        .unwrap();
    assert_eq!(busy.status.code(), Some(75), "{busy:?}");
    let other = worker(dir.path(), "t", &run, "day=2024-01-02", &[])
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(0), "{other:?}");
    // A whole-table run waits for the workers.
    std::fs::write(dir.path().join("g.sql"), "SELECT * FROM source").unwrap();
    let whole = run_in(dir.path(), &["run", "t", "--sql", "g.sql", "--all"]);
    assert_eq!(whole.code, 75, "{}{}", whole.stdout, whole.stderr);
    assert!(
        whole.stderr.contains("workers of a frozen run"),
        "{}",
        whole.stderr
    );
    rt.block_on(held.release()).unwrap();
    // And a worker waits for a whole-table operation.
    let table_lock = rt
        .block_on(backfill::lock::Lock::acquire(
            &loc,
            "other",
            Default::default(),
        ))
        .unwrap();
    let blocked = worker(dir.path(), "t", &run, "day=2024-01-03", &[])
        .output()
        .unwrap();
    assert_eq!(blocked.status.code(), Some(75), "{blocked:?}");
    rt.block_on(table_lock.release()).unwrap();
    let out = worker(dir.path(), "t", &run, "day=2024-01-01", &[])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = worker(dir.path(), "t", &run, "day=2024-01-03", &[])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        ids_by_partition(&dir.path().join("t")),
        transformed_once(3, 1)
    );
}

#[test]
fn resume_of_a_frozen_run_reports_a_held_partition_busy_then_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    table(dir.path(), 3, 1);
    let t = dir.path().join("t");
    let untouched = ids_by_partition(&t);
    let run = freeze(dir.path(), "t", &[]);
    // A worker still holds day=2024-01-02.
    let (rt, held) = hold_partition(&t, &run, "day=2024-01-02");
    let out = run_in(dir.path(), &["resume", "t", &run, "--json"]);
    assert_eq!(
        out.code, 75,
        "busy is retryable: {}{}",
        out.stdout, out.stderr
    );
    assert_eq!(
        partition_rows(&out.stdout),
        [
            row("day=2024-01-01", "rewritten", false),
            row("day=2024-01-02", "failed", true),
            row("day=2024-01-03", "rewritten", false),
        ]
    );
    let mut expected = transformed_once(3, 1);
    expected.insert("day=2024-01-02".into(), untouched["day=2024-01-02"].clone());
    assert_eq!(
        ids_by_partition(&t),
        expected,
        "the held partition untouched"
    );
    let out = run_in(dir.path(), &["resume", "t", &run]);
    assert_eq!(out.code, 75, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("day=2024-01-02: table ") && out.stdout.contains("only busy"),
        "{}",
        out.stdout
    );
    // With --wait, the partition is done once its holder lets go.
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        rt.block_on(held.release()).unwrap();
    });
    let out = run_in(dir.path(), &["resume", "t", &run, "--wait", "60", "--json"]);
    releaser.join().unwrap();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(ids_by_partition(&t), transformed_once(3, 1));
}

#[test]
fn a_worker_killed_at_any_moment_is_retried_into_exactly_one_transform() {
    // 20 files a partition: the commit window is wide. Kill -9 after a growing delay,
    // then retry as an orchestrator does, until the task succeeds. The delays spread over
    // an uninterrupted worker's life on this machine, so that most kills land mid-run
    // however fast it is.
    let life = {
        let dir = tempfile::tempdir().unwrap();
        table(dir.path(), 1, 20);
        let run = freeze(dir.path(), "t", &[]);
        let started = std::time::Instant::now();
        let out = worker(dir.path(), "t", &run, "day=2024-01-01", &[])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        started.elapsed()
    };
    let mut killed_mid_run = 0;
    for step in 0..10u32 {
        let delay = life * step / 10 + Duration::from_millis(2);
        let delay_ms = delay.as_millis();
        let dir = tempfile::tempdir().unwrap();
        table(dir.path(), 1, 20);
        let run = freeze(dir.path(), "t", &[]);
        let mut child = worker(dir.path(), "t", &run, "day=2024-01-01", &[])
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        killed_mid_run += usize::from(!finished);
        let mut tries = 0;
        loop {
            tries += 1;
            let out = worker(dir.path(), "t", &run, "day=2024-01-01", &[])
                .output()
                .unwrap();
            if out.status.code() == Some(0) {
                break;
            }
            assert!(tries < 5, "delay {delay_ms}: {out:?}");
        }
        assert_eq!(
            ids_by_partition(&dir.path().join("t")),
            transformed_once(1, 20),
            "delay {delay_ms}"
        );
        // Nothing staged or half-committed is left.
        let out = run_in(dir.path(), &["runs", "t", "--json"]);
        let runs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            runs["runs"][0]["status"], "finished",
            "delay {delay_ms}: {runs}"
        );
    }
    assert!(
        killed_mid_run >= 3,
        "only {killed_mid_run} kills landed mid-run"
    );
}

#[test]
fn workers_of_a_frozen_run_on_s3_work_at_once_and_retries_change_nothing() {
    let server = s3::server();
    let bucket = s3::bucket(server);
    let store: Arc<dyn ObjectStore> = s3::store(&server.endpoint, &bucket);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for d in 1..=6u32 {
            for f in 0..3u32 {
                let first = (d * 10_000 + f * 100) as i64;
                let path = StorePath::parse(format!("lake/t/day=2024-01-{d:02}/part-{f}.parquet"))
                    .unwrap();
                store
                    .put(&path, PutPayload::from(parquet_bytes(&ids(first, 100))))
                    .await
                    .unwrap();
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("s3://{bucket}/lake/t");
    let env = s3::env(&server.endpoint);
    let ids = || s3_ids_by_partition(&rt, &store, "lake/t");
    workers_at_once_then_retried(dir.path(), &url, &ids, &env);
    // No lease is left behind.
    let leases: Vec<_> = rt.block_on(async {
        use futures::TryStreamExt;
        store
            .list(Some(&StorePath::from("lake/.backfill/t/locks")))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    });
    assert!(leases.is_empty(), "{leases:?}");
}

#[test]
fn a_half_committed_partition_of_a_frozen_run_is_refused_by_other_runs_and_finished_by_a_retry() {
    use crate::support::faulty::{Count, Faulty, FaultyFs};
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Stop a worker at each of its operations in turn, until one stop lands between its
    // `committing` record and the end of the swap.
    for k in 0.. {
        let dir = tempfile::tempdir().unwrap();
        table(dir.path(), 2, 2);
        let run = freeze(dir.path(), "t", &[]);
        let t = dir.path().join("t");
        let mut loc = backfill::storage::Location::open(t.to_str().unwrap()).unwrap();
        let count = Count::new(k);
        loc.store = Faulty::counting(loc.store.clone(), count.clone());
        loc.fs = FaultyFs::counting(count);
        let crashed = rt.block_on(backfill::run::run_partition(
            &loc,
            &run,
            "day=2024-01-01",
            Default::default(),
        ));
        let log = dir.path().join(format!(
            ".backfill/t/runs/{run}/partitions/day=2024-01-01/journal/log.jsonl"
        ));
        let last = std::fs::read_to_string(&log).unwrap_or_default();
        if crashed.as_ref().is_ok_and(|r| r.ok()) {
            panic!("no operation of the commit was stopped (k = {k})");
        }
        if !last
            .lines()
            .last()
            .is_some_and(|l| l.contains(r#""event":"committing""#))
        {
            continue;
        }
        // Another run must not read that partition.
        std::fs::write(dir.path().join("g.sql"), "SELECT * FROM source").unwrap();
        let other = run_in(dir.path(), &["run", "t", "--sql", "g.sql", "--all"]);
        assert_eq!(other.code, 2, "k={k}: {}{}", other.stdout, other.stderr);
        assert!(
            other
                .stderr
                .contains(&format!("holds an unfinished commit of run {run}")),
            "k={k}: {}",
            other.stderr
        );
        // The orchestrator's retry finishes the commit instead of transforming again.
        let out = worker(dir.path(), "t", &run, "day=2024-01-01", &[])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "k={k}: {stdout}");
        let (status, note) = status_of(&stdout);
        assert_eq!(status, "rewritten");
        assert!(note.unwrap().contains("interrupted commit"), "k={k}");
        let out = worker(dir.path(), "t", &run, "day=2024-01-02", &[])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "k={k}: {out:?}");
        assert_eq!(ids_by_partition(&t), transformed_once(2, 2), "k={k}");
        return;
    }
}

/// Each partition's id, rows and checksum as `snapshot --json` gives them.
fn snapshot_sums(dir: &Path, table: &str, env: &[(&str, String)]) -> Vec<String> {
    let out = run_env(dir, &["snapshot", table, "--json"], env);
    assert_eq!(out.code, 0, "snapshot {table}: {}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{} {} {}", p["partition"], p["rows"], p["checksum"]))
        .collect()
}

/// Leases under `prefix` that have not expired (a killed try's lease expires; a live one
/// left behind would block the partition).
fn live_leases(
    rt: &tokio::runtime::Runtime,
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
) -> Vec<String> {
    use futures::TryStreamExt;
    rt.block_on(async {
        let objects: Vec<_> = store
            .list(Some(&StorePath::from(prefix)))
            .try_collect()
            .await
            .unwrap();
        let mut live = Vec::new();
        for m in objects {
            let b = store.get(&m.location).await.unwrap().bytes().await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            if v["expires_at_ms"].as_i64().unwrap() > chrono::Utc::now().timestamp_millis() {
                live.push(m.location.to_string());
            }
        }
        live
    })
}

/// (c) of the acceptance test, as a user checks it: `verify --run` ok, `runs` shows one
/// finished run whose partitions are all rewritten.
fn check_run_finished(dir: &Path, url: &str, run: &str, partitions: usize, env: &[(&str, String)]) {
    let out = run_env(dir, &["verify", url, "--run", run], env);
    assert_eq!(
        out.code, 0,
        "(c) verify --run: {}{}",
        out.stdout, out.stderr
    );
    let out = run_env(dir, &["runs", url, "--json"], env);
    let runs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs["runs"][0]["status"], "finished", "(c) {runs}");
    let out = run_env(dir, &["runs", url, run, "--json"], env);
    let detail: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let states: Vec<&str> = detail["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["rewritten"; partitions], "(c) {detail}");
}

/// A tiny deterministic random source (no dependency needed for chaos).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below.max(1)
    }
}

#[test]
fn two_hundred_partitions_eight_workers_and_chaos_transform_every_row_exactly_once() {
    use std::collections::{HashMap, VecDeque};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Instant;

    const DAYS: u32 = 200;
    let server = s3::server();
    let bucket = s3::bucket(server);
    let store: Arc<dyn ObjectStore> = s3::store(&server.endpoint, &bucket);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // 200 partitions of 500 rows; every 20th as 50 files of 10 rows (a wide commit window).
    let expected: BTreeMap<String, Vec<i64>> = rt.block_on(async {
        let mut expected = BTreeMap::new();
        for (prefix, copy) in [("lake/t", true), ("lake/single", false)] {
            for d in 0..DAYS {
                let p = format!("day={}", 1_000 + d);
                let files = if d % 20 == 0 { 50 } else { 1 };
                let per = 500 / files as i64;
                for f in 0..files {
                    let first = d as i64 * 1_000 + f as i64 * per;
                    let path = StorePath::parse(format!("{prefix}/{p}/part-{f}.parquet")).unwrap();
                    store
                        .put(&path, PutPayload::from(parquet_bytes(&ids(first, per))))
                        .await
                        .unwrap();
                }
                if copy {
                    let v: Vec<i64> = (d as i64 * 1_000..d as i64 * 1_000 + 500)
                        .map(|x| x + 1_000_000)
                        .collect();
                    expected.insert(p, v);
                }
            }
        }
        expected
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("s3://{bucket}/lake/t");
    let mut env = s3::env(&server.endpoint);
    env.push(("BACKFILL_LEASE_TTL_SECS", "3".into()));
    let before = snapshot_sums(dir.path(), &url, &env);
    let run = freeze(dir.path(), &url, &env);

    let queue: Mutex<VecDeque<String>> = Mutex::new(expected.keys().cloned().collect());
    let done: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let running: Mutex<HashMap<u32, String>> = Mutex::new(HashMap::new());
    let (kills, kills_in_commit, retries, busy) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let (in_flight, max_in_flight) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let partition_ms = AtomicUsize::new(0);
    let finished_workers = AtomicUsize::new(0);
    let reruns = AtomicUsize::new(0);
    let started = Instant::now();
    let try_once = |p: &str| -> Option<i32> {
        let child = worker(dir.path(), &url, &run, p, &env).spawn().unwrap();
        running.lock().unwrap().insert(child.id(), p.to_string());
        let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        max_in_flight.fetch_max(n, Ordering::SeqCst);
        let t = Instant::now();
        let out = child.wait_with_output().unwrap();
        in_flight.fetch_sub(1, Ordering::SeqCst);
        partition_ms.fetch_add(t.elapsed().as_millis() as usize, Ordering::SeqCst);
        running.lock().unwrap().retain(|_, q| q != p);
        if !matches!(out.status.code(), Some(0) | Some(75) | None) {
            eprintln!(
                "{p}: exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status.code()
    };
    std::thread::scope(|s| {
        for w in 0..8u64 {
            let (queue, done, try_once) = (&queue, &done, &try_once);
            let (retries, busy, finished_workers) = (&retries, &busy, &finished_workers);
            let reruns = &reruns;
            s.spawn(move || {
                // Counted even if this worker panics, so that the chaos thread stops.
                struct Finished<'a>(&'a AtomicUsize);
                impl Drop for Finished<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_add(1, Ordering::SeqCst);
                    }
                }
                let _finished = Finished(finished_workers);
                let mut rng = Lcg(w + 1);
                loop {
                    let Some(p) = queue.lock().unwrap().pop_front() else {
                        break;
                    };
                    let mut tries = 0;
                    loop {
                        tries += 1;
                        match try_once(&p) {
                            Some(0) => break,
                            code => {
                                if code == Some(75) {
                                    busy.fetch_add(1, Ordering::SeqCst);
                                }
                                assert!(tries < 20, "{p}: {tries} tries, last exit {code:?}");
                                retries.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(1_000 + rng.next(2_000)));
                            }
                        }
                    }
                    // An orchestrator that retries a task that succeeded, now and then.
                    // (Chaos may kill it too: retried like any try.)
                    if rng.next(8) == 0 {
                        reruns.fetch_add(1, Ordering::SeqCst);
                        let mut again = 0;
                        while try_once(&p) != Some(0) {
                            again += 1;
                            assert!(again < 20, "{p}: rerun after success");
                            std::thread::sleep(Duration::from_millis(1_000));
                        }
                    }
                    done.lock().unwrap().push(p);
                }
            });
        }
        // Chaos: SIGKILL a running try now and then (about 50 times), noting those that
        // die inside a commit; and start duplicate tries beside running ones.
        let (running, kills, kills_in_commit, store, run, rt) =
            (&running, &kills, &kills_in_commit, &store, &run, &rt);
        let (dir, url, env, finished_workers) = (dir.path(), &url, &env, &finished_workers);
        s.spawn(move || {
            let wide = |p: &str| {
                p.trim_start_matches("day=")
                    .parse::<u32>()
                    .is_ok_and(|d| (d - 1_000) % 20 == 0)
            };
            let inside_commit = |last: &str| {
                last.contains(r#""event":"committing""#) || last.contains(r#""event":"added""#)
            };
            // The last record of a partition's journal (create-only objects on S3).
            let last_record = |p: &str| -> String {
                let journal = StorePath::from(format!(
                    "lake/.backfill/t/runs/{run}/partitions/{p}/journal"
                ));
                rt.block_on(async {
                    use futures::TryStreamExt;
                    let mut objects: Vec<_> = store
                        .list(Some(&journal))
                        .try_collect()
                        .await
                        .unwrap_or_default();
                    objects.sort_by(|a, b| a.location.cmp(&b.location));
                    match objects.last() {
                        Some(m) => match store.get(&m.location).await {
                            Ok(g) => String::from_utf8_lossy(&g.bytes().await.unwrap_or_default())
                                .into_owned(),
                            Err(_) => String::new(),
                        },
                        None => String::new(),
                    }
                })
            };
            let mut rng = Lcg(99);
            let mut duplicates = Vec::new();
            while finished_workers.load(Ordering::SeqCst) < 8 {
                std::thread::sleep(Duration::from_millis(20 + rng.next(120)));
                let all: Vec<(u32, String)> = {
                    let r = running.lock().unwrap();
                    r.iter().map(|(a, b)| (*a, b.clone())).collect()
                };
                // A try on a 50-file partition whose journal shows it inside its commit
                // is killed there (at most 15 times); others at random.
                let mid_commit = all.iter().find(|(_, p)| {
                    kills_in_commit.load(Ordering::SeqCst) < 15
                        && wide(p)
                        && inside_commit(&last_record(p))
                });
                if let Some((pid, _)) = mid_commit {
                    // SAFETY: a plain kill(2) of a child process id.
                    if unsafe { libc::kill(*pid as i32, libc::SIGKILL) } == 0 {
                        kills.fetch_add(1, Ordering::SeqCst);
                        kills_in_commit.fetch_add(1, Ordering::SeqCst);
                    }
                    continue;
                }
                if all.is_empty() {
                    continue;
                }
                let (pid, p) = all[rng.next(all.len() as u64) as usize].clone();
                if duplicates.len() < 8 && rng.next(6) == 0 {
                    duplicates.push(worker(dir, url, run, &p, env).spawn().unwrap());
                    continue;
                }
                if kills.load(Ordering::SeqCst) >= 50 {
                    continue;
                }
                // SAFETY: a plain kill(2) of a child process id.
                if unsafe { libc::kill(pid as i32, libc::SIGKILL) } == 0 {
                    kills.fetch_add(1, Ordering::SeqCst);
                    if inside_commit(&last_record(&p)) {
                        kills_in_commit.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            assert!(
                duplicates.len() >= 5,
                "only {} duplicate tries",
                duplicates.len()
            );
            for mut d in duplicates {
                let status = d.wait().unwrap();
                // A duplicate is refused as busy, finds the work done, or does it.
                assert!(
                    matches!(status.code(), Some(0) | Some(75) | None),
                    "{status:?}"
                );
            }
        });
    });
    let wall_ms = started.elapsed().as_millis() as usize;
    assert_eq!(done.lock().unwrap().len(), DAYS as usize);

    // (a) every partition holds its originals transformed exactly once.
    let got = s3_ids_by_partition(&rt, &store, "lake/t");
    assert_eq!(got, expected, "(a) rows transformed exactly once");
    // (b) the same checksums as one process's `run --all` of the same table.
    std::fs::write(dir.path().join("f.sql"), SQL).unwrap();
    let single = format!("s3://{bucket}/lake/single");
    let t = Instant::now();
    let out = run_env(
        dir.path(),
        &["run", &single, "--sql", "f.sql", "--all"],
        &env,
    );
    let single_s = t.elapsed().as_secs_f64();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        snapshot_sums(dir.path(), &url, &env),
        snapshot_sums(dir.path(), &single, &env),
        "(b)"
    );
    // (c) verify ok; one finished run; no lease or half-commit left.
    let out = run_env(dir.path(), &["verify", &url], &env);
    assert_eq!(out.code, 0, "(c) {}{}", out.stdout, out.stderr);
    check_run_finished(dir.path(), &url, &run, DAYS as usize, &env);
    let live = live_leases(&rt, &store, "lake/.backfill/t/locks");
    assert!(live.is_empty(), "(c) live leases left: {live:?}");
    // (d) the work overlapped.
    let overlap = partition_ms.load(Ordering::SeqCst) as f64 / wall_ms as f64;
    let max = max_in_flight.load(Ordering::SeqCst);
    assert!(max >= 4, "(d) at most {max} tries at once");
    assert!(
        overlap >= 3.0,
        "(d) summed try time / wall time = {overlap:.2}"
    );
    // (e) rollback restores the original snapshot exactly.
    let out = run_env(dir.path(), &["rollback", &url, &run], &env);
    assert_eq!(out.code, 0, "(e) {}{}", out.stdout, out.stderr);
    assert_eq!(snapshot_sums(dir.path(), &url, &env), before, "(e)");
    let (k, kc, r, b) = (
        kills.load(Ordering::SeqCst),
        kills_in_commit.load(Ordering::SeqCst),
        retries.load(Ordering::SeqCst),
        busy.load(Ordering::SeqCst),
    );
    eprintln!(
        "fan-out chaos: {DAYS} partitions, 8 workers, {k} kills ({kc} inside a commit), {r} retries ({b} busy), {} reruns of done partitions, at most {max} at once, summed/wall {overlap:.2}, wall {:.1} s (one process's `run --all` of the same table: {single_s:.1} s)",
        reruns.load(Ordering::SeqCst),
        wall_ms as f64 / 1000.0
    );
    assert!(k >= 40, "only {k} kills");
    assert!(kc >= 10, "only {kc} kills inside a commit");
    assert!(
        reruns.load(Ordering::SeqCst) >= 5,
        "too few reruns of done partitions"
    );
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Pids of `backfill run ... --run RUN` processes (the DAG's mapped tasks).
fn worker_pids(run_marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(" run ") && cmd.contains("--run") && cmd.contains(run_marker) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn the_example_airflow_dag_runs_for_real_on_s3_with_killed_workers() {
    // Airflow 3 from PyPI: BACKFILL_AIRFLOW (`.ci/run` sets it), or installed on first use.
    let airflow: std::ffi::OsString = match std::env::var_os("BACKFILL_AIRFLOW") {
        Some(a) => a,
        None => crate::support::s3::python_env::python_env(
            "airflow-venv",
            &["apache-airflow==3.3.2"],
            "the Airflow test",
        )
        .join("bin/airflow")
        .into(),
    };
    const DAYS: u32 = 24;
    let server = s3::server();
    let bucket = s3::bucket(server);
    let store: Arc<dyn ObjectStore> = s3::store(&server.endpoint, &bucket);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // The DAG's table, and a copy one process rewrites for comparison (b).
        for prefix in ["lake/t", "lake/single"] {
            for d in 1..=DAYS {
                for f in 0..5u32 {
                    let first = (d * 10_000 + f * 100) as i64;
                    let path =
                        StorePath::parse(format!("{prefix}/day=2024-01-{d:02}/part-{f}.parquet"))
                            .unwrap();
                    store
                        .put(&path, PutPayload::from(parquet_bytes(&ids(first, 100))))
                        .await
                        .unwrap();
                }
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.sql"), SQL).unwrap();
    let url = format!("s3://{bucket}/lake/t");
    let port = free_port();
    let mut env: Vec<(String, String)> = s3::env(&server.endpoint)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    env.extend(
        [
            (
                "AIRFLOW_HOME",
                dir.path().join("airflow").display().to_string(),
            ),
            (
                "AIRFLOW__CORE__DAGS_FOLDER",
                crate::support::root()
                    .join("examples/airflow")
                    .display()
                    .to_string(),
            ),
            ("AIRFLOW__CORE__LOAD_EXAMPLES", "False".into()),
            ("AIRFLOW__CORE__EXECUTOR", "LocalExecutor".into()),
            ("AIRFLOW__CORE__PARALLELISM", "8".into()),
            (
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                format!("http://127.0.0.1:{port}/execution/"),
            ),
            ("BACKFILL_TABLE", url.clone()),
            (
                "BACKFILL_SQL",
                dir.path().join("f.sql").display().to_string(),
            ),
            ("BACKFILL_BIN", env!("CARGO_BIN_EXE_backfill").into()),
            ("BACKFILL_LEASE_TTL_SECS", "3".into()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let airflow_cmd = |args: &[&str]| {
        let mut c = Command::new(&airflow);
        c.args(args)
            .current_dir(dir.path())
            .envs(env.iter().map(|(k, v)| (k, v)));
        c
    };
    let envs: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let before = snapshot_sums(dir.path(), &url, &envs);
    let migrated = airflow_cmd(&["db", "migrate"]).output().unwrap();
    assert!(migrated.status.success(), "{migrated:?}");
    let mut api = airflow_cmd(&["api-server", "--apps", "execution", "-H", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Up within a minute.
    let up = (0..120).any(|_| {
        std::thread::sleep(Duration::from_millis(500));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "the Airflow API server did not start");
    // Its log goes to a file: a pipe nobody reads while it runs would stop it.
    let log_path = dir.path().join("dag.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut dag = airflow_cmd(&["dags", "test", "backfill_fix", "--use-executor"])
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    // Kill a mapped task's backfill now and then; Airflow retries it.
    // Tasks in flight are sampled as the loop goes: their most at once, and their sum
    // over time (summed task time) against the DAG's wall time.
    let mut kills = 0;
    let mut rng = Lcg(7);
    let (mut most, mut task_ms) = (0, 0.0);
    let started = std::time::Instant::now();
    let mut last = started;
    let read_log = || String::from_utf8_lossy(&std::fs::read(&log_path).unwrap()).into_owned();
    let status = loop {
        if let Some(status) = dag.try_wait().unwrap() {
            break status;
        }
        // It takes under a minute; a hang must fail with the log, not stall the suite.
        if started.elapsed() > Duration::from_secs(600) {
            let _ = dag.kill();
            let _ = dag.wait();
            let _ = api.kill();
            let _ = api.wait();
            let log = read_log();
            panic!(
                "the DAG did not finish in 10 minutes ({kills} kills); its log ends:\n{}",
                tail(&log, 6000)
            );
        }
        std::thread::sleep(Duration::from_millis(150 + rng.next(300)));
        let pids = worker_pids(&url);
        most = most.max(pids.len());
        task_ms += pids.len() as f64 * last.elapsed().as_secs_f64() * 1000.0;
        last = std::time::Instant::now();
        if kills < 8 {
            for pid in pids.into_iter().take(1) {
                // SAFETY: a plain kill(2) of a process this test's DAG started.
                if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                    kills += 1;
                }
            }
        }
    };
    let _ = api.kill();
    let _ = api.wait();
    let log = read_log();
    // A failed task's own message is far from the log's end: its lines first.
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("RuntimeError") || l.contains("exc_value"))
        .collect();
    assert!(
        status.success(),
        "the DAG failed:\n{}\n{}",
        errors.join("\n"),
        tail(&log, 4000)
    );
    assert!(log.contains("state=success"), "{}", tail(&log, 2000));
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    // (a) every row transformed exactly once, whatever was killed.
    let got = s3_ids_by_partition(&rt, &store, "lake/t");
    assert_eq!(got, transformed_once(DAYS, 5), "(a)");
    // (b) the checksums of one process's `run --all` of the same table.
    let single = format!("s3://{bucket}/lake/single");
    let out = run_env(
        dir.path(),
        &["run", &single, "--sql", "f.sql", "--all"],
        &envs,
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        snapshot_sums(dir.path(), &url, &envs),
        snapshot_sums(dir.path(), &single, &envs),
        "(b)"
    );
    // (c) the DAG's own check ran `verify --run`; again here, with `runs`, and no lease.
    let runs = run_env(dir.path(), &["runs", &url, "--json"], &envs);
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    let run = runs["runs"][0]["run_id"].as_str().unwrap().to_string();
    check_run_finished(dir.path(), &url, &run, DAYS as usize, &envs);
    let live = live_leases(&rt, &store, "lake/.backfill/t/locks");
    assert!(live.is_empty(), "(c) live leases left: {live:?}");
    // (d) the tasks overlapped.
    let overlap = task_ms / wall_ms;
    assert!(most >= 4, "(d) at most {most} tasks at once");
    // (e) rollback restores the original snapshot exactly.
    let out = run_env(dir.path(), &["rollback", &url, &run], &envs);
    assert_eq!(out.code, 0, "(e) {}{}", out.stdout, out.stderr);
    assert_eq!(snapshot_sums(dir.path(), &url, &envs), before, "(e)");
    eprintln!(
        "airflow: {DAYS} mapped tasks, {kills} backfill processes killed, DAG succeeded in {:.1} s, at most {most} tasks at once, summed task time / wall {overlap:.2}",
        wall_ms / 1000.0
    );
}

/// The last `n` bytes of a log, or a little more, at a character boundary.
fn tail(log: &str, n: usize) -> &str {
    let mut at = log.len().saturating_sub(n);
    while !log.is_char_boundary(at) {
        at -= 1;
    }
    &log[at..]
}

#[test]
fn shards_of_a_frozen_run_cover_every_partition_once() {
    let dir = tempfile::tempdir().unwrap();
    table(dir.path(), 7, 1);
    let run = freeze(dir.path(), "t", &[]);
    let shard = |k: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_backfill"));
        c.args(["run", "t", "--run", &run, "--shard", k, "--json"])
            .current_dir(dir.path());
        c.output().unwrap()
    };
    let children: Vec<_> = (0..3).map(|k| shard(&format!("{k}/3"))).collect();
    let mut seen = Vec::new();
    for out in &children {
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for p in r["partitions"].as_array().unwrap() {
            assert_eq!(p["status"], "rewritten");
            seen.push(p["partition"].as_str().unwrap().to_string());
        }
    }
    seen.sort();
    let all: Vec<String> = (1..=7).map(|d| format!("day=2024-01-{d:02}")).collect();
    assert_eq!(seen, all);
    assert_eq!(
        ids_by_partition(&dir.path().join("t")),
        transformed_once(7, 1)
    );
    // A shard beyond the partitions has nothing to do; a bad one is bad input.
    let empty = shard("0/3");
    assert_eq!(empty.status.code(), Some(0));
    let bad = shard("3/3");
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("should be K/N"));
}

#[test]
fn a_shard_goes_on_past_a_busy_partition_and_exits_75() {
    let dir = tempfile::tempdir().unwrap();
    table(dir.path(), 4, 1);
    let t = dir.path().join("t");
    let untouched = ids_by_partition(&t);
    let run = freeze(dir.path(), "t", &[]);
    // Shard 0/2 is days 1 and 3; another worker still holds day 1.
    let (rt, held) = hold_partition(&t, &run, "day=2024-01-01");
    let shard = || {
        run_in(
            dir.path(),
            &["run", "t", "--run", &run, "--shard", "0/2", "--json"],
        )
    };
    let out = shard();
    assert_eq!(out.code, 75, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        partition_rows(&out.stdout),
        [
            row("day=2024-01-01", "failed", true),
            row("day=2024-01-03", "rewritten", false),
        ]
    );
    let mut expected = untouched.clone();
    let done = transformed_once(4, 1);
    expected.insert("day=2024-01-03".into(), done["day=2024-01-03"].clone());
    assert_eq!(ids_by_partition(&t), expected);
    // Retried once the holder lets go: day 1 is done, day 3 is not transformed again.
    rt.block_on(held.release()).unwrap();
    let out = shard();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        partition_rows(&out.stdout),
        [
            row("day=2024-01-01", "rewritten", false),
            row("day=2024-01-03", "rewritten", false),
        ]
    );
    expected.insert("day=2024-01-01".into(), done["day=2024-01-01"].clone());
    assert_eq!(ids_by_partition(&t), expected);
}

#[test]
fn resume_wait_keeps_trying_a_busy_table_until_it_is_free() {
    let dir = tempfile::tempdir().unwrap();
    table(dir.path(), 2, 1);
    std::fs::write(dir.path().join("f.sql"), SQL).unwrap();
    let out = run_in(
        dir.path(),
        &["run", "t", "--sql", "f.sql", "--all", "--json"],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let run = report["run_id"].as_str().unwrap().to_string();
    let t = dir.path().join("t");
    let loc = backfill::storage::Location::open(t.to_str().unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let held = rt
        .block_on(backfill::lock::Lock::acquire(
            &loc,
            "other",
            Default::default(),
        ))
        .unwrap();
    let busy = run_in(dir.path(), &["resume", "t", &run]);
    assert_eq!(busy.code, 75, "{}{}", busy.stdout, busy.stderr);
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        rt.block_on(held.release()).unwrap();
    });
    let out = run_in(dir.path(), &["resume", "t", &run, "--wait", "30", "--json"]);
    releaser.join().unwrap();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // Both partitions were done by the run: nothing is transformed again.
    assert_eq!(
        partition_rows(&out.stdout),
        [
            row("day=2024-01-01", "rewritten", false),
            row("day=2024-01-02", "rewritten", false),
        ]
    );
    assert_eq!(ids_by_partition(&t), transformed_once(2, 1));
}

#[test]
fn wait_keeps_trying_a_busy_partition_until_it_is_free() {
    let dir = tempfile::tempdir().unwrap();
    table(dir.path(), 1, 1);
    let run = freeze(dir.path(), "t", &[]);
    let (rt, held) = hold_partition(&dir.path().join("t"), &run, "day=2024-01-01");
    let mut waiting = worker(dir.path(), "t", &run, "day=2024-01-01", &[]);
    waiting.args(["--wait", "30"]);
    let child = waiting.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    rt.block_on(held.release()).unwrap();
    drop(rt);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        ids_by_partition(&dir.path().join("t")),
        transformed_once(1, 1)
    );
}

#[test]
fn verify_run_checks_every_partition_holds_what_the_run_recorded() {
    let dir = tempfile::tempdir().unwrap();
    table(dir.path(), 3, 1);
    let run = freeze(dir.path(), "t", &[]);
    for d in ["01", "02"] {
        let p = format!("day=2024-01-{d}");
        let out = worker(dir.path(), "t", &run, &p, &[]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    }
    let findings = |args: &[&str]| -> (i32, Vec<String>) {
        let mut a = vec!["verify", "t", "--run", &run, "--json"];
        a.extend(args);
        let out = run_in(dir.path(), &a);
        (out.code, crate::support::finding_list(&out.stdout))
    };
    // One partition not done yet: the fan-out is not finished.
    assert_eq!(
        findings(&[]),
        (1, vec!["run_unfinished day=2024-01-03".to_string()])
    );
    // The one-run view says where each partition stands.
    let out = run_in(dir.path(), &["runs", "t", &run]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let view = out.stdout.replace(&run, "RUN");
    let rows: Vec<&str> = view
        .lines()
        .skip_while(|l| !l.starts_with("partition"))
        .collect();
    assert_eq!(
        rows,
        [
            "partition       state      rows_before  rows_after  detail",
            "day=2024-01-01  rewritten          100         100",
            "day=2024-01-02  rewritten          100         100",
            "day=2024-01-03  pending",
        ],
        "{view}"
    );
    assert!(view.contains("2 rewritten, 1 pending"), "{view}");
    let out = worker(dir.path(), "t", &run, "day=2024-01-03", &[])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(findings(&[]), (0, vec![]));
    // Another job changes a partition after the run: verify --run sees it, and says so.
    put(
        &dir.path().join("t"),
        "day=2024-01-02",
        "part-other.parquet",
        &ids(7, 1),
    );
    std::fs::remove_dir_all(dir.path().join("t/day=2024-01-03")).unwrap();
    assert_eq!(
        findings(&[]),
        (
            1,
            vec![
                "run_mismatch day=2024-01-02".to_string(),
                "run_mismatch day=2024-01-03".to_string()
            ]
        )
    );
    let out = run_in(dir.path(), &["verify", "t", "--run", &run]);
    assert!(
        out.stdout.contains("holds 101 rows") && out.stdout.contains("no such partition"),
        "{}",
        out.stdout
    );
    // --run names the run's partitions itself.
    let out = run_in(
        dir.path(),
        &["verify", "t", "--run", &run, "--from", "2024-01-01"],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = run_in(
        dir.path(),
        &["verify", "t", "--run", "20990101T000000Z-abcdef"],
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no run 20990101T000000Z-abcdef"),
        "{}",
        out.stderr
    );
}
