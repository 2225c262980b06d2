//! A new file encoded a row group at a time, for a partition rewritten a slice at a time:
//! each row group is proven as soon as it is written, so only its rows are held.
//!
//! The proof is the whole-file proof ([`super::check_decodes`]) cut by row group: the
//! row group's bytes are decoded with the file's schema and key-value metadata and must
//! equal the rows written, value for value. When the file is closed, its footer must
//! describe exactly the row groups proven (same byte ranges, codecs and encodings, same
//! schema and metadata), so the whole file decodes to what was proven.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::{Buf, Bytes};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::{add_encoded_arrow_schema_to_metadata, ArrowWriter};
use parquet::file::metadata::{FileMetaData, KeyValue, ParquetMetaData, RowGroupMetaData};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, Length};
use parquet::schema::types::{SchemaDescPtr, SchemaDescriptor};

use super::{arrow_schema_to_write, carry_metadata, encoding, in_groups_of, new_root};
use crate::error::{Error, Result};
use crate::table::read::Layout;

/// The new file being written; rows go in with [`Encoder::push`] in order.
pub struct Encoder {
    writer: ArrowWriter<Vec<u8>>,
    schema: SchemaRef,
    descr: SchemaDescPtr,
    /// The key-value metadata the footer will hold.
    metadata: Option<Vec<KeyValue>>,
    row_group_rows: usize,
    /// Rows not yet written: less than a row group.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    /// The row groups written and proven, as the writer described them.
    proven: Vec<RowGroupMetaData>,
}

impl Encoder {
    /// `None` when the file needs the whole-partition encoding: a column holds INT96 or
    /// INTERVAL values, which only [`super::encode`] writes as they were.
    pub fn new(
        schema: &SchemaRef,
        layout: &Layout,
        props: WriterProperties,
        size_hint: usize,
    ) -> Result<Option<Encoder>> {
        let root = new_root(schema, layout, &[], &props)?;
        if root
            .get_fields()
            .iter()
            .any(|t| super::twelve_bytes::holds_twelve_bytes(t))
        {
            return Ok(None);
        }
        let mut props = carry_metadata(props, layout, schema);
        let source_arrow = arrow_schema_to_write(schema, layout);
        if let Some(kv) = &source_arrow {
            let mut all = props.key_value_metadata().cloned().unwrap_or_default();
            all.push(kv.clone());
            props = props
                .into_builder()
                .set_key_value_metadata(Some(all))
                .build();
        }
        // What the writer will put in the footer: it adds the Arrow schema itself.
        let mut footer_props = props.clone();
        if source_arrow.is_none() {
            add_encoded_arrow_schema_to_metadata(schema, &mut footer_props);
        }
        let descr = Arc::new(SchemaDescriptor::new(root.clone()));
        let options = ArrowWriterOptions::new()
            .with_properties(props)
            .with_skip_arrow_metadata(source_arrow.is_some())
            .with_parquet_schema(SchemaDescriptor::new(root));
        let buf = Vec::with_capacity(size_hint.saturating_add(size_hint / 8).min(1 << 30));
        let writer =
            ArrowWriter::try_new_with_options(buf, schema.clone(), options).map_err(encoding)?;
        Ok(Some(Encoder {
            writer,
            schema: schema.clone(),
            descr,
            metadata: footer_props.key_value_metadata().cloned(),
            row_group_rows: layout.row_group_rows.max(1),
            pending: Vec::new(),
            pending_rows: 0,
            proven: Vec::new(),
        }))
    }

    /// Rows written so far, or waiting for their row group.
    pub fn rows(&self) -> u64 {
        self.proven.iter().map(|r| r.num_rows() as u64).sum::<u64>() + self.pending_rows as u64
    }

    /// Adds `batches` after the rows already pushed; each row group filled is written and
    /// proven.
    pub fn push(&mut self, batches: Vec<RecordBatch>) -> Result<()> {
        for b in batches {
            if b.schema() != self.schema {
                return Err(Error::Internal(format!(
                    "a slice's rows have columns {:?}, the file {:?}",
                    b.schema().fields(),
                    self.schema.fields()
                )));
            }
            self.pending_rows += b.num_rows();
            self.pending.push(b);
        }
        if self.pending_rows < self.row_group_rows {
            return Ok(());
        }
        let mut groups = in_groups_of(&std::mem::take(&mut self.pending), self.row_group_rows);
        let last_full = groups
            .last()
            .is_some_and(|g| g.iter().map(|b| b.num_rows()).sum::<usize>() == self.row_group_rows);
        let rest = if last_full {
            Vec::new()
        } else {
            groups.pop().unwrap_or_default()
        };
        for g in groups {
            self.write_proven(&g)?;
        }
        self.pending_rows = rest.iter().map(|b| b.num_rows()).sum();
        self.pending = rest;
        Ok(())
    }

    /// Writes the last rows, closes the file and checks its footer against the row
    /// groups proven.
    pub fn finish(mut self) -> Result<Bytes> {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.write_proven(&rest)?;
        }
        let Encoder {
            writer,
            descr,
            metadata,
            proven,
            ..
        } = self;
        let file = Bytes::from(writer.into_inner().map_err(encoding)?);
        check_footer(&file, &descr, metadata.as_deref(), &proven)?;
        Ok(file)
    }

    /// Writes `rows` as the next row groups and proves them.
    fn write_proven(&mut self, rows: &[RecordBatch]) -> Result<()> {
        for b in rows {
            self.writer.write(b).map_err(encoding)?;
        }
        self.writer.flush().map_err(encoding)?;
        // Out of the writer's buffer, into the bytes read below.
        self.writer.sync().map_err(|e| encoding(e.into()))?;
        let new: Vec<RowGroupMetaData> =
            self.writer.flushed_row_groups()[self.proven.len()..].to_vec();
        let start = new
            .iter()
            .flat_map(|rg| rg.columns().iter().map(|c| c.byte_range().0))
            .min()
            .unwrap_or(self.writer.bytes_written() as u64);
        let written = self.writer.inner();
        if (written.len() as u64) < start {
            return Err(refused(format!(
                "row groups from byte {start}, {} bytes written",
                written.len()
            )));
        }
        let window = Window {
            base: start,
            bytes: Bytes::copy_from_slice(&written[start as usize..]),
        };
        let num_rows = new.iter().map(|r| r.num_rows()).sum();
        let meta = ParquetMetaData::new(
            FileMetaData::new(
                1,
                num_rows,
                None,
                self.metadata.clone(),
                self.descr.clone(),
                None,
            ),
            new.clone(),
        );
        prove(window, meta, &self.schema, rows)?;
        self.proven.extend(new);
        Ok(())
    }
}

fn refused(what: String) -> Error {
    Error::ProofFailed {
        what: format!("the new file does not decode to the rows written ({what})"),
    }
}

/// Decodes the row groups `meta` describes from `window` and compares them with `rows`.
fn prove(
    window: Window,
    meta: ParquetMetaData,
    schema: &SchemaRef,
    rows: &[RecordBatch],
) -> Result<()> {
    let options = ArrowReaderOptions::new();
    let read = ArrowReaderMetadata::try_new(Arc::new(meta), options.clone())
        .and_then(|m| crate::table::reader::reading(m, options, false))
        .map_err(|e| refused(e.to_string()))?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(window, read);
    let all: Vec<usize> = (0..schema.fields().len()).collect();
    super::compare(builder, schema, rows, &all).map_err(refused)
}

/// The closed file's footer must describe the row groups proven, and nothing else.
fn check_footer(
    file: &Bytes,
    descr: &SchemaDescPtr,
    metadata: Option<&[KeyValue]>,
    proven: &[RowGroupMetaData],
) -> Result<()> {
    let footer = ArrowReaderMetadata::load(file, ArrowReaderOptions::new())
        .map_err(|e| refused(format!("its footer: {e}")))?;
    let meta = footer.metadata();
    let fm = meta.file_metadata();
    if fm.schema_descr().root_schema() != descr.root_schema() {
        return Err(refused("its footer describes other columns".into()));
    }
    if fm.key_value_metadata().map(|kv| kv.as_slice()) != metadata {
        return Err(refused("its footer holds other key-value metadata".into()));
    }
    let rows: i64 = proven.iter().map(|r| r.num_rows()).sum();
    if fm.num_rows() != rows || meta.row_groups().len() != proven.len() {
        return Err(refused(format!(
            "its footer says {} rows in {} row groups, {rows} in {} were proven",
            fm.num_rows(),
            meta.row_groups().len(),
            proven.len()
        )));
    }
    for (i, (got, want)) in meta.row_groups().iter().zip(proven).enumerate() {
        let same = got.num_rows() == want.num_rows()
            && got.columns().len() == want.columns().len()
            && got.columns().iter().zip(want.columns()).all(|(a, b)| {
                a.byte_range() == b.byte_range()
                    && a.compression() == b.compression()
                    && a.num_values() == b.num_values()
                    && a.column_type() == b.column_type()
                    && a.column_path() == b.column_path()
                    && a.encodings().collect::<Vec<_>>() == b.encodings().collect::<Vec<_>>()
                    && a.dictionary_page_offset() == b.dictionary_page_offset()
                    && a.data_page_offset() == b.data_page_offset()
            });
        if !same {
            return Err(refused(format!(
                "its footer describes row group {i} otherwise than it was proven"
            )));
        }
    }
    Ok(())
}

/// The bytes of a file from `base` on, read at the file's own offsets.
struct Window {
    base: u64,
    bytes: Bytes,
}

impl Window {
    fn from(&self, start: u64) -> parquet::errors::Result<Bytes> {
        let at = start
            .checked_sub(self.base)
            .filter(|at| *at <= self.bytes.len() as u64)
            .ok_or_else(|| {
                parquet::errors::ParquetError::General(format!(
                    "offset {start} outside the row groups written ({} bytes from {})",
                    self.bytes.len(),
                    self.base
                ))
            })?;
        Ok(self.bytes.slice(at as usize..))
    }
}

impl Length for Window {
    fn len(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }
}

impl ChunkReader for Window {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.from(start)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let rest = self.from(start)?;
        if length > rest.len() {
            return Err(parquet::errors::ParquetError::EOF(format!(
                "{length} bytes at {start}, past the row groups written"
            )));
        }
        Ok(rest.slice(..length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    fn rows(from: i64, n: i64) -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "a",
                Arc::new(Int64Array::from_iter_values(from..from + n)) as _,
            ),
            (
                "s",
                Arc::new(StringArray::from_iter(
                    (from..from + n).map(|i| (i % 3 != 0).then(|| format!("s{i}"))),
                )) as _,
            ),
        ])
        .unwrap()
    }

    fn encoder(row_group_rows: usize) -> Encoder {
        let layout = Layout {
            row_group_rows,
            ..Layout::default()
        };
        let schema = rows(0, 1).schema();
        Encoder::new(&schema, &layout, super::super::properties(&layout), 0)
            .unwrap()
            .expect("no INT96 or INTERVAL")
    }

    fn decode(file: &Bytes) -> (Vec<i64>, Vec<RecordBatch>) {
        let b = ParquetRecordBatchReaderBuilder::try_new(file.clone()).unwrap();
        let groups = b
            .metadata()
            .row_groups()
            .iter()
            .map(|r| r.num_rows())
            .collect();
        (groups, b.build().unwrap().map(|b| b.unwrap()).collect())
    }

    #[test]
    fn rows_go_into_full_row_groups_each_proven_as_it_is_written() {
        let mut e = encoder(100);
        for i in 0..4 {
            e.push(vec![rows(i * 70, 70)]).unwrap();
        }
        // 280 rows pushed: two row groups written and proven, 80 rows waiting.
        assert_eq!(e.proven.len(), 2);
        assert_eq!(e.rows(), 280);
        e.push(vec![]).unwrap();
        let file = e.finish().unwrap();
        let (groups, batches) = decode(&file);
        assert_eq!(groups, [100, 100, 80]);
        let all = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(all, rows(0, 280));
    }

    #[test]
    fn a_row_group_that_does_not_decode_to_its_rows_is_refused() {
        let mut e = encoder(100);
        e.writer.write(&rows(0, 100)).unwrap();
        e.writer.flush().unwrap();
        e.writer.sync().unwrap();
        let new = e.writer.flushed_row_groups().to_vec();
        let meta = || {
            ParquetMetaData::new(
                FileMetaData::new(1, 100, None, e.metadata.clone(), e.descr.clone(), None),
                new.clone(),
            )
        };
        let window = || Window {
            base: 4,
            bytes: Bytes::copy_from_slice(&e.writer.inner()[4..]),
        };
        prove(window(), meta(), &e.schema, &[rows(0, 100)]).unwrap();
        let err = prove(window(), meta(), &e.schema, &[rows(1, 100)]).unwrap_err();
        assert!(err.to_string().contains("column a differs"), "{err}");
        let err = prove(window(), meta(), &e.schema, &[rows(0, 99)]).unwrap_err();
        assert!(err.to_string().contains("1 rows too many"), "{err}");
        let err = prove(window(), meta(), &e.schema, &[rows(0, 101)]).unwrap_err();
        assert!(err.to_string().contains("1 rows missing"), "{err}");
    }

    #[test]
    fn a_footer_other_than_the_row_groups_proven_is_refused() {
        let mut e = encoder(100);
        e.push(vec![rows(0, 250)]).unwrap();
        let (descr, metadata) = (e.descr.clone(), e.metadata.clone());
        let mut proven = e.proven.clone();
        let file = e.finish().unwrap();
        // The last 50 rows were proven at `finish`: take the footer's word for them only
        // here, to have all three.
        let footer = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).unwrap();
        proven.push(footer.metadata().row_groups()[2].clone());
        check_footer(&file, &descr, metadata.as_deref(), &proven).unwrap();
        let err = check_footer(&file, &descr, metadata.as_deref(), &proven[..2]).unwrap_err();
        assert!(
            err.to_string().contains("250 rows in 3 row groups"),
            "{err}"
        );
        let mut other = proven.clone();
        other.swap(0, 1);
        let err = check_footer(&file, &descr, metadata.as_deref(), &other).unwrap_err();
        assert!(err.to_string().contains("row group 0"), "{err}");
        let err = check_footer(&file, &descr, None, &proven).unwrap_err();
        assert!(err.to_string().contains("key-value metadata"), "{err}");
    }
}
