//! The checksum cache: each data file's contribution to its partition's checksum (rows,
//! its part of the sum, logical schema, per-column parts), kept beside the table so that
//! checking it again reads only what changed.
//!
//! - Where: the table's work area (`.backfill/<table>/cache/`, on the table's own storage,
//!   so every machine shares it), or `--cache-dir`.
//! - An entry is used only for a file whose key is identical to the one it was made for:
//!   its path, size and version (object stores: the listing's ETag and version; local
//!   disk: inode, modification and change times to the nanosecond). Anything else is read.
//! - Entries are written as segments: each a new object with a unique name, created only
//!   if absent, so concurrent commands never write one object and cannot damage each
//!   other's. Later segments add entries; none is ever edited.
//! - A segment that does not read (damaged, another table's, a newer format) is skipped
//!   with a note, and the files it covered are read again: the cache can make a command
//!   faster, never its checksums different, and never makes it fail.
//! - Its size is bounded: once there are more than [`MAX_SEGMENTS`] segments, or when
//!   asked (`verify --prune-cache`), the entries of files still in the table are written
//!   to one segment and the others are deleted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use object_store::{path::Path, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::FileScan;
use crate::checksum::{LogicalColumn, LogicalSchema, Part};
use crate::storage::Location;
use crate::table::{DataFile, Table};

/// The format of a segment this code writes and reads. Format 1 wrote column types with
/// every Parquet annotation (`Utf8 (String)`), which this code would take for other types
/// than its own (`Utf8`): its segments are not read, and their files are read again.
pub const FORMAT: u32 = 2;

/// Segments kept before they are merged into one.
pub const MAX_SEGMENTS: usize = 16;

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileKey {
    /// Bytes.
    pub size: u64,
    /// Object stores: `etag:version`; local disk: `inode:mtime` (nanoseconds).
    pub tag: String,
    /// Local disk: the change time, which a writer that keeps the modification time
    /// still moves. Part of the key, but not of what `verify --deep` calls the same
    /// version (a file whose size, inode and modification time are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<String>,
}

impl FileKey {
    /// The key of a local file of `size` bytes from its identity (`inode:mtime:ctime`,
    /// as [`crate::storage::fs::Fs::identity`] gives it).
    fn local(size: u64, identity: &str) -> Option<FileKey> {
        let (version, changed) = identity.rsplit_once(':')?;
        Some(FileKey {
            size,
            tag: version.to_string(),
            changed: Some(changed.to_string()),
        })
    }
}

/// What the files of a table mostly share: their logical schema and column types. A
/// segment stores each shape once and its entries point at it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shape {
    /// `(name, logical type)` in checksum order.
    pub schema: Vec<(String, String)>,
    /// Each top-level column's type as readers see it.
    pub column_types: Vec<(String, String)>,
    /// Whether checksum v1 would hash these columns differently.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub differs_in_v1: bool,
    /// The schema and column types as scans hold them, made once per shape: a snapshot
    /// of a table whose files are all cached otherwise spends its time copying them.
    #[serde(skip)]
    scanned: std::sync::OnceLock<Scanned>,
}

/// A shape's schema and column types as [`FileScan`]s share them.
type Scanned = (Arc<LogicalSchema>, Arc<Vec<(String, String)>>);

impl PartialEq for Shape {
    fn eq(&self, other: &Shape) -> bool {
        (&self.schema, &self.column_types, self.differs_in_v1)
            == (&other.schema, &other.column_types, other.differs_in_v1)
    }
}

impl Eq for Shape {}

impl std::hash::Hash for Shape {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.schema, &self.column_types, self.differs_in_v1).hash(state);
    }
}

impl Shape {
    fn scanned(&self) -> &Scanned {
        self.scanned.get_or_init(|| {
            let schema = LogicalSchema::from_columns(
                self.schema
                    .iter()
                    .map(|(name, t)| LogicalColumn {
                        name: name.clone(),
                        logical_type: t.clone(),
                    })
                    .collect(),
            );
            (Arc::new(schema), Arc::new(self.column_types.clone()))
        })
    }
}

/// One file's contribution, as cached.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Relative to the table root.
    pub path: String,
    /// The file's key when the entry was made.
    pub key: FileKey,
    /// The checksum version of `sum`.
    pub checksum_version: u32,
    /// Rows.
    pub rows: u64,
    /// The sum of the rows' hashes, 32 hex digits.
    pub sum: String,
    /// Per-column sums, when they were computed.
    pub columns: Option<Vec<String>>,
    /// Schema and column types, shared between entries.
    pub shape: Arc<Shape>,
}

/// An entry as a segment stores it: its shape by index.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    path: String,
    key: FileKey,
    checksum_version: u32,
    rows: u64,
    sum: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    columns: Option<Vec<String>>,
    shape: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Segment {
    format: u32,
    table: String,
    shapes: Vec<Shape>,
    entries: Vec<Stored>,
}

/// What the cache did for one command, for its report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CacheReport {
    /// Where the cache is, as the user would write it.
    pub location: String,
    /// Files read in full.
    pub files_read: usize,
    /// Files whose contribution came from the cache.
    pub files_cached: usize,
    /// Entries and bytes in the cache after this command.
    pub entries: usize,
    /// Bytes of the cache's segments.
    pub bytes: u64,
    /// Why the cache was skipped or an entry ignored (never an error).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The cache of one table, loaded once per command.
pub struct Cache {
    store: Location,
    dir: Path,
    table: String,
    entries: HashMap<String, Vec<Entry>>,
    segments: Vec<Path>,
    bytes: u64,
    notes: Mutex<Vec<String>>,
    new: Mutex<Vec<Entry>>,
    read: AtomicUsize,
    cached: AtomicUsize,
    /// `verify --deep`: files whose content differs from their entry of the same version.
    changed_in_place: Mutex<Vec<String>>,
    last_shape: Mutex<Option<Arc<Shape>>>,
}

impl Cache {
    /// Loads the cache of the table at `table` from `dir` (default: its work area). Never
    /// fails: what cannot be read is noted and left out.
    pub async fn open(table: &Location, dir: Option<&Location>) -> Cache {
        let mut cache = Cache::for_writing(table);
        if let Some(d) = dir {
            // A shared cache folder holds each table's cache under the hash of its name.
            cache.store = d.clone();
            cache.dir = d.root.clone().join(table_hash(&table.identity()));
        }
        let listed: Result<Vec<object_store::ObjectMeta>, _> =
            cache.store.store.list(Some(&cache.dir)).try_collect().await;
        let mut metas = match listed {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => {
                cache.note(format!(
                    "the checksum cache could not be listed ({e}); every file is read"
                ));
                return cache;
            }
        };
        metas.retain(|m| m.location.as_ref().ends_with(".json"));
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        let store = cache.store.store.clone();
        // `Err(None)`: the segment is gone (a concurrent merge deleted it).
        let loaded: Vec<(Path, u64, Result<Segment, Option<String>>)> =
            futures::stream::iter(metas)
                .map(|m| {
                    let store = store.clone();
                    async move {
                        let got = match store.get(&m.location).await {
                            Ok(g) => g.bytes().await,
                            Err(e) => Err(e),
                        };
                        let seg = match got {
                            Ok(b) => serde_json::from_slice::<Segment>(&b)
                                .map_err(|e| Some(format!("damaged ({e})"))),
                            Err(object_store::Error::NotFound { .. }) => Err(None),
                            Err(e) => Err(Some(e.to_string())),
                        };
                        (m.location, m.size, seg)
                    }
                })
                .buffered(16)
                .collect()
                .await;
        for (path, size, seg) in loaded {
            // A segment deleted by a concurrent merge is simply gone.
            let seg = match seg {
                Ok(s) => s,
                Err(None) => continue,
                Err(Some(e)) => {
                    cache.note(format!("checksum cache segment {path} ignored: {e}"));
                    continue;
                }
            };
            if seg.format != FORMAT {
                let which = if seg.format > FORMAT {
                    "newer"
                } else {
                    "older"
                };
                cache.note(format!(
                    "checksum cache segment {path} ignored: format {} is {which} than this backfill's {FORMAT}",
                    seg.format
                ));
                continue;
            }
            // Segments name their table as its identity (its absolute folder, or its URL);
            // earlier ones as the user spelled it.
            if seg.table != cache.table && seg.table != table.display {
                cache.note(format!(
                    "checksum cache segment {path} ignored: it is the cache of {}, not of {}",
                    seg.table, cache.table
                ));
                continue;
            }
            cache.bytes += size;
            cache.segments.push(path.clone());
            let shapes: Vec<Arc<Shape>> = seg.shapes.into_iter().map(Arc::new).collect();
            for s in seg.entries {
                let Some(shape) = shapes.get(s.shape) else {
                    cache.note(format!(
                        "checksum cache entry of {} in {path} ignored: damaged",
                        s.path
                    ));
                    continue;
                };
                let e = Entry {
                    path: s.path,
                    key: s.key,
                    checksum_version: s.checksum_version,
                    rows: s.rows,
                    sum: s.sum,
                    columns: s.columns,
                    shape: shape.clone(),
                };
                let v = cache.entries.entry(e.path.clone()).or_default();
                if !v.contains(&e) {
                    v.push(e);
                }
            }
        }
        cache
    }

    /// A cache that only adds entries (a run recording the files it wrote): nothing is
    /// loaded, and [`Cache::save`] writes one segment of them.
    pub fn for_writing(table: &Location) -> Cache {
        Cache {
            store: table.clone(),
            dir: table.work_root().join("cache"),
            table: table.identity(),
            entries: HashMap::new(),
            segments: Vec::new(),
            bytes: 0,
            notes: Mutex::new(Vec::new()),
            new: Mutex::new(Vec::new()),
            read: AtomicUsize::new(0),
            cached: AtomicUsize::new(0),
            changed_in_place: Mutex::new(Vec::new()),
            last_shape: Mutex::new(None),
        }
    }

    /// Records the file a run just made live at `path` (relative to the table root),
    /// whose scan is `scan`, under its key as the storage now gives it.
    pub async fn record_written(
        &self,
        table: &Location,
        relative: &str,
        size: u64,
        scan: &FileScan,
    ) {
        let file = DataFile {
            path: table.child(relative),
            relative: relative.to_string(),
            size,
            tag: None,
            e_tag: None,
        };
        if let Some(key) = self.key_now(table, &file).await {
            self.record(relative, key, crate::checksum::VERSION, scan, false);
        }
    }

    /// Writes what [`Cache::record_written`] recorded, as one segment. A cache that cannot
    /// be written is left as it was: the next snapshot reads those files.
    pub async fn save_written(&self) {
        let new = std::mem::take(&mut *self.new.lock().expect("new entries"));
        if !new.is_empty() {
            let _ = self.put(&new).await;
        }
    }

    fn note(&self, note: String) {
        self.notes.lock().expect("notes").push(note);
    }

    /// The key of `file` as the listing (or, on local disk, the file) says now; `None` if
    /// it cannot be told (then it is read, and not cached).
    pub async fn key_of(&self, table: &Location, file: &DataFile) -> Option<FileKey> {
        match &file.tag {
            Some(identity) if table.is_local() => FileKey::local(file.size, identity),
            Some(tag) => Some(FileKey {
                size: file.size,
                tag: tag.clone(),
                changed: None,
            }),
            // Not from a listing (a file a run just wrote): look at it now.
            None if table.is_local() => self.key_now(table, file).await,
            None => None,
        }
    }

    /// The key of `file` as the storage says at this moment (local disk: the inode and
    /// times; object stores: a HEAD), to tell whether it changed while it was read.
    pub async fn key_now(&self, table: &Location, file: &DataFile) -> Option<FileKey> {
        if let Some(fs) = table.fs_path(&file.path) {
            return FileKey::local(file.size, &table.fs.identity(&fs).ok()?);
        }
        let m = table.store.head(&file.path).await.ok()?;
        let tag = match (m.e_tag, m.version) {
            (None, None) => return None,
            (e, v) => format!("{}:{}", e.unwrap_or_default(), v.unwrap_or_default()),
        };
        Some(FileKey {
            size: m.size,
            tag,
            changed: None,
        })
    }

    /// The cached scan of the file at `path` with `key`, if there is one for this checksum
    /// version (with per-column sums if `columns`).
    pub fn lookup(
        &self,
        path: &str,
        key: &FileKey,
        version: u32,
        columns: bool,
    ) -> Option<FileScan> {
        let entry = self.entries.get(path)?.iter().find(|e| {
            &e.key == key && e.checksum_version == version && (!columns || e.columns.is_some())
        })?;
        match scan_of(entry, columns) {
            Some(scan) => {
                self.cached.fetch_add(1, Ordering::Relaxed);
                Some(scan)
            }
            None => {
                self.note(format!("checksum cache entry of {path} ignored: damaged"));
                None
            }
        }
    }

    /// The rows of `file` if the cache holds it in the version the listing gave (any
    /// checksum version: rows are rows).
    pub async fn rows_of(&self, table: &Location, file: &DataFile) -> Option<u64> {
        let entries = self.entries.get(&file.relative)?;
        let key = self.key_of(table, file).await?;
        entries.iter().find(|e| e.key == key).map(|e| e.rows)
    }

    /// Keeps what reading `path` gave, for the next command.
    pub fn record(&self, path: &str, key: FileKey, version: u32, scan: &FileScan, columns: bool) {
        self.read.fetch_add(1, Ordering::Relaxed);
        let shape = self.shape_of(scan);
        let entry = entry_of(path, key, version, scan, columns, shape);
        // An entry of this version with per-column sums (or this very one) says it all.
        let known = self.entries.get(path).is_some_and(|v| {
            v.iter().any(|e| {
                e.key == entry.key
                    && e.checksum_version == version
                    && (e.columns.is_some() || !columns)
            })
        });
        if !known {
            self.new.lock().expect("new entries").push(entry);
        }
    }

    /// The shape of `scan`: the last one recorded if it is the same (files of a table
    /// mostly are), so entries share it and a segment stores it once.
    fn shape_of(&self, scan: &FileScan) -> Arc<Shape> {
        let mut last = self.last_shape.lock().expect("last shape");
        if let Some(s) = last.as_ref() {
            let same = s.differs_in_v1 == scan.differs_in_v1
                && s.column_types == *scan.column_types
                && s.schema.len() == scan.schema.columns.len()
                && s.schema
                    .iter()
                    .zip(&scan.schema.columns)
                    .all(|((n, t), c)| *n == c.name && *t == c.logical_type);
            if same {
                return s.clone();
            }
        }
        let shape = Arc::new(Shape {
            schema: scan
                .schema
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.logical_type.clone()))
                .collect(),
            column_types: scan.column_types.to_vec(),
            differs_in_v1: scan.differs_in_v1,
            scanned: (scan.schema.clone(), scan.column_types.clone()).into(),
        });
        *last = Some(shape.clone());
        shape
    }

    /// Counts a file read with nothing to record (its key could not be told).
    pub fn count_read(&self) {
        self.read.fetch_add(1, Ordering::Relaxed);
    }

    /// `verify --deep`: compares what reading `path` gave with its entries of the same
    /// version (same size, inode and modification time, or ETag); a difference means the
    /// content changed while what describes the file did not.
    pub fn compare(&self, path: &str, key: &FileKey, version: u32, scan: &FileScan) -> bool {
        let Some(entries) = self.entries.get(path) else {
            return true;
        };
        let same = entries.iter().filter(|e| {
            e.key.size == key.size && e.key.tag == key.tag && e.checksum_version == version
        });
        let sum = hex(scan.part.sum);
        let mut agrees = true;
        for e in same {
            if e.rows != scan.part.rows || e.sum != sum {
                agrees = false;
            }
        }
        if !agrees {
            self.changed_in_place
                .lock()
                .expect("changed")
                .push(path.to_string());
        }
        agrees
    }

    /// Files `verify --deep` found changed in place.
    pub fn changed_in_place(&self) -> Vec<String> {
        let mut v = self.changed_in_place.lock().expect("changed").clone();
        v.sort();
        v
    }

    /// Writes the new entries as one segment, and merges the segments into one when there
    /// are too many (or when `prune`), keeping only the entries of `table`'s files as they
    /// are now. Failures are notes: a read-only cache is skipped, not an error.
    pub async fn save(&self, table: &Table, prune: bool) -> CacheReport {
        let new = std::mem::take(&mut *self.new.lock().expect("new entries"));
        let mut bytes = self.bytes;
        let mut entries: usize = self.entries.values().map(Vec::len).sum();
        let merge = prune || self.segments.len() + 1 > MAX_SEGMENTS;
        if merge {
            let files: Vec<&DataFile> = table.partitions.iter().flat_map(|p| &p.files).collect();
            let keys: Vec<Option<FileKey>> = futures::stream::iter(files.iter())
                .map(|f| self.key_of(&table.location, f))
                .buffered(64)
                .collect()
                .await;
            let live: HashMap<&str, Option<FileKey>> = files
                .iter()
                .map(|f| f.relative.as_str())
                .zip(keys)
                .collect();
            // An entry stays if its file is in the table in the version it was made for
            // (or one that cannot be told now).
            let current = |e: &&Entry| match live.get(e.path.as_str()) {
                Some(Some(k)) => k == &e.key,
                Some(None) => true,
                None => false,
            };
            let mut all: Vec<Entry> = self
                .entries
                .values()
                .flatten()
                .chain(new.iter())
                .filter(current)
                .cloned()
                .collect();
            // One entry per file version: the one with per-column sums if there is one.
            all.sort_by(|a, b| {
                (
                    &a.path,
                    &a.key.tag,
                    &a.key.changed,
                    a.checksum_version,
                    a.columns.is_none(),
                )
                    .cmp(&(
                        &b.path,
                        &b.key.tag,
                        &b.key.changed,
                        b.checksum_version,
                        b.columns.is_none(),
                    ))
            });
            all.dedup_by(|later, first| {
                later.path == first.path
                    && later.key == first.key
                    && later.checksum_version == first.checksum_version
            });
            match self.put(&all).await {
                Ok(size) => {
                    entries = all.len();
                    bytes = size;
                    for old in &self.segments {
                        // Another command may have merged it already.
                        let _ = self.store.store.delete(old).await;
                    }
                }
                Err(e) => self.note(e),
            }
        } else if !new.is_empty() {
            match self.put(&new).await {
                Ok(size) => {
                    entries += new.len();
                    bytes += size;
                }
                Err(e) => self.note(e),
            }
        }
        CacheReport {
            location: self.store.describe(&self.dir),
            files_read: self.read.load(Ordering::Relaxed),
            files_cached: self.cached.load(Ordering::Relaxed),
            entries,
            bytes,
            notes: self.notes.lock().expect("notes").clone(),
        }
    }

    async fn put(&self, entries: &[Entry]) -> Result<u64, String> {
        let mut shapes: Vec<Shape> = Vec::new();
        // By pointer first (entries share their shapes), then by content.
        let mut by_ptr: HashMap<*const Shape, usize> = HashMap::new();
        type Content<'a> = (&'a [(String, String)], &'a [(String, String)], bool);
        let mut index: HashMap<Content, usize> = HashMap::new();
        let mut stored = Vec::with_capacity(entries.len());
        for e in entries {
            let ptr = Arc::as_ptr(&e.shape);
            let i = match by_ptr.get(&ptr) {
                Some(i) => *i,
                None => {
                    let content = (
                        &e.shape.schema[..],
                        &e.shape.column_types[..],
                        e.shape.differs_in_v1,
                    );
                    let i = *index.entry(content).or_insert_with(|| {
                        shapes.push((*e.shape).clone());
                        shapes.len() - 1
                    });
                    by_ptr.insert(ptr, i);
                    i
                }
            };
            stored.push(Stored {
                path: e.path.clone(),
                key: e.key.clone(),
                checksum_version: e.checksum_version,
                rows: e.rows,
                sum: e.sum.clone(),
                columns: e.columns.clone(),
                shape: i,
            });
        }
        let seg = Segment {
            format: FORMAT,
            table: self.table.clone(),
            shapes,
            entries: stored,
        };
        let body = serde_json::to_vec(&seg).expect("a segment serialises");
        let size = body.len() as u64;
        // Sorted by time, unique by the random tail.
        let name = format!(
            "{}-{:016x}.json",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            rand_u64()
        );
        let path = self.dir.clone().join(name.as_str());
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .store
            .put_opts(&path, PutPayload::from(body), opts)
            .await
        {
            Ok(_) => Ok(size),
            Err(object_store::Error::NotImplemented { .. }) => {
                // Unique names: a plain put cannot overwrite another writer's segment.
                self.store
                    .store
                    .put(
                        &path,
                        PutPayload::from(serde_json::to_vec(&seg).expect("serialises")),
                    )
                    .await
                    .map(|_| size)
                    .map_err(|e| skipped(&e))
            }
            Err(e) => Err(skipped(&e)),
        }
    }
}

fn skipped(e: &object_store::Error) -> String {
    format!("the checksum cache was not written ({e}); give --cache-dir DIR where this can write, or --no-cache")
}

fn table_hash(table: &str) -> String {
    blake3::hash(table.as_bytes()).to_hex()[..16].to_string()
}

/// A name tail no other writer uses: the time, process id and a counter through BLAKE3.
fn rand_u64() -> u64 {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let seed = format!(
        "{:?}-{}-{}",
        std::time::SystemTime::now(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let h = blake3::hash(seed.as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

fn hex(v: u128) -> String {
    format!("{v:032x}")
}

fn entry_of(
    path: &str,
    key: FileKey,
    version: u32,
    scan: &FileScan,
    columns: bool,
    shape: Arc<Shape>,
) -> Entry {
    Entry {
        path: path.to_string(),
        key,
        checksum_version: version,
        rows: scan.part.rows,
        sum: hex(scan.part.sum),
        columns: columns.then(|| scan.part.columns.iter().map(|c| hex(*c)).collect()),
        shape,
    }
}

fn scan_of(e: &Entry, columns: bool) -> Option<FileScan> {
    let parse = |s: &str| u128::from_str_radix(s, 16).ok();
    let part_columns = match (&e.columns, columns) {
        (Some(cols), true) => cols.iter().map(|c| parse(c)).collect::<Option<Vec<_>>>()?,
        _ => Vec::new(),
    };
    if columns && part_columns.len() != e.shape.schema.len() {
        return None;
    }
    let (schema, column_types) = e.shape.scanned();
    Some(FileScan {
        schema: schema.clone(),
        part: Part {
            rows: e.rows,
            sum: parse(&e.sum)?,
            columns: part_columns,
        },
        differs_in_v1: e.shape.differs_in_v1,
        column_types: column_types.clone(),
    })
}
