//! S3 specifics against a real moto server: conditional writes, the lease, a server
//! without conditional writes, transient errors, multipart uploads, the binary with
//! AWS_* variables, and bad settings.

use std::sync::Arc;
use std::time::Duration;

use backfill::lock::{LeaseTimes, Lock};
use object_store::{
    path::Path, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};

use crate::support::proxy::{self, Mode};
use crate::support::{large_rows, parquet_bytes, rows, run_env, s3, sql};

/// A whole-table run of `sql`.
fn request(sql: &str, jobs: usize) -> backfill::run::RunRequest {
    backfill::run::RunRequest {
        sql: sql.into(),
        selection: Default::default(),
        all: true,
        jobs,
        order: Default::default(),
        on_empty: Default::default(),
        allow_schema_change: false,
        allow_nondeterministic: false,
        tables: vec![],
        lease: LeaseTimes::default(),
        progress: None,
        preflight_partition: None,
        slice_above_mib: backfill::plan::SLICE_ABOVE_MIB,
    }
}

async fn put_table(store: &Arc<dyn ObjectStore>, prefix: &str, days: u32) {
    for d in 1..=days {
        let base = d as i64 * 100;
        let b = rows(&[(base, Some("a")), (base + 1, None), (base + 2, Some("b"))]);
        let path = Path::parse(format!("{prefix}/day=2024-04-{d:02}/part-0.parquet")).unwrap();
        store
            .put(&path, PutPayload::from(parquet_bytes(&b)))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn moto_answers_conditional_writes_with_412() {
    let server = s3::server();
    let store = s3::store(&server.endpoint, &s3::bucket(server));
    let path = Path::from("x");
    let create = || PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    let first = store
        .put_opts(&path, PutPayload::from_static(b"1"), create())
        .await
        .unwrap();
    let again = store
        .put_opts(&path, PutPayload::from_static(b"2"), create())
        .await;
    assert!(
        matches!(again, Err(object_store::Error::AlreadyExists { .. })),
        "{again:?}"
    );
    let stale = UpdateVersion {
        e_tag: Some("\"not-it\"".into()),
        version: None,
    };
    let update = store
        .put_opts(
            &path,
            PutPayload::from_static(b"3"),
            PutOptions {
                mode: PutMode::Update(stale),
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(update, Err(object_store::Error::Precondition { .. })),
        "{update:?}"
    );
    let current = UpdateVersion {
        e_tag: first.e_tag,
        version: None,
    };
    store
        .put_opts(
            &path,
            PutPayload::from_static(b"4"),
            PutOptions {
                mode: PutMode::Update(current),
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_on_s3() {
    let server = s3::server();
    let loc = s3::location(&server.endpoint, &s3::bucket(server), "lake/t");
    let short = LeaseTimes {
        ttl: Duration::from_millis(300),
        renew_every: Duration::from_millis(1500),
    };
    let first = Lock::acquire(&loc, "first", short).await.unwrap();
    let refused = Lock::acquire(&loc, "second", short).await;
    assert!(
        matches!(&refused, Err(backfill::Error::Locked { run_id, .. }) if run_id == "first"),
        "{:?}",
        refused.err()
    );
    let second = crate::safety::take_within(&loc, Duration::from_secs(20)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while first.check().is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the old holder never noticed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.release().await.unwrap();
    // Released: the next run takes it at once.
    Lock::acquire(&loc, "third", LeaseTimes::default())
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_conditional_writes_is_refused_before_anything_is_written() {
    let server = s3::server();
    let bucket = s3::bucket(server);
    let direct = s3::store(&server.endpoint, &bucket);
    put_table(&direct, "lake/t", 2).await;
    let before: Vec<Path> = list(&direct, "").await;
    let p = proxy::start(&server.endpoint, Mode::NoConditionalWrites);
    let loc = s3::location(&p.endpoint, &bucket, "lake/t");
    let table = backfill::table::discover(&loc, &Default::default())
        .await
        .unwrap();
    let req = request("SELECT id + 1 AS id, name FROM source", 1);
    let err = backfill::run::run(&table, req).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not honour conditional writes"),
        "{err}"
    );
    assert_eq!(list(&direct, "").await, before, "something was written");
}

async fn list(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<Path> {
    use futures::TryStreamExt;
    let prefix = (!prefix.is_empty()).then(|| Path::from(prefix));
    let mut v: Vec<Path> = store
        .list(prefix.as_ref())
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried() {
    let server = s3::server();
    let bucket = s3::bucket(server);
    let direct = s3::store(&server.endpoint, &bucket);
    put_table(&direct, "lake/t", 3).await;
    let p = proxy::start(&server.endpoint, Mode::SlowDownEvery(3));
    let loc = s3::location(&p.endpoint, &bucket, "lake/t");
    let table = backfill::table::discover(&loc, &Default::default())
        .await
        .unwrap();
    let snap = backfill::snapshot::snapshot(&table, &Default::default())
        .await
        .unwrap();
    assert_eq!(snap.totals.rows, 9);
    let req = request("SELECT id + 1 AS id, name FROM source", 2);
    let report = backfill::run::run(&table, req).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.summary.rewritten, 3);
    let refused = p.refused.load(std::sync::atomic::Ordering::SeqCst);
    assert!(refused >= 10, "only {refused} requests were refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_go_up_as_multipart_uploads() {
    let server = s3::server();
    let bucket = s3::bucket(server);
    let store = s3::store(&server.endpoint, &bucket);
    // 12 incompressible MiB: above the 10 MiB buffer, so the staged file is a multipart upload.
    let b = large_rows(12);
    store
        .put(
            &Path::from("lake/t/k=1/part-0.parquet"),
            PutPayload::from(parquet_bytes(&b)),
        )
        .await
        .unwrap();
    // Through a recording proxy, to see the upload requests themselves.
    let p = proxy::start(&server.endpoint, Mode::PassThrough);
    let loc = s3::location(&p.endpoint, &bucket, "lake/t");
    let table = backfill::table::discover(&loc, &Default::default())
        .await
        .unwrap();
    let req = request("SELECT id + 1 AS id, payload FROM source", 1);
    let report = backfill::run::run(&table, req).await.unwrap();
    assert!(report.ok(), "{report:?}");
    let name = format!("lake/t/k=1/part-{}-0.parquet", report.run_id);
    let size = store.head(&Path::from(name.as_str())).await.unwrap().size;
    assert!(size > 12 << 20, "{size}");
    // The unchanged payload was copied from the byte ranges read over S3, not encoded again.
    let chunk = |bytes: bytes::Bytes| {
        use parquet::file::reader::FileReader;
        let reader = parquet::file::reader::SerializedFileReader::new(bytes.clone()).unwrap();
        let (start, len) = reader.metadata().row_group(0).column(1).byte_range();
        bytes.slice(start as usize..(start + len) as usize)
    };
    let get = |p: &str| {
        let store = store.clone();
        let p = Path::from(p);
        async move { store.get(&p).await.unwrap().bytes().await.unwrap() }
    };
    let source = parquet_bytes(&b);
    assert_eq!(
        chunk(get(&name).await),
        chunk(bytes::Bytes::from(source)),
        "payload chunk copied"
    );
    // The staged file went up in parts (CreateMultipartUpload is `POST ...?uploads`), and the
    // 5 GB server-side copy limit was not hit: the commit copied it as one object.
    let seen = p.seen.lock().unwrap().clone();
    let stage_prefix = format!("/{bucket}/lake/.backfill/t/runs/{}/stage/", report.run_id);
    assert!(
        seen.iter()
            .any(|l| l.starts_with("POST ") && l.contains(&stage_prefix) && l.contains("?uploads")),
        "no multipart upload of the staged file in {seen:#?}"
    );
    assert!(
        seen.iter()
            .filter(|l| l.starts_with("PUT ")
                && l.contains(&stage_prefix)
                && l.contains("partNumber="))
            .count()
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reads_each_file_as_the_listing_before_it_found_it() {
    let server = s3::server();
    let bucket = s3::bucket(server);
    let store = s3::store(&server.endpoint, &bucket);
    const DAYS: usize = 8;
    put_table(&store, "lake/t", DAYS as u32).await;
    let p = proxy::start(&server.endpoint, Mode::PassThrough);
    let loc = s3::location(&p.endpoint, &bucket, "lake/t");
    let table = backfill::table::discover(&loc, &Default::default())
        .await
        .unwrap();
    let req = request("SELECT id, upper(name) AS name FROM source", 2);
    let report = backfill::run::run(&table, req).await.unwrap();
    assert!(report.ok(), "{report:?}");
    // Each old file is asked for its size once, to copy it into the backup; a read is
    // pinned to the ETag the partition's listing gave, without a HEAD of its own. Only
    // the preflight's few sample partitions are read unlisted (a HEAD each). Asking
    // before every read would be two per file.
    let seen = p.seen.lock().unwrap().clone();
    let heads = |day: usize| {
        let file = format!("/{bucket}/lake/t/day%3D2024-04-{day:02}/part-0.parquet ");
        seen.iter()
            .filter(|l| l.starts_with("HEAD ") && l.contains(&file))
            .count()
    };
    let per_file: Vec<usize> = (1..=DAYS).map(heads).collect();
    assert!(per_file.iter().all(|n| *n >= 1), "{per_file:?}");
    let once = per_file.iter().filter(|n| **n == 1).count();
    assert!(once >= DAYS / 2, "HEADs per old file: {per_file:?}");
    // And every partition holds its new rows.
    for day in 1..=DAYS {
        let live = backfill::commit::live_files(&loc, &format!("day=2024-04-{day:02}"))
            .await
            .unwrap();
        assert_eq!(live.len(), 1);
        assert!(live[0].0.contains(&report.run_id), "{live:?}");
    }
}

#[test]
fn the_binary_on_s3_with_aws_variables_never_prints_secrets() {
    let server = s3::server();
    let bucket = s3::bucket(server);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = s3::store(&server.endpoint, &bucket);
    rt.block_on(put_table(&store, "lake/t", 3));
    let dir = tempfile::tempdir().unwrap();
    let env = s3::env(&server.endpoint);
    let url = format!("s3://{bucket}/lake/t");
    let q = sql(
        dir.path(),
        "t.sql",
        "SELECT id, upper(name) AS name FROM source",
    );
    let mut all_output = String::new();
    for args in [
        vec!["snapshot", url.as_str(), "--json", "--out", "before.json"],
        vec!["plan", url.as_str(), "--sql", &q, "--from", "2024-04-02"],
        vec![
            "run",
            url.as_str(),
            "--sql",
            &q,
            "--from",
            "2024-04-02",
            "--html",
            "run.html",
        ],
        vec!["runs", url.as_str()],
        vec![
            "verify",
            url.as_str(),
            "--expect-every",
            "day",
            "--against",
            "before.json",
        ],
        vec!["diff", "before.json", url.as_str()],
    ] {
        let out = run_env(dir.path(), &args, &env);
        assert!(
            out.code == 0 || out.code == 1,
            "{args:?}: {}{}",
            out.stdout,
            out.stderr
        );
        all_output.push_str(&out.stdout);
        all_output.push_str(&out.stderr);
    }
    assert!(all_output.contains("2 partitions, 2 files"), "{all_output}");
    // The preflight ran on S3 too: its sample, its estimate with requests counted, the
    // run's report page.
    assert!(
        all_output.contains("transform: deterministic on day=2024-04-0")
            && all_output.contains("requests (")
            && all_output.contains("report written to run.html"),
        "{all_output}"
    );
    let page = std::fs::read_to_string(dir.path().join("run.html")).unwrap();
    assert_eq!(
        page.matches("data-status=\"rewritten\" data-rows").count(),
        2
    );
    assert!(all_output.contains("2 rewritten"), "{all_output}");
    assert!(
        all_output.contains("1 unchanged, 2 changed"),
        "{all_output}"
    );
    // Undo it from the binary too, and check the table is back.
    let runs = run_env(dir.path(), &["runs", url.as_str(), "--json"], &env);
    let v: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    let id = v["runs"][0]["run_id"].as_str().unwrap().to_string();
    let out = run_env(dir.path(), &["rollback", url.as_str(), &id], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    all_output.push_str(&out.stdout);
    let out = run_env(dir.path(), &["diff", "before.json", url.as_str()], &env);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = run_env(dir.path(), &["resume", url.as_str()], &env);
    assert_eq!(
        out.code, 2,
        "nothing to resume: {}{}",
        out.stdout, out.stderr
    );
    all_output.push_str(&out.stderr);
    // Nothing shows the secret: not the output, not the journal.
    assert!(!all_output.contains("test-secret-never-printed"));
    let journal = rt.block_on(list(&store, "lake/.backfill"));
    assert!(!journal.is_empty());
    for p in journal {
        let bytes = rt.block_on(async { store.get(&p).await.unwrap().bytes().await.unwrap() });
        assert!(
            !String::from_utf8_lossy(&bytes).contains("test-secret"),
            "{p}"
        );
    }
}

#[test]
fn bad_s3_settings_are_clear_errors() {
    let server = s3::server();
    let dir = tempfile::tempdir().unwrap();
    let env = s3::env(&server.endpoint);
    let out = run_env(
        dir.path(),
        &["snapshot", "s3://no-such-bucket-here/lake/t"],
        &env,
    );
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr.contains("s3://no-such-bucket-here/lake/t") && out.stderr.contains("bucket"),
        "{}",
        out.stderr
    );

    let strict = s3::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let out = run_env(
        dir.path(),
        &["snapshot", "s3://some-bucket/lake/t"],
        &s3::env(&strict.endpoint),
    );
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stderr.contains("AWS_ACCESS_KEY_ID"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("test-secret-never-printed"),
        "{}",
        out.stderr
    );

    let bare: Vec<(&str, String)> = vec![
        ("AWS_ENDPOINT_URL", String::new()),
        ("AWS_REGION", String::new()),
        ("AWS_DEFAULT_REGION", String::new()),
    ];
    let out = run_env(dir.path(), &["snapshot", "s3://bucket/lake/t"], &bare);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("set AWS_REGION for AWS S3, or AWS_ENDPOINT_URL"),
        "{}",
        out.stderr
    );
}

/// On S3 a journal is one object per record. An ended run's history is read from them
/// once; from then on `runs` and every run's start read its summary: a listing of the
/// journal and one GET, however many records it has.
#[test]
fn an_ended_run_is_read_from_one_summary_not_a_request_per_record() {
    let server = s3::server();
    let bucket = s3::bucket(server);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let direct = s3::store(&server.endpoint, &bucket);
    rt.block_on(put_table(&direct, "lake/t", 6));
    let p = proxy::start(&server.endpoint, Mode::PassThrough);
    let loc = s3::location(&p.endpoint, &bucket, "lake/t");
    let table = rt
        .block_on(backfill::table::discover(&loc, &Default::default()))
        .unwrap();
    let report = rt
        .block_on(backfill::run::run(
            &table,
            request("SELECT id, upper(name) AS name FROM source", 2),
        ))
        .unwrap();
    assert_eq!(report.summary.rewritten, 6);
    let gets = |what: &str| {
        p.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("GET ") && l.contains(what) && !l.contains("list-type"))
            .count()
    };
    let history = || {
        p.seen.lock().unwrap().clear();
        let h = rt.block_on(backfill::run::history(&loc)).unwrap();
        serde_json::to_value(&h.runs).unwrap()
    };
    let first = history();
    assert_eq!(first[0]["status"], "finished", "{first}");
    assert_eq!(first[0]["rewritten"], 6, "{first}");
    let records = gets("/journal/");
    assert!(
        records > 6,
        "the first reading reads every record: {records}"
    );
    let again = history();
    assert_eq!(again, first);
    assert_eq!(gets("/journal/"), 0, "{:?}", p.seen.lock().unwrap());
    assert_eq!(gets("/summary.json"), 1, "{:?}", p.seen.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_fetches_each_small_file_with_one_request() {
    let server = s3::server();
    let bucket = s3::bucket(server);
    let store = s3::store(&server.endpoint, &bucket);
    const DAYS: u32 = 6;
    put_table(&store, "lake/t", DAYS).await;
    let p = proxy::start(&server.endpoint, Mode::PassThrough);
    let loc = s3::location(&p.endpoint, &bucket, "lake/t");
    let table = backfill::table::discover(&loc, &Default::default())
        .await
        .unwrap();
    let options = backfill::snapshot::ScanOptions::default();
    let on_s3 = backfill::snapshot::snapshot(&table, &options)
        .await
        .unwrap();
    // One GET per file (not one for the footer and more for the rows).
    let seen = p.seen.lock().unwrap().clone();
    let gets: Vec<usize> = (1..=DAYS)
        .map(|day| {
            let file = format!("/{bucket}/lake/t/day%3D2024-04-{day:02}/part-0.parquet ");
            seen.iter()
                .filter(|l| l.starts_with("GET ") && l.contains(&file))
                .count()
        })
        .collect();
    assert_eq!(gets, vec![1; DAYS as usize], "{seen:#?}");
    // The same rows and checksums as the same files on local disk.
    let dir = tempfile::tempdir().unwrap();
    for day in 1..=DAYS {
        let key = format!("day=2024-04-{day:02}/part-0.parquet");
        let bytes = store
            .get(&Path::parse(format!("lake/t/{key}")).unwrap())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let file = dir.path().join(&key);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }
    let local = backfill::storage::Location::open(dir.path().to_str().unwrap()).unwrap();
    let local = backfill::table::discover(&local, &Default::default())
        .await
        .unwrap();
    let on_disk = backfill::snapshot::snapshot(&local, &options)
        .await
        .unwrap();
    let of = |s: &backfill::snapshot::Snapshot| -> Vec<(String, u64, String)> {
        s.partitions
            .iter()
            .map(|p| (p.partition.to_string(), p.rows, p.checksum.clone()))
            .collect()
    };
    assert_eq!(of(&on_s3).len(), DAYS as usize);
    assert_eq!(of(&on_s3), of(&on_disk));
}

#[tokio::test]
async fn parquet_summaries_on_s3_refuse_a_run_and_are_verified() {
    // fastparquet's table, its `_metadata` and `_common_metadata` beside the partitions.
    let server = s3::server();
    let bucket = s3::bucket(server);
    let store = s3::store(&server.endpoint, &bucket);
    let fixture = crate::support::root().join("testdata/fastparquet_summary");
    let put_file = |relative: &str| {
        let store = store.clone();
        let bytes = std::fs::read(fixture.join(relative)).unwrap();
        let path = Path::parse(format!("lake/t/{relative}")).unwrap();
        async move { store.put(&path, PutPayload::from(bytes)).await.unwrap() }
    };
    for f in [
        "_metadata",
        "_common_metadata",
        "p=1/part.0.parquet",
        "p=1/part.1.parquet",
        "p=2/part.1.parquet",
    ] {
        put_file(f).await;
    }
    let before = list(&store, "").await;
    let loc = s3::location(&server.endpoint, &bucket, "lake/t");
    let table = backfill::table::discover(&loc, &Default::default())
        .await
        .unwrap();

    // The run would leave the summary naming files that are gone: refused, nothing written.
    let err = backfill::run::run(&table, request("SELECT * FROM source WHERE k <> 1", 2))
        .await
        .unwrap_err();
    match &err {
        backfill::Error::SummaryFiles { files, .. } => {
            assert_eq!(files, "_common_metadata, _metadata")
        }
        other => panic!("{other}"),
    }
    assert_eq!(list(&store, "").await, before, "something was written");

    let verify = |table: backfill::table::Table| async move {
        let options = backfill::verify::VerifyOptions {
            every: None,
            from: None,
            to: None,
            against: None,
            run: None,
            anomalies: None,
            selection: Default::default(),
            scan: Default::default(),
        };
        let report = backfill::verify::verify(&table, &options).await.unwrap();
        report
            .findings
            .iter()
            .map(|f| {
                format!(
                    "{} {} {}",
                    f.kind.name(),
                    f.path.as_deref().unwrap_or("-"),
                    f.detail.split(';').next().unwrap()
                )
            })
            .collect::<Vec<_>>()
    };
    // As fastparquet wrote it, the summary agrees with the files.
    assert_eq!(verify(table).await, Vec::<String>::new());
    // Another job puts p=2's three rows in p=1's first file, which held two.
    store
        .put(
            &Path::from("lake/t/p=1/part.0.parquet"),
            PutPayload::from(std::fs::read(fixture.join("p=2/part.1.parquet")).unwrap()),
        )
        .await
        .unwrap();
    let table = backfill::table::discover(&loc, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        verify(table).await,
        ["stale_summary _metadata the summary lists 2 rows for p=1/part.0.parquet, which holds 3"]
    );
}
