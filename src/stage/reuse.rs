//! Column chunks the transform did not change are copied from the source files byte for
//! byte instead of being encoded again (encoding is most of a rewrite's work, and a
//! backfill usually changes a few columns of many).
//!
//! A column passes through when every output batch holds the very buffers of the source
//! batch it came from (the transform only selected it, as in `SELECT a, upper(b) AS b`),
//! every source file describes it alike (Parquet type, logical type, repetition), and a
//! reader of the new file, which keeps that description, gets the output's Arrow type.
//! The new file then has the source's row groups one for one, and the other columns are
//! encoded into them as usual. Before the file is written, [`check_copied`] proves each
//! copied chunk by its bytes and description, and the encoded columns are decoded and
//! compared with the rows.

use std::ops::Range;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::SchemaRef;
use bytes::{Buf, Bytes};
use parquet::arrow::{
    encode_arrow_schema, parquet_to_arrow_schema, ArrowSchemaConverter, ARROW_SCHEMA_META_KEY,
};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{KeyValue, ParquetMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, Length};
use parquet::schema::types::{SchemaDescriptor, Type, TypePtr};

use crate::table::read::SourceFile;

/// Which columns of the new file are copied, and the row groups they come from.
#[derive(Debug)]
pub struct Reuse {
    /// Per output column: for a copied one, its leaf in each source file's schema.
    pub(super) columns: Vec<Option<Vec<usize>>>,
    /// The new file's row groups, in order.
    pub(super) row_groups: Vec<RowGroup>,
    /// Whether every copied chunk has an offset index. A file has one for all of its
    /// chunks or for none, so without it the encoded chunks go without too.
    pub(super) page_index: bool,
    /// The new file's Parquet schema.
    pub(super) root: TypePtr,
}

#[derive(Debug)]
pub(super) struct RowGroup {
    pub file: usize,
    pub row_group: usize,
    /// The output batches holding its rows.
    pub batches: Range<usize>,
}

impl Reuse {
    /// `batches` with only the columns that are encoded: the copied ones are not needed
    /// to write or prove the new file, so their memory can go before it is encoded.
    pub fn encoded_only(&self, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, String> {
        let keep: Vec<usize> = (0..self.columns.len())
            .filter(|c| self.columns[*c].is_none())
            .collect();
        batches
            .into_iter()
            .map(|b| b.project(&keep).map_err(|e| e.to_string()))
            .collect()
    }

    /// How many columns are copied.
    pub fn copied(&self) -> usize {
        self.columns.iter().filter(|c| c.is_some()).count()
    }
}

/// Finds the columns of `batches` (the output, in `schema`) that are the source's own
/// and can be copied; `None` when there are none.
pub fn plan(
    files: &[SourceFile],
    batch_row_groups: Option<&[(usize, usize)]>,
    source: &[RecordBatch],
    schema: &SchemaRef,
    batches: &[RecordBatch],
    props: &WriterProperties,
) -> Option<Reuse> {
    let origin = batch_row_groups?;
    if batches.is_empty()
        || files.is_empty()
        || origin.len() != batches.len()
        || source.len() != batches.len()
        || source
            .iter()
            .zip(batches)
            .any(|(s, b)| s.num_rows() != b.num_rows())
    {
        return None;
    }
    let row_groups = row_groups(files, origin, batches)?;
    let converted = ArrowSchemaConverter::new()
        .with_coerce_types(props.coerce_types())
        .convert(schema)
        .ok()?;
    let top = converted.root_schema().get_fields();
    let source_schema = source[0].schema();
    let mut columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(c, field)| {
            if !top.get(c)?.is_primitive() {
                return None;
            }
            let s = source_schema.index_of(field.name()).ok()?;
            let same_buffers = batches
                .iter()
                .zip(source)
                .all(|(b, src)| b.column(c).to_data().ptr_eq(&src.column(s).to_data()));
            if !same_buffers {
                return None;
            }
            // A top-level leaf of that name, described alike in every file.
            let in_files = files
                .iter()
                .map(|f| {
                    let d = f.metadata.file_metadata().schema_descr();
                    (0..d.num_columns())
                        .find(|i| d.column(*i).path().parts() == [field.name().as_str()])
                })
                .collect::<Option<Vec<usize>>>()?;
            let first = files[0]
                .metadata
                .file_metadata()
                .schema_descr()
                .column(in_files[0]);
            let alike = files
                .iter()
                .zip(&in_files)
                .all(|(f, at)| f.metadata.file_metadata().schema_descr().column(*at) == first);
            // Every chunk must be at hand, as fetched for decoding.
            let fetched = row_groups.iter().all(|rg| {
                let f = &files[rg.file];
                let (start, len) = f
                    .metadata
                    .row_group(rg.row_group)
                    .column(in_files[rg.file])
                    .byte_range();
                f.fetched.covers(start, len)
            });
            (alike && fetched).then_some(in_files)
        })
        .collect::<Vec<_>>();
    // A copied chunk keeps its Parquet type; readers must still decode it as the output's
    // Arrow type (the file carries the Arrow schema, as any file this tool writes).
    let hint = vec![KeyValue::new(
        ARROW_SCHEMA_META_KEY.to_string(),
        encode_arrow_schema(schema),
    )];
    let root = new_schema(&converted, files, &columns)?;
    let read_as = parquet_to_arrow_schema(&SchemaDescriptor::new(root), Some(&hint)).ok()?;
    for (c, copied) in columns.iter_mut().enumerate() {
        if read_as.fields().get(c).map(|f| f.data_type()) != Some(schema.field(c).data_type()) {
            *copied = None;
        }
    }
    if columns.iter().all(Option::is_none) {
        return None;
    }
    let root = new_schema(&converted, files, &columns)?;
    let page_index = row_groups.iter().all(|rg| {
        let index = files[rg.file].metadata.offset_index();
        columns.iter().flatten().all(|in_files| {
            index
                .and_then(|oi| oi.get(rg.row_group)?.get(in_files[rg.file]))
                .is_some()
        })
    });
    Some(Reuse {
        columns,
        row_groups,
        page_index,
        root,
    })
}

/// The new file's Parquet schema: copied columns keep the source's type (a writer may
/// describe an `Int64` as plain INT64 or as INT64 with an integer annotation; the bytes
/// go with their description), the others are converted from Arrow.
fn new_schema(
    converted: &SchemaDescriptor,
    files: &[SourceFile],
    columns: &[Option<Vec<usize>>],
) -> Option<TypePtr> {
    let root = converted.root_schema();
    let fields = root
        .get_fields()
        .iter()
        .zip(columns)
        .map(|(f, copied)| match copied {
            Some(in_files) => files[0]
                .metadata
                .file_metadata()
                .schema_descr()
                .column(in_files[0])
                .self_type_ptr(),
            None => f.clone(),
        })
        .collect();
    Type::group_type_builder(root.name())
        .with_fields(fields)
        .build()
        .ok()
        .map(std::sync::Arc::new)
}

/// Groups the output batches by the source row group they come from; each row group
/// must appear once, whole.
fn row_groups(
    files: &[SourceFile],
    origin: &[(usize, usize)],
    batches: &[RecordBatch],
) -> Option<Vec<RowGroup>> {
    let mut out: Vec<RowGroup> = Vec::new();
    for (i, &(file, row_group)) in origin.iter().enumerate() {
        match out.last_mut() {
            Some(last) if (last.file, last.row_group) == (file, row_group) => {
                last.batches.end = i + 1
            }
            _ => out.push(RowGroup {
                file,
                row_group,
                batches: i..i + 1,
            }),
        }
    }
    let mut seen = std::collections::HashSet::new();
    for rg in &out {
        let rows: usize = batches[rg.batches.clone()]
            .iter()
            .map(|b| b.num_rows())
            .sum();
        let meta = files
            .get(rg.file)?
            .metadata
            .row_groups()
            .get(rg.row_group)?;
        if !seen.insert((rg.file, rg.row_group)) || meta.num_rows() != rows as i64 {
            return None;
        }
    }
    Some(out)
}

/// Checks every copied chunk of the new `file` (whose metadata is `new`) against the
/// source chunk it was copied from; `Err` says what differs.
pub(super) fn check_copied<R: ChunkReader>(
    new: &ParquetMetaData,
    reuse: &Reuse,
    files: &[SourceFile],
    file: &R,
) -> std::result::Result<(), String> {
    if new.num_row_groups() != reuse.row_groups.len() {
        return Err(format!(
            "{} row groups instead of {}",
            new.num_row_groups(),
            reuse.row_groups.len()
        ));
    }
    let descr = new.file_metadata().schema_descr();
    for (g, rg) in reuse.row_groups.iter().enumerate() {
        let group = new.row_group(g);
        let source = files[rg.file].metadata.row_group(rg.row_group);
        if group.num_rows() != source.num_rows() {
            return Err(format!(
                "row group {g} has {} rows instead of {}",
                group.num_rows(),
                source.num_rows()
            ));
        }
        for (c, copied) in reuse.columns.iter().enumerate() {
            let Some(in_files) = copied else {
                continue;
            };
            let differs = |what: &str| {
                format!("copied column {c} of row group {g}: {what} differs from the source")
            };
            let leaf = (0..descr.num_columns())
                .find(|l| descr.get_column_root_idx(*l) == c)
                .ok_or_else(|| differs("position"))?;
            let (want_chunk, want) =
                chunk(files, rg, in_files[rg.file]).map_err(|e| e.to_string())?;
            let got = group.column(leaf);
            let src = &want.metadata;
            let (at, len) = got.byte_range();
            let (src_at, src_len) = src.byte_range();
            let delta = at as i64 - src_at as i64;
            if got.column_descr() != src.column_descr() {
                return Err(differs("type"));
            }
            if (
                got.compression(),
                got.encodings_mask(),
                got.num_values(),
                got.uncompressed_size(),
            ) != (
                src.compression(),
                src.encodings_mask(),
                src.num_values(),
                src.uncompressed_size(),
            ) || len != src_len
                || got.data_page_offset() - src.data_page_offset() != delta
                || got.dictionary_page_offset().map(|o| o - delta) != src.dictionary_page_offset()
            {
                return Err(differs("description"));
            }
            if !same_statistics(got.statistics(), src.statistics(), true) {
                return Err(differs("statistics"));
            }
            let bytes = usize::try_from(len)
                .ok()
                .and_then(|len| file.get_bytes(at, len).ok())
                .ok_or_else(|| differs("position"))?;
            if bytes != want_chunk.bytes {
                return Err(differs("content"));
            }
            let offsets = new
                .offset_index()
                .and_then(|oi| oi.get(g)?.get(leaf))
                .filter(|_| reuse.page_index);
            let same_offsets =
                match (offsets, &want.offset_index) {
                    (None, _) if !reuse.page_index => true,
                    (Some(got), Some(want)) => {
                        got.page_locations().len() == want.page_locations().len()
                            && got.page_locations().iter().zip(want.page_locations()).all(
                                |(a, b)| {
                                    a.offset - delta == b.offset
                                        && a.compressed_page_size == b.compressed_page_size
                                        && a.first_row_index == b.first_row_index
                                },
                            )
                    }
                    _ => false,
                };
            let columns = new
                .column_index()
                .and_then(|ci| ci.get(g)?.get(leaf))
                .filter(|ci| !matches!(ci, ColumnIndexMetaData::NONE));
            if !same_offsets || (reuse.page_index && columns != want.column_index.as_ref()) {
                return Err(differs("page index"));
            }
        }
    }
    Ok(())
}

/// Statistics compared by their bytes: as values a NaN bound would differ from itself.
/// With `how_written`, also whether the bounds were written in the deprecated fields too,
/// which statistics read back from a footer do not say.
pub(super) fn same_statistics(
    a: Option<&parquet::file::statistics::Statistics>,
    b: Option<&parquet::file::statistics::Statistics>,
    how_written: bool,
) -> bool {
    let key = |s: &parquet::file::statistics::Statistics| {
        (
            s.physical_type(),
            s.min_bytes_opt().map(<[u8]>::to_vec),
            s.max_bytes_opt().map(<[u8]>::to_vec),
            s.null_count_opt(),
            s.distinct_count_opt(),
            s.min_is_exact(),
            s.max_is_exact(),
            how_written.then(|| {
                (
                    s.is_min_max_deprecated(),
                    s.is_min_max_backwards_compatible(),
                )
            }),
        )
    };
    a.map(key) == b.map(key)
}

/// The source chunk of copied column `leaf` of row group `rg`, ready to append.
pub(super) fn chunk(
    files: &[SourceFile],
    rg: &RowGroup,
    leaf: usize,
) -> parquet::errors::Result<(Placed, ColumnCloseResult)> {
    let missing = || {
        parquet::errors::ParquetError::General("a copied column chunk is no longer at hand".into())
    };
    let file = files.get(rg.file).ok_or_else(missing)?;
    let meta = &file.metadata;
    let group = meta.row_group(rg.row_group);
    let column = group.column(leaf).clone();
    let (start, len) = column.byte_range();
    let bytes = file
        .fetched
        .range(start, len)
        .map_err(parquet::errors::ParquetError::General)?
        .ok_or_else(missing)?;
    let column_index = meta
        .column_index()
        .and_then(|ci| ci.get(rg.row_group)?.get(leaf).cloned())
        .filter(|ci| !matches!(ci, ColumnIndexMetaData::NONE));
    let offset_index = meta
        .offset_index()
        .and_then(|oi| oi.get(rg.row_group)?.get(leaf).cloned());
    let close = ColumnCloseResult {
        bytes_written: len,
        rows_written: group.num_rows().max(0) as u64,
        metadata: column,
        bloom_filter: None,
        column_index,
        offset_index,
    };
    Ok((Placed { start, bytes }, close))
}

/// Bytes of a file from `start` on, read at the file's own offsets: a source column
/// chunk, as the Parquet writer reads it to append the chunk, or the row groups of a new
/// file just written, as its proof decodes them.
pub(super) struct Placed {
    pub(super) start: u64,
    pub(super) bytes: Bytes,
}

impl Length for Placed {
    fn len(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

impl ChunkReader for Placed {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self
            .get_bytes(start, (self.len() - start.min(self.len())) as usize)?
            .reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let from = start
            .checked_sub(self.start)
            .map(|f| f as usize)
            .filter(|f| f + length <= self.bytes.len())
            .ok_or_else(|| {
                parquet::errors::ParquetError::General(format!(
                    "bytes {start}..+{length} are outside those at hand ({} from {})",
                    self.bytes.len(),
                    self.start
                ))
            })?;
        Ok(self.bytes.slice(from..from + length))
    }
}
