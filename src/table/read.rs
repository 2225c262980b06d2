//! Reading a partition, once, for a run: its rows (checked against the stored values
//! where the reader converts them), its before-checksum, and how its files are written
//! ([`Layout`]), so the new file can be written alike and unchanged column chunks copied.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
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
    /// Each row's hash, in the order of `batches`; `None` when a file's columns had to
    /// be cast to the partition's types, so that its rows in `batches` are not the values
    /// hashed.
    pub row_hashes: Option<Vec<u128>>,
}

/// One file of a source partition, as read.
pub struct SourceFile {
    pub metadata: Arc<ParquetMetaData>,
    pub fetched: Fetched,
}

/// One file of a partition, opened: its footer, how it is read, and the second reading
/// that proves converted values ([`crate::table::faithful`]).
struct Opened {
    meta: Arc<ParquetMetaData>,
    file_schema: SchemaRef,
    faithful: Option<crate::table::faithful::Faithful>,
    reader: crate::table::reader::FileReader,
    read: ArrowReaderMetadata,
    relative: String,
}

impl Opened {
    async fn open(
        partition: &Partition,
        file: &super::DataFile,
        reader: crate::table::reader::FileReader,
    ) -> Result<Opened> {
        let unreadable = |e: &dyn std::fmt::Display| unreadable(partition, file, e);
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
        let faithful = crate::table::faithful::open(reader.clone(), &read, BATCH_ROWS)
            .map_err(|e| unreadable(&e))?;
        Ok(Opened {
            meta,
            file_schema,
            faithful,
            reader,
            read,
            relative: file.relative.clone(),
        })
    }

    /// Its rows, batch by batch.
    fn stream(&self) -> parquet::errors::Result<Stream> {
        ParquetRecordBatchStreamBuilder::new_with_metadata(self.reader.clone(), self.read.clone())
            .with_batch_size(BATCH_ROWS)
            .build()
    }
}

type Stream =
    parquet::arrow::async_reader::ParquetRecordBatchStream<crate::table::reader::FileReader>;

const BATCH_ROWS: usize = 8192;

/// The version of a file that is being read, so that all its reads are of that one: on an
/// object store its ETag, which every read must match; on local disk its identity (inode
/// and times), which must be the same once the file is read.
struct Version {
    local: Option<(std::path::PathBuf, String)>,
    e_tag: Option<String>,
}

impl Version {
    /// With `whole`, a local file small enough is read at once
    /// ([`crate::table::reader::FileReader::whole_file`]): all its rows come from that one
    /// read, and there is nothing to check.
    async fn of(loc: &Location, file: &super::DataFile, whole: bool) -> Result<Version> {
        if let Some(at) = loc.fs_path(&file.path) {
            if whole && file.size <= crate::table::reader::WHOLE_FILE_LIMIT {
                return Ok(Version {
                    local: None,
                    e_tag: None,
                });
            }
            let (fs, path) = (loc.fs.clone(), at.clone());
            let identity = crate::storage::blocking(move || {
                fs.identity(&path).map_err(|e| Error::io(&path, e))
            })
            .await?;
            return Ok(Version {
                local: Some((at, identity)),
                e_tag: None,
            });
        }
        // The version a listing just named, or the one there is now.
        if let Some(e_tag) = &file.e_tag {
            return Ok(Version {
                local: None,
                e_tag: Some(e_tag.clone()),
            });
        }
        let meta = loc
            .store
            .head(&file.path)
            .await
            .map_err(|e| Error::storage(&file.path, e))?;
        Ok(Version {
            local: None,
            e_tag: meta.e_tag,
        })
    }

    fn pin(&self, reader: crate::table::reader::FileReader) -> crate::table::reader::FileReader {
        reader.pinned(self.e_tag.clone().map(crate::table::reader::Pinned::new))
    }

    /// `Err` if the local file is no longer the one whose reading started.
    async fn still(
        &self,
        loc: &Location,
        partition: &Partition,
        file: &super::DataFile,
    ) -> Result<()> {
        let Some((at, before)) = &self.local else {
            return Ok(());
        };
        let (fs, path) = (loc.fs.clone(), at.clone());
        let now =
            crate::storage::blocking(move || fs.identity(&path).map_err(|e| Error::io(&path, e)))
                .await?;
        if &now != before {
            return Err(Error::PartitionChanged {
                partition: partition.id.to_string(),
                reason: format!("{} was rewritten while it was read", file.relative),
            });
        }
        Ok(())
    }
}

fn unreadable(partition: &Partition, file: &super::DataFile, e: &dyn std::fmt::Display) -> Error {
    Error::Unreadable {
        partition: partition.id.to_string(),
        path: file.relative.clone(),
        reason: e.to_string(),
    }
}

/// What the first file says of how files are written; the largest row group of all
/// files is added as each file is opened ([`grow_layout`]).
fn first_layout(meta: &ParquetMetaData) -> Layout {
    let mut layout = Layout {
        row_group_rows: 0,
        ..Layout::default()
    };
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
    layout
}

fn grow_layout(layout: &mut Layout, meta: &ParquetMetaData) {
    layout.row_group_rows = layout.row_group_rows.max(
        meta.row_groups()
            .iter()
            .map(|r| r.num_rows().max(0) as usize)
            .max()
            .unwrap_or(0),
    );
}

/// The partition's schema so far (from its first file), or the error that `opened`
/// holds other columns.
fn same_schema(
    partition: &Partition,
    schema: &mut Option<(SchemaRef, LogicalSchema, String)>,
    opened: &Opened,
    logical: &LogicalSchema,
) -> Result<()> {
    match schema {
        None => {
            *schema = Some((
                opened.file_schema.clone(),
                logical.clone(),
                opened.relative.clone(),
            ))
        }
        Some((_, first, first_path)) if !first.same_columns(logical) => {
            return Err(Error::MixedSchema {
                partition: partition.id.to_string(),
                first: first_path.clone(),
                first_schema: first.describe(),
                second: opened.relative.clone(),
                second_schema: logical.describe(),
            })
        }
        _ => {}
    }
    Ok(())
}

/// A batch of a file made to fit the partition's schema, checked and checksummed.
async fn next_batch(
    stream: &mut Stream,
    opened: &mut Opened,
    hasher: &mut Hasher,
    target: &SchemaRef,
    checksum_ms: &mut f64,
    (partition, file): (&Partition, &super::DataFile),
) -> Result<Option<(RecordBatch, usize)>> {
    let unreadable = |e: &dyn std::fmt::Display| unreadable(partition, file, e);
    let Some(batch) = stream.try_next().await.map_err(|e| unreadable(&e))? else {
        return Ok(None);
    };
    let batch = crate::table::reader::logical_batch(batch, &opened.file_schema)
        .map_err(|e| unreadable(&e))?;
    if let Some(f) = opened.faithful.as_mut() {
        f.check(&batch).await.map_err(|e| unreadable(&e))?;
    }
    let t = Instant::now();
    hasher.update(&batch)?;
    *checksum_ms += t.elapsed().as_secs_f64() * 1000.0;
    let rows = batch.num_rows();
    // Files may order columns differently; the transform sees the first file's order.
    let batch = if batch.schema() == *target {
        batch
    } else {
        reorder(&batch, target)?
    };
    Ok(Some((batch, rows)))
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
    let mut row_hashes = Some(Vec::new());
    for (f, file) in partition.files.iter().enumerate() {
        let fetched = Fetched::default();
        let version = Version::of(loc, file, true).await?;
        let reader = version.pin(
            crate::table::reader::FileReader::whole_file(loc, file.path.clone(), file.size)
                .keeping(fetched.clone()),
        );
        let mut opened = Opened::open(partition, file, reader).await?;
        let meta = opened.meta.clone();
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
            layout = first_layout(&meta);
        }
        grow_layout(&mut layout, &meta);
        let mut hasher = Hasher::new(&opened.file_schema, false)?.keeping_row_hashes();
        let logical = hasher.schema().clone();
        same_schema(partition, &mut schema, &opened, &logical)?;
        let target = schema.as_ref().map(|s| s.0.clone()).expect("set above");
        if !same_types(&opened.file_schema, &target) {
            row_hashes = None;
        }
        let unreadable = |e: &dyn std::fmt::Display| unreadable(partition, file, e);
        let mut stream = opened.stream().map_err(|e| unreadable(&e))?;
        while let Some((batch, rows)) = next_batch(
            &mut stream,
            &mut opened,
            &mut hasher,
            &target,
            &mut checksum_ms,
            (partition, file),
        )
        .await?
        {
            match current.as_mut() {
                Some((rg, left)) if rows <= *left => {
                    if let Some(v) = batch_row_groups.as_mut() {
                        v.push((f, *rg));
                    }
                    *left -= rows;
                    if *left == 0 {
                        current = row_groups.next();
                    }
                }
                _ => batch_row_groups = None,
            }
            batches.push(batch);
        }
        version.still(loc, partition, file).await?;
        if let (Some(all), Some(these)) = (row_hashes.as_mut(), hasher.take_row_hashes()) {
            all.extend(these);
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
        row_hashes,
    })
}

/// Whether every column of `target` has the same Arrow type in `file`: its values then
/// reach the transform exactly as they were hashed.
fn same_types(file: &Schema, target: &Schema) -> bool {
    target.fields().iter().all(|f| {
        file.field_with_name(f.name())
            .is_ok_and(|g| g.data_type() == f.data_type())
    })
}

/// A partition read batch by batch, for a partition rewritten a slice at a time: the
/// footers of all its files first (its schema and [`Layout`]), then their rows in order,
/// checked and checksummed as [`read_partition`] does. The bytes fetched are kept, to copy
/// chunks from, until [`Streaming::release`].
pub struct Streaming {
    pub schema: SchemaRef,
    pub logical: LogicalSchema,
    pub layout: Layout,
    /// Milliseconds spent on the before-checksum so far.
    pub checksum_ms: f64,
    /// Each file's metadata and the bytes fetched since the last release.
    pub files: Vec<SourceFile>,
    loc: Location,
    partition: Partition,
    waiting: std::collections::VecDeque<(usize, Opened, Version)>,
    current: Option<Current>,
    part: Part,
}

/// The file being read: its rows, its hasher, and its row groups yet to read (index,
/// rows left).
struct Current {
    file: usize,
    version: Version,
    opened: Opened,
    stream: Stream,
    hasher: Hasher,
    /// Whether its columns have the partition's types ([`Streamed::row_hashes`]).
    exact: bool,
    row_groups: std::collections::VecDeque<(usize, usize)>,
}

/// A batch of [`Streaming`], with where it comes from.
pub struct Streamed {
    pub batch: RecordBatch,
    /// The (file, row group) all its rows come from; `None` if it holds rows of two.
    pub origin: Option<(usize, usize)>,
    /// Whether it holds the last rows of its row group.
    pub ends_row_group: bool,
    /// Each row's hash, unless its file's columns were cast to the partition's types
    /// (as [`Source::row_hashes`]).
    pub row_hashes: Option<Vec<u128>>,
}

impl Streaming {
    pub async fn open(loc: &Location, partition: &Partition) -> Result<Streaming> {
        let mut schema: Option<(SchemaRef, LogicalSchema, String)> = None;
        let mut layout = Layout::default();
        let mut waiting = std::collections::VecDeque::new();
        let mut files = Vec::new();
        for (f, file) in partition.files.iter().enumerate() {
            let fetched = Fetched::default();
            let version = Version::of(loc, file, false).await?;
            let reader = version.pin(
                crate::table::reader::FileReader::new(
                    loc.store.clone(),
                    file.path.clone(),
                    file.size,
                )
                .keeping(fetched.clone()),
            );
            let opened = Opened::open(partition, file, reader).await?;
            if schema.is_none() {
                layout = first_layout(&opened.meta);
            }
            grow_layout(&mut layout, &opened.meta);
            let logical = Hasher::new(&opened.file_schema, false)?.schema().clone();
            same_schema(partition, &mut schema, &opened, &logical)?;
            files.push(SourceFile {
                metadata: opened.meta.clone(),
                fetched,
            });
            waiting.push_back((f, opened, version));
        }
        let (schema, logical) = match schema {
            Some((s, l, _)) => (s, l),
            None => (Arc::new(Schema::empty()), LogicalSchema::default()),
        };
        describe(&mut layout, &files, &schema);
        layout.row_group_rows = layout.row_group_rows.max(1024);
        let streaming = Streaming {
            schema,
            logical,
            layout,
            checksum_ms: 0.0,
            files,
            loc: loc.clone(),
            partition: partition.clone(),
            waiting,
            current: None,
            part: Part::default(),
        };
        streaming.release();
        Ok(streaming)
    }

    /// The next batch of rows, in the partition's schema; `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Streamed>> {
        loop {
            if self.current.is_none() {
                let Some((f, opened, version)) = self.waiting.pop_front() else {
                    return Ok(None);
                };
                let file = &self.partition.files[f];
                let stream = opened
                    .stream()
                    .map_err(|e| unreadable(&self.partition, file, &e))?;
                let hasher = Hasher::new(&opened.file_schema, false)?.keeping_row_hashes();
                let exact = same_types(&opened.file_schema, &self.schema);
                let row_groups = opened
                    .meta
                    .row_groups()
                    .iter()
                    .enumerate()
                    .map(|(i, rg)| (i, rg.num_rows().max(0) as usize))
                    .filter(|(_, n)| *n > 0)
                    .collect();
                self.current = Some(Current {
                    file: f,
                    version,
                    opened,
                    stream,
                    hasher,
                    exact,
                    row_groups,
                });
            }
            let c = self.current.as_mut().expect("set above");
            let file = &self.partition.files[c.file];
            let next = next_batch(
                &mut c.stream,
                &mut c.opened,
                &mut c.hasher,
                &self.schema,
                &mut self.checksum_ms,
                (&self.partition, file),
            )
            .await?;
            match next {
                Some((batch, rows)) => {
                    // Batches are matched to row groups by counting rows.
                    let (origin, ends_row_group) = match c.row_groups.front_mut() {
                        Some((rg, left)) if rows <= *left => {
                            *left -= rows;
                            let at = (Some((c.file, *rg)), *left == 0);
                            if *left == 0 {
                                c.row_groups.pop_front();
                            }
                            at
                        }
                        _ => {
                            c.row_groups.clear();
                            (None, false)
                        }
                    };
                    let hashes = c.hasher.take_row_hashes();
                    return Ok(Some(Streamed {
                        batch,
                        origin,
                        ends_row_group,
                        row_hashes: hashes.filter(|_| c.exact),
                    }));
                }
                None => {
                    let c = self.current.take().expect("set above");
                    let file = &self.partition.files[c.file];
                    c.version.still(&self.loc, &self.partition, file).await?;
                    self.part.add(&c.hasher.finish().1);
                }
            }
        }
    }

    /// Lets the bytes fetched so far go: chunks of the rows read are no longer copied.
    pub fn release(&self) {
        for f in &self.files {
            f.fetched.clear();
        }
    }

    /// The before-checksum's part of every row read.
    pub fn part(&self) -> &Part {
        &self.part
    }
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
    /// The first source file's name of its schema's root (`schema` from pyarrow and
    /// fastparquet, `spark_schema`, `duckdb_schema`...): fastparquet refuses to combine
    /// files whose roots are named differently.
    pub root_name: Option<String>,
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
            root_name: None,
        }
    }
}

/// Records how the source files describe their columns and what metadata they carry.
fn describe(layout: &mut Layout, files: &[SourceFile], schema: &Schema) {
    let Some(first) = files.first() else {
        return;
    };
    let meta = first.metadata.file_metadata();
    layout.root_name = Some(meta.schema_descr().root_schema().name().to_string());
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
