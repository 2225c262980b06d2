//! The test vectors published in docs/CHECKSUM.md. The expected values were computed by
//! the independent Python implementation in testdata/checksum_reference.py.

use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use backfill::checksum::{column_digest, digest, Hasher};

/// (vector, partition checksum, [(column, column checksum)])
type Vector = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const VECTORS: &[Vector] = &[
    (
        "empty",
        "b7539d115714d50de71748b4a45a1b5b50f96ec7ca221b5072c889cd1eeb95c1",
        &[],
    ),
    (
        "one_int",
        "bf238f90c89a1d43709e31f7d810f4c49d33e5a3750dbd2464b4c1a5d052f202",
        &[(
            "x",
            "bd83eca187a2398cc0946e56f561d0c4a7539f1c3a1d6c64777c45e496f4e722",
        )],
    ),
    (
        "int_null",
        "2297ac4ddc7dd185e853e9a5809cf11f9d2cc6bdc793f41c50a9692ece6e1d05",
        &[(
            "x",
            "a7bba451c063990a036d6f721a380a53ec404a86779c7cf134e53cd4e3ea85ad",
        )],
    ),
    (
        "strings",
        "4f804cb3f9fd0b4fd92072e258dd82a48600321f40a611ad165c7bc4da3c0793",
        &[(
            "s",
            "391ab3e0ae23492f5b3bc80c8eb405dc53e562b90d1db67a063ae92a8b43195b",
        )],
    ),
    (
        "duplicate",
        "b6616d4b71c1d7fa886c4949746e78880badf4374316f5d60e95e69244858a2b",
        &[(
            "s",
            "46394428135904e5a8b9b224e5ecdb2dc5bbf5ba2d5fa6b576ab49dba633eb74",
        )],
    ),
    (
        "floats",
        "53470ad4fcbc2050144d45fe7f97c153be59124c3ba36ccf43a1ccdaa7e26cf5",
        &[(
            "f",
            "0c0a7173f810b0059835c29bd46772c84607595b6b02770cd263842e67820118",
        )],
    ),
    (
        "mixed",
        "1246371b68172c247d4ecefe3329a20f0f6271ad2de3a86b3fb111a84991adb4",
        &[
            (
                "amount",
                "6631223863f60bc8ecb337ded06e0319624209d2ce8c68b224498db006722e9e",
            ),
            (
                "d",
                "3fa26860efe0d42221533a3c1fe85fe9d4b6d4b946366fe9363f2adcb3fdf08a",
            ),
            (
                "id",
                "2ee2b6f29951142fea01c74c4ba3bb7e401a38d557958912bbc6ce6bfd38b8c2",
            ),
            (
                "name",
                "ccdeabb03e73a089f1bd5f0533d01d51aec46f5720821584760dc50202371469",
            ),
            (
                "ok",
                "5ad7cacd663014938b7dcf7c71765c00c7de85e8312849ae84bda5285074b58e",
            ),
        ],
    ),
    (
        "timestamps",
        "d7eec700f12586b637e18f3e6013ca4432ba51e0df4f46b98c3c06d832cec6b2",
        &[
            (
                "t",
                "08b8443c207ee8d0c430fd47534b7759b1538bc0b3a8d5423966c9359deb3dd1",
            ),
            (
                "ts",
                "f2a2516fdad4d986c6136134c2d4f154aa90cd564507d5524b878d076a637ae6",
            ),
        ],
    ),
    (
        "nested",
        "aaa2a9b624944f7a0280deb89ae70539390a5488e4bfc1adb41bf7b1ddbe6448",
        &[
            (
                "l",
                "aa921d9581d92b067ae4ec08fd19deb1957b33af4849ddffa2bf74c4b3409956",
            ),
            (
                "m",
                "3074be28e3e734bb146b7cb4927ae7a3cde3df0602b9a01709a2c25778d52b22",
            ),
            (
                "st",
                "c63c86894249b0ecf8ddffdb461be8e7b8c2f1c7321746d2bc22996a5b3276b1",
            ),
        ],
    ),
    (
        "binary",
        "3365fac9a1ba060dab39d5760feefd5e292916e749e4fa0eaa9ac975369b9ac6",
        &[
            (
                "b",
                "958f280eb6453d02e0e699cbf79b9dda11b9e23fdb8457b9d68be51e79ad0ec1",
            ),
            (
                "fb",
                "b9c3c06e9006dd178456a255f1a32dc05d69267ce75b1cbc1d11c0d1d43e4ca2",
            ),
        ],
    ),
    (
        "long_row",
        "382ffba724c37d990bf61ef18c65811283d53e93d1a0ee2c615186b9389a3d6f",
        &[(
            "s",
            "2c8c65c30214f8291b3692707d264603e28e8c2ee22c43f7e15a129993db1cb7",
        )],
    ),
    (
        "row_64",
        "f2f40476821d044ab362383a19d25cb683de789258d2de3e4231b75ed47a90e8",
        &[(
            "s",
            "cefff9934bfc9a3e168c60e3aa7cac0b2e9729aad255653345160109147affa5",
        )],
    ),
    (
        "zero_rows",
        "8759634385dd6280ea4d468503aa5a8f4cb23cad1657e8bea1b28790ce10c534",
        &[(
            "x",
            "43dd05e99ee5ecdd3dc0c7960726679481d58e85b792afc4aec1bb8f26de024a",
        )],
    ),
    (
        "odd_names",
        "b1cf41ebdc998a09c2f5867ce0f2cb0d88f388cedbe83cfb801cde3c4df05104",
        &[(
            "st",
            "3e47f8b0fc5d72d373d46f78e46b0ebea3c8e9838679703a43826fdc04b2827e",
        )],
    ),
    (
        "decimals",
        "d6a348f4292653cb4b7ef83d00313114a191b9b82d0609e362bb5d5e9ad02b5d",
        &[
            (
                "a",
                "6421aaeb86290d30811a6a145062ecfd7c504623ad20d8e506d22597174b712a",
            ),
            (
                "b",
                "296d1487d32f054ccd344c28429274fe61090011d7fa20dec6ccf42806d17967",
            ),
            (
                "c",
                "e7bbe96f8127893257e1c70fa001621761a0a0d4f010b39d2fd03154a6a334d7",
            ),
        ],
    ),
    (
        "long_decimals",
        "011d917dd274ec4673dd89a123650a61b354bb4da1913db97f52fc266c8bf078",
        &[
            (
                "a",
                "727af38b22dfb06ee5f05687d773812b8199296c40076c39dd03fce82b8c0649",
            ),
            (
                "b",
                "3eea753c7585fd35d20ad47fbf0c6b47bfa490cc9bf77e2126ff454119b27711",
            ),
        ],
    ),
    (
        "more_types",
        "81e07730a82559edcdd9f0c6e75fb5e94f89e1046394167c4789030fa05284cd",
        &[
            (
                "du",
                "8b2c70d278789261abc11612d15216963e5ab5c8b7dc2c2dfc1f6f78a2f7610e",
            ),
            (
                "n",
                "ba7b9291c325f8a9186286440b702fd5cefe51763b9d90e6042cc7715871155d",
            ),
            (
                "t",
                "d3dec515c187455b418d545bbd9e9d23b770773610f80bd1f9676108e7d5e614",
            ),
            (
                "u",
                "5634369cb021087a2da4d4b8099b82e8f48e53eb4baf9610f9f32f6e97434ce3",
            ),
        ],
    ),
    (
        "intervals",
        "16606bc18240db8ce7adb252dc6807a319746ed51b008973d8f4e04b4aff9952",
        &[(
            "iv",
            "7f168a1a1356dfc18a260172f6fecbe717c8da5f9e0d26daa60507af44f6ef02",
        )],
    ),
];

fn table(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(cols).unwrap()
}

/// The vectors' tables, built as testdata/checksum_reference.py builds them.
fn build(name: &str) -> Option<RecordBatch> {
    Some(match name {
        "empty" => return None,
        "one_int" => table(vec![("x", Arc::new(Int64Array::from(vec![1])))]),
        "int_null" => table(vec![("x", Arc::new(Int64Array::from(vec![None::<i64>])))]),
        "strings" => table(vec![(
            "s",
            Arc::new(StringArray::from(vec![Some(""), None, Some("a")])),
        )]),
        "duplicate" => table(vec![("s", Arc::new(StringArray::from(vec!["a", "a"])))]),
        "floats" => table(vec![(
            "f",
            Arc::new(Float64Array::from(vec![0.0, -0.0, f64::NAN, 1.5])),
        )]),
        "mixed" => table(vec![
            ("name", Arc::new(StringArray::from(vec![Some("x"), None]))),
            ("id", Arc::new(Int32Array::from(vec![1, 2]))),
            ("ok", Arc::new(BooleanArray::from(vec![true, false]))),
            ("d", Arc::new(Date32Array::from(vec![Some(19725), None]))),
            (
                "amount",
                Arc::new(
                    Decimal128Array::from(vec![125, -300])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ),
        ]),
        "timestamps" => table(vec![
            (
                "ts",
                Arc::new(
                    TimestampMillisecondArray::from(vec![0, 1_700_000_000_000])
                        .with_timezone("UTC"),
                ),
            ),
            (
                "t",
                Arc::new(TimestampNanosecondArray::from(vec![Some(1), None])),
            ),
        ]),
        "nested" => {
            let l = ListArray::from_iter_primitive::<arrow::datatypes::Int64Type, _, _>(vec![
                Some(vec![Some(1), None]),
                Some(vec![]),
            ]);
            let fields = Fields::from(vec![
                Field::new("a", DataType::Int64, true),
                Field::new("b", DataType::Utf8, true),
            ]);
            let st = StructArray::new(
                fields,
                vec![
                    Arc::new(Int64Array::from(vec![Some(1), None])),
                    Arc::new(StringArray::from(vec![Some("x"), None])),
                ],
                Some(vec![true, false].into()),
            );
            let mut m = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
            m.keys().append_value("k");
            m.values().append_value(1);
            m.append(true).unwrap();
            m.append(false).unwrap();
            table(vec![
                ("l", Arc::new(l)),
                ("st", Arc::new(st)),
                ("m", Arc::new(m.finish())),
            ])
        }
        "binary" => table(vec![
            (
                "b",
                Arc::new(BinaryArray::from(vec![&b""[..], &b"\x00\xff"[..]])),
            ),
            (
                "fb",
                Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                        vec![Some(b"ab".to_vec()), None].into_iter(),
                        2,
                    )
                    .unwrap(),
                ),
            ),
        ]),
        "long_row" => table(vec![(
            "s",
            Arc::new(StringArray::from(vec!["x".repeat(2000)])),
        )]),
        "row_64" => table(vec![(
            "s",
            Arc::new(StringArray::from(vec!["x".repeat(59)])),
        )]),
        "zero_rows" => table(vec![("x", Arc::new(Int64Array::from(Vec::<i64>::new())))]),
        "odd_names" => {
            let field = Arc::new(Field::new("a:b,c<d>", DataType::Int64, true));
            let st = StructArray::from(vec![(
                field,
                Arc::new(Int64Array::from(vec![1])) as ArrayRef,
            )]);
            table(vec![("st", Arc::new(st))])
        }
        "decimals" => {
            let dec = |v: &[Option<i64>], p: u8| -> ArrayRef {
                let values: Vec<Option<arrow::datatypes::i256>> = v
                    .iter()
                    .map(|x| x.map(|x| arrow::datatypes::i256::from_i128(x.into())))
                    .collect();
                Arc::new(
                    Decimal256Array::from(values)
                        .with_precision_and_scale(p, 2)
                        .unwrap(),
                )
            };
            table(vec![
                ("a", dec(&[Some(-100), None], 20)),
                ("b", dec(&[Some(125), Some(-300)], 10)),
                ("c", dec(&[Some(-100), Some(1)], 40)),
            ])
        }
        "long_decimals" => {
            let a = Decimal128Array::from(vec![-12345678901234567890123456789012345678_i128])
                .with_precision_and_scale(38, 4)
                .unwrap();
            let nines = arrow::datatypes::i256::from_string(&"9".repeat(76)).unwrap();
            let b = Decimal256Array::from(vec![nines])
                .with_precision_and_scale(76, 0)
                .unwrap();
            table(vec![("a", Arc::new(a)), ("b", Arc::new(b))])
        }
        "more_types" => table(vec![
            ("u", Arc::new(UInt64Array::from(vec![u64::MAX, 0]))),
            (
                "t",
                Arc::new(Time64MicrosecondArray::from(vec![
                    Some(86_399_999_999),
                    None,
                ])),
            ),
            (
                "du",
                Arc::new(DurationMillisecondArray::from(vec![-1500, 0])),
            ),
            ("n", Arc::new(NullArray::new(2))),
        ]),
        "intervals" => {
            use arrow::datatypes::IntervalMonthDayNano as Mdn;
            let iv = IntervalMonthDayNanoArray::from(vec![
                Some(Mdn::new(14, 3, 4 * 3600 * 1_000_000_000)),
                Some(Mdn::new(1, 0, 0)),
                Some(Mdn::new(0, 30, 0)),
                None,
            ]);
            table(vec![("iv", Arc::new(iv))])
        }
        other => panic!("no vector {other}"),
    })
}

fn compute(batch: Option<&RecordBatch>) -> (String, Vec<(String, String)>) {
    let schema = batch
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::new(Schema::empty()));
    let mut h = Hasher::new(&schema, true).unwrap();
    if let Some(b) = batch {
        h.update(b).unwrap();
    }
    let (logical, part) = h.finish();
    let columns = logical
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.clone(), column_digest(c, part.rows, part.columns[i])))
        .collect();
    (digest(&logical, &part), columns)
}

#[test]
fn every_vector_matches_the_reference_implementation() {
    for (name, want, want_columns) in VECTORS {
        let batch = build(name);
        let (got, columns) = compute(batch.as_ref());
        assert_eq!(&got, want, "vector {name}");
        let want_columns: Vec<(String, String)> = want_columns
            .iter()
            .map(|(c, s)| (c.to_string(), s.to_string()))
            .collect();
        assert_eq!(columns, want_columns, "columns of vector {name}");
    }
}

#[test]
fn the_spec_publishes_every_vector() {
    let spec = std::fs::read_to_string(crate::support::root().join("docs/CHECKSUM.md")).unwrap();
    for (name, want, columns) in VECTORS {
        assert!(
            spec.contains(&format!("| `{name}` |")),
            "docs/CHECKSUM.md lacks vector {name}"
        );
        assert!(
            spec.contains(want),
            "docs/CHECKSUM.md lacks the checksum of {name}"
        );
        for (_, c) in *columns {
            assert!(
                spec.contains(c),
                "docs/CHECKSUM.md lacks a column checksum of {name}"
            );
        }
    }
}

#[test]
fn a_vector_split_into_batches_is_unchanged() {
    let b = build("mixed").unwrap();
    let mut h = Hasher::new(&b.schema(), false).unwrap();
    h.update(&b.slice(1, 1)).unwrap();
    h.update(&b.slice(0, 1)).unwrap();
    let (logical, part) = h.finish();
    assert_eq!(
        digest(&logical, &part),
        VECTORS.iter().find(|v| v.0 == "mixed").unwrap().1
    );
    let _ = TimeUnit::Second;
}
