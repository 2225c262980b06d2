//! Reading a table's Parquet files through object_store.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use object_store::{path::Path, ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

/// An [`AsyncFileReader`] over one object whose size is known from the listing, so the
/// footer is fetched with one ranged read and no HEAD request.
#[derive(Clone, Debug)]
pub struct FileReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    /// A file read whole when all of it is wanted anyway (a partition being rewritten or
    /// checksummed): where it is, then its bytes.
    whole: Option<(Whole, Option<Bytes>)>,
    /// Where fetched bytes are kept, if they are wanted again after decoding.
    kept: Option<Fetched>,
    /// Reads only this version of the object (its ETag, `If-Match`), and says so in
    /// [`Pinned::changed`] when the object is no longer it.
    pinned: Option<Pinned>,
}

/// A read pinned to one version of an object, which the listing named.
#[derive(Clone, Debug)]
pub struct Pinned {
    e_tag: String,
    changed: Arc<std::sync::atomic::AtomicBool>,
}

impl Pinned {
    /// Reads of the object as it was when its ETag was `e_tag`.
    pub fn new(e_tag: String) -> Pinned {
        Pinned {
            e_tag,
            changed: Arc::default(),
        }
    }

    /// Whether a read found the object replaced (412 Precondition Failed).
    pub fn changed(&self) -> bool {
        self.changed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The bytes a [`FileReader`] fetched, by offset in the file: a rewrite copies the column
/// chunks it does not change from them instead of encoding the values again.
#[derive(Clone, Debug, Default)]
pub struct Fetched(Arc<std::sync::Mutex<Kept>>);

#[derive(Debug, Default)]
struct Kept {
    ranges: Vec<(u64, Bytes)>,
    /// A large local file read whole is not held while its rows are rewritten (that would
    /// hold it twice, as bytes and as rows): its path, size and BLAKE3, to read it again
    /// when its chunks are copied and to refuse it if it changed since.
    file: Option<(std::path::PathBuf, u64, blake3::Hash, LocalFs)>,
}

type LocalFs = Arc<dyn crate::storage::fs::Fs>;

/// Local files read whole up to this size are held; larger ones are read again if needed.
const HOLD_LIMIT: usize = 8 * 1024 * 1024;

impl Fetched {
    fn keep(&self, at: u64, bytes: &Bytes) {
        self.lock().ranges.push((at, bytes.clone()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.0.lock().expect("not poisoned")
    }

    /// Lets every byte kept so far go.
    pub fn clear(&self) {
        self.lock().ranges.clear();
    }

    /// Whether bytes `start..start + len` of the file are at hand (held or to be read
    /// again).
    pub fn covers(&self, start: u64, len: u64) -> bool {
        let kept = self.lock();
        find(&kept.ranges, start, len).is_some()
            || kept.file.as_ref().is_some_and(|(_, size, _, _)| {
                start.checked_add(len).is_some_and(|end| end <= *size)
            })
    }

    /// The file's bytes `start..start + len`, if one fetch covered all of them. A large
    /// local file is read again (once) and must be the one decoded: `Err` if it changed.
    pub fn range(&self, start: u64, len: u64) -> std::result::Result<Option<Bytes>, String> {
        let mut kept = self.lock();
        if let Some(b) = find(&kept.ranges, start, len) {
            return Ok(Some(b));
        }
        let Some((path, size, hash, fs)) = kept.file.clone() else {
            return Ok(None);
        };
        let changed = || {
            format!(
                "{} changed after it was read; the partition was left as it was",
                path.display()
            )
        };
        let again = fs
            .read(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if again.len() as u64 != size || blake3::hash(&again) != hash {
            return Err(changed());
        }
        kept.ranges.push((0, Bytes::from(again)));
        Ok(find(&kept.ranges, start, len))
    }
}

fn find(ranges: &[(u64, Bytes)], start: u64, len: u64) -> Option<Bytes> {
    ranges.iter().find_map(|(at, bytes)| {
        let from = usize::try_from(start.checked_sub(*at)?).ok()?;
        let to = from.checked_add(usize::try_from(len).ok()?)?;
        (to <= bytes.len()).then(|| bytes.slice(from..to))
    })
}

/// Local files up to this size are read whole by [`FileReader::whole_file`].
pub(crate) const WHOLE_FILE_LIMIT: u64 = 256 * 1024 * 1024;

/// Objects up to this size are fetched whole by [`FileReader::whole_file`]: one request
/// instead of one for the footer and one or more for the rows.
pub(crate) const WHOLE_OBJECT_LIMIT: u64 = HOLD_LIMIT as u64;

/// Where a file read whole comes from.
#[derive(Clone, Debug)]
enum Whole {
    /// A local file, read with one system call.
    Local(std::path::PathBuf, LocalFs),
    /// An object, fetched with one request.
    Object,
}

impl FileReader {
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, size: u64) -> FileReader {
        FileReader {
            store,
            path,
            size,
            whole: None,
            kept: None,
            pinned: None,
        }
    }

    /// Reads only the version of the object `pinned` names.
    pub fn pinned(self, pinned: Option<Pinned>) -> FileReader {
        FileReader { pinned, ..self }
    }

    async fn fetch(&self, range: Range<u64>) -> Result<Bytes> {
        let Some(pin) = &self.pinned else {
            return self
                .store
                .get_range(&self.path, range)
                .await
                .map_err(external);
        };
        let options = object_store::GetOptions::new()
            .with_range(Some(range))
            .with_if_match(Some(pin.e_tag.clone()));
        let got = self.store.get_opts(&self.path, options).await;
        match got {
            Ok(g) => g.bytes().await.map_err(external),
            Err(e) => {
                if matches!(e, object_store::Error::Precondition { .. }) {
                    pin.changed
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Err(external(e))
            }
        }
    }

    /// Keeps every fetched byte range in `fetched`.
    pub fn keeping(self, fetched: Fetched) -> FileReader {
        FileReader {
            kept: Some(fetched),
            ..self
        }
    }

    /// A reader that will need every byte of the file: a local file up to 256 MiB is read
    /// with one system call, an object up to 8 MiB with one request, instead of range by
    /// range through the store.
    pub fn whole_file(loc: &crate::storage::Location, path: Path, size: u64) -> FileReader {
        let whole = match loc.fs_path(&path) {
            Some(fs) => (size <= WHOLE_FILE_LIMIT).then(|| Whole::Local(fs, loc.fs.clone())),
            None => (size > 0 && size <= WHOLE_OBJECT_LIMIT).then_some(Whole::Object),
        }
        .map(|w| (w, None));
        FileReader {
            whole,
            ..FileReader::new(loc.store.clone(), path, size)
        }
    }

    /// Reads a file that is read whole now, before its rows are decoded; other files do
    /// nothing here.
    pub async fn prefetch(&mut self) -> Result<()> {
        self.bytes().await.map(|_| ())
    }

    /// The file's bytes, if it is read whole.
    async fn bytes(&mut self) -> Result<Option<Bytes>> {
        let (fs, local) = match &self.whole {
            None => return Ok(None),
            Some((_, Some(read))) => return Ok(Some(read.clone())),
            Some((Whole::Object, None)) => {
                let read = self.fetch(0..self.size).await?;
                self.check_size(&self.path, read.len())?;
                if let Some(kept) = &self.kept {
                    kept.keep(0, &read);
                }
                self.whole = Some((Whole::Object, Some(read.clone())));
                return Ok(Some(read));
            }
            Some((Whole::Local(fs, local), None)) => (fs.clone(), local.clone()),
        };
        let (at, hash, local_fs) = (fs.clone(), self.kept.is_some(), local.clone());
        let (read, hash) = tokio::task::spawn_blocking(move || {
            local_fs.read(&at).map(|read| {
                let hash = (hash && read.len() > HOLD_LIMIT).then(|| blake3::hash(&read));
                (read, hash)
            })
        })
        .await
        .map_err(|e| ParquetError::External(Box::new(e)))?
        .map_err(|e| ParquetError::External(Box::new(e)))?;
        self.check_size(&fs.display(), read.len())?;
        let read = Bytes::from(read);
        if let Some(kept) = &self.kept {
            match hash {
                Some(hash) => kept.lock().file = Some((fs.clone(), self.size, hash, local.clone())),
                None => kept.keep(0, &read),
            }
        }
        self.whole = Some((Whole::Local(fs, local), Some(read.clone())));
        Ok(Some(read))
    }

    /// A file read whole must be the size the listing gave.
    fn check_size(&self, name: &dyn std::fmt::Display, read: usize) -> Result<()> {
        if read as u64 == self.size {
            return Ok(());
        }
        Err(ParquetError::General(format!(
            "{name} is {read} bytes, not the {} listed; it changed while being read",
            self.size
        )))
    }
}

fn slice(bytes: &Bytes, range: Range<u64>) -> Result<Bytes> {
    if range.start > range.end || range.end > bytes.len() as u64 {
        return Err(ParquetError::EOF(format!(
            "range {range:?} is outside the file of {} bytes",
            bytes.len()
        )));
    }
    Ok(bytes.slice(range.start as usize..range.end as usize))
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for FileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes>> {
        async move {
            if let Some(bytes) = self.bytes().await? {
                return slice(&bytes, range);
            }
            let at = range.start;
            let bytes = self.fetch(range).await?;
            if let Some(kept) = &self.kept {
                kept.keep(at, &bytes);
            }
            Ok(bytes)
        }
        .boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, Result<Vec<Bytes>>> {
        async move {
            if let Some(bytes) = self.bytes().await? {
                return ranges.into_iter().map(|r| slice(&bytes, r)).collect();
            }
            let got = match &self.pinned {
                None => self
                    .store
                    .get_ranges(&self.path, &ranges)
                    .await
                    .map_err(external)?,
                Some(_) => {
                    let this = &*self;
                    object_store::coalesce_ranges(
                        &ranges,
                        |r| this.fetch(r),
                        object_store::OBJECT_STORE_COALESCE_DEFAULT,
                    )
                    .await?
                }
            };
            if let Some(kept) = &self.kept {
                for (r, bytes) in ranges.iter().zip(&got) {
                    kept.keep(r.start, bytes);
                }
            }
            Ok(got)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(&mut *self, size)
                .await?;
            if let Some(why) = super::embedded::unreadable(&metadata) {
                return Err(ParquetError::General(why));
            }
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// Opens a data file's footer only, set to read its values as the transform reads them
/// ([`reading`]): for its schema, its row count, its row groups. A file that does not
/// open is [`Error::Unreadable`](crate::error::Error::Unreadable), naming it.
pub async fn open_footer(
    loc: &crate::storage::Location,
    file: &crate::table::DataFile,
    partition: &str,
) -> crate::error::Result<ArrowReaderMetadata> {
    let mut reader = FileReader::new(loc.store.clone(), file.path.clone(), file.size);
    ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
        .await
        .and_then(|m| reading(m, ArrowReaderOptions::new(), false))
        .map_err(|e| crate::error::Error::Unreadable {
            partition: partition.into(),
            path: file.relative.clone(),
            reason: e.to_string(),
        })
}

/// The file's metadata, set to decode strings and binaries as views: the values are not
/// copied out of the pages, which makes reading for checksums faster. Same values, same
/// checksums (the checksum hashes logical values). INT96 and INTERVAL as [`reading`] says.
pub async fn open_with_views(reader: &mut FileReader) -> Result<ArrowReaderMetadata> {
    let meta = ArrowReaderMetadata::load_async(reader, ArrowReaderOptions::new()).await?;
    reading(meta, ArrowReaderOptions::new(), true)
}

/// The file's metadata as checksum version 1 read it: views, and otherwise the Arrow
/// reader's defaults (INT96 as 64-bit nanoseconds, INTERVAL as days and milliseconds).
pub async fn open_as_v1(reader: &mut FileReader) -> Result<ArrowReaderMetadata> {
    let meta = ArrowReaderMetadata::load_async(reader, ArrowReaderOptions::new()).await?;
    with_leaves(meta, ArrowReaderOptions::new(), true, false)
}

/// The file's metadata, set to decode every value as its Parquet type defines it.
///
/// INT96 timestamps are decoded as microseconds, not the reader's default nanoseconds:
/// nanoseconds since 1970 in 64 bits wrap outside 1677-2262, and Spark writes INT96 from
/// 0001 to 9999 at microsecond precision. INT96 values finer than a microsecond are
/// refused by [`check_int96_micros`]. A Parquet INTERVAL is decoded as its raw 12 bytes,
/// which [`logical_schema`] and [`logical_batch`] turn into intervals with their months
/// ([`interval`](super::interval)): callers read batches through those two. With
/// `views`, top-level strings and binaries are decoded as views.
pub fn reading(
    meta: ArrowReaderMetadata,
    options: ArrowReaderOptions,
    views: bool,
) -> Result<ArrowReaderMetadata> {
    with_leaves(meta, options, views, true)
}

/// [`reading`], with INT96 and INTERVAL leaves read as it says only if `faithful`.
fn with_leaves(
    meta: ArrowReaderMetadata,
    options: ArrowReaderOptions,
    views: bool,
    faithful: bool,
) -> Result<ArrowReaderMetadata> {
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let schema = meta.schema();
    let descr = meta.metadata().file_metadata().schema_descr();
    let mut leaves = descr.columns().iter();
    let mut changed = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut field = map_fields(f, &mut |leaf| {
                let Some(c) = leaves.next() else {
                    return leaf.clone();
                };
                if !faithful {
                    return leaf.clone();
                }
                if super::interval::is_interval(c) {
                    return super::interval::raw_field(leaf);
                }
                match leaf.data_type() {
                    DataType::Timestamp(TimeUnit::Nanosecond, tz)
                        if c.physical_type() == parquet::basic::Type::INT96 =>
                    {
                        leaf.clone()
                            .with_data_type(DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))
                    }
                    _ => leaf.clone(),
                }
            });
            if views {
                let dt = match field.data_type() {
                    DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
                    DataType::Binary | DataType::LargeBinary => DataType::BinaryView,
                    other => other.clone(),
                };
                field = field.with_data_type(dt);
            }
            changed |= &field != f.as_ref();
            field
        })
        .collect();
    if !changed {
        return Ok(meta);
    }
    let metadata = match faithful {
        true => super::interval::without_annotation(meta.metadata())?,
        false => None,
    }
    .unwrap_or_else(|| meta.metadata().clone());
    let hinted = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    ArrowReaderMetadata::try_new(metadata, options.with_schema(hinted))
}

/// The schema of the batches a file read by [`reading`] stands for (INTERVAL bytes as
/// intervals).
pub fn logical_schema(meta: &ArrowReaderMetadata) -> arrow::datatypes::SchemaRef {
    super::interval::logical_schema(meta.schema())
}

/// A batch read by [`reading`] as [`logical_schema`] says.
pub fn logical_batch(
    batch: arrow::record_batch::RecordBatch,
    logical: &arrow::datatypes::SchemaRef,
) -> Result<arrow::record_batch::RecordBatch> {
    super::interval::logical_batch(batch, logical)
}

/// `field` with each leaf field (one whose type is not a struct, list or map), in the
/// order of the Parquet columns it is read from, replaced by what `f` makes of it.
pub fn map_fields(
    field: &arrow::datatypes::Field,
    f: &mut dyn FnMut(&arrow::datatypes::Field) -> arrow::datatypes::Field,
) -> arrow::datatypes::Field {
    use arrow::datatypes::{DataType, FieldRef};
    let mut child = |x: &FieldRef| -> FieldRef { Arc::new(map_fields(x, f)) };
    let dt = match field.data_type() {
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(&mut child).collect()),
        DataType::List(x) => DataType::List(child(x)),
        DataType::LargeList(x) => DataType::LargeList(child(x)),
        DataType::ListView(x) => DataType::ListView(child(x)),
        DataType::LargeListView(x) => DataType::LargeListView(child(x)),
        DataType::FixedSizeList(x, n) => DataType::FixedSizeList(child(x), *n),
        DataType::Map(x, sorted) => DataType::Map(child(x), *sorted),
        _ => return f(field),
    };
    field.clone().with_data_type(dt)
}

/// `dt` with each leaf type replaced by what `f` makes of it ([`map_fields`]).
pub fn map_leaves(
    dt: &arrow::datatypes::DataType,
    f: &mut dyn FnMut(&arrow::datatypes::DataType) -> arrow::datatypes::DataType,
) -> arrow::datatypes::DataType {
    let field = arrow::datatypes::Field::new("", dt.clone(), true);
    map_fields(&field, &mut |leaf| {
        let dt = f(leaf.data_type());
        leaf.clone().with_data_type(dt)
    })
    .data_type()
    .clone()
}

/// `array` as type `target`, which differs from its type at most in leaves: each leaf
/// array `leaf` converts (given the target's leaf type; `None` where it is kept), within
/// the same structs, lists and maps.
pub fn map_arrays(
    array: &arrow::array::ArrayRef,
    target: &arrow::datatypes::DataType,
    leaf: &mut dyn FnMut(
        &arrow::array::ArrayRef,
        &arrow::datatypes::DataType,
    ) -> Result<Option<arrow::array::ArrayRef>>,
) -> Result<arrow::array::ArrayRef> {
    use arrow::array::{
        Array, AsArray, FixedSizeListArray, LargeListArray, ListArray, MapArray, StructArray,
    };
    use arrow::datatypes::DataType;
    let failed = |e: arrow::error::ArrowError| ParquetError::General(e.to_string());
    Ok(match (array.data_type(), target) {
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let s = array.as_struct();
            let columns = s
                .columns()
                .iter()
                .zip(fields)
                .map(|(c, f)| map_arrays(c, f.data_type(), leaf))
                .collect::<Result<Vec<_>>>()?;
            Arc::new(
                StructArray::try_new(fields.clone(), columns, s.nulls().cloned())
                    .map_err(failed)?,
            )
        }
        (DataType::List(_), DataType::List(f)) => {
            let l = array.as_list::<i32>();
            let values = map_arrays(l.values(), f.data_type(), leaf)?;
            Arc::new(
                ListArray::try_new(f.clone(), l.offsets().clone(), values, l.nulls().cloned())
                    .map_err(failed)?,
            )
        }
        (DataType::LargeList(_), DataType::LargeList(f)) => {
            let l = array.as_list::<i64>();
            let values = map_arrays(l.values(), f.data_type(), leaf)?;
            Arc::new(
                LargeListArray::try_new(f.clone(), l.offsets().clone(), values, l.nulls().cloned())
                    .map_err(failed)?,
            )
        }
        (DataType::FixedSizeList(_, n), DataType::FixedSizeList(f, _)) => {
            let l = array.as_fixed_size_list();
            let values = map_arrays(l.values(), f.data_type(), leaf)?;
            Arc::new(
                FixedSizeListArray::try_new(f.clone(), *n, values, l.nulls().cloned())
                    .map_err(failed)?,
            )
        }
        (DataType::Map(_, sorted), DataType::Map(f, _)) => {
            let m = array.as_map();
            let entries: arrow::array::ArrayRef = Arc::new(m.entries().clone());
            let entries = map_arrays(&entries, f.data_type(), leaf)?;
            Arc::new(
                MapArray::try_new(
                    f.clone(),
                    m.offsets().clone(),
                    entries.as_struct().clone(),
                    m.nulls().cloned(),
                    *sorted,
                )
                .map_err(failed)?,
            )
        }
        (from, to) => match leaf(array, to)? {
            Some(converted) => converted,
            None if from == to => array.clone(),
            None => {
                return Err(ParquetError::General(format!(
                    "internal error: {from} cannot be read as {to}"
                )))
            }
        },
    })
}

/// Parquet type `t` with each primitive leaf replaced by what `f` makes of it (`None`:
/// kept); groups keep their annotations, repetition and id.
pub fn map_parquet_leaves(
    t: &parquet::schema::types::Type,
    f: &mut dyn FnMut(
        &parquet::schema::types::Type,
    ) -> Result<Option<parquet::schema::types::TypePtr>>,
) -> Result<parquet::schema::types::TypePtr> {
    use parquet::schema::types::Type;
    if t.is_primitive() {
        return Ok(f(t)?.unwrap_or_else(|| Arc::new(t.clone())));
    }
    let info = t.get_basic_info();
    let fields = t
        .get_fields()
        .iter()
        .map(|x| map_parquet_leaves(x, f))
        .collect::<Result<Vec<_>>>()?;
    let mut b = Type::group_type_builder(t.name())
        .with_fields(fields)
        .with_logical_type(info.logical_type_ref().cloned())
        .with_converted_type(info.converted_type());
    if info.has_repetition() {
        b = b.with_repetition(info.repetition());
    }
    if info.has_id() {
        b = b.with_id(Some(info.id()));
    }
    b.build().map(Arc::new)
}

/// Leaf `t` as an unannotated `physical` of `length` bytes (same name, repetition, id).
pub fn plain_leaf(
    t: &parquet::schema::types::Type,
    physical: parquet::basic::Type,
    length: i32,
) -> Result<parquet::schema::types::TypePtr> {
    let info = t.get_basic_info();
    let mut b = parquet::schema::types::Type::primitive_type_builder(t.name(), physical)
        .with_length(length)
        .with_repetition(info.repetition());
    if info.has_id() {
        b = b.with_id(Some(info.id()));
    }
    b.build().map(Arc::new)
}

/// Refuses a file whose INT96 timestamps hold a fraction of a microsecond (Impala and
/// Hive may write nanoseconds), naming the column: [`reading`] decodes INT96 as
/// microseconds, which would drop it. The INT96 columns are read a second time, as
/// nanoseconds, and each value compared with its microseconds: both wrap alike in 64
/// bits, so `nanos - micros * 1000` is the fraction even where nanoseconds overflow.
pub async fn check_int96_micros(reader: FileReader, meta: &ArrowReaderMetadata) -> Result<()> {
    use futures::TryStreamExt;
    use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
    use parquet::arrow::ProjectionMask;
    let descr = meta.metadata().file_metadata().schema_descr();
    let int96: Vec<usize> = (0..descr.num_columns())
        .filter(|&i| descr.column(i).physical_type() == parquet::basic::Type::INT96)
        .collect();
    if int96.is_empty() {
        return Ok(());
    }
    let mask = ProjectionMask::leaves(descr, int96.iter().copied());
    let stream = |m: ArrowReaderMetadata| {
        ParquetRecordBatchStreamBuilder::new_with_metadata(reader.clone(), m)
            .with_projection(mask.clone())
            .with_batch_size(8192)
            .build()
    };
    let default = ArrowReaderMetadata::try_new(meta.metadata().clone(), ArrowReaderOptions::new())?;
    let mut micros = stream(reading(default.clone(), ArrowReaderOptions::new(), false)?)?;
    let mut nanos = stream(default)?;
    while let Some(n) = nanos.try_next().await? {
        let m = micros
            .try_next()
            .await?
            .ok_or_else(|| ParquetError::General("INT96 columns read unequally".into()))?;
        for (c, field) in n.schema().fields().iter().enumerate() {
            if let Some(bad) = finer_than_micros(n.column(c), m.column(c)) {
                return Err(ParquetError::General(format!(
                    "column {} is a Parquet INT96 timestamp holding {bad} ns more than a whole microsecond; this tool reads INT96 at microsecond precision (the full range Spark writes) and refuses the file rather than checksum or rewrite it without those nanoseconds. Store the column as TIMESTAMP(NANOS) to keep them",
                    field.name()
                )));
            }
        }
    }
    Ok(())
}

/// The first fraction of a microsecond found among the timestamp leaves of `nanos` and
/// `micros` (one column read both ways).
fn finer_than_micros(
    nanos: &arrow::array::ArrayRef,
    micros: &arrow::array::ArrayRef,
) -> Option<i64> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, TimestampMicrosecondType, TimestampNanosecondType};
    match (nanos.data_type(), micros.data_type()) {
        (DataType::Timestamp(..), DataType::Timestamp(..)) => {
            let n = nanos.as_primitive_opt::<TimestampNanosecondType>()?;
            let m = micros.as_primitive_opt::<TimestampMicrosecondType>()?;
            (0..n.len()).filter(|&i| n.is_valid(i)).find_map(|i| {
                let fraction = n.value(i).wrapping_sub(m.value(i).wrapping_mul(1000));
                (fraction != 0).then_some(fraction)
            })
        }
        (DataType::Struct(_), DataType::Struct(_)) => {
            let (n, m) = (nanos.as_struct(), micros.as_struct());
            (0..n.num_columns()).find_map(|c| finer_than_micros(n.column(c), m.column(c)))
        }
        (DataType::List(_), DataType::List(_)) => finer_than_micros(
            nanos.as_list::<i32>().values(),
            micros.as_list::<i32>().values(),
        ),
        (DataType::LargeList(_), DataType::LargeList(_)) => finer_than_micros(
            nanos.as_list::<i64>().values(),
            micros.as_list::<i64>().values(),
        ),
        (DataType::FixedSizeList(..), DataType::FixedSizeList(..)) => finer_than_micros(
            nanos.as_fixed_size_list().values(),
            micros.as_fixed_size_list().values(),
        ),
        (DataType::Map(..), DataType::Map(..)) => {
            let (n, m) = (nanos.as_map(), micros.as_map());
            finer_than_micros(n.keys(), m.keys())
                .or_else(|| finer_than_micros(n.values(), m.values()))
        }
        _ => None,
    }
}
