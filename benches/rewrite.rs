//! The partition rewrite, end to end through `run` on local disk: read, transform
//! (`upper()` of a string column), checksums before and after, encode, prove, stage,
//! fsync, read back, journal and commit.
//!
//! - `rewrite/one_partition`: one partition of 100,000 rows (16 columns), one job:
//!   rows per second of a whole rewrite;
//! - `rewrite/small_partitions`: 64 partitions of 500 rows, two jobs: partitions per
//!   second, dominated by the fixed cost of a partition (journal, fsyncs, commit).
//!
//! `cargo bench --bench rewrite`. Every iteration rewrites a fresh copy of the table
//! (the copy is not timed).
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use backfill::bench::{self, SyntheticSpec};
use backfill::run;
use backfill::storage::Location;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

struct Case {
    name: &'static str,
    spec: SyntheticSpec,
    jobs: usize,
    throughput: Throughput,
}

fn rewrite(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let cases = [
        Case {
            name: "one_partition",
            spec: SyntheticSpec {
                rows: 100_000,
                partitions: 1,
                columns: 15,
                skew: 0.0,
                nulls: 0.05,
            },
            jobs: 1,
            throughput: Throughput::Elements(100_000),
        },
        Case {
            name: "small_partitions",
            spec: SyntheticSpec {
                rows: 64 * 500,
                partitions: 64,
                columns: 15,
                skew: 0.0,
                nulls: 0.05,
            },
            jobs: 2,
            throughput: Throughput::Elements(64),
        },
    ];
    let mut group = c.benchmark_group("rewrite");
    group.sample_size(10);
    for case in cases {
        let pristine_dir = scratch.path().join(case.name);
        std::fs::create_dir_all(&pristine_dir).unwrap();
        let pristine = bench::generate(&pristine_dir, &case.spec).unwrap();
        let work = scratch.path().join(format!("{}-work", case.name));
        group.throughput(case.throughput.clone());
        group.bench_function(case.name, |b| {
            b.iter_batched(
                || fresh(&pristine, &work),
                |table| rt.block_on(rewrite_all(&table, case.jobs)),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// A fresh copy of the table, and no work area left from the previous iteration.
fn fresh(pristine: &Path, work: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).unwrap();
    bench::copy_table(pristine, work).unwrap()
}

async fn rewrite_all(table: &Path, jobs: usize) {
    let loc = Location::open(table.to_str().unwrap()).unwrap();
    let table = backfill::table::discover(&loc, &Default::default())
        .await
        .unwrap();
    let sql = bench::default_sql_of(&table).await.unwrap();
    let req = bench::rewrite_request(sql, jobs);
    let report = run::run(&table, req).await.unwrap();
    assert!(report.ok(), "the rewrite failed: {:?}", report.partitions);
    assert_eq!(report.summary.rewritten, table.partitions.len());
}

criterion_group!(benches, rewrite);
criterion_main!(benches);
