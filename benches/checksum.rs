//! The checksum kernel on lineitem-like rows (16 columns, about 200 bytes a row).
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray};
use backfill::checksum::Hasher;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn lineitem_like(n: usize) -> RecordBatch {
    let i = |f: fn(usize) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from((0..n).map(f).collect::<Vec<_>>()))
    };
    let d = |s: i128| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(
                (0..n)
                    .map(|k| (k as i128 * s) % 10_000_000)
                    .collect::<Vec<_>>(),
            )
            .with_precision_and_scale(15, 2)
            .unwrap(),
        )
    };
    let date = |o: i32| -> ArrayRef {
        Arc::new(Date32Array::from(
            (0..n)
                .map(|k| 8000 + (k as i32 * 7 + o) % 2500)
                .collect::<Vec<_>>(),
        ))
    };
    let s = |w: &'static [&'static str]| -> ArrayRef {
        Arc::new(StringArray::from(
            (0..n).map(|k| w[k % w.len()]).collect::<Vec<_>>(),
        ))
    };
    let comments: Vec<String> = (0..n)
        .map(|k| format!("carefully final deposits {k} haggle furiously"))
        .collect();
    RecordBatch::try_from_iter([
        ("l_orderkey", i(|k| k as i64 / 4)),
        ("l_partkey", i(|k| (k as i64 * 7919) % 200_000)),
        ("l_suppkey", i(|k| (k as i64 * 31) % 10_000)),
        ("l_linenumber", i(|k| (k % 7) as i64)),
        ("l_quantity", d(3)),
        ("l_extendedprice", d(12_345)),
        ("l_discount", d(7)),
        ("l_tax", d(5)),
        ("l_returnflag", s(&["A", "N", "R"])),
        ("l_linestatus", s(&["F", "O"])),
        ("l_shipdate", date(0)),
        ("l_commitdate", date(30)),
        ("l_receiptdate", date(15)),
        (
            "l_shipinstruct",
            s(&[
                "DELIVER IN PERSON",
                "COLLECT COD",
                "NONE",
                "TAKE BACK RETURN",
            ]),
        ),
        (
            "l_shipmode",
            s(&["AIR", "MAIL", "SHIP", "TRUCK", "RAIL", "FOB", "REG AIR"]),
        ),
        (
            "l_comment",
            Arc::new(StringArray::from(comments)) as ArrayRef,
        ),
    ])
    .unwrap()
}

/// `batch` with its strings as views, as the snapshot reads them.
fn with_views(batch: &RecordBatch) -> RecordBatch {
    use arrow::datatypes::DataType;
    let columns: Vec<(String, ArrayRef)> = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| {
            let c = match f.data_type() {
                DataType::Utf8 => arrow::compute::cast(c, &DataType::Utf8View).unwrap(),
                _ => c.clone(),
            };
            (f.name().clone(), c)
        })
        .collect();
    RecordBatch::try_from_iter(columns).unwrap()
}

fn checksum(c: &mut Criterion) {
    let batch = lineitem_like(8192);
    let views = with_views(&batch);
    let mut g = c.benchmark_group("checksum");
    g.throughput(Throughput::Elements(batch.num_rows() as u64));
    g.bench_function("rows/lineitem", |b| {
        b.iter(|| {
            let mut h = Hasher::new(&batch.schema(), false).unwrap();
            h.update(&batch).unwrap();
            h.finish()
        })
    });
    g.bench_function("rows/lineitem-views", |b| {
        b.iter(|| {
            let mut h = Hasher::new(&views.schema(), false).unwrap();
            h.update(&views).unwrap();
            h.finish()
        })
    });
    g.bench_function("rows+columns/lineitem", |b| {
        b.iter(|| {
            let mut h = Hasher::new(&batch.schema(), true).unwrap();
            h.update(&batch).unwrap();
            h.finish()
        })
    });
    g.finish();
}

criterion_group!(benches, checksum);
criterion_main!(benches);
