//! The safety claims: crashes at every storage operation, a real SIGKILL, two runs at once.

use std::collections::BTreeMap;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use backfill::lock::{LeaseTimes, Lock};
use backfill::plan::{OnEmpty, Order};
use backfill::run::{self, RunRequest};
use backfill::selection::Selection;
use backfill::storage::{Backend, Location};
use object_store::{memory::InMemory, path::Path, ObjectStore, ObjectStoreExt, PutPayload};

use crate::support::faulty::{Count, Faulty, FaultyFs};
use crate::support::{
    copy_dir, file_hashes, large_rows, parquet_bytes, put, root, rows, run_in, small_table,
    snapshot_json, sql,
};

const SQL: &str = "SELECT id, CASE WHEN id % 2 = 0 AND id < 400 THEN upper(name) ELSE name END AS name FROM source";

fn lease() -> LeaseTimes {
    // Crashed runs leave their lease behind; an instant expiry lets the next one take it.
    LeaseTimes {
        ttl: Duration::from_millis(1),
        renew_every: Duration::from_secs(3600),
    }
}

fn request() -> RunRequest {
    RunRequest {
        sql: SQL.into(),
        selection: Selection::default(),
        all: true,
        jobs: 2,
        order: Order::OldestFirst,
        on_empty: OnEmpty::Fail,
        allow_schema_change: false,
        allow_nondeterministic: false,
        tables: vec![],
        lease: lease(),
        progress: None,
        preflight_partition: None,
        slice_above_mib: backfill::plan::SLICE_ABOVE_MIB,
    }
}

/// Four partitions of two files each; the last one's content is not changed by SQL.
async fn object_table() -> InMemory {
    let store = InMemory::new();
    for d in 1..=4i64 {
        for f in 0..2i64 {
            let base = d * 100 + f * 10;
            let b = rows(&[(base, Some("a")), (base + 1, None), (base + 2, Some("b"))]);
            let path = Path::parse(format!("lake/t/day=2024-01-0{d}/part-{f}.parquet")).unwrap();
            store
                .put(&path, PutPayload::from(parquet_bytes(&b)))
                .await
                .unwrap();
        }
    }
    store
}

async fn checksums_of(loc: &Location) -> BTreeMap<String, String> {
    let table = backfill::table::discover(loc, &Default::default())
        .await
        .unwrap();
    let snap = backfill::snapshot::snapshot(&table, &Default::default())
        .await
        .unwrap();
    snap.partitions
        .into_iter()
        .map(|p| (p.partition.into(), p.checksum))
        .collect()
}

async fn names(store: &Arc<dyn ObjectStore>, partition: &str) -> Vec<String> {
    let prefix = Path::parse(format!("lake/t/{partition}")).unwrap();
    let l = store.list_with_delimiter(Some(&prefix)).await.unwrap();
    l.objects
        .iter()
        .map(|o| o.location.filename().unwrap().to_string())
        .collect()
}

async fn run_on(loc: &Location) -> Result<run::RunReport, backfill::Error> {
    let table = backfill::table::discover(loc, &Default::default()).await?;
    run::run(&table, request()).await
}

/// After a crash, a new run over the whole table. It must never read a partition whose
/// files are two versions: refused, naming the crashed run (and then that run resumes),
/// or, when no partition is mid-step, it runs. True if it was refused.
async fn new_run_after_crash(
    loc: &Location,
    id: &str,
    k: usize,
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> bool {
    let mixed = now
        .iter()
        .any(|(p, sum)| *sum != before[p] && *sum != after[p]);
    let open = run::unfinished_steps(loc).await.unwrap();
    match run_on(loc).await {
        Err(backfill::Error::Unfinished {
            run_id, partition, ..
        }) => {
            assert_eq!(run_id, id, "k={k}");
            assert!(open.iter().any(|u| u.partition == partition), "k={k}");
            assert_eq!(checksums_of(loc).await, *now, "k={k}: refused but changed");
            // Its backups cannot be dropped while a partition is mid-step either.
            let released = run::release(loc, id, lease()).await;
            assert!(released.is_err(), "k={k}: released a half-committed run");
            let report = run::resume(loc, id, lease(), std::time::Duration::ZERO, None)
                .await
                .unwrap();
            assert!(report.ok(), "k={k}: {report:?}");
            assert_eq!(checksums_of(loc).await, *after, "k={k}: after resume");
            true
        }
        Ok(report) => {
            assert!(!mixed, "k={k}: a new run read a half-committed partition");
            assert!(open.is_empty(), "k={k}: {open:?}");
            assert!(report.ok(), "k={k}: {report:?}");
            assert_eq!(checksums_of(loc).await, *after, "k={k}: after new run");
            false
        }
        Err(e) => panic!("k={k}: new run: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_operation_on_an_object_store_is_recovered() {
    let base = object_table().await;
    let before = checksums_of(&Location::in_memory(Arc::new(base.fork()), "lake/t")).await;
    let reference = Location::in_memory(Arc::new(base.fork()), "lake/t");
    run_on(&reference).await.unwrap();
    let after = checksums_of(&reference).await;
    let changed: Vec<bool> = before.iter().map(|(k, v)| after[k] != *v).collect();
    assert_eq!(changed, [true, true, true, false]);

    let counter = Faulty::new(Arc::new(base.fork()), usize::MAX);
    run_on(&Location::in_memory(counter.clone(), "lake/t"))
        .await
        .unwrap();
    let total = counter.ops();
    assert!(total > 30, "{total} operations");

    let mut recovered = 0;
    let mut refused = 0;
    for mode in ["resume", "rollback", "new run"] {
        for k in 0..total {
            let inner: Arc<dyn ObjectStore> = Arc::new(base.fork());
            let faulty = Faulty::new(inner.clone(), k);
            let _ = run_on(&Location::in_memory(faulty, "lake/t")).await;

            // After the crash: every partition old, new, or in the documented object-store
            // window: all old files beside the new one, or the new file beside old ones
            // not yet deleted. Never missing data.
            let loc = Location::in_memory(inner.clone(), "lake/t");
            let now = checksums_of(&loc).await;
            for (p, sum) in &now {
                if *sum != before[p] && *sum != after[p] {
                    let live = names(&inner, p).await;
                    let all_old = live.contains(&"part-0.parquet".to_string())
                        && live.contains(&"part-1.parquet".to_string());
                    let new_there = live.iter().any(|n| n.starts_with("part-20"));
                    assert!(all_old || new_there, "k={k} {p}: {live:?}");
                }
            }
            assert_eq!(now.len(), 4, "k={k}: a partition went missing");

            let id = match run::resumable(&loc).await {
                Ok(id) => id,
                Err(_) => {
                    // No unfinished run: the crash came before the plan was journalled, or after the end.
                    assert!(now == before || now == after, "k={k}: {now:?}");
                    continue;
                }
            };
            recovered += 1;
            if mode == "new run" {
                refused +=
                    usize::from(new_run_after_crash(&loc, &id, k, &before, &after, &now).await);
                continue;
            }
            if mode == "rollback" {
                run::rollback(&loc, &id, lease())
                    .await
                    .unwrap_or_else(|e| panic!("k={k}: rollback: {e}"));
                assert_eq!(checksums_of(&loc).await, before, "k={k}: after rollback");
            } else {
                let report = run::resume(&loc, &id, lease(), std::time::Duration::ZERO, None)
                    .await
                    .unwrap_or_else(|e| panic!("k={k}: resume: {e}"));
                assert!(report.ok(), "k={k}: {report:?}");
                assert_eq!(checksums_of(&loc).await, after, "k={k}: after resume");
            }
        }
    }
    // Most crash points leave a run to finish: the matrix really exercised recovery.
    assert!(
        recovered > total * 3 / 2,
        "only {recovered} of {} crashes left a run to recover",
        3 * total
    );
    assert!(
        refused >= 5,
        "only {refused} crashes left a half-commit to refuse"
    );
}

fn local(dir: &FsPath, store: Arc<dyn ObjectStore>) -> Location {
    let mut loc = Location::open(dir.to_str().unwrap()).unwrap();
    loc.store = store;
    assert_eq!(loc.backend, Backend::Local);
    loc
}

/// A local location whose store and filesystem both count into `count`.
fn faulty_local(dir: &FsPath, plain: &Arc<dyn ObjectStore>, count: Arc<Count>) -> Location {
    let mut loc = local(dir, Faulty::counting(plain.clone(), count.clone()));
    loc.fs = FaultyFs::counting(count);
    loc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_operation_on_local_disk_leaves_partitions_whole() {
    // A crash at every store read and every local filesystem call of a run (journal
    // appends and fsyncs, the lock, staged writes and their fsyncs, links, renames and
    // exchanges of the commit); after each: resume; roll back; or start a new run.
    let (pristine, table) = small_table(3);
    let plain: Arc<dyn ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new());
    let before = checksums_of(&local(&table, plain.clone())).await;
    let reference = tempfile::tempdir().unwrap();
    copy_dir(pristine.path(), reference.path());
    run_on(&local(&reference.path().join("t"), plain.clone()))
        .await
        .unwrap();
    let after = checksums_of(&local(&reference.path().join("t"), plain.clone())).await;

    let counting = tempfile::tempdir().unwrap();
    copy_dir(pristine.path(), counting.path());
    let counter = Count::new(usize::MAX);
    run_on(&faulty_local(
        &counting.path().join("t"),
        &plain,
        counter.clone(),
    ))
    .await
    .unwrap();
    let total = counter.ops();
    assert!(total > 60, "{total} operations");

    let mut recovered = 0;
    let mut refused = 0;
    for (mode, k) in ["resume", "rollback", "new run"]
        .into_iter()
        .flat_map(|u| (0..total).map(move |k| (u, k)))
    {
        let work = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), work.path());
        let t = work.path().join("t");
        let _ = run_on(&faulty_local(&t, &plain, Count::new(k))).await;
        let loc = local(&t, plain.clone());
        let now = checksums_of(&loc).await;
        for (p, sum) in &now {
            assert!(
                *sum == before[p] || *sum == after[p],
                "k={k}: {p} is neither old nor new"
            );
        }
        assert_eq!(now.len(), before.len(), "k={k}");
        if let Ok(id) = run::resumable(&loc).await {
            recovered += 1;
            if mode == "new run" {
                refused +=
                    usize::from(new_run_after_crash(&loc, &id, k, &before, &after, &now).await);
                continue;
            }
            if mode == "rollback" {
                run::rollback(&loc, &id, lease())
                    .await
                    .unwrap_or_else(|e| panic!("k={k}: rollback: {e}"));
                assert_eq!(checksums_of(&loc).await, before, "k={k}: after rollback");
                assert_eq!(
                    file_hashes(&t),
                    file_hashes(&pristine.path().join("t")),
                    "k={k}: rollback must restore every byte"
                );
                continue;
            }
            let report = run::resume(&loc, &id, lease(), std::time::Duration::ZERO, None)
                .await
                .unwrap_or_else(|e| panic!("k={k}: {e}"));
            assert!(report.ok(), "k={k}: {report:?}");
            assert_eq!(checksums_of(&loc).await, after, "k={k}");
        } else {
            assert!(now == before || now == after, "k={k}");
        }
    }
    assert!(
        recovered >= total,
        "only {recovered} of {} crashes left a run to recover",
        3 * total
    );
    // Crashes inside local commits (between `committing` and the swap's last fsync)
    // leave half-done steps a new run must refuse.
    assert!(
        refused >= 3,
        "only {refused} crashes left a commit to refuse"
    );
    eprintln!("local crash matrix: {total} crash points, {recovered} recovered, {refused} refused");
}

#[test]
fn sigkill_mid_run_then_resume() {
    // A table big enough that a run takes a while: 24 partitions.
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t");
    for d in 1..=24 {
        let pairs: Vec<(i64, Option<&str>)> = (0..2000)
            .map(|i| {
                (
                    d * 10_000 + i,
                    if i % 3 == 0 { None } else { Some("value") },
                )
            })
            .collect();
        crate::support::put(
            &t,
            &format!("day=2024-02-{d:02}"),
            "part-0.parquet",
            &rows(&pairs),
        );
    }
    let q = sql(
        dir.path(),
        "t.sql",
        "SELECT id, upper(name) AS name FROM source",
    );
    let before: BTreeMap<String, String> =
        crate::support::checksums(&snapshot_json(dir.path(), "t", &[]))
            .into_iter()
            .collect();
    let reference = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), reference.path());
    assert_eq!(
        run_in(
            reference.path(),
            &["run", "t", "--sql", &q, "--all", "--jobs", "1"]
        )
        .code,
        0
    );
    let after: BTreeMap<String, String> =
        crate::support::checksums(&snapshot_json(reference.path(), "t", &[]))
            .into_iter()
            .collect();

    // Every journal boundary of the first partitions (each partition writes `committing`
    // then `committed`; local journal records and staged files bypass the store, so the
    // store-fault matrix does not reach them), then later points.
    let kill_points: Vec<usize> = (1..=12).chain([20, 40]).collect();
    let mut resumed = 0;
    for &kill_after in &kill_points {
        let work = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), work.path());
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_backfill"))
            .args(["run", "t", "--sql", &q, "--all", "--jobs", "1"])
            .current_dir(work.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let runs = work.path().join(".backfill/t/runs");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            // Records are the lines of the run's journal log.
            let records = std::fs::read_dir(&runs)
                .ok()
                .and_then(|mut r| r.next())
                .and_then(|e| std::fs::read(e.unwrap().path().join("journal/log.jsonl")).ok())
                .map(|log| log.iter().filter(|b| **b == b'\n').count())
                .unwrap_or(0);
            if records >= kill_after || std::time::Instant::now() > deadline {
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // SAFETY: sending SIGKILL to our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();

        let now: BTreeMap<String, String> =
            crate::support::checksums(&snapshot_json(work.path(), "t", &[]))
                .into_iter()
                .collect();
        for (p, sum) in &now {
            assert!(
                *sum == before[p] || *sum == after[p],
                "kill after {kill_after}: {p} is neither old nor new"
            );
        }
        // Killed between a partition's `committing` and `committed`: a new run must not
        // read that partition before the killed run is finished.
        let log = std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut r| r.next())
            .and_then(|e| std::fs::read_to_string(e.unwrap().path().join("journal/log.jsonl")).ok())
            .unwrap_or_default();
        if log
            .lines()
            .last()
            .is_some_and(|l| l.contains(r#""event":"committing""#))
        {
            let again = run_in(
                work.path(),
                &["run", "t", "--sql", &q, "--all", "--jobs", "1"],
            );
            assert_eq!(again.code, 2, "kill after {kill_after}: {}", again.stderr);
            assert!(
                again.stderr.contains("holds an unfinished commit of run"),
                "{}",
                again.stderr
            );
            let still: BTreeMap<String, String> =
                crate::support::checksums(&snapshot_json(work.path(), "t", &[]))
                    .into_iter()
                    .collect();
            assert_eq!(
                still, now,
                "kill after {kill_after}: the refused run changed data"
            );
        }
        let out = run_in(work.path(), &["resume", "t"]);
        if out.code == 0 {
            resumed += 1;
        }
        if out.code == 2 && out.stderr.contains("no interrupted run") {
            // Either the run had finished, or it was killed before its plan was recorded.
            assert!(
                now == after || now == before,
                "kill after {kill_after}: nothing to resume, yet the table is mixed"
            );
            continue;
        }
        assert_eq!(
            out.code, 0,
            "kill after {kill_after}: {}{}",
            out.stdout, out.stderr
        );
        let done: BTreeMap<String, String> =
            crate::support::checksums(&snapshot_json(work.path(), "t", &[]))
                .into_iter()
                .collect();
        assert_eq!(done, after, "kill after {kill_after}");
        let runs = run_in(work.path(), &["runs", "t", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
        assert_eq!(v["runs"][0]["status"], "finished");
    }
    assert!(
        resumed >= kill_points.len() / 2,
        "only {resumed} of {} kills landed mid-run",
        kill_points.len()
    );
}

#[tokio::test]
async fn a_second_run_on_a_locked_table_is_refused() {
    let (dir, table) = small_table(1);
    let loc = Location::open(table.to_str().unwrap()).unwrap();
    let held = Lock::acquire(&loc, "20260101T000000Z-first", LeaseTimes::default())
        .await
        .unwrap();
    let before = file_hashes(&table);
    let q = sql(dir.path(), "t.sql", SQL);
    let out = run_in(dir.path(), &["run", "t", "--sql", &q, "--all"]);
    // Busy, not bad input: an orchestrator retries on 75.
    assert_eq!(out.code, 75, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("is being changed by run 20260101T000000Z-first"),
        "{}",
        out.stderr
    );
    assert_eq!(file_hashes(&table), before);
    held.release().await.unwrap();
    assert_eq!(
        run_in(dir.path(), &["run", "t", "--sql", &q, "--all"]).code,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_one_of_many_racing_runs_gets_the_lease() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let loc = Location::in_memory(store, "lake/t");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let loc = loc.clone();
            tokio::spawn(async move {
                Lock::acquire(&loc, &format!("run-{i}"), LeaseTimes::default()).await
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(lock) => won.push(lock),
            Err(backfill::Error::Locked { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won.len(), 1);
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_old_holder_stops() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let loc = Location::in_memory(store, "lake/t");
    // Renewed every 300 ms but valid for 50 ms: expired most of the time.
    let short = LeaseTimes {
        ttl: Duration::from_millis(50),
        renew_every: Duration::from_millis(300),
    };
    let first = Lock::acquire(&loc, "first", short).await.unwrap();
    assert!(matches!(
        Lock::acquire(&loc, "second", short).await,
        Err(backfill::Error::Locked { .. })
    ));
    let second = take_within(&loc, Duration::from_secs(10)).await;
    // The first holder's next renewal finds the lease changed and gives up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while first.check().is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the old holder never noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(
        first.check(),
        Err(backfill::Error::LockLost { .. })
    ));
    second.check().unwrap();
}

/// Takes the lock as soon as it expires.
pub async fn take_within(loc: &Location, limit: Duration) -> Lock {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match Lock::acquire(loc, "second", LeaseTimes::default()).await {
            Ok(lock) => return lock,
            Err(backfill::Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn a_lease_released_between_create_and_read_is_taken_not_an_error() {
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let loc = Location::in_memory(inner.clone(), "lake/t");
    let held = Lock::acquire(&loc, "first", LeaseTimes::default())
        .await
        .unwrap();
    // The holder releases after our create is refused and before we read who holds it.
    use crate::support::faulty::{Tamper, Tampering};
    let racing = Tampering::new(
        inner,
        Tamper::ReleaseLockBeforeFirstRead(Default::default()),
    );
    let loc = Location::in_memory(racing.clone(), "lake/t");
    let lock = Lock::acquire(&loc, "second", LeaseTimes::default())
        .await
        .expect("the released lease is taken");
    assert!(racing.released());
    lock.release().await.unwrap();
    drop(held);
}

#[tokio::test]
async fn a_lease_released_while_its_renewal_is_in_flight_is_gone() {
    use crate::support::faulty::{Tamper, Tampering};
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let slow = Tampering::new(
        inner.clone(),
        Tamper::SlowLockReplies(Duration::from_millis(400)),
    );
    let loc = Location::in_memory(slow, "lake/t");
    let times = LeaseTimes {
        ttl: Duration::from_secs(600),
        renew_every: Duration::from_millis(100),
    };
    let held = Lock::acquire(&loc, "first", times).await.unwrap();
    // Taking it took one slow reply; the first renewal is stored at 100 ms and answered
    // at 500 ms: release in between.
    tokio::time::sleep(Duration::from_millis(250)).await;
    held.release().await.unwrap();
    let lock = inner.head(&"lake/.backfill/t/lock.json".into()).await;
    assert!(
        matches!(lock, Err(object_store::Error::NotFound { .. })),
        "the released lease is still stored: {lock:?}"
    );
    let next = Location::in_memory(inner, "lake/t");
    Lock::acquire(&next, "second", LeaseTimes::default())
        .await
        .expect("a released lease is free at once")
        .release()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stale_process_cannot_write_over_a_newer_journal() {
    let (_dir, table) = small_table(1);
    let local = Location::open(table.to_str().unwrap()).unwrap();
    let memory = Location::in_memory(Arc::new(object_table().await), "lake/t");
    for loc in [local, memory] {
        let report = run_on(&loc).await.unwrap();
        let (a, _) = backfill::journal::Journal::open(&loc, &report.run_id)
            .await
            .unwrap();
        let (b, _) = backfill::journal::Journal::open(&loc, &report.run_id)
            .await
            .unwrap();
        a.append(backfill::journal::Event::Resumed).await.unwrap();
        let stale = b.append(backfill::journal::Event::Resumed).await;
        assert!(
            matches!(stale, Err(backfill::Error::LockLost { .. })),
            "{stale:?}"
        );
        let records = backfill::journal::read(&loc, &report.run_id).await.unwrap();
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (0..records.len() as u64).collect::<Vec<_>>());
        let resumed = records
            .iter()
            .filter(|r| r.event == backfill::journal::Event::Resumed)
            .count();
        assert_eq!(resumed, 1, "{:?}", loc.backend);
    }
}

/// The journal file of the only run on `<dir>/t`.
fn journal_log(dir: &FsPath) -> std::path::PathBuf {
    let runs = dir.join(".backfill/t/runs");
    let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap();
    run.path().join("journal/log.jsonl")
}

/// What an OS crash can leave at the end of a local journal: the last record's line cut
/// short, or zeros where the file had grown but its data never reached the disk.
#[test]
fn a_journal_record_cut_short_by_a_crash_is_dropped_and_the_run_resumed() {
    for zeros in [false, true] {
        let (dir, _) = small_table(2);
        let q = sql(dir.path(), "t.sql", SQL);
        assert_eq!(
            run_in(dir.path(), &["run", "t", "--sql", &q, "--all"]).code,
            0
        );
        let after = snapshot_json(dir.path(), "t", &[]);
        let log = journal_log(dir.path());
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.last().unwrap().contains(r#""event":"finished""#));
        // The `finished` record was being written when the machine stopped.
        let kept = text.len() - lines.last().unwrap().len() - 1;
        let mut damaged = text.as_bytes()[..kept].to_vec();
        if zeros {
            damaged.extend(std::iter::repeat_n(0u8, 4096));
        } else {
            damaged.extend(&lines.last().unwrap().as_bytes()[..20]);
        }
        std::fs::write(&log, &damaged).unwrap();

        let listed = run_in(dir.path(), &["runs", "t", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
        assert_eq!(v["runs"][0]["status"], "interrupted", "{}", listed.stderr);
        let out = run_in(dir.path(), &["resume", "t"]);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);

        // The damaged tail is gone, the records follow on from the last whole one.
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.starts_with(std::str::from_utf8(&damaged[..kept]).unwrap()));
        let seqs: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
        assert_eq!(seqs.len(), lines.len() + 1, "resumed, then finished");
        assert!(text
            .lines()
            .last()
            .unwrap()
            .contains(r#""event":"finished""#));
        assert_eq!(
            crate::support::checksums(&snapshot_json(dir.path(), "t", &[])),
            crate::support::checksums(&after)
        );
        let listed = run_in(dir.path(), &["runs", "t", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
        assert_eq!(v["runs"][0]["status"], "finished");
    }
}

/// Records lost from the middle of a journal (a damaged line drops every line after it)
/// never make `resume` apply the transform a second time: a committed partition's files
/// no longer match the frozen plan, so it is refused.
#[test]
fn a_journal_that_lost_records_never_applies_the_transform_twice() {
    let (dir, _) = small_table(2);
    let q = sql(
        dir.path(),
        "t.sql",
        "SELECT id + 1000 AS id, name FROM source",
    );
    assert_eq!(
        run_in(dir.path(), &["run", "t", "--sql", &q, "--all"]).code,
        0
    );
    let after = file_hashes(&dir.path().join("t"));
    let log = journal_log(dir.path());
    let text = std::fs::read_to_string(&log).unwrap();
    let planned = text.lines().next().unwrap();
    let rest = &text[planned.len() + 1..];
    // The second line is damaged; whole records follow it.
    let damaged = format!("{planned}\n{}{}", "#".repeat(30), &rest[30..]);
    std::fs::write(&log, damaged).unwrap();

    let out = run_in(dir.path(), &["resume", "t"]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("changed since the plan was made")
            || out.stderr.contains("changed since the plan was made"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(file_hashes(&dir.path().join("t")), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_follows_the_frozen_plan_not_the_table_of_now() {
    let base = object_table().await;
    // The first crash point after which a run is journalled but not finished.
    let mut found = None;
    for k in 0..200 {
        let inner: Arc<dyn ObjectStore> = Arc::new(base.fork());
        let _ = run_on(&Location::in_memory(
            Faulty::new(inner.clone(), k),
            "lake/t",
        ))
        .await;
        let loc = Location::in_memory(inner.clone(), "lake/t");
        if let Ok(id) = run::resumable(&loc).await {
            found = Some((inner, id));
            break;
        }
    }
    let (inner, id) = found.expect("some crash point leaves an unfinished run");
    // Meanwhile a new partition appears; `--all` would select it today.
    let late = rows(&[(900, Some("late"))]);
    inner
        .put(
            &Path::from("lake/t/day=2024-01-09/part-0.parquet"),
            PutPayload::from(parquet_bytes(&late)),
        )
        .await
        .unwrap();
    let loc = Location::in_memory(inner.clone(), "lake/t");
    let before_late = checksums_of(&loc).await["day=2024-01-09"].clone();
    let report = run::resume(&loc, &id, lease(), std::time::Duration::ZERO, None)
        .await
        .unwrap();
    let resumed: Vec<&str> = report
        .partitions
        .iter()
        .map(|p| p.partition.as_str())
        .collect();
    assert_eq!(
        resumed,
        [
            "day=2024-01-01",
            "day=2024-01-02",
            "day=2024-01-03",
            "day=2024-01-04"
        ]
    );
    assert_eq!(
        checksums_of(&loc).await["day=2024-01-09"],
        before_late,
        "the late partition was touched"
    );
    assert_eq!(names(&inner, "day=2024-01-09").await, ["part-0.parquet"]);
}

#[tokio::test]
async fn copied_column_chunks_that_differ_from_the_source_are_refused() {
    // Copied chunks are proven by their bytes and description, not by decoding them: a
    // byte changed inside one must be caught all the same.
    use backfill::stage;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t");
    let many: Vec<(i64, Option<&str>)> = (0..500).map(|i| (i * 7, Some("name"))).collect();
    put(&table, "k=1", "a.parquet", &rows(&many));
    let loc = Location::open(table.to_str().unwrap()).unwrap();
    let t = backfill::table::discover(&loc, &Default::default())
        .await
        .unwrap();
    let source = backfill::table::read::read_partition(&loc, &t.partitions[0])
        .await
        .unwrap();
    // The output: `id` as it was, `name` upper-cased.
    let out: Vec<arrow::array::RecordBatch> = source
        .batches
        .iter()
        .map(|b| {
            let upper = arrow::array::StringArray::from_iter(
                b.column(1)
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .unwrap()
                    .iter()
                    .map(|v| v.map(str::to_uppercase)),
            );
            arrow::array::RecordBatch::try_new(
                b.schema(),
                vec![b.column(0).clone(), Arc::new(upper)],
            )
            .unwrap()
        })
        .collect();
    let schema = source.schema.clone();
    let props = stage::properties(&source.layout);
    let reuse = stage::reuse::plan(
        &source.files,
        source.batch_row_groups.as_deref(),
        &source.batches,
        &schema,
        &out,
        &props,
    )
    .expect("id is copied");
    assert_eq!(reuse.copied(), 1);
    let with = Some((&reuse, &source.files[..]));
    let file = stage::encode(&schema, &out, &source.layout, props.clone(), with, 0).unwrap();
    stage::check_decodes(&file, &schema, &out, with).unwrap();

    // Without the copied column (as a run encodes, its memory freed first): the same
    // bytes, proven alike; a re-encoded value that differs is still refused.
    let kept = reuse.encoded_only(out.clone()).unwrap();
    assert_eq!(kept[0].num_columns(), 1);
    assert_eq!(
        stage::encode(&schema, &kept, &source.layout, props, with, 0).unwrap(),
        file
    );
    stage::check_decodes(&file, &schema, &kept, with).unwrap();
    let mut wrong = kept.clone();
    let names = arrow::array::StringArray::from(vec!["?"; kept[0].num_rows()]);
    wrong[0] = arrow::array::RecordBatch::try_new(kept[0].schema(), vec![Arc::new(names)]).unwrap();
    let err = stage::check_decodes(&file, &schema, &wrong, with)
        .unwrap_err()
        .to_string();
    assert!(err.contains("column name differs"), "{err}");

    // A byte of the copied `id` chunk changed: refused, though `name` still decodes right.
    use parquet::file::reader::FileReader;
    let meta = parquet::file::reader::SerializedFileReader::new(file.clone()).unwrap();
    let (start, len) = meta.metadata().row_group(0).column(0).byte_range();
    let mut damaged = file.to_vec();
    damaged[(start + len / 2) as usize] ^= 0x10;
    let err = stage::check_decodes(&bytes::Bytes::from(damaged), &schema, &out, with)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("copied column 0 of row group 0: content differs"),
        "{err}"
    );

    // The rows of the copied column must still be the source's: another output with the
    // same `name` but different ids is not what the file holds.
    let mut other = out.clone();
    other[0] = arrow::array::RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(arrow::array::Int64Array::from(vec![1; out[0].num_rows()])),
            out[0].column(1).clone(),
        ],
    )
    .unwrap();
    assert!(stage::reuse::plan(
        &source.files,
        source.batch_row_groups.as_deref(),
        &source.batches,
        &schema,
        &other,
        &stage::properties(&source.layout),
    )
    .is_none());
}

#[tokio::test]
async fn a_large_file_changed_after_it_was_read_is_not_copied_from() {
    // A large local file is not held while its partition is rewritten; its chunks are
    // read again when copied, and must be the bytes that were decoded.
    use backfill::stage;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t");
    let b = large_rows(10);
    put(&table, "k=1", "a.parquet", &b);
    let path = table.join("k=1/a.parquet");
    assert!(std::fs::metadata(&path).unwrap().len() > 10 << 20);
    let loc = Location::open(table.to_str().unwrap()).unwrap();
    let t = backfill::table::discover(&loc, &Default::default())
        .await
        .unwrap();
    let encode = |source: &backfill::table::read::Source| {
        // The output: `id + 1`, `payload` as it was.
        let out: Vec<arrow::array::RecordBatch> = source
            .batches
            .iter()
            .map(|b| {
                let ids = arrow::compute::kernels::numeric::add(
                    b.column(0),
                    &arrow::array::Int64Array::new_scalar(1),
                )
                .unwrap();
                arrow::array::RecordBatch::try_new(b.schema(), vec![ids, b.column(1).clone()])
                    .unwrap()
            })
            .collect();
        let props = stage::properties(&source.layout);
        let reuse = stage::reuse::plan(
            &source.files,
            source.batch_row_groups.as_deref(),
            &source.batches,
            &source.schema,
            &out,
            &props,
        )
        .expect("payload is copied");
        let with = Some((&reuse, &source.files[..]));
        stage::encode(&source.schema, &out, &source.layout, props, with, 0).inspect(|file| {
            stage::check_decodes(file, &source.schema, &out, with).unwrap();
        })
    };
    let source = backfill::table::read::read_partition(&loc, &t.partitions[0])
        .await
        .unwrap();
    let file = encode(&source).unwrap();
    assert!(file.len() > 10 << 20);

    let source = backfill::table::read::read_partition(&loc, &t.partitions[0])
        .await
        .unwrap();
    // Same size, one byte of the payload changed, after the rows were decoded.
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = encode(&source).unwrap_err().to_string();
    assert!(err.contains("changed after it was read"), "{err}");
}

#[tokio::test]
async fn new_files_that_do_not_decode_to_the_rows_written_are_refused() {
    use backfill::stage;
    let written = rows(&[(1, Some("a")), (2, None), (3, Some("c"))]);
    let schema = written.schema();
    let file = stage::encode(
        &schema,
        std::slice::from_ref(&written),
        &backfill::table::read::Layout::default(),
        stage::properties(&backfill::table::read::Layout::default()),
        None,
        0,
    )
    .unwrap();
    stage::check_decodes(&file, &schema, std::slice::from_ref(&written), None).unwrap();
    // The same rows cut into other batches are the same rows.
    stage::check_decodes(
        &file,
        &schema,
        &[written.slice(0, 1), written.slice(1, 2)],
        None,
    )
    .unwrap();
    let refused = |batches: &[arrow::array::RecordBatch], bytes: &bytes::Bytes| {
        stage::check_decodes(bytes, &schema, batches, None)
            .unwrap_err()
            .to_string()
    };
    let other = rows(&[(1, Some("a")), (2, Some("b")), (3, Some("c"))]);
    assert!(refused(&[other], &file).contains("column name differs"));
    let fewer = rows(&[(1, Some("a")), (2, None)]);
    assert!(refused(&[fewer], &file).contains("1 rows too many"));
    let more = rows(&[(1, Some("a")), (2, None), (3, Some("c")), (4, None)]);
    assert!(refused(&[more], &file).contains("1 rows missing"));
    let truncated = file.slice(..file.len() - 9);
    assert!(refused(std::slice::from_ref(&written), &truncated).contains("does not decode"));

    // Exact equality, not checksum equality: -0.0 written must not come back as 0.0.
    let floats = |v: f64| {
        arrow::array::RecordBatch::try_from_iter([(
            "x",
            Arc::new(arrow::array::Float64Array::from(vec![v])) as arrow::array::ArrayRef,
        )])
        .unwrap()
    };
    let zero = floats(0.0);
    let zero_file = stage::encode(
        &zero.schema(),
        std::slice::from_ref(&zero),
        &backfill::table::read::Layout::default(),
        stage::properties(&backfill::table::read::Layout::default()),
        None,
        0,
    )
    .unwrap();
    assert!(stage::check_decodes(&zero_file, &zero.schema(), &[floats(-0.0)], None).is_err());
    stage::check_decodes(&zero_file, &zero.schema(), &[zero], None).unwrap();
}

#[tokio::test]
async fn staged_files_that_do_not_read_back_as_written_are_refused() {
    use backfill::stage;
    let written = rows(&[(1, Some("a")), (2, None)]);
    let file = stage::encode(
        &written.schema(),
        std::slice::from_ref(&written),
        &backfill::table::read::Layout::default(),
        stage::properties(&backfill::table::read::Layout::default()),
        None,
        0,
    )
    .unwrap();
    let path = Path::from("lake/.backfill/t/stage/x.parquet");

    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let loc = Location::in_memory(inner.clone(), "lake/t");
    stage::write(&loc, &path, file.clone()).await.unwrap();
    let stored = inner.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(stored, file);

    use crate::support::faulty::{Tamper, Tampering};
    let damaged: Arc<dyn ObjectStore> =
        Tampering::new(Arc::new(InMemory::new()), Tamper::FlipLastByte);
    let loc = Location::in_memory(damaged, "lake/t");
    let err = stage::write(&loc, &path, file.clone()).await.unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "reads back differently from the {} bytes written",
            file.len()
        )),
        "{err}"
    );

    // Local disk: the file is written, fsynced and read back.
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t");
    std::fs::create_dir_all(&table).unwrap();
    let loc = Location::open(table.to_str().unwrap()).unwrap();
    let staged = loc.work_root().join("stage").join("x.parquet");
    stage::write(&loc, &staged, file.clone()).await.unwrap();
    assert_eq!(std::fs::read(loc.fs_path(&staged).unwrap()).unwrap(), file);
}

#[test]
fn a_run_over_files_a_parquet_summary_lists_is_refused() {
    // fastparquet writes `_metadata` (every file's row groups, by path) and
    // `_common_metadata` beside the partitions; fastparquet and dask read the files and row
    // counts from it. A run replacing files would leave it naming files that are gone.
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t");
    copy_dir(&root().join("testdata/fastparquet_summary"), &t);
    std::fs::write(
        dir.path().join("f.sql"),
        "SELECT * FROM source WHERE k <> 1",
    )
    .unwrap();
    let before = file_hashes(&t);
    let refused = |args: &[&str], files: &str| {
        let out = run_in(dir.path(), args);
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        for want in [files, "Nothing was written", "fastparquet", "Move them out"] {
            assert!(out.stderr.contains(want), "{want:?} not in {}", out.stderr);
        }
    };
    let both = "_common_metadata, _metadata";
    refused(&["run", "t", "--sql", "f.sql", "--all"], both);
    refused(&["plan", "t", "--sql", "f.sql", "--all", "--freeze"], both);
    refused(&["plan", "t", "--partition", "p=1"], both);
    assert_eq!(file_hashes(&t), before, "a refused run changed the table");

    // Moved out, the run goes ahead. A summary in a partition's own folder covers that
    // partition only.
    std::fs::remove_file(t.join("_common_metadata")).unwrap();
    std::fs::rename(t.join("_metadata"), t.join("p=2/_metadata")).unwrap();
    refused(
        &["run", "t", "--sql", "f.sql", "--partition", "p=2"],
        "p=2/_metadata",
    );
    let out = run_in(
        dir.path(),
        &["run", "t", "--sql", "f.sql", "--partition", "p=1"],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let after = file_hashes(&t);
    let p2: Vec<_> = after
        .iter()
        .filter(|(f, _)| f.starts_with("p=2/"))
        .collect();
    assert_eq!(
        p2.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        ["p=2/_metadata", "p=2/part.1.parquet"]
    );
    assert_eq!(after["p=2/part.1.parquet"], before["p=2/part.1.parquet"]);
    assert_eq!(after["p=2/_metadata"], before["_metadata"]);
    let snap = snapshot_json(dir.path(), "t", &[]);
    assert_eq!(snap["partitions"][0]["rows"], 2, "{snap}");
}
