//! Discovery of a table with 10,000 partitions on S3 (a local moto server): the parallel
//! listing by prefix that `discover` does, against one sequential listing of the prefix.
//!
//! `cargo bench --bench listing` (installs moto into target/tmp on first use, or set
//! BACKFILL_MOTO_SERVER to a moto_server binary).
#![allow(clippy::disallowed_methods)]

#[path = "../tests/it/support/s3.rs"]
#[allow(dead_code)]
mod s3;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use futures::{StreamExt, TryStreamExt};
use object_store::{path::Path, ObjectStore, ObjectStoreExt, PutPayload};

const DAYS: usize = 417;
const HOURS: usize = 24;

fn listing(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = s3::server();
    let bucket = s3::bucket(server);
    let store: Arc<dyn ObjectStore> = s3::store(&server.endpoint, &bucket);
    rt.block_on(async {
        let keys: Vec<String> = (0..DAYS)
            .flat_map(|d| {
                let day = chrono::NaiveDate::from_ymd_opt(2023, 1, 1).unwrap()
                    + chrono::Duration::days(d as i64);
                (0..HOURS).map(move |h| format!("lake/events/dt={day}/hour={h}/part-0.parquet"))
            })
            .collect();
        futures::stream::iter(keys)
            .map(|k| {
                let store = store.clone();
                async move {
                    store
                        .put(&Path::from(k), PutPayload::from_static(b"x"))
                        .await
                }
            })
            .buffer_unordered(64)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
    });
    let loc = s3::location(&server.endpoint, &bucket, "lake/events");
    let mut g = c.benchmark_group("listing");
    g.sample_size(10);
    g.bench_function("discover/10k partitions/parallel", |b| {
        b.iter(|| {
            let t = rt
                .block_on(backfill::table::discover(&loc, &Default::default()))
                .unwrap();
            assert_eq!(t.partitions.len(), DAYS * HOURS);
        })
    });
    g.bench_function("list/10k partitions/sequential", |b| {
        b.iter(|| {
            let n = rt
                .block_on(
                    store
                        .list(Some(&Path::from("lake/events")))
                        .try_collect::<Vec<_>>(),
                )
                .unwrap()
                .len();
            assert_eq!(n, DAYS * HOURS);
        })
    });
    g.finish();
}

criterion_group!(benches, listing);
criterion_main!(benches);
