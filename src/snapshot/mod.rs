//! Per-partition row counts and checksums of a table at a moment.
//!
//! Files are read in parallel straight through the Parquet reader (`jobs` decoded at once,
//! as many again fetched meanwhile); each file gives a checksum [`Part`], and a partition
//! is the sum of its files' parts.
//! All files of a partition must have the same logical schema.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use serde::{Deserialize, Serialize};

use crate::checksum::{self, Hasher, LogicalSchema, Part};
use crate::error::{Error, Result};
use crate::storage::Location;
use crate::table::reader::Pinned;
use crate::table::{DataFile, Partition, PartitionId, PartitionKey, Table};

pub mod cache;

pub use cache::{Cache, CacheReport};

/// What a snapshot file's `format` says.
pub const FORMAT: &str = "backfill-snapshot";

/// A snapshot, as written by `snapshot --out` and read by `diff` and `verify --against`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Always [`FORMAT`].
    pub format: String,
    /// The snapshot file's version.
    pub version: u32,
    /// The checksum version of every checksum in it.
    pub checksum_version: u32,
    /// The table, as the user named it.
    pub table: String,
    /// When it was taken (RFC 3339).
    pub taken_at: String,
    /// The partition keys and their types.
    pub keys: Vec<PartitionKey>,
    /// Each partition, in table order.
    pub partitions: Vec<PartitionSnapshot>,
    /// Parquet files outside the `key=value` layout, never read.
    #[serde(default)]
    pub outside_layout: Vec<String>,
    /// Totals over the partitions.
    pub totals: Totals,
    /// How many files were read and how many came from the checksum cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheReport>,
}

/// A snapshot's totals.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Totals {
    /// Partitions.
    pub partitions: usize,
    /// Rows.
    pub rows: u64,
    /// Data files.
    pub files: usize,
    /// Bytes of the data files.
    pub bytes: u64,
}

/// One partition in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartitionSnapshot {
    /// The partition.
    pub partition: PartitionId,
    /// Its values by key, typed: dates as `YYYY-MM-DD`, ints as numbers, NULL as null.
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Rows.
    pub rows: u64,
    /// The checksum (64 hex digits), as docs/CHECKSUM.md defines it.
    pub checksum: String,
    /// Data files.
    pub files: usize,
    /// Bytes of the data files.
    pub bytes: u64,
    /// `name:type, ...` in checksum order.
    pub schema: String,
    /// Each column's checksum (with `--columns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<BTreeMap<String, ColumnSnapshot>>,
    /// A column of this partition hashes differently under checksum v1 (a Decimal256 of
    /// precision <= 38), so its checksum cannot be compared with a v1 snapshot's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub differs_in_v1: bool,
}

/// One column's checksum.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnSnapshot {
    /// The column's logical type (docs/CHECKSUM.md).
    #[serde(rename = "type")]
    pub logical_type: String,
    /// The checksum (64 hex digits).
    pub checksum: String,
}

/// Called as each file finishes: its bytes, and whether its part came from the checksum
/// cache (not read).
pub type Progress = Arc<dyn Fn(u64, bool) + Send + Sync>;

/// How to read files for a snapshot.
#[derive(Clone)]
pub struct ScanOptions {
    /// Also compute per-column checksums.
    pub columns: bool,
    /// Files decoded at once; as many more are fetched from storage meanwhile.
    pub jobs: usize,
    /// Called as files finish.
    pub progress: Option<Progress>,
    /// The checksum version computed: [`checksum::VERSION`], or 1 to compare with
    /// snapshots taken before it.
    pub checksum_version: u32,
    /// File contributions to reuse and to record ([`cache`]); `None` reads every file.
    pub cache: Option<Arc<Cache>>,
    /// Read every file even where the cache has it, and compare with the cache
    /// (`verify --deep`).
    pub deep: bool,
    /// Read only footers (or the cache): rows, schemas and column types, no checksums
    /// (`verify --footers-only`). The parts' sums are then 0.
    pub footers_only: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            columns: false,
            jobs: default_jobs(),
            progress: None,
            checksum_version: checksum::VERSION,
            cache: None,
            deep: false,
            footers_only: false,
        }
    }
}

/// Files decoded at once by default (and partitions rewritten at once by `run`): the
/// number of cores.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// What reading one file gave.
#[derive(Debug, Clone)]
pub struct FileScan {
    /// The file's logical schema (shared by the scans of files alike).
    pub schema: Arc<LogicalSchema>,
    /// Its part of the partition's checksum.
    pub part: Part,
    /// Whether checksum v1 would hash it differently.
    pub differs_in_v1: bool,
    /// Each top-level column's type as readers of the file see it: its Arrow type, and
    /// the Parquet annotation of a primitive column that the Arrow type does not say
    /// (`Uuid`, `Json`...: [`annotation`]), which the logical type of the checksum leaves
    /// out.
    pub column_types: Arc<Vec<(String, String)>>,
}

/// What a file's metadata says beside its rows: whether checksum v1 would hash it
/// differently, and each column's type as readers see it.
fn facts(
    meta: &parquet::arrow::arrow_reader::ArrowReaderMetadata,
    logical: &arrow::datatypes::SchemaRef,
    v1: bool,
) -> (bool, Vec<(String, String)>) {
    let descr = meta.metadata().file_metadata().schema_descr();
    let differs_in_v1 = !v1
        && (logical
            .fields()
            .iter()
            .any(|f| checksum::encode::differs_in_v1(f.data_type()))
        // v1 read INT96 as nanoseconds, which wrap outside 1677-2262, and INTERVAL
        // without its months.
        || crate::table::interval::any_raw(meta.schema())
        || descr
            .columns()
            .iter()
            .any(|c| c.physical_type() == parquet::basic::Type::INT96));
    let roots = descr.root_schema();
    let column_types = logical
        .fields()
        .iter()
        .map(|f| {
            let annotation = roots
                .get_fields()
                .iter()
                .find(|t| t.name() == f.name() && t.is_primitive())
                .and_then(|t| annotation(t.get_basic_info()))
                .map(|lt| format!(" ({lt:?})"))
                .unwrap_or_default();
            let shown = match f.data_type() {
                arrow::datatypes::DataType::Utf8View => "Utf8".to_string(),
                arrow::datatypes::DataType::BinaryView => "Binary".to_string(),
                dt => dt.to_string(),
            };
            (f.name().clone(), format!("{shown}{annotation}"))
        })
        .collect();
    (differs_in_v1, column_types)
}

/// The annotation of a primitive column that its Arrow type does not say: a UUID is a
/// 16-byte binary to Arrow, JSON a string. Those Arrow types do say (a string, an
/// integer's width, a timestamp's unit and zone, a decimal) are left out, and so is
/// whether a writer gave them as logical or as legacy converted types: fastparquet's
/// `UTF8` string and pyarrow's `String` are one type to every reader.
fn annotation(info: &parquet::schema::types::BasicTypeInfo) -> Option<parquet::basic::LogicalType> {
    use parquet::basic::{ConvertedType, LogicalType};
    match info.logical_type_ref() {
        Some(
            lt @ (LogicalType::Uuid
            | LogicalType::Json
            | LogicalType::Bson
            | LogicalType::Enum
            | LogicalType::Unknown
            | LogicalType::Variant { .. }
            | LogicalType::Geometry { .. }
            | LogicalType::Geography { .. }),
        ) => Some(lt.clone()),
        Some(_) => None,
        None => match info.converted_type() {
            ConvertedType::JSON => Some(LogicalType::Json),
            ConvertedType::BSON => Some(LogicalType::Bson),
            ConvertedType::ENUM => Some(LogicalType::Enum),
            _ => None,
        },
    }
}

/// The scan a snapshot would make of a file a run just wrote (`file`, whose rows hash to
/// `schema` and `part`: the run's after-checksum), from its footer alone.
pub fn scan_of_written(file: &bytes::Bytes, schema: LogicalSchema, part: Part) -> Result<FileScan> {
    let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new();
    let meta = parquet::arrow::arrow_reader::ArrowReaderMetadata::load(file, options.clone())
        .map_err(|e| Error::Parquet {
            context: "reading the footer of the new file".into(),
            error: e,
        })?;
    let meta = crate::table::reader::reading(meta, options, true).map_err(|e| Error::Parquet {
        context: "reading the footer of the new file".into(),
        error: e,
    })?;
    let logical = crate::table::reader::logical_schema(&meta);
    let (differs_in_v1, column_types) = facts(&meta, &logical, false);
    Ok(FileScan {
        schema: Arc::new(schema),
        part,
        differs_in_v1,
        column_types: Arc::new(column_types),
    })
}

/// What a file's footer says of it: rows, schema and column types, and no checksum (its
/// part's sum is 0).
pub async fn scan_footer(loc: &Location, file: &DataFile, version: u32) -> Result<FileScan> {
    let mut reader =
        crate::table::reader::FileReader::new(loc.store.clone(), file.path.clone(), file.size);
    let meta = if version == 1 {
        crate::table::reader::open_as_v1(&mut reader).await
    } else {
        crate::table::reader::open_with_views(&mut reader).await
    }
    .map_err(|e| reason(file, e))?;
    let logical = crate::table::reader::logical_schema(&meta);
    let schema = LogicalSchema::of(&logical)?;
    let (differs_in_v1, column_types) = facts(&meta, &logical, version == 1);
    Ok(FileScan {
        schema: Arc::new(schema),
        part: Part {
            rows: meta.metadata().file_metadata().num_rows().max(0) as u64,
            ..Part::default()
        },
        differs_in_v1,
        column_types: Arc::new(column_types),
    })
}

/// [`crate::table::reader::WHOLE_FILE_LIMIT`] in MiB.
const WHOLE_FILE_MIB: usize = (crate::table::reader::WHOLE_FILE_LIMIT >> 20) as usize;

/// Rows per batch read.
const BATCH_ROWS: usize = 8192;

/// Reads one Parquet file and checksums its rows as checksum `version` says. A file read
/// whole (local, or an object up to 8 MiB) is fetched first; with `decoding`, it is then
/// decoded holding one of its permits.
pub async fn scan_file(
    loc: &Location,
    file: &DataFile,
    columns: bool,
    version: u32,
    pinned: Option<Pinned>,
    decoding: Option<&tokio::sync::Semaphore>,
) -> Result<FileScan> {
    let mut reader =
        crate::table::reader::FileReader::whole_file(loc, file.path.clone(), file.size)
            .pinned(pinned);
    reader.prefetch().await.map_err(|e| reason(file, e))?;
    let _decoding = match decoding {
        Some(s) => Some(s.acquire().await.expect("the semaphore is never closed")),
        None => None,
    };
    let v1 = version == 1;
    let builder = if v1 {
        crate::table::reader::open_as_v1(&mut reader).await
    } else {
        crate::table::reader::open_with_views(&mut reader).await
    }
    .map_err(|e| reason(file, e))?;
    let mut faithful = None;
    if !v1 {
        crate::table::reader::check_int96_micros(reader.clone(), &builder)
            .await
            .map_err(|e| reason(file, e))?;
        faithful = crate::table::faithful::open(reader.clone(), &builder, BATCH_ROWS)
            .map_err(|e| reason(file, e))?;
    }
    let logical = crate::table::reader::logical_schema(&builder);
    let (differs_in_v1, column_types) = facts(&builder, &logical, v1);
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, builder);
    let mut hasher = Hasher::for_version(&logical, columns, version)?;
    let mut stream = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| reason(file, e))?;
    while let Some(batch) = stream.try_next().await.map_err(|e| reason(file, e))? {
        let batch =
            crate::table::reader::logical_batch(batch, &logical).map_err(|e| reason(file, e))?;
        if let Some(f) = faithful.as_mut() {
            f.check(&batch).await.map_err(|e| reason(file, e))?;
        }
        hasher.update(&batch)?;
    }
    let (schema, part) = hasher.finish();
    Ok(FileScan {
        schema: Arc::new(schema),
        part,
        differs_in_v1,
        column_types: Arc::new(column_types),
    })
}

fn reason(file: &DataFile, e: impl std::fmt::Display) -> Error {
    Error::Unreadable {
        partition: String::new(),
        path: file.relative.clone(),
        reason: e.to_string(),
    }
}

/// A file's error, naming the partition it is in.
fn in_partition(e: Error, id: &PartitionId) -> Error {
    match e {
        Error::Unreadable { path, reason, .. } => Error::Unreadable {
            partition: id.to_string(),
            path,
            reason,
        },
        e => e,
    }
}

/// Every file of the given partitions, read in parallel; results in input order.
pub async fn scan_files(
    table: &Table,
    partitions: &[&Partition],
    options: &ScanOptions,
) -> Vec<Vec<Result<FileScan>>> {
    let units: Vec<(usize, usize, DataFile, PartitionId)> = partitions
        .iter()
        .enumerate()
        .flat_map(|(p, part)| {
            part.files
                .iter()
                .enumerate()
                .map(move |(f, file)| (p, f, file.clone(), part.id.clone()))
        })
        .collect();
    let loc = table.location.clone();
    let columns = options.columns;
    let version = options.checksum_version;
    let progress = options.progress.clone();
    let deep = options.deep;
    let footers_only = options.footers_only;
    // `jobs` files are decoded at once (the cores' work) while as many more are fetched:
    // without that, by day (2,526 files of 90 KB) a core waited on each file's read, and
    // two cores were 173 % busy. Files fetched ahead hold their bytes, so those in flight
    // hold at most what `jobs` files read whole could before (`WHOLE_FILE_LIMIT` each).
    let jobs = options.jobs.max(1);
    let decoding = Arc::new(tokio::sync::Semaphore::new(jobs));
    let held = Arc::new(tokio::sync::Semaphore::new(jobs * WHOLE_FILE_MIB));
    let results: Vec<(usize, usize, Result<FileScan>)> = futures::stream::iter(units)
        .map(|(p, f, file, id)| {
            let loc = loc.clone();
            let progress = progress.clone();
            let cache = options.cache.clone();
            let (decoding, held) = (decoding.clone(), held.clone());
            async move {
                let size = file.size;
                let key = match &cache {
                    Some(c) => c.key_of(&loc, &file).await,
                    None => None,
                };
                if let (Some(c), Some(k), false) = (&cache, &key, deep) {
                    if let Some(scan) = c.lookup(&file.relative, k, version, columns) {
                        if let Some(progress) = &progress {
                            progress(size, true);
                        }
                        return (p, f, Ok(scan));
                    }
                }
                if footers_only {
                    let scan = scan_footer(&loc, &file, version)
                        .await
                        .map_err(|e| in_partition(e, &id));
                    if let Some(progress) = &progress {
                        progress(size, false);
                    }
                    return (p, f, scan);
                }
                let relative = file.relative.clone();
                // On an object store a file read for the cache is pinned to the version
                // the listing named (`If-Match` on its ETag): what is read is that version,
                // with no request to ask again afterwards. A file replaced since is read
                // again as it is now, and not cached.
                let pin = match (&cache, &key, &file.e_tag) {
                    (Some(_), Some(_), Some(e)) if !loc.is_local() => Some(Pinned::new(e.clone())),
                    _ => None,
                };
                let mib = file
                    .size
                    .div_ceil(1024 * 1024)
                    .clamp(1, WHOLE_FILE_MIB as u64);
                let _held = held
                    .acquire_many(mib as u32)
                    .await
                    .expect("the semaphore is never closed");
                let read = |pin: Option<Pinned>| {
                    let (loc, file, id) = (loc.clone(), file.clone(), id.clone());
                    let decoding = decoding.clone();
                    let handle = tokio::spawn(async move {
                        scan_file(&loc, &file, columns, version, pin, Some(&decoding))
                            .await
                            .map_err(|e| in_partition(e, &id))
                    });
                    async move {
                        handle.await.unwrap_or_else(|e| {
                            Err(Error::Internal(format!(
                                "a task reading a file failed: {e}"
                            )))
                        })
                    }
                };
                let mut result = read(pin.clone()).await;
                let replaced = pin.as_ref().is_some_and(Pinned::changed);
                if replaced {
                    result = read(None).await;
                }
                if let (Some(c), Ok(scan)) = (&cache, &result) {
                    // Recorded only if the file was the same version when it was listed
                    // and when it was read: one replaced meanwhile is not cached. Local
                    // files are looked at again after the read.
                    let same = match (&key, &pin) {
                        (Some(_), Some(_)) => !replaced,
                        (Some(k), None) => c.key_now(&loc, &file).await.as_ref() == Some(k),
                        (None, _) => false,
                    };
                    match (key, same) {
                        (Some(k), true) => {
                            if deep {
                                c.compare(&relative, &k, version, scan);
                            }
                            c.record(&relative, k, version, scan, columns);
                        }
                        _ => c.count_read(),
                    }
                }
                if let Some(progress) = &progress {
                    progress(size, false);
                }
                (p, f, result)
            }
        })
        .buffer_unordered(2 * jobs)
        .collect()
        .await;
    let mut out: Vec<Vec<Option<Result<FileScan>>>> = partitions
        .iter()
        .map(|p| (0..p.files.len()).map(|_| None).collect())
        .collect();
    for (p, f, r) in results {
        out[p][f] = Some(r);
    }
    out.into_iter()
        .map(|v| {
            v.into_iter()
                .map(|r| r.expect("every file scanned"))
                .collect()
        })
        .collect()
}

/// Combines the file scans of one partition; fails on unreadable files or mixed schemas.
/// What the partitions of one table mostly share, worked out once: their schema's
/// description and its share of the checksum.
#[derive(Default)]
pub struct Shared {
    last: Option<(Arc<LogicalSchema>, String, checksum::Digester)>,
}

impl Shared {
    fn of(&mut self, schema: &Arc<LogicalSchema>) -> (&str, &checksum::Digester) {
        let same = self
            .last
            .as_ref()
            .is_some_and(|(s, _, _)| Arc::ptr_eq(s, schema) || **s == **schema);
        if !same {
            self.last = Some((
                schema.clone(),
                schema.describe(),
                checksum::Digester::new(schema),
            ));
        }
        let (_, describe, digester) = self.last.as_ref().expect("set above");
        (describe, digester)
    }
}

/// A partition's snapshot from the scans of its files; `shared` carries what partitions
/// of the same schema share from one call to the next.
pub fn combine(
    partition: &Partition,
    keys: &[PartitionKey],
    scans: Vec<Result<FileScan>>,
    columns: bool,
    shared: &mut Shared,
) -> Result<PartitionSnapshot> {
    let mut schema: Option<(Arc<LogicalSchema>, &str)> = None;
    let mut total = Part::default();
    let mut differs_in_v1 = false;
    for (scan, file) in scans.into_iter().zip(&partition.files) {
        let scan = scan?;
        differs_in_v1 |= scan.differs_in_v1;
        match &schema {
            None => schema = Some((scan.schema.clone(), &file.relative)),
            Some((first, first_path)) if !first.same_columns(&scan.schema) => {
                return Err(Error::MixedSchema {
                    partition: partition.id.to_string(),
                    first: first_path.to_string(),
                    first_schema: first.describe(),
                    second: file.relative.clone(),
                    second_schema: scan.schema.describe(),
                });
            }
            _ => {}
        }
        total.add(&scan.part);
    }
    let schema = schema.map(|s| s.0).unwrap_or_default();
    let (describe, digester) = shared.of(&schema);
    let (describe, checksum) = (describe.to_string(), digester.digest(&total));
    let columns = columns.then(|| {
        schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let sum = total.columns.get(i).copied().unwrap_or(0);
                let checksum = checksum::column_digest(c, total.rows, sum);
                (
                    c.name.clone(),
                    ColumnSnapshot {
                        logical_type: c.logical_type.clone(),
                        checksum,
                    },
                )
            })
            .collect()
    });
    Ok(PartitionSnapshot {
        partition: partition.id.clone(),
        values: partition.values_json(keys),
        rows: total.rows,
        checksum,
        files: partition.files.len(),
        bytes: partition.bytes(),
        schema: describe,
        columns,
        differs_in_v1,
    })
}

/// Snapshots the partitions of `table` (narrowed to a selection by [`Table::select`]).
pub async fn snapshot(table: &Table, options: &ScanOptions) -> Result<Snapshot> {
    let partitions: Vec<&Partition> = table.partitions.iter().collect();
    let scans = scan_files(table, &partitions, options).await;
    let mut out = Vec::with_capacity(partitions.len());
    let mut shared = Shared::default();
    for (p, s) in partitions.iter().zip(scans) {
        out.push(combine(p, &table.keys, s, options.columns, &mut shared)?);
    }
    let mut snap = Snapshot::new(table, out);
    snap.checksum_version = options.checksum_version;
    Ok(snap)
}

impl Snapshot {
    /// A snapshot of `partitions` of `table`, taken now.
    pub fn new(table: &Table, partitions: Vec<PartitionSnapshot>) -> Snapshot {
        let totals = Totals {
            partitions: partitions.len(),
            rows: partitions.iter().map(|p| p.rows).sum(),
            files: partitions.iter().map(|p| p.files).sum(),
            bytes: partitions.iter().map(|p| p.bytes).sum(),
        };
        Snapshot {
            format: FORMAT.into(),
            version: 1,
            checksum_version: checksum::VERSION,
            table: table.location.display.clone(),
            taken_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            keys: table.keys.clone(),
            partitions,
            outside_layout: table.outside_layout.clone(),
            totals,
            cache: None,
        }
    }

    /// Keeps only the partitions `selection` picks (an empty result is not an error here).
    pub fn retain_selected(&mut self, selection: &crate::selection::Selection) -> Result<()> {
        if selection.is_everything() {
            return Ok(());
        }
        let typed: Vec<Vec<crate::table::Typed>> = self
            .partitions
            .iter()
            .map(|p| {
                self.keys
                    .iter()
                    .map(|k| {
                        let v = p
                            .values
                            .get(&k.name)
                            .cloned()
                            .unwrap_or(serde_json::Value::Null);
                        let text = match v {
                            serde_json::Value::Null => None,
                            serde_json::Value::String(s) => Some(s),
                            other => Some(other.to_string()),
                        };
                        crate::table::Typed::read(text.as_deref(), k.key_type)
                            .unwrap_or(crate::table::Typed::Null)
                    })
                    .collect()
            })
            .collect();
        let candidates: Vec<crate::selection::Candidate> = self
            .partitions
            .iter()
            .zip(&typed)
            .map(|(p, t)| crate::selection::Candidate {
                id: &p.partition,
                typed: t,
            })
            .collect();
        let keep = match selection.apply(&self.keys, &candidates) {
            Ok(keep) => keep,
            Err(Error::EmptySelection(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        let keep: std::collections::HashSet<usize> = keep.into_iter().collect();
        let mut i = 0;
        self.partitions.retain(|_| {
            i += 1;
            keep.contains(&(i - 1))
        });
        self.totals = Totals {
            partitions: self.partitions.len(),
            rows: self.partitions.iter().map(|p| p.rows).sum(),
            files: self.partitions.iter().map(|p| p.files).sum(),
            bytes: self.partitions.iter().map(|p| p.bytes).sum(),
        };
        Ok(())
    }

    /// Whether every partition has per-column checksums.
    pub fn has_columns(&self) -> bool {
        !self.partitions.is_empty() && self.partitions.iter().all(|p| p.columns.is_some())
    }

    /// Reads a snapshot file; says so if the file is not one.
    pub fn read(path: &std::path::Path) -> Result<Snapshot> {
        let bytes = crate::storage::fs::real()
            .read(path)
            .map_err(|e| Error::Io {
                path: path.into(),
                error: e,
            })?;
        let text = String::from_utf8_lossy(&bytes);
        let snap: Snapshot = serde_json::from_str(&text).map_err(|e| Error::Snapshot {
            path: path.into(),
            reason: format!("not a backfill snapshot ({e}); write one with `backfill snapshot TABLE --out FILE`"),
        })?;
        if snap.format != FORMAT {
            return Err(Error::Snapshot {
                path: path.into(),
                reason: format!("format is {:?}, not {FORMAT:?}", snap.format),
            });
        }
        if snap.checksum_version != checksum::VERSION && snap.checksum_version != 1 {
            return Err(Error::Snapshot {
                path: path.into(),
                reason: format!(
                    "its checksums follow spec v{}, this backfill computes v{}; take the snapshot again",
                    snap.checksum_version,
                    checksum::VERSION
                ),
            });
        }
        Ok(snap)
    }

    /// Whether `self` and `other` can be compared checksum for checksum: same checksum
    /// version, or v1 against a later one whose partitions hash as v1 would (v2 changed
    /// only Decimal256 columns of precision <= 38).
    pub fn comparable(&self, other: &Snapshot) -> std::result::Result<(), String> {
        if self.checksum_version == other.checksum_version {
            return Ok(());
        }
        let (old, new) = if self.checksum_version < other.checksum_version {
            (self, other)
        } else {
            (other, self)
        };
        if old.checksum_version == 1 {
            if let Some(p) = new.partitions.iter().find(|p| p.differs_in_v1) {
                return Err(format!(
                    "one side's checksums follow spec v1 and the other's v{}, and partition {} has a column v1 hashed differently (a decimal256 of precision <= 38, an INT96 or an INTERVAL: docs/CHECKSUM.md, \"Versioning\"); compare the v1 file with the table itself (it is then hashed as v1), or with `backfill snapshot TABLE --checksum-version 1 --out FILE`",
                    new.checksum_version, p.partition
                ));
            }
            return Ok(());
        }
        Err(format!(
            "one side's checksums follow spec v{} and the other's v{}; take both with one backfill",
            old.checksum_version, new.checksum_version
        ))
    }

    /// Writes the snapshot as JSON to `path` (a file `diff` and `verify --against` read).
    pub fn write(&self, path: &std::path::Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("snapshot serialises");
        crate::storage::fs::real()
            .write(path, (text + "\n").as_bytes())
            .map_err(|e| Error::Io {
                path: path.into(),
                error: e,
            })
    }
}
