//! The checksum laws (docs/CHECKSUM.md, "Properties"), as property tests.

use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::{DataType, Int32Type};
use backfill::checksum::checksum_batches;
use backfill::storage::Location;
use bytes::Bytes;
use object_store::{memory::InMemory, path::Path, ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use proptest::prelude::*;

type Row = (i32, Option<String>, Option<f64>);

fn batch(rows: &[Row]) -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "n",
            Arc::new(Int32Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "s",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "f",
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
    ])
    .unwrap()
}

fn sum(b: &RecordBatch) -> String {
    checksum_batches(&b.schema(), std::slice::from_ref(b)).unwrap()
}

fn row() -> impl Strategy<Value = Row> {
    (
        any::<i32>(),
        proptest::option::of("[a-c]{0,3}"),
        proptest::option::of(prop_oneof![
            Just(0.0),
            Just(-0.0),
            Just(f64::NAN),
            -1e6..1e6f64
        ]),
    )
}

fn rows() -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(row(), 1..40)
}

/// Writes `rows` as `files` Parquet files with the given row group size and codec into an
/// in-memory partition, and snapshots it.
fn snapshot_of(rows: &[Row], files: usize, group: usize, zstd: bool, dictionary: bool) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(group.max(1)))
            .set_dictionary_enabled(dictionary)
            .set_compression(if zstd {
                Compression::ZSTD(ZstdLevel::default())
            } else {
                Compression::SNAPPY
            })
            .build();
        let chunk = rows.len().div_ceil(files.max(1)).max(1);
        for (i, part) in rows.chunks(chunk).enumerate() {
            let b = batch(part);
            let mut buf = Vec::new();
            let mut w = ArrowWriter::try_new(&mut buf, b.schema(), Some(props.clone())).unwrap();
            w.write(&b).unwrap();
            w.close().unwrap();
            let path = Path::from(format!("t/k=1/part-{i}.parquet"));
            store
                .put(&path, PutPayload::from(Bytes::from(buf)))
                .await
                .unwrap();
        }
        let loc = Location::in_memory(store, "t");
        let table = backfill::table::discover(&loc, &Default::default())
            .await
            .unwrap();
        let snap = backfill::snapshot::snapshot(&table, &[0], &Default::default())
            .await
            .unwrap();
        snap.partitions[0].checksum.clone()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn row_order_does_not_matter(rows in rows(), seed in any::<u64>()) {
        let mut shuffled = rows.clone();
        // A seeded Fisher-Yates shuffle.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(sum(&batch(&rows)), sum(&batch(&shuffled)));
    }

    #[test]
    fn string_and_integer_encodings_do_not_matter(rows in rows()) {
        let b = batch(&rows);
        let s = b.column(1);
        let n = b.column(0);
        for (s2, n2) in [
            (arrow::compute::cast(s, &DataType::LargeUtf8).unwrap(), arrow::compute::cast(n, &DataType::Int64).unwrap()),
            (arrow::compute::cast(s, &DataType::Utf8View).unwrap(), arrow::compute::cast(n, &DataType::Int64).unwrap()),
            (arrow::compute::cast(s, &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))).unwrap(), n.clone()),
        ] {
            let other = RecordBatch::try_from_iter([("f", b.column(2).clone()), ("s", s2), ("n", n2)]).unwrap();
            prop_assert_eq!(sum(&b), sum(&other));
        }
        let _ = Int32Type::DATA_TYPE;
    }

    #[test]
    fn a_duplicated_row_changes_it(rows in rows(), pick in any::<prop::sample::Index>()) {
        let mut dup = rows.clone();
        dup.push(rows[pick.index(rows.len())].clone());
        prop_assert_ne!(sum(&batch(&rows)), sum(&batch(&dup)));
    }

    #[test]
    fn a_changed_value_changes_it(rows in rows(), pick in any::<prop::sample::Index>(), delta in 1..1000i32) {
        let mut changed = rows.clone();
        let i = pick.index(rows.len());
        changed[i].0 = changed[i].0.wrapping_add(delta);
        prop_assert_ne!(sum(&batch(&rows)), sum(&batch(&changed)));
    }

    #[test]
    fn null_and_empty_string_differ(rows in rows(), pick in any::<prop::sample::Index>()) {
        let i = pick.index(rows.len());
        let mut a = rows.clone();
        let mut b = rows.clone();
        a[i].1 = None;
        b[i].1 = Some(String::new());
        prop_assert_ne!(sum(&batch(&a)), sum(&batch(&b)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn files_row_groups_and_codecs_do_not_matter(
        rows in rows(), files in 1..4usize, group in 1..10usize, zstd in any::<bool>(), dictionary in any::<bool>()
    ) {
        let one = snapshot_of(&rows, 1, 1024, false, true);
        prop_assert_eq!(one, snapshot_of(&rows, files, group, zstd, dictionary));
    }
}

#[test]
fn removing_a_duplicate_is_not_cancelled_like_xor() {
    // XOR-combining would make [a, a, b] equal [b].
    let a = (1, Some("a".to_string()), None);
    let b = (2, Some("b".to_string()), None);
    assert_ne!(sum(&batch(&[a.clone(), a, b.clone()])), sum(&batch(&[b])));
}
