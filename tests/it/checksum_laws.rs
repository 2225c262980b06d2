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
        let snap = backfill::snapshot::snapshot(&table, &Default::default())
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

/// One column `x` of the given values, as every Arrow encoding of one logical type.
fn encodings_of(v: &[Option<i8>]) -> Vec<(&'static str, Vec<ArrayRef>)> {
    use arrow::datatypes::{i256, IntervalDayTime, IntervalMonthDayNano, TimeUnit};
    let i = |f: &dyn Fn(i64) -> i64| -> Vec<Option<i64>> {
        v.iter().map(|x| x.map(|x| f(x as i64))).collect()
    };
    let base: ArrayRef = Arc::new(Int64Array::from(i(&|x| x)));
    let cast = |a: &ArrayRef, t: DataType| arrow::compute::cast(a, &t).unwrap();
    let units = [
        TimeUnit::Second,
        TimeUnit::Millisecond,
        TimeUnit::Microsecond,
        TimeUnit::Nanosecond,
    ];
    let per_second = |u: &TimeUnit| match u {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    // Values of `base` scaled to unit `u`, typed `t`.
    let in_unit = |u: &TimeUnit, t: DataType| -> ArrayRef {
        let k = per_second(u);
        let scaled: ArrayRef = Arc::new(Int64Array::from(i(&|x| x * k)));
        let narrow = matches!(t, DataType::Time32(_));
        let scaled = if narrow {
            cast(&scaled, DataType::Int32)
        } else {
            scaled
        };
        cast(&scaled, t)
    };
    let dec128 = |p: u8| -> ArrayRef {
        let vals: Vec<Option<i128>> = v.iter().map(|x| x.map(|x| x as i128 * 7)).collect();
        Arc::new(
            Decimal128Array::from(vals)
                .with_precision_and_scale(p, 2)
                .unwrap(),
        )
    };
    let dec256 = |p: u8| -> ArrayRef {
        let vals: Vec<Option<i256>> = v
            .iter()
            .map(|x| x.map(|x| i256::from_i128(x as i128 * 7)))
            .collect();
        Arc::new(
            Decimal256Array::from(vals)
                .with_precision_and_scale(p, 2)
                .unwrap(),
        )
    };
    let strings: ArrayRef = Arc::new(StringArray::from(
        v.iter()
            .map(|x| x.map(|x| format!("s{x}")))
            .collect::<Vec<_>>(),
    ));
    let bytes: Vec<Option<[u8; 2]>> = v
        .iter()
        .map(|x| x.map(|x| (x as i16).to_le_bytes()))
        .collect();
    let binary: ArrayRef = Arc::new(BinaryArray::from_iter(bytes.iter().map(|b| b.as_ref())));
    let fixed: ArrayRef = Arc::new(
        FixedSizeBinaryArray::try_from_sparse_iter_with_size(bytes.iter().copied(), 2).unwrap(),
    );
    let pairs = |t: DataType| -> ArrayRef {
        let field = Arc::new(arrow::datatypes::Field::new("item", DataType::Int64, true));
        let values: ArrayRef = Arc::new(Int64Array::from(
            v.iter()
                .flat_map(|x| {
                    let x = x.unwrap_or(0) as i64;
                    [Some(x), None]
                })
                .collect::<Vec<_>>(),
        ));
        let nulls =
            arrow::buffer::NullBuffer::from(v.iter().map(|x| x.is_some()).collect::<Vec<_>>());
        let fixed: ArrayRef = Arc::new(FixedSizeListArray::new(field, 2, values, Some(nulls)));
        cast(&fixed, t)
    };
    let item = |t: DataType| Arc::new(arrow::datatypes::Field::new("item", t, true));
    vec![
        (
            "int64",
            vec![
                cast(&base, DataType::Int8),
                cast(&base, DataType::Int16),
                cast(&base, DataType::Int32),
                base.clone(),
            ],
        ),
        (
            "uint64",
            [
                DataType::UInt8,
                DataType::UInt16,
                DataType::UInt32,
                DataType::UInt64,
            ]
            .into_iter()
            .map(|t| {
                cast(
                    &(Arc::new(Int64Array::from(i(&|x| x.abs()))) as ArrayRef),
                    t,
                )
            })
            .collect(),
        ),
        (
            "float64",
            [DataType::Float16, DataType::Float32, DataType::Float64]
                .into_iter()
                .map(|t| cast(&cast(&base, DataType::Float64), t))
                .collect(),
        ),
        (
            "decimal(9,2)",
            vec![
                cast(&dec128(9), DataType::Decimal32(9, 2)),
                cast(&dec128(9), DataType::Decimal64(9, 2)),
                dec128(9),
                dec256(9),
            ],
        ),
        ("decimal(20,2)", vec![dec128(20), dec256(20)]),
        ("decimal(38,2)", vec![dec128(38), dec256(38)]),
        (
            "date",
            vec![
                cast(&cast(&base, DataType::Int32), DataType::Date32),
                cast(
                    &(Arc::new(Int64Array::from(i(&|x| x * 86_400_000))) as ArrayRef),
                    DataType::Date64,
                ),
            ],
        ),
        (
            "time",
            vec![
                in_unit(&TimeUnit::Second, DataType::Time32(TimeUnit::Second)),
                in_unit(
                    &TimeUnit::Millisecond,
                    DataType::Time32(TimeUnit::Millisecond),
                ),
                in_unit(
                    &TimeUnit::Microsecond,
                    DataType::Time64(TimeUnit::Microsecond),
                ),
                in_unit(
                    &TimeUnit::Nanosecond,
                    DataType::Time64(TimeUnit::Nanosecond),
                ),
            ],
        ),
        (
            "timestamp",
            units
                .iter()
                .map(|u| in_unit(u, DataType::Timestamp(*u, None)))
                .collect(),
        ),
        (
            "timestamptz",
            units
                .iter()
                .zip(["UTC", "+05:30", "America/New_York", "Asia/Tokyo"])
                .map(|(u, tz)| in_unit(u, DataType::Timestamp(*u, Some(tz.into()))))
                .collect(),
        ),
        (
            "duration",
            units
                .iter()
                .map(|u| in_unit(u, DataType::Duration(*u)))
                .collect(),
        ),
        (
            "string",
            vec![
                strings.clone(),
                cast(&strings, DataType::LargeUtf8),
                cast(&strings, DataType::Utf8View),
                cast(
                    &strings,
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                ),
            ],
        ),
        (
            "binary",
            vec![
                binary.clone(),
                cast(&binary, DataType::LargeBinary),
                cast(&binary, DataType::BinaryView),
                fixed,
            ],
        ),
        (
            "list<int64>",
            vec![
                pairs(DataType::List(item(DataType::Int64))),
                pairs(DataType::LargeList(item(DataType::Int64))),
                pairs(DataType::List(item(DataType::Int8))),
                pairs(DataType::FixedSizeList(item(DataType::Int64), 2)),
            ],
        ),
        (
            "interval (months)",
            vec![
                Arc::new(IntervalYearMonthArray::from(
                    v.iter().map(|x| x.map(|x| x as i32)).collect::<Vec<_>>(),
                )),
                Arc::new(IntervalMonthDayNanoArray::from(
                    v.iter()
                        .map(|x| x.map(|x| IntervalMonthDayNano::new(x as i32, 0, 0)))
                        .collect::<Vec<_>>(),
                )),
            ],
        ),
        (
            "interval (days, ms)",
            vec![
                Arc::new(IntervalDayTimeArray::from(
                    v.iter()
                        .map(|x| x.map(|x| IntervalDayTime::new(x as i32, x as i32 * 3)))
                        .collect::<Vec<_>>(),
                )),
                Arc::new(IntervalMonthDayNanoArray::from(
                    v.iter()
                        .map(|x| {
                            x.map(|x| IntervalMonthDayNano::new(0, x as i32, x as i64 * 3_000_000))
                        })
                        .collect::<Vec<_>>(),
                )),
            ],
        ),
    ]
}

proptest! {
    #[test]
    fn every_arrow_encoding_of_a_logical_type_hashes_alike(
        v in proptest::collection::vec(proptest::option::of(0..=i8::MAX), 0..20)
    ) {
        for (logical, arrays) in encodings_of(&v) {
            let sums: Vec<String> = arrays
                .iter()
                .map(|a| sum(&RecordBatch::try_from_iter([("x", a.clone())]).unwrap()))
                .collect();
            for (a, s) in arrays.iter().zip(&sums) {
                prop_assert_eq!(s, &sums[0], "{} as {} differs from {}", logical, a.data_type(), arrays[0].data_type());
            }
        }
    }
}

/// A row of the types the checksum reads straight from Arrow's buffers: strings (short
/// ones sit inside a view, longer ones in its buffers), bytes, integers, booleans, dates.
type Plain = (
    Option<String>,
    Option<Vec<u8>>,
    Option<i64>,
    Option<bool>,
    Option<i32>,
);

/// `rows` with strings and bytes as `strings` and `bytes`, integers as decimals when
/// `decimal`.
fn plain_batch(rows: &[Plain], strings: &DataType, bytes: &DataType, decimal: bool) -> RecordBatch {
    let cast = |a: ArrayRef, t: &DataType| arrow::compute::cast(&a, t).unwrap();
    let s: ArrayRef = Arc::new(StringArray::from(
        rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
    ));
    let b: ArrayRef = Arc::new(BinaryArray::from(
        rows.iter().map(|r| r.1.as_deref()).collect::<Vec<_>>(),
    ));
    let i: ArrayRef = if decimal {
        Arc::new(
            Decimal128Array::from(rows.iter().map(|r| r.2.map(i128::from)).collect::<Vec<_>>())
                .with_precision_and_scale(18, 0)
                .unwrap(),
        )
    } else {
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        ))
    };
    RecordBatch::try_from_iter([
        ("s", cast(s, strings)),
        ("b", cast(b, bytes)),
        ("i", i),
        (
            "t",
            Arc::new(BooleanArray::from(
                rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "d",
            Arc::new(Date32Array::from(
                rows.iter().map(|r| r.4).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
    ])
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A slice of a batch (arrays at an offset into their buffers) hashes as its rows
    /// built afresh, in every Arrow layout of strings and bytes.
    #[test]
    fn a_slice_of_a_batch_hashes_as_its_rows_alone(
        rows in proptest::collection::vec((
            proptest::option::of("[a-z ]{0,30}"),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..30)),
            proptest::option::of(any::<i64>().prop_map(|v| v % 1_000_000_000_000_000_000)),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<i32>()),
        ), 1..60),
        from in any::<prop::sample::Index>(),
        len in any::<prop::sample::Index>(),
    ) {
        let from = from.index(rows.len());
        let len = len.index(rows.len() - from + 1);
        let layouts = [
            (DataType::Utf8, DataType::Binary, false),
            (DataType::LargeUtf8, DataType::LargeBinary, false),
            (DataType::Utf8View, DataType::BinaryView, false),
            (DataType::Utf8View, DataType::BinaryView, true),
        ];
        let mut sums = Vec::new();
        for (strings, bytes, decimal) in &layouts {
            let sliced = plain_batch(&rows, strings, bytes, *decimal).slice(from, len);
            let fresh = plain_batch(&rows[from..from + len], strings, bytes, *decimal);
            prop_assert_eq!(sum(&sliced), sum(&fresh), "{:?} rows {}..{}", strings, from, from + len);
            sums.push(sum(&sliced));
        }
        // The layouts of one logical type hash alike (a decimal is another type).
        prop_assert!(sums[..3].iter().all(|s| *s == sums[0]), "{:?}", sums);
    }
}
