//! One suite, three backends: the same scenarios on `memory://`, local disk and S3 (a
//! real moto server). Differences between backends are bugs, except the documented
//! object-store commit window.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backfill::lock::LeaseTimes;
use backfill::plan::{OnEmpty, Order};
use backfill::run::{self, RunRequest};
use backfill::selection::Selection;
use backfill::storage::Location;
use object_store::{memory::InMemory, path::Path, ObjectStore, ObjectStoreExt, PutPayload};

use crate::support::faulty::Faulty;
use crate::support::{parquet_bytes, rows, s3 as moto};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Memory,
    Local,
    S3,
}

/// A table location on one backend, and a way to write raw files into it.
struct Fixture {
    raw: Arc<dyn ObjectStore>,
    loc: Location,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    fn new(kind: Kind) -> Fixture {
        match kind {
            Kind::Memory => {
                let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
                Fixture {
                    loc: Location::in_memory(raw.clone(), "lake/t"),
                    raw,
                    _dir: None,
                }
            }
            Kind::Local => {
                let dir = tempfile::tempdir().unwrap();
                std::fs::create_dir_all(dir.path().join("lake/t")).unwrap();
                let loc = Location::open(dir.path().join("lake/t").to_str().unwrap()).unwrap();
                Fixture {
                    raw: loc.store.clone(),
                    loc,
                    _dir: Some(dir),
                }
            }
            Kind::S3 => {
                let server = moto::server();
                let bucket = moto::bucket(server);
                let loc = moto::location(&server.endpoint, &bucket, "lake/t");
                Fixture {
                    raw: loc.store.clone(),
                    loc,
                    _dir: None,
                }
            }
        }
    }

    /// The location with the store wrapped (fault injection).
    fn wrapped(&self, store: Arc<dyn ObjectStore>) -> Location {
        let mut loc = self.loc.clone();
        loc.store = store;
        loc
    }

    async fn put(&self, relative: &str, bytes: Vec<u8>) {
        let path = Path::parse(format!("{}/{relative}", self.loc.root)).unwrap();
        self.raw.put(&path, PutPayload::from(bytes)).await.unwrap();
    }

    /// `days` x `regions` partitions of three rows each.
    async fn table(&self, days: u32, regions: &[&str]) {
        self.table_as(days, regions, true).await
    }

    /// [`Fixture::table`]; without `page_index`, files as DuckDB writes them (whose
    /// chunks a sliced rewrite copies).
    async fn table_as(&self, days: u32, regions: &[&str], page_index: bool) {
        for d in 1..=days {
            for (r, region) in regions.iter().enumerate() {
                let base = d as i64 * 100 + r as i64 * 10;
                let b = rows(&[(base, Some("a")), (base + 1, None), (base + 2, Some("b"))]);
                let bytes = if page_index {
                    parquet_bytes(&b)
                } else {
                    let props = parquet::file::properties::WriterProperties::builder()
                        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Chunk)
                        .set_offset_index_disabled(true)
                        .build();
                    let mut buf = Vec::new();
                    let mut w =
                        parquet::arrow::ArrowWriter::try_new(&mut buf, b.schema(), Some(props))
                            .unwrap();
                    w.write(&b).unwrap();
                    w.close().unwrap();
                    buf
                };
                self.put(
                    &format!("day=2024-03-{d:02}/region={region}/part-0.parquet"),
                    bytes,
                )
                .await;
            }
        }
    }
}

async fn checksums(loc: &Location) -> BTreeMap<String, (u64, String)> {
    let table = backfill::table::discover(loc, &Default::default())
        .await
        .unwrap();
    let snap = backfill::snapshot::snapshot(&table, &Default::default())
        .await
        .unwrap();
    snap.partitions
        .into_iter()
        .map(|p| (p.partition.into(), (p.rows, p.checksum)))
        .collect()
}

fn lease() -> LeaseTimes {
    LeaseTimes {
        ttl: Duration::from_millis(1),
        renew_every: Duration::from_secs(3600),
    }
}

fn request(sql: &str, selection: Selection, all: bool) -> RunRequest {
    RunRequest {
        sql: sql.into(),
        selection,
        all,
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

/// A run of every partition, those over `slice_above_mib` rewritten a slice at a time.
async fn run_all(
    loc: &Location,
    sql: &str,
    slice_above_mib: u64,
) -> Result<run::RunReport, backfill::Error> {
    let table = backfill::table::discover(loc, &Default::default()).await?;
    let req = RunRequest {
        slice_above_mib,
        ..request(sql, Selection::default(), true)
    };
    run::run(&table, req).await
}

const UPPER: &str = "SELECT id, upper(name) AS name FROM source";

async fn discovery(kind: Kind) {
    let f = Fixture::new(kind);
    f.table(20, &["a", "b", "c"]).await;
    f.put("day=2024-03-01/region=a/_SUCCESS", vec![]).await;
    f.put("day=2024-03-01/region=a/.part-0.parquet.crc", vec![1])
        .await;
    f.put("loose.parquet", parquet_bytes(&rows(&[(1, None)])))
        .await;
    let t = backfill::table::discover(&f.loc, &Default::default())
        .await
        .unwrap();
    assert_eq!(t.key_names(), ["day", "region"], "{kind:?}");
    assert_eq!(t.partitions.len(), 60, "{kind:?}");
    assert_eq!(t.partitions[0].id, "day=2024-03-01/region=a");
    assert_eq!(t.partitions[59].id, "day=2024-03-20/region=c");
    assert!(t.partitions.iter().all(|p| p.files.len() == 1), "{kind:?}");
    assert_eq!(t.outside_layout, ["loose.parquet"], "{kind:?}");
}

/// Folder names where one is the start of another ("us", "us east", "us-east", "us/x"):
/// listed in parallel ranges, none may be lost.
async fn discovery_of_look_alike_values(kind: Kind) {
    let f = Fixture::new(kind);
    let values = ["us", "us east", "us-east", "us%2Fx", "us0", "u", "v"];
    for (i, v) in values.iter().enumerate() {
        f.put(
            &format!("k={v}/part-0.parquet"),
            parquet_bytes(&rows(&[(i as i64, None)])),
        )
        .await;
    }
    let t = backfill::table::discover(&f.loc, &Default::default())
        .await
        .unwrap();
    let mut got: Vec<Option<String>> = t
        .partitions
        .iter()
        .map(|p| p.values.raw()[0].clone())
        .collect();
    got.sort();
    let mut want: Vec<Option<String>> = ["us", "us east", "us-east", "us/x", "us0", "u", "v"]
        .iter()
        .map(|v| Some(v.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want, "{kind:?}");
    assert!(t.partitions.iter().all(|p| p.files.len() == 1), "{kind:?}");
}

async fn snapshot_equals_local(kind: Kind) {
    let f = Fixture::new(kind);
    f.table(3, &["eu", "us"]).await;
    let reference = Fixture::new(Kind::Local);
    reference.table(3, &["eu", "us"]).await;
    assert_eq!(
        checksums(&f.loc).await,
        checksums(&reference.loc).await,
        "{kind:?}"
    );
}

async fn diff_and_verify(kind: Kind) {
    let f = Fixture::new(kind);
    f.table(3, &["eu"]).await;
    let table = backfill::table::discover(&f.loc, &Default::default())
        .await
        .unwrap();
    let before = backfill::snapshot::snapshot(&table, &Default::default())
        .await
        .unwrap();
    f.put(
        "day=2024-03-02/region=eu/late.parquet",
        parquet_bytes(&rows(&[(7, None)])),
    )
    .await;
    f.put(
        "day=2024-03-05/region=eu/part-0.parquet",
        parquet_bytes(&rows(&[(8, None)])),
    )
    .await;
    let table = backfill::table::discover(&f.loc, &Default::default())
        .await
        .unwrap();
    let after = backfill::snapshot::snapshot(&table, &Default::default())
        .await
        .unwrap();
    let d = backfill::diff::diff(&before, &after);
    assert_eq!(
        (
            d.summary.unchanged,
            d.summary.changed,
            d.summary.new,
            d.summary.missing
        ),
        (2, 1, 1, 0),
        "{kind:?}"
    );
    let options = backfill::verify::VerifyOptions {
        every: Some(backfill::verify::Every::Day),
        from: None,
        to: None,
        against: Some(before),
        run: None,
        anomalies: None,
        selection: Selection::default(),
        scan: Default::default(),
    };
    let report = backfill::verify::verify(&table, &options).await.unwrap();
    let kinds: Vec<&str> = report.findings.iter().map(|f| f.kind.name()).collect();
    assert_eq!(kinds, ["missing_partition", "changed", "new"], "{kind:?}");
}

async fn backfill_and_history(kind: Kind) {
    let f = Fixture::new(kind);
    f.table(2, &["eu", "us"]).await;
    let before = checksums(&f.loc).await;
    let table = backfill::table::discover(&f.loc, &Default::default())
        .await
        .unwrap();
    let selection = Selection {
        from: Some("2024-03-02".into()),
        ..Default::default()
    };
    let table = table.select(&selection).unwrap();
    let report = run::run(&table, request(UPPER, selection, false))
        .await
        .unwrap();
    assert!(report.ok(), "{kind:?}: {report:?}");
    assert_eq!(report.summary.rewritten, 2);
    // The new content is what the SQL says.
    let want = Fixture::new(Kind::Memory);
    for (r, region) in ["eu", "us"].iter().enumerate() {
        let base = 200 + r as i64 * 10;
        let b = rows(&[(base, Some("A")), (base + 1, None), (base + 2, Some("B"))]);
        want.put(
            &format!("day=2024-03-02/region={region}/x.parquet"),
            parquet_bytes(&b),
        )
        .await;
    }
    let after = checksums(&f.loc).await;
    let expected = checksums(&want.loc).await;
    for (p, v) in &after {
        if p.starts_with("day=2024-03-01") {
            assert_eq!(*v, before[p], "{kind:?}: {p} outside the selection changed");
        } else {
            assert_eq!(*v, expected[p], "{kind:?}: {p}");
        }
    }
    let history = run::history(&f.loc).await.unwrap().runs;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].status, "finished");
    assert_eq!((history[0].partitions, history[0].rewritten), (2, 2));

    run::rollback(&f.loc, &report.run_id, lease())
        .await
        .unwrap();
    assert_eq!(checksums(&f.loc).await, before, "{kind:?}: after rollback");
    assert_eq!(
        run::history(&f.loc).await.unwrap().runs[0].status,
        "rolled_back"
    );
}

async fn resume_after_a_fault_at_each_step(kind: Kind) {
    resume_after_a_fault_at_each_step_of(kind, backfill::plan::SLICE_ABOVE_MIB).await;
}

/// The same, with every partition rewritten a slice at a time (its files read range by
/// range, a row group at a time).
async fn resume_sliced_after_a_fault_at_each_step(kind: Kind) {
    resume_after_a_fault_at_each_step_of(kind, 0).await;
}

async fn resume_after_a_fault_at_each_step_of(kind: Kind, slice_above_mib: u64) {
    // Sliced, from files without a page index: `id`'s chunks are copied.
    let page_index = slice_above_mib != 0;
    let f = Fixture::new(kind);
    f.table_as(2, &["eu"], page_index).await;
    let before = checksums(&f.loc).await;
    let counter = Faulty::new(f.raw.clone(), usize::MAX);
    // Count the operations of a clean run on a scratch copy of the same table.
    let scratch = Fixture::new(kind);
    scratch.table_as(2, &["eu"], page_index).await;
    let counting = Faulty::new(scratch.raw.clone(), usize::MAX);
    let clean = run_all(&scratch.wrapped(counting.clone()), UPPER, slice_above_mib)
        .await
        .unwrap();
    let sliced = clean.partitions.iter().all(|p| p.slices == 1);
    assert_eq!(sliced, slice_above_mib == 0, "{kind:?}: {clean:?}");
    let after = checksums(&scratch.loc).await;
    let total = counting.ops();
    drop(counter);
    for k in 0..total {
        let f = Fixture::new(kind);
        f.table_as(2, &["eu"], page_index).await;
        let faulty = f.wrapped(Faulty::new(f.raw.clone(), k));
        let _ = run_all(&faulty, UPPER, slice_above_mib).await;
        let now = checksums(&f.loc).await;
        assert_eq!(now.len(), 2, "{kind:?} k={k}");
        match run::resumable(&f.loc).await {
            Ok(id) => {
                let r = run::resume(&f.loc, &id, lease(), std::time::Duration::ZERO, None)
                    .await
                    .unwrap_or_else(|e| panic!("{kind:?} k={k}: {e}"));
                assert!(r.ok(), "{kind:?} k={k}: {r:?}");
                assert_eq!(checksums(&f.loc).await, after, "{kind:?} k={k}");
            }
            Err(_) => assert!(now == before || now == after, "{kind:?} k={k}"),
        }
    }
}

/// The checksum cache on every backend: the same checksums with and without it, nothing
/// read again when nothing changed, and one rewritten file read again after a run.
async fn checksum_cache(kind: Kind) {
    use backfill::snapshot::{snapshot, Cache, ScanOptions};
    let f = Fixture::new(kind);
    f.table(3, &["eu", "us"]).await;
    // Without per-column sums: a run records its files' checksums, not their columns'.
    let scan = |cache: Option<Arc<Cache>>| ScanOptions {
        cache,
        ..Default::default()
    };
    let table = backfill::table::discover(&f.loc, &Default::default())
        .await
        .unwrap();
    let cold = snapshot(&table, &scan(None)).await.unwrap();
    let mut reports = Vec::new();
    for _ in 0..2 {
        let cache = Arc::new(Cache::open(&f.loc, None).await);
        let warm = snapshot(&table, &scan(Some(cache.clone()))).await.unwrap();
        assert_eq!(warm.partitions, cold.partitions, "{kind:?}");
        let r = cache.save(&table, false).await;
        reports.push((r.files_read, r.files_cached, r.notes.len()));
    }
    assert_eq!(reports, [(6, 0, 0), (0, 6, 0)], "{kind:?}");
    // A run records the file it writes: the next snapshot reads nothing.
    let selection = Selection {
        partitions: vec!["day=2024-03-02/region=us".into()],
        ..Default::default()
    };
    let report = run::run(
        &table.clone().select(&selection).unwrap(),
        request(UPPER, selection, false),
    )
    .await
    .unwrap();
    assert_eq!(report.summary.rewritten, 1, "{kind:?}");
    let table = backfill::table::discover(&f.loc, &Default::default())
        .await
        .unwrap();
    let cache = Arc::new(Cache::open(&f.loc, None).await);
    let warm = snapshot(&table, &scan(Some(cache.clone()))).await.unwrap();
    let r = cache.save(&table, false).await;
    assert_eq!(r.files_read, 0, "{kind:?}: {r:?}");
    assert_eq!(
        warm.partitions,
        snapshot(&table, &scan(None)).await.unwrap().partitions,
        "{kind:?}"
    );
}

macro_rules! on_every_backend {
    ($($scenario:ident),*) => {
        mod memory {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $scenario() { super::$scenario(super::Kind::Memory).await } )*
        }
        mod local {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $scenario() { super::$scenario(super::Kind::Local).await } )*
        }
        mod s3 {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $scenario() { super::$scenario(super::Kind::S3).await } )*
        }
    };
}

on_every_backend!(
    discovery,
    discovery_of_look_alike_values,
    snapshot_equals_local,
    diff_and_verify,
    backfill_and_history,
    resume_after_a_fault_at_each_step,
    resume_sliced_after_a_fault_at_each_step,
    checksum_cache
);
