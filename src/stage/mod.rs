//! New files: encoded and proven in memory, then written outside the live table and
//! read back before any commit.
//!
//! Verification has two halves, and together they prove that the file in storage holds
//! exactly the transform's output:
//! 1. the encoded bytes are decoded again and every column must equal the rows that were
//!    written, value for value (exact equality: stricter than a checksum); a column chunk
//!    copied from an old file must instead be that chunk byte for byte, described alike
//!    ([`reuse`]);
//! 2. after the write, the file is read back from storage and must be byte-identical to
//!    the bytes that passed (1).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{path::Path, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::arrow_writer::compute_leaves;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ProjectionMask;
use parquet::arrow::{
    add_encoded_arrow_schema_to_metadata, ArrowSchemaConverter, ArrowWriter, ARROW_SCHEMA_META_KEY,
};
use parquet::file::metadata::KeyValue;
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{SchemaDescriptor, Type, TypePtr};

use crate::error::{Error, Result};
use crate::storage::{blocking, Location};
use crate::table::read::{Layout, SourceFile};

pub mod reuse;
pub mod sliced;
mod twelve_bytes;
pub use reuse::Reuse;

/// The new file's Parquet schema: copied columns (`copied[c]` set) keep their chunk's
/// type; other columns the transform left with the Arrow type they were read as keep the
/// source's Parquet type, annotations and nesting; new or retyped columns are described
/// as Arrow converts them.
fn new_root(
    schema: &Schema,
    layout: &Layout,
    copied: &[Option<TypePtr>],
    props: &WriterProperties,
) -> Result<TypePtr> {
    let converted = ArrowSchemaConverter::new()
        .with_coerce_types(props.coerce_types())
        .convert(schema)
        .map_err(encoding)?;
    let root = converted.root_schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    for (c, (field, arrow_says)) in schema.fields().iter().zip(root.get_fields()).enumerate() {
        if let Some(Some(t)) = copied.get(c) {
            fields.push(t.clone());
            continue;
        }
        // A nullable output in a REQUIRED source column could not hold its NULLs.
        let source = layout.columns.iter().find(|(t, dt)| {
            t.name() == field.name()
                && dt == field.data_type()
                && !(field.is_nullable()
                    && t.get_basic_info().repetition() == parquet::basic::Repetition::REQUIRED)
        });
        match source {
            Some((t, _)) => fields.push(arrow_writable(t)?),
            None => fields.push(arrow_says.clone()),
        }
    }
    Type::group_type_builder(layout.root_name.as_deref().unwrap_or(root.name()))
        .with_fields(fields)
        .build()
        .map(Arc::new)
        .map_err(encoding)
}

/// The Arrow decimal type that makes the Arrow writer fill a fixed-length decimal leaf of
/// `length` bytes and `precision` digits (scale `scale`): the writer sizes each value by
/// the precision of the array it is given, and DuckDB stores `DECIMAL(19..35)` in 16
/// bytes where that precision gives 9 to 15. The widest precision of that width holds
/// the same unscaled values, and the file still describes the leaf's own precision.
/// `None` when no precision has that width ([`arrow_writable`] describes such leaves
/// anew).
fn decimal_of_width(length: i32, precision: i32, scale: i8) -> Option<arrow::datatypes::DataType> {
    use arrow::datatypes::DataType::{Decimal128, Decimal256};
    let widest = (1..=76u8)
        .filter(|p| arrow_decimal_width(i32::from(*p)) == length)
        .max()?;
    if i32::from(widest) < precision {
        return None;
    }
    Some(if widest <= 38 {
        Decimal128(widest, scale)
    } else {
        Decimal256(widest, scale)
    })
}

/// `schema` with each decimal whose Parquet leaf in `root` is wider than its precision
/// needs given as [`decimal_of_width`]: what the column writers are given for the file
/// `root` describes. Arrow leaves and Parquet leaves pair up in depth-first order, as
/// the writer pairs them.
fn encoded_as(schema: &SchemaRef, root: &TypePtr) -> SchemaRef {
    use arrow::datatypes::{DataType, Field};
    fn leaf_type(
        dt: &DataType,
        leaves: &mut std::slice::Iter<'_, parquet::schema::types::ColumnDescPtr>,
    ) -> DataType {
        let nested = |f: &arrow::datatypes::FieldRef, leaves: &mut std::slice::Iter<'_, _>| {
            Arc::new(Field::clone(f).with_data_type(leaf_type(f.data_type(), leaves)))
        };
        match dt {
            DataType::Struct(fields) => {
                DataType::Struct(fields.iter().map(|f| nested(f, leaves)).collect())
            }
            DataType::List(f) => DataType::List(nested(f, leaves)),
            DataType::LargeList(f) => DataType::LargeList(nested(f, leaves)),
            DataType::FixedSizeList(f, n) => DataType::FixedSizeList(nested(f, leaves), *n),
            DataType::Map(f, sorted) => DataType::Map(nested(f, leaves), *sorted),
            DataType::Decimal32(_, s)
            | DataType::Decimal64(_, s)
            | DataType::Decimal128(_, s)
            | DataType::Decimal256(_, s) => {
                let Some(c) = leaves.next() else {
                    return dt.clone();
                };
                let (length, precision) = (c.type_length(), c.type_precision());
                if c.physical_type() != parquet::basic::Type::FIXED_LEN_BYTE_ARRAY
                    || precision <= 0
                    || length == arrow_decimal_width(precision)
                {
                    return dt.clone();
                }
                decimal_of_width(length, precision, *s).unwrap_or_else(|| dt.clone())
            }
            _ => {
                leaves.next();
                dt.clone()
            }
        }
    }
    let descr = SchemaDescriptor::new(root.clone());
    let columns: Vec<_> = (0..descr.num_columns()).map(|i| descr.column(i)).collect();
    let mut leaves = columns.iter();
    let fields: Vec<arrow::datatypes::FieldRef> = schema
        .fields()
        .iter()
        .map(|f| Arc::new(Field::clone(f).with_data_type(leaf_type(f.data_type(), &mut leaves))))
        .collect();
    if fields
        .iter()
        .zip(schema.fields())
        .all(|(a, b)| a.data_type() == b.data_type())
    {
        return schema.clone();
    }
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `t`, with each decimal leaf the Arrow writer cannot fill as `t` describes it, even
/// widened ([`decimal_of_width`]), described as that writer fills it: a fixed-length
/// byte array of the fewest bytes the precision needs. Only decimals on variable-length
/// byte arrays (which the Arrow writer has no way to write) and fixed-length ones no
/// precision fills are: the logical type and the values stay, the storage width changes.
fn arrow_writable(t: &TypePtr) -> Result<TypePtr> {
    crate::table::reader::map_parquet_leaves(t, &mut refit_decimal).map_err(encoding)
}

/// Decimal leaf `t` described at the width its precision needs; `None` for any other
/// leaf, and for one the writer fills as described ([`arrow_writable`]).
fn refit_decimal(t: &Type) -> parquet::errors::Result<Option<TypePtr>> {
    use parquet::basic::{LogicalType, Type as Physical};
    let info = t.get_basic_info();
    let (precision, scale) = (t.get_precision(), t.get_scale());
    let decimal = matches!(info.logical_type_ref(), Some(LogicalType::Decimal { .. }))
        || info.converted_type() == parquet::basic::ConvertedType::DECIMAL;
    let length = match t {
        Type::PrimitiveType { type_length, .. } => *type_length,
        Type::GroupType { .. } => return Ok(None),
    };
    if !decimal || precision <= 0 {
        return Ok(None);
    }
    let width = arrow_decimal_width(precision);
    let fits = match t.get_physical_type() {
        Physical::FIXED_LEN_BYTE_ARRAY => {
            length == width || decimal_of_width(length, precision, scale as i8).is_some()
        }
        Physical::BYTE_ARRAY => false,
        _ => true,
    };
    if fits {
        return Ok(None);
    }
    let mut b = Type::primitive_type_builder(info.name(), Physical::FIXED_LEN_BYTE_ARRAY)
        .with_length(width)
        .with_precision(precision)
        .with_scale(scale)
        .with_logical_type(Some(LogicalType::decimal(scale, precision)))
        .with_converted_type(parquet::basic::ConvertedType::DECIMAL)
        .with_repetition(info.repetition());
    if info.has_id() {
        b = b.with_id(Some(info.id()));
    }
    b.build().map(|t| Some(Arc::new(t)))
}

/// The bytes the Arrow writer puts in each fixed-length decimal value of `precision`,
/// whatever the column's description says: the fewest that hold its digits and a sign
/// (the parquet crate's own formula, which it does not export).
fn arrow_decimal_width(precision: i32) -> i32 {
    (((10.0_f64.powi(precision) + 1.0).log2() + 1.0) / 8.0).ceil() as i32
}

fn encoding(error: parquet::errors::ParquetError) -> Error {
    Error::Parquet {
        context: "encoding Parquet".into(),
        error,
    }
}

/// Writer settings that keep the source's layout.
pub fn properties(layout: &Layout) -> WriterProperties {
    let statistics = if layout.page_index {
        EnabledStatistics::Page
    } else {
        EnabledStatistics::Chunk
    };
    let mut b = WriterProperties::builder()
        .set_compression(layout.codec)
        .set_statistics_enabled(statistics)
        .set_max_row_group_row_count(Some(layout.row_group_rows.max(1)));
    for (path, dict) in &layout.dictionary {
        b = b.set_column_dictionary_enabled(path.clone(), *dict);
    }
    b.build()
}

/// Encodes `batches` as one Parquet file in memory (of about `size_hint` bytes); with
/// `reuse`, the columns it names are copied from the source files and the row groups are
/// the source's, and `batches` may leave those columns out ([`Reuse::encoded_only`]).
pub fn encode(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    layout: &Layout,
    props: WriterProperties,
    reuse: Option<(&Reuse, &[SourceFile])>,
    size_hint: usize,
) -> Result<Bytes> {
    let failed = encoding;
    // Sized up front: growing by doubling would hold two copies of a large file at once.
    let buf = Vec::with_capacity(size_hint.saturating_add(size_hint / 8).min(1 << 30));
    let copied: Vec<Option<TypePtr>> = match reuse {
        Some((reuse, _)) => reuse
            .columns
            .iter()
            .zip(reuse.root.get_fields())
            .map(|(c, t)| c.as_ref().map(|_| t.clone()))
            .collect(),
        None => Vec::new(),
    };
    let root = new_root(schema, layout, &copied, &props)?;
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
    // Columns holding INT96 or INTERVAL to encode: written as 12-byte binaries, then
    // described as they were ([`twelve_bytes`]).
    let twelve: Vec<bool> = root
        .get_fields()
        .iter()
        .enumerate()
        .map(|(c, t)| {
            !matches!(copied.get(c), Some(Some(_))) && twelve_bytes::holds_twelve_bytes(t)
        })
        .collect();
    let any_twelve = twelve.iter().any(|b| *b);
    let widened = encoded_as(schema, &root);
    if reuse.is_none() && !any_twelve && Arc::ptr_eq(&widened, schema) {
        let options = ArrowWriterOptions::new()
            .with_properties(props)
            .with_skip_arrow_metadata(source_arrow.is_some())
            .with_parquet_schema(SchemaDescriptor::new(root));
        let mut writer =
            ArrowWriter::try_new_with_options(buf, schema.clone(), options).map_err(failed)?;
        for b in batches {
            writer.write(b).map_err(failed)?;
        }
        return Ok(Bytes::from(writer.into_inner().map_err(failed)?));
    }
    if source_arrow.is_none() {
        add_encoded_arrow_schema_to_metadata(schema, &mut props);
    }
    // The schema the column writers encode: INT96 leaves as 12-byte binaries.
    let (encoded_root, encoded_schema) = if any_twelve {
        let mut fields = Vec::with_capacity(schema.fields().len());
        let mut types = Vec::with_capacity(schema.fields().len());
        for ((field, t), is) in widened.fields().iter().zip(root.get_fields()).zip(&twelve) {
            if *is {
                let dt = twelve_bytes::binary_type(field.data_type(), t);
                fields.push(field.as_ref().clone().with_data_type(dt));
                types.push(twelve_bytes::as_binary(t).map_err(failed)?);
            } else {
                fields.push(field.as_ref().clone());
                types.push(t.clone());
            }
        }
        let encoded = Type::group_type_builder(root.name())
            .with_fields(types)
            .build()
            .map_err(failed)?;
        let mut b = props.into_builder();
        for c in SchemaDescriptor::new(root.clone()).columns() {
            if twelve_bytes::is_twelve_bytes_leaf(c) {
                b = b.set_column_statistics_enabled(c.path().clone(), EnabledStatistics::None);
            }
        }
        props = b.build();
        let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
        (Arc::new(encoded), Arc::new(schema))
    } else {
        (root.clone(), widened)
    };
    let props = Arc::new(props);
    let mut file = SerializedFileWriter::new(buf, root, props.clone()).map_err(failed)?;
    let groups_writer = GroupWriter::new(schema, encoded_schema, encoded_root, props, twelve);
    // Each new row group's rows: a source row group's, or the layout's row group size.
    let groups: Vec<(Vec<RecordBatch>, Option<&reuse::RowGroup>)> = match reuse {
        Some((reuse, _)) => reuse
            .row_groups
            .iter()
            .map(|rg| (batches[rg.batches.clone()].to_vec(), Some(rg)))
            .collect(),
        None => in_groups_of(batches, layout.row_group_rows.max(1))
            .into_iter()
            .map(|g| (g, None))
            .collect(),
    };
    // Copied chunks without an offset index: the encoded ones go without too.
    let strip = reuse.is_some_and(|(r, _)| !r.page_index);
    for (rows, rg) in &groups {
        let source = match (reuse, rg) {
            (Some((reuse, files)), Some(rg)) => Some((reuse, files, *rg)),
            _ => None,
        };
        groups_writer.write(&mut file, rows, source, strip)?;
    }
    Ok(Bytes::from(file.into_inner().map_err(failed)?))
}

/// Writes row groups into a [`SerializedFileWriter`]: the columns encoded from the rows,
/// the copied ones appended from the source's chunks.
pub(crate) struct GroupWriter {
    schema: SchemaRef,
    /// The schema the column writers encode: INT96 leaves as 12-byte binaries.
    encoded_schema: SchemaRef,
    encoded_descr: SchemaDescriptor,
    props: Arc<WriterProperties>,
    /// Leaves of each top-level column.
    leaves: Vec<usize>,
    /// Columns written as 12-byte binaries, then described as they were.
    twelve: Vec<bool>,
}

impl GroupWriter {
    fn new(
        schema: &SchemaRef,
        encoded_schema: SchemaRef,
        encoded_root: TypePtr,
        props: Arc<WriterProperties>,
        twelve: Vec<bool>,
    ) -> GroupWriter {
        let encoded_descr = SchemaDescriptor::new(encoded_root);
        let mut leaves = vec![0usize; schema.fields().len()];
        for leaf in 0..encoded_descr.num_columns() {
            leaves[encoded_descr.get_column_root_idx(leaf)] += 1;
        }
        GroupWriter {
            schema: schema.clone(),
            encoded_schema,
            encoded_descr,
            props,
            leaves,
            twelve,
        }
    }

    /// Writes `rows` as the next row group of `file`; with `source`, the columns it copies
    /// come from that source row group and `rows` may leave them out. `strip` drops every
    /// chunk's page index.
    fn write(
        &self,
        file: &mut SerializedFileWriter<Vec<u8>>,
        rows: &[RecordBatch],
        source: Option<(&Reuse, &[SourceFile], &reuse::RowGroup)>,
        strip: bool,
    ) -> Result<()> {
        let failed = encoding;
        let schema = &self.schema;
        let copied = |c: usize| source.is_some_and(|(r, _, _)| r.columns[c].is_some());
        // The factory that replaces it builds writers for the file's own schema, which
        // says INT96 where these encode binaries.
        #[allow(deprecated)]
        let mut writers = parquet::arrow::arrow_writer::get_column_writers(
            &self.encoded_descr,
            &self.props,
            &self.encoded_schema,
        )
        .map_err(failed)?;
        let mut first = 0;
        for (c, field) in schema.fields().iter().enumerate() {
            if !copied(c) {
                let encoded_field = self.encoded_schema.field(c);
                for b in rows {
                    let column = column_of(b, schema, c).ok_or_else(|| {
                        Error::Internal(format!("no column {} to encode", field.name()))
                    })?;
                    let column = if self.twelve[c] {
                        twelve_bytes::to_binary(column, encoded_field.data_type(), field.name())
                            .map_err(failed)?
                    } else if encoded_field.data_type() != field.data_type() {
                        // A decimal widened to its stored width ([`encoded_as`]).
                        arrow::compute::cast(column, encoded_field.data_type()).map_err(|e| {
                            Error::Arrow {
                                context: format!("widening decimal column {}", field.name()),
                                error: e,
                            }
                        })?
                    } else {
                        column.clone()
                    };
                    let parts = compute_leaves(encoded_field, &column).map_err(failed)?;
                    for (k, part) in parts.iter().enumerate() {
                        writers[first + k].write(part).map_err(failed)?;
                    }
                }
            }
            first += self.leaves[c];
        }
        let descr = file.schema_descr().clone();
        let mut group = file.next_row_group().map_err(failed)?;
        let mut writers = writers.into_iter();
        let mut leaf = 0;
        for (c, n) in self.leaves.iter().enumerate() {
            match source {
                Some((reuse, files, rg)) if reuse.columns[c].is_some() => {
                    writers.next();
                    let in_files = reuse.columns[c].as_ref().expect("copied");
                    let (chunk, mut close) =
                        reuse::chunk(files, rg, in_files[rg.file]).map_err(failed)?;
                    if strip {
                        close.offset_index = None;
                        close.column_index = None;
                    }
                    group.append_column(&chunk, close).map_err(failed)?;
                }
                _ => {
                    for (k, w) in writers.by_ref().take(*n).enumerate() {
                        let mut chunk = w.close().map_err(failed)?;
                        if strip {
                            chunk.close_mut().offset_index = None;
                            chunk.close_mut().column_index = None;
                        }
                        let d = descr.column(leaf + k);
                        if twelve_bytes::is_twelve_bytes_leaf(&d) {
                            twelve_bytes::describe_as(chunk.close_mut(), d).map_err(failed)?;
                        }
                        chunk.append_to_row_group(&mut group).map_err(failed)?;
                    }
                }
            }
            leaf += n;
        }
        group.close().map_err(failed)?;
        Ok(())
    }
}

/// `batches` cut into runs of `rows` rows (the last may be shorter), without copying.
fn in_groups_of(batches: &[RecordBatch], rows: usize) -> Vec<Vec<RecordBatch>> {
    let mut groups: Vec<Vec<RecordBatch>> = Vec::new();
    let mut filled = rows;
    for b in batches {
        let mut at = 0;
        while at < b.num_rows() {
            if filled == rows {
                groups.push(Vec::new());
                filled = 0;
            }
            let take = (rows - filled).min(b.num_rows() - at);
            groups.last_mut().expect("one").push(b.slice(at, take));
            at += take;
            filled += take;
        }
    }
    groups
}

/// Whether the output has the source's columns, in order, read as the same Arrow types.
fn same_columns(schema: &Schema, layout: &Layout) -> bool {
    schema.fields().len() == layout.columns.len()
        && schema
            .fields()
            .iter()
            .zip(&layout.columns)
            .all(|(f, (t, dt))| f.name() == t.name() && f.data_type() == dt)
}

/// The Arrow schema to write: the source's, verbatim, when the columns are the source's.
fn arrow_schema_to_write(schema: &Schema, layout: &Layout) -> Option<KeyValue> {
    let value = layout.arrow_schema.clone()?;
    same_columns(schema, layout).then(|| KeyValue::new(ARROW_SCHEMA_META_KEY.to_string(), value))
}

/// `props` with the source's key-value metadata added.
/// Spark's schema (`org.apache.spark.sql.parquet.row.metadata`) describes every column,
/// so it is kept only while the columns are the source's.
fn carry_metadata(props: WriterProperties, layout: &Layout, schema: &Schema) -> WriterProperties {
    if layout.metadata.is_empty() {
        return props;
    }
    let same_columns = same_columns(schema, layout);
    let mut kv = props.key_value_metadata().cloned().unwrap_or_default();
    kv.extend(
        layout
            .metadata
            .iter()
            .filter(|kv| same_columns || !kv.key.starts_with("org.apache.spark.sql"))
            .cloned(),
    );
    props
        .into_builder()
        .set_key_value_metadata(Some(kv))
        .build()
}

/// Decodes `file` and checks that it holds exactly `batches`: same columns, types and
/// values in the same order (floats compare by bits, so NaN and -0.0 must survive too).
///
/// With `reuse`, the copied column chunks are instead checked to be byte for byte the
/// source chunks the rows were decoded from, described alike (type, codec, encodings,
/// sizes, statistics, page index), and read back as the same Arrow type: decoding them
/// again could only give the same values (and `batches` may leave them out).
pub fn check_decodes(
    file: &Bytes,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    reuse: Option<(&Reuse, &[SourceFile])>,
) -> Result<()> {
    let refused = |what: String| Error::ProofFailed {
        what: format!("the new file does not decode to the rows written ({what})"),
    };
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let builder = parquet::arrow::arrow_reader::ArrowReaderMetadata::load(file, options.clone())
        .and_then(|m| crate::table::reader::reading(m, options, false))
        .map(|m| ParquetRecordBatchReaderBuilder::new_with_metadata(file.clone(), m))
        .map_err(|e| refused(e.to_string()))?;
    let decoded: Vec<usize> = match reuse {
        None => (0..schema.fields().len()).collect(),
        Some((reuse, files)) => {
            reuse::check_copied(builder.metadata(), reuse, files, file).map_err(refused)?;
            (0..schema.fields().len())
                .filter(|c| reuse.columns[*c].is_none())
                .collect()
        }
    };
    compare(builder, schema, batches, &decoded).map_err(refused)
}

/// Decodes columns `decoded` of what `builder` reads and compares them, in order, with
/// those of `batches`; every row must be there, and no other.
fn compare<T: parquet::file::reader::ChunkReader + 'static>(
    builder: ParquetRecordBatchReaderBuilder<T>,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    decoded: &[usize],
) -> std::result::Result<(), String> {
    let got = crate::table::interval::logical_schema(builder.schema());
    if got.fields().len() != schema.fields().len()
        || got
            .fields()
            .iter()
            .zip(schema.fields())
            .any(|(a, b)| a.name() != b.name() || a.data_type() != b.data_type())
    {
        return Err(format!(
            "columns {:?} instead of {:?}",
            got.fields(),
            schema.fields()
        ));
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), decoded.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(8192)
        .build()
        .map_err(|e| e.to_string())?;
    let mut expected = Rows::new(batches, schema);
    for part in reader {
        let part = part.map_err(|e| e.to_string())?;
        let logical = crate::table::interval::logical_schema(part.schema_ref());
        let part =
            crate::table::interval::logical_batch(part, &logical).map_err(|e| e.to_string())?;
        if part.num_columns() != decoded.len() {
            return Err(format!(
                "{} columns decoded instead of {}",
                part.num_columns(),
                decoded.len()
            ));
        }
        expected.check(&part, decoded)?;
    }
    if expected.remaining() > 0 {
        return Err(format!("{} rows missing", expected.remaining()));
    }
    Ok(())
}

/// The written rows, consumed in order as decoded batches are compared against them.
struct Rows<'a> {
    batches: &'a [RecordBatch],
    schema: &'a SchemaRef,
    batch: usize,
    offset: usize,
}

impl<'a> Rows<'a> {
    fn new(batches: &'a [RecordBatch], schema: &'a SchemaRef) -> Self {
        Rows {
            batches,
            schema,
            batch: 0,
            offset: 0,
        }
    }

    fn remaining(&self) -> usize {
        self.batches[self.batch.min(self.batches.len())..]
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>()
            - self.offset
    }

    /// Compares `decoded` (columns `columns` of the rows) with the next rows, slice by
    /// slice across batch boundaries.
    fn check(
        &mut self,
        decoded: &RecordBatch,
        columns: &[usize],
    ) -> std::result::Result<(), String> {
        let mut at = 0;
        while at < decoded.num_rows() {
            let Some(b) = self.batches.get(self.batch) else {
                return Err(format!("{} rows too many", decoded.num_rows() - at));
            };
            let n = (b.num_rows() - self.offset).min(decoded.num_rows() - at);
            for (c, got) in columns.iter().zip(decoded.columns()) {
                let name = self.schema.field(*c).name();
                let Some(want) = column_of(b, self.schema, *c) else {
                    return Err(format!("column {name} was not kept to compare with"));
                };
                if want.slice(self.offset, n).to_data() != got.slice(at, n).to_data() {
                    return Err(format!("column {name} differs"));
                }
            }
            at += n;
            self.offset += n;
            if self.offset == b.num_rows() {
                self.batch += 1;
                self.offset = 0;
            }
        }
        Ok(())
    }
}

/// Column `c` of `schema` in `b`, which holds every column of `schema` or only some of
/// them (copied columns left out), by name.
fn column_of<'b>(b: &'b RecordBatch, schema: &SchemaRef, c: usize) -> Option<&'b ArrayRef> {
    if b.num_columns() == schema.fields().len() {
        return Some(b.column(c));
    }
    let i = b.schema().index_of(schema.field(c).name()).ok()?;
    Some(b.column(i))
}

/// Writes `file` at `path` (large files go up as multipart uploads; on local disk the
/// file and its folder are fsynced), then reads it back: it must be byte-identical.
pub async fn write(loc: &Location, path: &Path, file: Bytes) -> Result<()> {
    let failed = |e: &std::io::Error| Error::Io {
        path: path.as_ref().into(),
        error: std::io::Error::new(e.kind(), format!("writing the staged file: {e}")),
    };
    if let Some(fs) = loc.fs_path(path) {
        let path = path.clone();
        let loc = loc.clone();
        return blocking(move || {
            let io = |e| Error::Io {
                path: fs.clone(),
                error: e,
            };
            if let Some(parent) = fs.parent() {
                loc.fs.create_dir_all(parent).map_err(io)?;
            }
            {
                let f = loc
                    .fs
                    .open(&fs, crate::storage::fs::Open::Truncate)
                    .map_err(io)?;
                f.write_all(&file).map_err(io)?;
                f.sync_all().map_err(io)?;
            }
            if let Some(parent) = fs.parent() {
                loc.sync(parent)?;
            }
            // Compared a chunk at a time: a second copy of the file is never held.
            let f = loc
                .fs
                .open(&fs, crate::storage::fs::Open::Read)
                .map_err(io)?;
            let mut chunk = vec![0u8; file.len().clamp(1, 1 << 20)];
            let mut at = 0;
            loop {
                let n = f.read(&mut chunk).map_err(io)?;
                if n == 0 {
                    break;
                }
                let end = (at + n).min(file.len());
                if file[at..end] != chunk[..end - at] || at + n > file.len() {
                    return Err(differs(&path, at + n, file.len()));
                }
                at += n;
            }
            if at != file.len() {
                return Err(differs(&path, at, file.len()));
            }
            Ok(())
        })
        .await;
    }
    let expected = file.clone();
    {
        use tokio::io::AsyncWriteExt;
        let mut sink = object_store::buffered::BufWriter::new(loc.store.clone(), path.clone());
        sink.write_all(&file).await.map_err(|e| failed(&e))?;
        sink.shutdown().await.map_err(|e| failed(&e))?;
    }
    let mut read = loc
        .store
        .get(path)
        .await
        .map_err(|e| Error::storage(path, e))?
        .into_stream();
    let mut at = 0;
    while let Some(chunk) = read.try_next().await.map_err(|e| Error::storage(path, e))? {
        let end = at + chunk.len();
        if end > expected.len() || expected[at..end] != chunk[..] {
            return Err(differs(path, end, expected.len()));
        }
        at = end;
    }
    if at != expected.len() {
        return Err(differs(path, at, expected.len()));
    }
    Ok(())
}

fn differs(path: &Path, read: usize, written: usize) -> Error {
    Error::ProofFailed {
        what: format!(
            "staged file {path} reads back differently from the {written} bytes written (first {read} bytes read)"
        ),
    }
}
