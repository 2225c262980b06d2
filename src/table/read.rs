//! Reading a partition, once, for a run: its rows (checked against the stored values
//! where the reader converts them), its before-checksum, and how its files are written
//! ([`Layout`]), so the new file can be written alike and unchanged column chunks copied.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use futures::TryStreamExt;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ARROW_SCHEMA_META_KEY;
use parquet::basic::Compression;
use parquet::file::metadata::{KeyValue, PageIndexPolicy, ParquetMetaData};
use parquet::schema::types::{ColumnPath, TypePtr};

use super::reader::Fetched;
use super::Partition;
use crate::checksum::{Hasher, LogicalSchema, Part};
use crate::error::{Error, Result};
use crate::storage::Location;

/// A partition's current rows, read once: they feed the transform and the before-checksum.
pub struct Source {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub logical: LogicalSchema,
    pub part: Part,
    /// Milliseconds of the read spent on the before-checksum.
    pub checksum_ms: f64,
    /// How the files are written (from the first row group of the first file, and the
    /// largest row group of all), to write the new file alike.
    pub layout: Layout,
    /// Each file's metadata and fetched bytes, to copy unchanged column chunks from.
    pub files: Vec<SourceFile>,
    /// The row group each batch came from, as (file, row group) in `files`; `None` if a
    /// batch held rows of two row groups.
    pub batch_row_groups: Option<Vec<(usize, usize)>>,
}

/// One file of a source partition, as read.
pub struct SourceFile {
    pub metadata: Arc<ParquetMetaData>,
    pub fetched: Fetched,
}

/// Reads every file of a partition and checksums it on the way.
pub async fn read_partition(loc: &Location, partition: &Partition) -> Result<Source> {
    let mut schema: Option<(SchemaRef, LogicalSchema, String)> = None;
    let mut batches = Vec::new();
    let mut part = Part::default();
    let mut checksum_ms = 0.0;
    let mut layout = Layout {
        row_group_rows: 0,
        ..Layout::default()
    };
    let mut files = Vec::new();
    let mut batch_row_groups = Some(Vec::new());
    for (f, file) in partition.files.iter().enumerate() {
        let unreadable = |e: &dyn std::fmt::Display| Error::Unreadable {
            partition: partition.id.to_string(),
            path: file.relative.clone(),
            reason: e.to_string(),
        };
        let fetched = Fetched::default();
        let reader =
            crate::table::reader::FileReader::whole_file(loc, file.path.clone(), file.size)
                .keeping(fetched.clone());
        // The page index too: copied column chunks keep theirs.
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let mut reader = reader;
        let loaded = ArrowReaderMetadata::load_async(&mut reader, options.clone())
            .await
            .map_err(|e| unreadable(&e))?;
        // The file's own description of its columns, which copied chunks and re-encoded
        // columns keep (the reading may describe INTERVAL leaves otherwise).
        let meta = loaded.metadata().clone();
        let read =
            crate::table::reader::reading(loaded, options, false).map_err(|e| unreadable(&e))?;
        crate::table::reader::check_int96_micros(reader.clone(), &read)
            .await
            .map_err(|e| unreadable(&e))?;
        let file_schema = crate::table::reader::logical_schema(&read);
        let mut faithful = crate::table::faithful::open(reader.clone(), &read, 8192)
            .map_err(|e| unreadable(&e))?;
        let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, read);
        files.push(SourceFile {
            metadata: meta.clone(),
            fetched,
        });
        // Batches are matched to row groups by counting rows.
        let mut row_groups = meta
            .row_groups()
            .iter()
            .enumerate()
            .map(|(i, rg)| (i, rg.num_rows().max(0) as usize))
            .filter(|(_, n)| *n > 0);
        let mut current = row_groups.next();
        if schema.is_none() {
            if let Some(rg) = meta.row_groups().first() {
                if let Some(col) = rg.columns().first() {
                    layout.codec = col.compression();
                    layout.page_index = col.column_index_offset().is_some();
                }
                layout.dictionary = rg
                    .columns()
                    .iter()
                    .map(|c| {
                        let dict = c.encodings().any(|e| {
                            matches!(
                                e,
                                parquet::basic::Encoding::RLE_DICTIONARY
                                    | parquet::basic::Encoding::PLAIN_DICTIONARY
                            )
                        });
                        (c.column_path().clone(), dict)
                    })
                    .collect();
            }
        }
        layout.row_group_rows = layout.row_group_rows.max(
            meta.row_groups()
                .iter()
                .map(|r| r.num_rows().max(0) as usize)
                .max()
                .unwrap_or(0),
        );
        let mut hasher = Hasher::new(&file_schema, false)?;
        match &schema {
            None => {
                schema = Some((
                    file_schema.clone(),
                    hasher.schema().clone(),
                    file.relative.clone(),
                ))
            }
            Some((_, first, first_path)) if !first.same_columns(hasher.schema()) => {
                return Err(Error::MixedSchema {
                    partition: partition.id.to_string(),
                    first: first_path.clone(),
                    first_schema: first.describe(),
                    second: file.relative.clone(),
                    second_schema: hasher.schema().describe(),
                })
            }
            _ => {}
        }
        let target = schema.as_ref().map(|s| s.0.clone()).expect("set above");
        let mut stream = builder
            .with_batch_size(8192)
            .build()
            .map_err(|e| unreadable(&e))?;
        while let Some(batch) = stream.try_next().await.map_err(|e| unreadable(&e))? {
            let batch = crate::table::reader::logical_batch(batch, &file_schema)
                .map_err(|e| unreadable(&e))?;
            if let Some(f) = faithful.as_mut() {
                f.check(&batch).await.map_err(|e| unreadable(&e))?;
            }
            let t = Instant::now();
            hasher.update(&batch)?;
            checksum_ms += t.elapsed().as_secs_f64() * 1000.0;
            match current.as_mut() {
                Some((rg, left)) if batch.num_rows() <= *left => {
                    if let Some(v) = batch_row_groups.as_mut() {
                        v.push((f, *rg));
                    }
                    *left -= batch.num_rows();
                    if *left == 0 {
                        current = row_groups.next();
                    }
                }
                _ => batch_row_groups = None,
            }
            // Files may order columns differently; the transform sees the first file's order.
            let batch = if batch.schema() == target {
                batch
            } else {
                reorder(&batch, &target)?
            };
            batches.push(batch);
        }
        let (_, p) = hasher.finish();
        part.add(&p);
    }
    let (schema, logical) = match schema {
        Some((s, l, _)) => (s, l),
        None => (Arc::new(Schema::empty()), LogicalSchema::default()),
    };
    describe(&mut layout, &files, &schema);
    Ok(Source {
        schema,
        batches,
        logical,
        part,
        checksum_ms,
        layout: Layout {
            row_group_rows: layout.row_group_rows.max(1024),
            ..layout
        },
        files,
        batch_row_groups,
    })
}

fn reorder(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    let cols = target
        .fields()
        .iter()
        .map(|f| {
            let c = batch.column_by_name(f.name()).ok_or_else(|| {
                // The files were checked to share one logical schema first.
                Error::Internal(format!("column {} missing in a file", f.name()))
            })?;
            arrow::compute::cast(c, f.data_type()).map_err(|e| Error::Arrow {
                context: format!("casting column {} to the partition's type", f.name()),
                error: e,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(target.clone(), cols).map_err(|e| Error::Arrow {
        context: "lining up a file's columns with the partition's".into(),
        error: e,
    })
}

/// How the source partition's files were laid out, to write the new file alike.
#[derive(Debug, Clone)]
pub struct Layout {
    pub codec: Compression,
    /// The largest row group, to write similar ones.
    pub row_group_rows: usize,
    /// Columns whose first chunk was dictionary-encoded, to encode them alike (a column
    /// the source wrote plainly, like free text, is not dictionary-encoded again only to
    /// fall back to plain).
    pub dictionary: Vec<(ColumnPath, bool)>,
    /// Whether the source had a page index (per-page statistics); without one, the new
    /// file carries statistics per column chunk only, which costs less to write.
    pub page_index: bool,
    /// The first source file's Parquet type of each top-level column, with the Arrow type
    /// it was read as: a column the transform leaves that Arrow type is written with that
    /// Parquet type again (UUID stays UUID, JSON stays JSON, a time adjusted to UTC stays
    /// so), never with the one Arrow would choose.
    pub columns: Vec<(TypePtr, DataType)>,
    /// The first source file's key-value metadata other than the Arrow schema (which is
    /// written from the output): Spark's schema, GeoParquet's `geo`, a writer's own keys.
    pub metadata: Vec<KeyValue>,
    /// The first source file's Arrow schema (`ARROW:schema`), kept for a new file whose
    /// columns are the source's: it holds what the Parquet types cannot say and a reader
    /// of this crate does not apply (a zone name on seconds, pyarrow's own extension
    /// types), so the writer's engine reads the new file as it read the old.
    pub arrow_schema: Option<String>,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            codec: Compression::SNAPPY,
            row_group_rows: 1 << 20,
            dictionary: Vec::new(),
            page_index: true,
            columns: Vec::new(),
            metadata: Vec::new(),
            arrow_schema: None,
        }
    }
}

/// Records how the source files describe their columns and what metadata they carry.
fn describe(layout: &mut Layout, files: &[SourceFile], schema: &Schema) {
    let Some(first) = files.first() else {
        return;
    };
    let meta = first.metadata.file_metadata();
    layout.columns = meta
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .filter_map(|t| {
            let field = schema.field_with_name(t.name()).ok()?;
            Some((t.clone(), field.data_type().clone()))
        })
        .collect();
    layout.metadata = meta
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter(|kv| kv.key != ARROW_SCHEMA_META_KEY)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    layout.arrow_schema = meta.key_value_metadata().and_then(|kv| {
        kv.iter()
            .find(|kv| kv.key == ARROW_SCHEMA_META_KEY)
            .and_then(|kv| kv.value.clone())
    });
    for kv in layout.metadata.iter_mut().filter(|kv| kv.key == "geo") {
        kv.value = geo_of_all(files, kv.value.as_deref());
    }
}

/// GeoParquet's `geo` metadata for a file holding the rows of all `files`: the first
/// file's, with each column's bounding box widened to cover every file's (a box is a
/// bound, so one wider than the rows left is still true), or dropped where a file has
/// none.
fn geo_of_all(files: &[SourceFile], first: Option<&str>) -> Option<String> {
    let mut geo: serde_json::Value = serde_json::from_str(first?).ok()?;
    let geo_of = |f: &SourceFile| -> Option<serde_json::Value> {
        let kv = f.metadata.file_metadata().key_value_metadata()?;
        let v = kv.iter().find(|kv| kv.key == "geo")?.value.as_deref()?;
        serde_json::from_str(v).ok()
    };
    let others: Vec<Option<serde_json::Value>> = files.iter().skip(1).map(geo_of).collect();
    if let Some(columns) = geo.get_mut("columns").and_then(|c| c.as_object_mut()) {
        for (name, column) in columns.iter_mut() {
            let Some(column) = column.as_object_mut() else {
                continue;
            };
            let mut bbox: Option<Vec<f64>> = column
                .get("bbox")
                .and_then(|b| serde_json::from_value(b.clone()).ok());
            for other in &others {
                let theirs: Option<Vec<f64>> = other
                    .as_ref()
                    .and_then(|g| g.get("columns")?.get(name)?.get("bbox").cloned())
                    .and_then(|b| serde_json::from_value(b).ok());
                bbox = match (bbox, theirs) {
                    (Some(a), Some(b)) if a.len() == b.len() && a.len() % 2 == 0 => {
                        let half = a.len() / 2;
                        Some(
                            (0..a.len())
                                .map(|i| {
                                    if i < half {
                                        a[i].min(b[i])
                                    } else {
                                        a[i].max(b[i])
                                    }
                                })
                                .collect(),
                        )
                    }
                    _ => None,
                };
            }
            match bbox {
                Some(b) => {
                    column.insert("bbox".into(), serde_json::json!(b));
                }
                None => {
                    column.remove("bbox");
                }
            }
        }
    }
    serde_json::to_string(&geo).ok()
}
