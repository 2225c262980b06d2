//! Checksum v1, as code. `docs/CHECKSUM.md` is the same spec in words; change both or
//! neither, and bump the version if a checksum of any table would change.
//!
//! In one line: each row is encoded canonically (columns sorted by name, typed,
//! NULL-tagged, length-prefixed, zero-padded to 64-byte blocks), hashed with BLAKE3,
//! and the first 16 bytes of the row hashes are added modulo 2^128; the partition's
//! checksum is BLAKE3 of that sum, the row count and the logical schema.
//! Sums of files and row groups add up ([`Part::add`]), so work splits freely.

pub(crate) mod encode;
mod kernel;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;

use encode::Col;
pub use encode::{canonical_f64, logical_type};
pub use kernel::padded;
use kernel::Kernel;

use crate::error::Result;

/// The version of the spec this code implements.
pub const VERSION: u32 = 2;

const PARTITION_DOMAIN: &[u8] = b"backfill-checksum-v1";
const COLUMN_DOMAIN: &[u8] = b"backfill-column-checksum-v1";

/// One column as the checksum sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalColumn {
    /// The column's name.
    pub name: String,
    /// Its logical type (docs/CHECKSUM.md, "Encoding").
    pub logical_type: String,
}

/// The columns of a schema sorted by name (bytewise), with their logical types.
///
/// - two schemas that differ only in column order or physical encoding are equal;
/// - `index[i]` is where column `i` sits in the Arrow schema it was built from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogicalSchema {
    /// The columns, in checksum order (by name).
    pub columns: Vec<LogicalColumn>,
    index: Vec<usize>,
}

impl LogicalSchema {
    /// The logical schema of an Arrow schema; fails on a type the spec does not cover.
    pub fn of(schema: &Schema) -> Result<LogicalSchema> {
        let index = encode::sorted_fields(schema.fields());
        let columns = index
            .iter()
            .map(|i| {
                let f = schema.field(*i);
                Ok(LogicalColumn {
                    name: f.name().clone(),
                    logical_type: logical_type(f.name(), f.data_type())?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(LogicalSchema { columns, index })
    }

    /// A schema of these columns, already in checksum order (from a cache entry): it
    /// describes and digests like the schema it was taken from.
    pub fn from_columns(columns: Vec<LogicalColumn>) -> LogicalSchema {
        let index = (0..columns.len()).collect();
        LogicalSchema { columns, index }
    }

    /// `name:type, ...` in checksum order.
    pub fn describe(&self) -> String {
        self.columns
            .iter()
            .map(|c| format!("{}:{}", c.name, c.logical_type))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Same names and logical types (the Arrow column order may differ).
    pub fn same_columns(&self, other: &LogicalSchema) -> bool {
        self.columns == other.columns
    }
}

/// The additive part of a checksum: rows seen and the sums of their hashes.
///
/// - `add` is commutative and associative, so parts combine in any order;
/// - `columns` is empty unless per-column sums were asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Part {
    /// Rows.
    pub rows: u64,
    /// The sum of the rows' hashes, modulo 2^128.
    pub sum: u128,
    /// Per-column sums, when asked for.
    pub columns: Vec<u128>,
}

impl Part {
    /// Adds another part (of another file or row group).
    pub fn add(&mut self, other: &Part) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
        if self.columns.len() < other.columns.len() {
            self.columns.resize(other.columns.len(), 0);
        }
        for (a, b) in self.columns.iter_mut().zip(&other.columns) {
            *a = a.wrapping_add(*b);
        }
    }
}

/// Hashes record batches of one schema into a [`Part`].
pub struct Hasher {
    schema: LogicalSchema,
    per_column: bool,
    kernel: Kernel,
    buf: Vec<u8>,
    lens: Vec<usize>,
    starts: Vec<usize>,
    cursor: Vec<usize>,
    part: Part,
    /// Each row's hash, in the order rows were added, when asked for.
    row_hashes: Option<Vec<u128>>,
    /// Hash as checksum version 1 (docs/CHECKSUM.md, "Versioning").
    v1: bool,
}

impl Hasher {
    /// A hasher for batches of `schema`, with per-column sums if `per_column`.
    pub fn new(schema: &Schema, per_column: bool) -> Result<Hasher> {
        Hasher::for_version(schema, per_column, VERSION)
    }

    /// A hasher for checksum `version` (1 or [`VERSION`]).
    pub fn for_version(schema: &Schema, per_column: bool, version: u32) -> Result<Hasher> {
        let schema = LogicalSchema::of(schema)?;
        let part = Part {
            columns: if per_column {
                vec![0; schema.columns.len()]
            } else {
                Vec::new()
            },
            ..Part::default()
        };
        Ok(Hasher {
            schema,
            per_column,
            kernel: Kernel::default(),
            buf: Vec::new(),
            lens: Vec::new(),
            starts: Vec::new(),
            cursor: Vec::new(),
            part,
            row_hashes: None,
            v1: version == 1,
        })
    }

    /// Also keeps each row's hash ([`Hasher::take_row_hashes`]): the rows a transform
    /// only keeps or drops, unchanged, then need no hashing again.
    pub fn keeping_row_hashes(mut self) -> Hasher {
        self.row_hashes = Some(Vec::new());
        self
    }

    /// The hashes of the rows added so far, in order, if they were kept.
    pub fn take_row_hashes(&mut self) -> Option<Vec<u128>> {
        self.row_hashes.as_mut().map(std::mem::take)
    }

    /// The logical schema being hashed.
    pub fn schema(&self) -> &LogicalSchema {
        &self.schema
    }

    /// Adds a batch's rows.
    pub fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let cols: Vec<Col> = self
            .schema
            .index
            .iter()
            .zip(&self.schema.columns)
            .map(|(i, c)| Col::new(&c.name, batch.column(*i), self.v1))
            .collect::<Result<_>>()?;

        // Row messages: every column's value, in name order, then zero padding.
        self.lens.clear();
        self.lens.resize(n, 0);
        for c in &cols {
            c.add_lens(&mut self.lens);
        }
        let base = self.row_hashes.as_ref().map(|h| h.len());
        if let Some(h) = self.row_hashes.as_mut() {
            h.resize(h.len() + n, 0);
        }
        self.messages(&cols, None, base);

        if self.per_column {
            // Value messages: one value, then zero padding.
            for k in 0..cols.len() {
                self.lens.clear();
                self.lens.resize(n, 0);
                cols[k].add_lens(&mut self.lens);
                self.messages(&cols[k..=k], Some(k), None);
            }
        }
        self.part.rows += n as u64;
        Ok(())
    }

    /// Encodes and hashes the messages of `cols` (one per row, lengths in `lens`) into
    /// the row sum, or column `column`'s sum. Rows go a few hundred KiB of messages at a
    /// time: every column writes into each message, and a buffer that stays in the core's
    /// cache makes those writes several times cheaper than one the size of the batch.
    /// With `base`, each row's hash also goes to `row_hashes[base + row]`.
    fn messages(&mut self, cols: &[Col], column: Option<usize>, base: Option<usize>) {
        const CHUNK_BYTES: usize = 256 * 1024;
        let n = self.lens.len();
        let mut first = 0;
        while first < n {
            let mut end = first;
            let mut bytes = 0;
            while end < n && (end == first || bytes + padded(self.lens[end]) <= CHUNK_BYTES) {
                bytes += padded(self.lens[end]);
                end += 1;
            }
            self.layout(first, end);
            for c in cols {
                c.write_all(first, &mut self.buf, &mut self.cursor);
            }
            let sum = match column {
                None => &mut self.part.sum,
                Some(k) => &mut self.part.columns[k],
            };
            let each = match (base, self.row_hashes.as_mut()) {
                (Some(b), Some(h)) => Some(&mut h[b + first..b + end]),
                _ => None,
            };
            self.kernel.sum(&self.buf, &self.starts, sum, each);
            first = end;
        }
    }

    /// Lays out the messages of rows `first..end` (lengths in `lens`): padded `starts`,
    /// write cursors, and a buffer large enough. Only each message's last 64-byte block is
    /// zeroed: the padding lies within it, and the values then overwrite every byte
    /// before the padding.
    fn layout(&mut self, first: usize, end: usize) {
        self.starts.clear();
        self.cursor.clear();
        let mut at = 0;
        for len in &self.lens[first..end] {
            self.starts.push(at);
            self.cursor.push(at);
            at += padded(*len);
        }
        self.starts.push(at);
        if self.buf.len() < at {
            self.buf.resize(at, 0);
        }
        for end in &self.starts[1..] {
            let last: &mut [u8; 64] = (&mut self.buf[end - 64..*end])
                .try_into()
                .expect("messages are whole blocks");
            *last = [0; 64];
        }
    }

    /// The schema and the part of every row added.
    pub fn finish(self) -> (LogicalSchema, Part) {
        (self.schema, self.part)
    }
}

fn put_str(h: &mut blake3::Hasher, s: &str) {
    h.update(&(s.len() as u32).to_le_bytes());
    h.update(s.as_bytes());
}

/// The partition checksum: BLAKE3 over the domain, the logical schema, rows and sum, as hex.
pub fn digest(schema: &LogicalSchema, part: &Part) -> String {
    Digester::new(schema).digest(part)
}

/// [`digest`] for many parts of one schema (the partitions of a table): the schema's share
/// of the hash is taken once.
#[derive(Clone)]
pub struct Digester(blake3::Hasher);

impl Digester {
    /// The digester of partitions of `schema`.
    pub fn new(schema: &LogicalSchema) -> Digester {
        let mut h = blake3::Hasher::new();
        h.update(PARTITION_DOMAIN);
        h.update(&(schema.columns.len() as u32).to_le_bytes());
        for c in &schema.columns {
            put_str(&mut h, &c.name);
            put_str(&mut h, &c.logical_type);
        }
        Digester(h)
    }

    /// The checksum of a partition of this schema whose rows sum to `part`.
    pub fn digest(&self, part: &Part) -> String {
        let mut h = self.0.clone();
        h.update(&part.rows.to_le_bytes());
        h.update(&part.sum.to_le_bytes());
        h.finalize().to_hex().to_string()
    }
}

/// One column's checksum: BLAKE3 over the domain, the column, rows and the column's sum.
pub fn column_digest(column: &LogicalColumn, rows: u64, sum: u128) -> String {
    let mut h = blake3::Hasher::new();
    h.update(COLUMN_DOMAIN);
    put_str(&mut h, &column.name);
    put_str(&mut h, &column.logical_type);
    h.update(&rows.to_le_bytes());
    h.update(&sum.to_le_bytes());
    h.finalize().to_hex().to_string()
}

/// Checksums a set of batches in one go (tests, vectors, small data).
pub fn checksum_batches(schema: &Schema, batches: &[RecordBatch]) -> Result<String> {
    let mut h = Hasher::new(schema, false)?;
    for b in batches {
        h.update(b)?;
    }
    let (schema, part) = h.finish();
    Ok(digest(&schema, &part))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        ArrayRef, Int32Array, Int64Array, LargeStringArray, StringArray, StringViewArray,
    };
    use arrow::datatypes::{DataType, Field};
    use std::sync::Arc;

    fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(cols).unwrap()
    }

    fn sum(b: &RecordBatch) -> String {
        checksum_batches(&b.schema(), std::slice::from_ref(b)).unwrap()
    }

    #[test]
    fn kept_row_hashes_are_each_rows_own_in_order() {
        // Long strings too: messages of several lengths go through the kernel in groups.
        let long = "x".repeat(2000);
        let b = batch(vec![
            (
                "s",
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    None,
                    Some(long.as_str()),
                    Some("bc"),
                ])) as ArrayRef,
            ),
            (
                "id",
                Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(1)])) as ArrayRef,
            ),
        ]);
        let mut h = Hasher::new(&b.schema(), false)
            .unwrap()
            .keeping_row_hashes();
        h.update(&b).unwrap();
        h.update(&b.slice(2, 2)).unwrap();
        let each = h.take_row_hashes().unwrap();
        let (_, part) = h.finish();
        let rows = [0, 1, 2, 3, 2, 3];
        assert_eq!(each.len(), rows.len());
        for (i, row) in rows.iter().enumerate() {
            let mut one = Hasher::new(&b.schema(), false).unwrap();
            one.update(&b.slice(*row, 1)).unwrap();
            assert_eq!(each[i], one.finish().1.sum, "row {row}");
        }
        let total = each.iter().fold(0u128, |a, h| a.wrapping_add(*h));
        assert_eq!(total, part.sum);
        assert_ne!(each[0], each[3], "distinct rows hash apart");
    }

    #[test]
    fn row_message_layout_is_the_documented_one() {
        // id int32 = 7, name utf8 = "ab": columns sorted (id, name); markers, LE payloads.
        let b = batch(vec![
            ("name", Arc::new(StringArray::from(vec!["ab"])) as ArrayRef),
            ("id", Arc::new(Int32Array::from(vec![7])) as ArrayRef),
        ]);
        let mut msg = vec![0x01, 7, 0, 0, 0, 0, 0, 0, 0, 0x01, 2, 0, 0, 0, b'a', b'b'];
        msg.resize(64, 0);
        let row = kernel::prefix(blake3::hash(&msg).as_bytes());
        let schema = LogicalSchema::of(&b.schema()).unwrap();
        let want = digest(
            &schema,
            &Part {
                rows: 1,
                sum: row,
                columns: vec![],
            },
        );
        assert_eq!(sum(&b), want);
        assert_eq!(schema.describe(), "id:int64, name:string");
    }

    #[test]
    fn batches_of_many_chunks_hash_as_their_rows_one_by_one() {
        // About 1 MB of messages of 1 to 6 blocks: several chunks, split mid-length-group.
        let n = 5000;
        let names: Vec<Option<String>> = (0..n)
            .map(|i| (i % 17 != 0).then(|| "x".repeat(i % 300)))
            .collect();
        let b = batch(vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
            ),
            ("name", Arc::new(StringArray::from(names)) as ArrayRef),
        ]);
        let mut whole = Hasher::new(&b.schema(), true).unwrap();
        whole.update(&b).unwrap();
        let mut rows = Hasher::new(&b.schema(), true).unwrap();
        for i in 0..n {
            rows.update(&b.slice(i, 1)).unwrap();
        }
        assert_eq!(whole.finish(), rows.finish());
    }

    #[test]
    fn string_encodings_and_int_widths_agree() {
        let a = batch(vec![(
            "s",
            Arc::new(StringArray::from(vec![Some("x"), None])) as ArrayRef,
        )]);
        let b = batch(vec![(
            "s",
            Arc::new(LargeStringArray::from(vec![Some("x"), None])) as ArrayRef,
        )]);
        let c = batch(vec![(
            "s",
            Arc::new(StringViewArray::from(vec![Some("x"), None])) as ArrayRef,
        )]);
        assert_eq!(sum(&a), sum(&b));
        assert_eq!(sum(&a), sum(&c));
        let i32s = batch(vec![(
            "n",
            Arc::new(Int32Array::from(vec![1, -2])) as ArrayRef,
        )]);
        let i64s = batch(vec![(
            "n",
            Arc::new(Int64Array::from(vec![1, -2])) as ArrayRef,
        )]);
        assert_eq!(sum(&i32s), sum(&i64s));
    }

    #[test]
    fn null_empty_and_literal_strings_differ() {
        let s = |v: Option<&str>| {
            sum(&batch(vec![(
                "s",
                Arc::new(StringArray::from(vec![v])) as ArrayRef,
            )]))
        };
        let all = [s(None), s(Some("")), s(Some("NULL")), s(Some("\0"))];
        for i in 0..all.len() {
            for j in 0..i {
                assert_ne!(all[i], all[j], "{i} vs {j}");
            }
        }
    }

    #[test]
    fn floats_fold_negative_zero_and_nan() {
        assert_eq!(canonical_f64(-0.0), canonical_f64(0.0));
        assert_eq!(canonical_f64(f64::NAN), canonical_f64(-f64::NAN));
        assert_ne!(canonical_f64(1.0), canonical_f64(-1.0));
        let _ = Field::new("x", DataType::Float64, true);
    }
}
