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
        let file = std::fs::File::open(t.join(&f)).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for b in r {
            let b = b.unwrap();
            let c = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            out.entry(p.to_string())
                .or_default()
                .extend(c.values().iter());
        }
    }
    out.values_mut().for_each(|v| v.sort());
    out
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
fn workers_at_once_then_retried(dir: &Path, table: &str, t: Option<&Path>, env: &[(&str, String)]) {
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
    if let Some(t) = t {
        assert_eq!(ids_by_partition(t), transformed_once(6, 3));
    }
    let out = run_env(dir, &["runs", table, "--json"], env);
    let runs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(runs["runs"][0]["status"], "finished", "{runs}");
    assert_eq!(runs["runs"][0]["rewritten"], 6, "{runs}");
    let out = run_env(dir, &["verify", table], env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // And the whole of it undoes as one run.
    let out = run_env(dir, &["rollback", table, &run], env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("6 rolled back"), "{}", out.stdout);
}

#[test]
fn workers_of_a_frozen_run_on_local_disk_work_at_once_and_retries_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    table(dir.path(), 6, 3);
    let t = dir.path().join("t");
    let original = file_hashes(&t);
    workers_at_once_then_retried(dir.path(), "t", Some(&t), &[]);
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
fn a_worker_killed_at_any_moment_is_retried_into_exactly_one_transform() {
    // 20 files a partition: the commit window is wide. Kill -9 after a growing delay,
    // then retry as an orchestrator does, until the task succeeds.
    let mut killed_mid_run = 0;
    for delay_ms in [5u64, 20, 40, 60, 80, 100, 130, 160, 200, 260] {
        let dir = tempfile::tempdir().unwrap();
        table(dir.path(), 1, 20);
        let run = freeze(dir.path(), "t", &[]);
        let mut child = worker(dir.path(), "t", &run, "day=2024-01-01", &[])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
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
    workers_at_once_then_retried(dir.path(), &url, None, &env);
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
