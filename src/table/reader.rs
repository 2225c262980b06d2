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
    /// A local file small enough to be read whole, with one system call, when all of it
    /// is wanted anyway (a partition being rewritten): its path, then its bytes.
    whole: Option<(std::path::PathBuf, Option<Bytes>)>,
    /// Where fetched bytes are kept, if they are wanted again after decoding.
    kept: Option<Fetched>,
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
    file: Option<(std::path::PathBuf, u64, blake3::Hash)>,
}

/// Local files read whole up to this size are held; larger ones are read again if needed.
const HOLD_LIMIT: usize = 8 * 1024 * 1024;

impl Fetched {
    fn keep(&self, at: u64, bytes: &Bytes) {
        self.lock().ranges.push((at, bytes.clone()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.0.lock().expect("not poisoned")
    }

    /// Whether bytes `start..start + len` of the file are at hand (held or to be read
    /// again).
    pub fn covers(&self, start: u64, len: u64) -> bool {
        let kept = self.lock();
        find(&kept.ranges, start, len).is_some()
            || kept
                .file
                .as_ref()
                .is_some_and(|(_, size, _)| start.checked_add(len).is_some_and(|end| end <= *size))
    }

    /// The file's bytes `start..start + len`, if one fetch covered all of them. A large
    /// local file is read again (once) and must be the one decoded: `Err` if it changed.
    pub fn range(&self, start: u64, len: u64) -> std::result::Result<Option<Bytes>, String> {
        let mut kept = self.lock();
        if let Some(b) = find(&kept.ranges, start, len) {
            return Ok(Some(b));
        }
        let Some((path, size, hash)) = kept.file.clone() else {
            return Ok(None);
        };
        let changed = || {
            format!(
                "{} changed after it was read; the partition was left as it was",
                path.display()
            )
        };
        let again = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
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
const WHOLE_FILE_LIMIT: u64 = 256 * 1024 * 1024;

impl FileReader {
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, size: u64) -> FileReader {
        FileReader {
            store,
            path,
            size,
            whole: None,
            kept: None,
        }
    }

    /// Keeps every fetched byte range in `fetched`.
    pub fn keeping(self, fetched: Fetched) -> FileReader {
        FileReader {
            kept: Some(fetched),
            ..self
        }
    }

    /// A reader that will need every byte of the file: on local disk a small file is
    /// read at once instead of range by range through the store.
    pub fn whole_file(loc: &crate::storage::Location, path: Path, size: u64) -> FileReader {
        let whole = loc
            .fs_path(&path)
            .filter(|_| size <= WHOLE_FILE_LIMIT)
            .map(|fs| (fs, None));
        FileReader {
            whole,
            ..FileReader::new(loc.store.clone(), path, size)
        }
    }

    /// The file's bytes, if it is read whole.
    async fn bytes(&mut self) -> Result<Option<Bytes>> {
        let Some((fs, cached)) = &mut self.whole else {
            return Ok(None);
        };
        if cached.is_none() {
            let at = fs.clone();
            let hash = self.kept.is_some();
            let (read, hash) = tokio::task::spawn_blocking(move || {
                std::fs::read(at).map(|read| {
                    let hash = (hash && read.len() > HOLD_LIMIT).then(|| blake3::hash(&read));
                    (read, hash)
                })
            })
            .await
            .map_err(|e| ParquetError::External(Box::new(e)))?
            .map_err(|e| ParquetError::External(Box::new(e)))?;
            if read.len() as u64 != self.size {
                return Err(ParquetError::General(format!(
                    "{} is {} bytes, not the {} listed; it changed while being read",
                    fs.display(),
                    read.len(),
                    self.size
                )));
            }
            let read = Bytes::from(read);
            if let Some(kept) = &self.kept {
                match hash {
                    Some(hash) => kept.lock().file = Some((fs.clone(), self.size, hash)),
                    None => kept.keep(0, &read),
                }
            }
            *cached = Some(read);
        }
        Ok(cached.clone())
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
            let bytes = self
                .store
                .get_range(&self.path, range)
                .await
                .map_err(external)?;
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
            let got = self
                .store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)?;
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
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// Refuses a file holding a column the Arrow reader would not decode losslessly, naming
/// it: a Parquet INTERVAL (months, days, milliseconds) is read as days and milliseconds
/// only, so its months would be missing from every checksum and every rewrite.
pub fn check_lossless(meta: &ParquetMetaData) -> parquet::errors::Result<()> {
    let descr = meta.file_metadata().schema_descr();
    for c in descr.columns() {
        if c.converted_type() == parquet::basic::ConvertedType::INTERVAL {
            return Err(parquet::errors::ParquetError::General(format!(
                "column {} is a Parquet INTERVAL (months, days, milliseconds), which this tool's reader decodes without its months; it refuses the file rather than checksum or rewrite it wrongly. Store the column as text or as separate month, day and millisecond columns",
                c.path().string()
            )));
        }
    }
    Ok(())
}

/// The file's metadata, set to decode strings and binaries as views: the values are not
/// copied out of the pages, which makes reading for checksums faster. Same values, same
/// checksums (the checksum hashes logical values). INT96 as [`reading`] says.
pub async fn open_with_views(reader: &mut FileReader) -> Result<ArrowReaderMetadata> {
    let meta = ArrowReaderMetadata::load_async(reader, ArrowReaderOptions::new()).await?;
    reading(meta, ArrowReaderOptions::new(), true)
}

/// The file's metadata, set to decode every value as its Parquet type defines it, or an
/// error naming the column where that is not possible ([`check_lossless`]).
///
/// INT96 timestamps are decoded as microseconds, not the reader's default nanoseconds:
/// nanoseconds since 1970 in 64 bits wrap outside 1677-2262, and Spark writes INT96 from
/// 0001 to 9999 at microsecond precision. INT96 values finer than a microsecond are
/// refused by [`check_int96_micros`]. With `views`, top-level strings and binaries are
/// decoded as views.
pub fn reading(
    meta: ArrowReaderMetadata,
    options: ArrowReaderOptions,
    views: bool,
) -> Result<ArrowReaderMetadata> {
    use arrow::datatypes::{DataType, Field, Schema};
    check_lossless(meta.metadata())?;
    let schema = meta.schema();
    let descr = meta.metadata().file_metadata().schema_descr();
    let mut leaves = descr.columns().iter().map(|c| c.physical_type());
    let mut changed = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut dt = int96_as_micros(f.data_type(), &mut leaves);
            if views {
                dt = match dt {
                    DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
                    DataType::Binary | DataType::LargeBinary => DataType::BinaryView,
                    other => other,
                };
            }
            changed |= &dt != f.data_type();
            f.as_ref().clone().with_data_type(dt)
        })
        .collect();
    if !changed {
        return Ok(meta);
    }
    let hinted = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    ArrowReaderMetadata::try_new(meta.metadata().clone(), options.with_schema(hinted))
}

/// `dt` (as the reader decodes a column by default) with every INT96 leaf, the next of
/// `leaves` in the order of the file's columns, read as microseconds.
fn int96_as_micros(
    dt: &arrow::datatypes::DataType,
    leaves: &mut impl Iterator<Item = parquet::basic::Type>,
) -> arrow::datatypes::DataType {
    use arrow::datatypes::{DataType, TimeUnit};
    map_leaves(dt, &mut |leaf| {
        let physical = leaves.next();
        match leaf {
            DataType::Timestamp(TimeUnit::Nanosecond, tz)
                if physical == Some(parquet::basic::Type::INT96) =>
            {
                DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
            }
            other => other.clone(),
        }
    })
}

/// `dt` with each leaf (a type that is not a struct, list or map), in the order of the
/// Parquet columns it is read from, replaced by what `f` makes of it.
pub fn map_leaves(
    dt: &arrow::datatypes::DataType,
    f: &mut dyn FnMut(&arrow::datatypes::DataType) -> arrow::datatypes::DataType,
) -> arrow::datatypes::DataType {
    use arrow::datatypes::{DataType, Field, FieldRef};
    let mut field = |x: &FieldRef| -> FieldRef {
        Arc::new(Field::clone(x).with_data_type(map_leaves(x.data_type(), f)))
    };
    match dt {
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(&mut field).collect()),
        DataType::List(x) => DataType::List(field(x)),
        DataType::LargeList(x) => DataType::LargeList(field(x)),
        DataType::ListView(x) => DataType::ListView(field(x)),
        DataType::LargeListView(x) => DataType::LargeListView(field(x)),
        DataType::FixedSizeList(x, n) => DataType::FixedSizeList(field(x), *n),
        DataType::Map(x, sorted) => DataType::Map(field(x), *sorted),
        leaf => f(leaf),
    }
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
