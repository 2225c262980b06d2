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
use bytes::Bytes;
use parquet::arrow::add_encoded_arrow_schema_to_metadata;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::file::metadata::{FileMetaData, KeyValue, ParquetMetaData, RowGroupMetaData};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{SchemaDescPtr, TypePtr};

use super::reuse::{self, Placed, Reuse};
use super::{arrow_schema_to_write, carry_metadata, encoding, in_groups_of, new_root, GroupWriter};
use crate::error::{Error, Result};
use crate::table::read::{Layout, SourceFile};

/// The new file being written; rows go in with [`Encoder::push`] in order.
pub struct Encoder {
    file: SerializedFileWriter<Vec<u8>>,
    groups: GroupWriter,
    schema: SchemaRef,
    root: TypePtr,
    descr: SchemaDescPtr,
    /// The key-value metadata the footer will hold.
    metadata: Option<Vec<KeyValue>>,
    /// Whether chunks may be copied from the source: only when the source has no page
    /// index, and then no chunk of the new file has one (a file has one for all of its
    /// chunks or for none).
    copies: bool,
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
        let mut kv = props.key_value_metadata().cloned().unwrap_or_default();
        match arrow_schema_to_write(schema, layout) {
            Some(source_arrow) => kv.push(source_arrow),
            None => {
                add_encoded_arrow_schema_to_metadata(schema, &mut props);
                kv = props.key_value_metadata().cloned().unwrap_or_default();
            }
        }
        let props = Arc::new(
            props
                .into_builder()
                .set_key_value_metadata(Some(kv))
                .build(),
        );
        let buf = Vec::with_capacity(size_hint.saturating_add(size_hint / 8).min(1 << 30));
        let file = SerializedFileWriter::new(buf, root.clone(), props.clone()).map_err(encoding)?;
        let n = schema.fields().len();
        Ok(Some(Encoder {
            descr: Arc::new(file.schema_descr().clone()),
            file,
            groups: GroupWriter::new(
                schema,
                super::encoded_as(schema, &root),
                root.clone(),
                props.clone(),
                vec![false; n],
            ),
            schema: schema.clone(),
            root,
            metadata: props.key_value_metadata().cloned(),
            copies: !layout.page_index,
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

    /// Whether the columns `reuse` copies can go into this file as they are: chunks
    /// without a page index, described as this file describes the column.
    pub fn can_copy(&self, reuse: &Reuse) -> bool {
        self.copies
            && !reuse.page_index
            && reuse
                .columns
                .iter()
                .zip(reuse.root.get_fields())
                .zip(self.root.get_fields())
                .all(|((c, theirs), ours)| c.is_none() || theirs == ours)
    }

    /// Adds `batches` after the rows already pushed; each row group filled is written and
    /// proven.
    pub fn push(&mut self, batches: Vec<RecordBatch>) -> Result<()> {
        for b in batches {
            self.check_columns(&b)?;
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
            self.write_proven(std::slice::from_ref(&g), None)?;
        }
        self.pending_rows = rest.iter().map(|b| b.num_rows()).sum();
        self.pending = rest;
        Ok(())
    }

    /// Adds `batches`, the output of whole source row groups, in the row groups `reuse`
    /// names, its copied columns' chunks copied from `files` ([`Encoder::can_copy`] must
    /// hold); rows pushed before go first, in a row group of their own.
    pub fn push_copied(
        &mut self,
        batches: Vec<RecordBatch>,
        reuse: &Reuse,
        files: &[SourceFile],
    ) -> Result<()> {
        if !self.can_copy(reuse) {
            return Err(Error::Internal(
                "chunks copied into a file that cannot hold them".into(),
            ));
        }
        for b in &batches {
            self.check_columns(b)?;
        }
        self.write_pending()?;
        let groups: Vec<Vec<RecordBatch>> = reuse
            .row_groups
            .iter()
            .map(|rg| batches[rg.batches.clone()].to_vec())
            .collect();
        self.write_proven(&groups, Some((reuse, files)))
    }

    /// Writes the last rows, closes the file and checks its footer against the row
    /// groups proven.
    pub fn finish(mut self) -> Result<Bytes> {
        self.write_pending()?;
        let Encoder {
            file,
            descr,
            metadata,
            proven,
            copies,
            ..
        } = self;
        let file = Bytes::from(file.into_inner().map_err(encoding)?);
        check_footer(&file, &descr, metadata.as_deref(), &proven, copies)?;
        Ok(file)
    }

    fn check_columns(&self, b: &RecordBatch) -> Result<()> {
        if b.schema() != self.schema {
            return Err(Error::Internal(format!(
                "a slice's rows have columns {:?}, the file {:?}",
                b.schema().fields(),
                self.schema.fields()
            )));
        }
        Ok(())
    }

    fn write_pending(&mut self) -> Result<()> {
        let rest = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        if rest.is_empty() {
            return Ok(());
        }
        self.write_proven(&[rest], None)
    }

    /// Writes `groups` as the next row groups (with `copied`, those of its row groups)
    /// and proves them.
    fn write_proven(
        &mut self,
        groups: &[Vec<RecordBatch>],
        copied: Option<(&Reuse, &[SourceFile])>,
    ) -> Result<()> {
        for (g, rows) in groups.iter().enumerate() {
            let source = copied.map(|(r, files)| (r, files, &r.row_groups[g]));
            self.groups
                .write(&mut self.file, rows, source, self.copies)?;
        }
        // Out of the writer's buffer, into the bytes read below.
        self.file.flush().map_err(|e| encoding(e.into()))?;
        let new: Vec<RowGroupMetaData> =
            self.file.flushed_row_groups()[self.proven.len()..].to_vec();
        let written = self.file.inner();
        let start = new
            .iter()
            .flat_map(|rg| rg.columns().iter().map(|c| c.byte_range().0))
            .min()
            .unwrap_or(written.len() as u64);
        if (written.len() as u64) < start {
            return Err(refused(format!(
                "row groups from byte {start}, {} bytes written",
                written.len()
            )));
        }
        let window = Placed {
            start,
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
        let rows: Vec<RecordBatch> = groups.iter().flatten().cloned().collect();
        let decoded: Vec<usize> = (0..self.schema.fields().len())
            .filter(|c| copied.is_none_or(|(r, _)| r.columns[*c].is_none()))
            .collect();
        if let Some((reuse, files)) = copied {
            reuse::check_copied(&meta, reuse, files, &window).map_err(refused)?;
        }
        prove(window, meta, &self.schema, &rows, &decoded)?;
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
    window: Placed,
    meta: ParquetMetaData,
    schema: &SchemaRef,
    rows: &[RecordBatch],
    decoded: &[usize],
) -> Result<()> {
    let options = ArrowReaderOptions::new();
    let read = ArrowReaderMetadata::try_new(Arc::new(meta), options.clone())
        .and_then(|m| crate::table::reader::reading(m, options, false))
        .map_err(|e| refused(e.to_string()))?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(window, read);
    super::compare(builder, schema, rows, decoded).map_err(refused)
}

/// The closed file's footer must describe the row groups proven, and nothing else.
fn check_footer(
    file: &Bytes,
    descr: &SchemaDescPtr,
    metadata: Option<&[KeyValue]>,
    proven: &[RowGroupMetaData],
    no_page_index: bool,
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
                    && reuse::same_statistics(a.statistics(), b.statistics(), false)
                    && !(no_page_index
                        && (a.offset_index_offset().is_some() || a.column_index_offset().is_some()))
            });
        if !same {
            return Err(refused(format!(
                "its footer describes row group {i} otherwise than it was proven"
            )));
        }
    }
    Ok(())
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
        e.groups
            .write(&mut e.file, &[rows(0, 100)], None, e.copies)
            .unwrap();
        e.file.flush().unwrap();
        let new = e.file.flushed_row_groups().to_vec();
        let meta = || {
            ParquetMetaData::new(
                FileMetaData::new(1, 100, None, e.metadata.clone(), e.descr.clone(), None),
                new.clone(),
            )
        };
        let window = || Placed {
            start: 4,
            bytes: Bytes::copy_from_slice(&e.file.inner()[4..]),
        };
        let all = [0, 1];
        prove(window(), meta(), &e.schema, &[rows(0, 100)], &all).unwrap();
        let err = prove(window(), meta(), &e.schema, &[rows(1, 100)], &all).unwrap_err();
        assert!(err.to_string().contains("column a differs"), "{err}");
        let err = prove(window(), meta(), &e.schema, &[rows(0, 99)], &all).unwrap_err();
        assert!(err.to_string().contains("1 rows too many"), "{err}");
        let err = prove(window(), meta(), &e.schema, &[rows(0, 101)], &all).unwrap_err();
        assert!(err.to_string().contains("1 rows missing"), "{err}");
    }

    #[test]
    fn a_footer_other_than_the_row_groups_proven_is_refused() {
        let mut e = encoder(100);
        e.push(vec![rows(0, 250)]).unwrap();
        let (descr, metadata, copies) = (e.descr.clone(), e.metadata.clone(), e.copies);
        let mut proven = e.proven.clone();
        let file = e.finish().unwrap();
        // The last 50 rows were proven at `finish`: take the footer's word for them only
        // here, to have all three.
        let footer = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).unwrap();
        proven.push(footer.metadata().row_groups()[2].clone());
        check_footer(&file, &descr, metadata.as_deref(), &proven, copies).unwrap();
        let err =
            check_footer(&file, &descr, metadata.as_deref(), &proven[..2], copies).unwrap_err();
        assert!(
            err.to_string().contains("250 rows in 3 row groups"),
            "{err}"
        );
        let mut other = proven.clone();
        other.swap(0, 1);
        let err = check_footer(&file, &descr, metadata.as_deref(), &other, copies).unwrap_err();
        assert!(err.to_string().contains("row group 0"), "{err}");
        let err = check_footer(&file, &descr, None, &proven, copies).unwrap_err();
        assert!(err.to_string().contains("key-value metadata"), "{err}");
    }
}
