//! A store wrapper and a local filesystem that count operations and fail every one from
//! the k-th on, as a crash would: nothing after the fault reaches the store or the disk.
//! Both may share one count, so that a run is stopped at its k-th operation of either.

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use backfill::storage::fs::{DirEntry, File, Fs, Open};
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// Operations counted so far, and the first one that fails.
#[derive(Debug)]
pub struct Count {
    ops: AtomicUsize,
    fail_from: usize,
}

impl Count {
    pub fn new(fail_from: usize) -> Arc<Count> {
        Arc::new(Count {
            ops: AtomicUsize::new(0),
            fail_from,
        })
    }

    pub fn ops(&self) -> usize {
        self.ops.load(Ordering::SeqCst)
    }

    /// Counts one operation; `Err` with its number if it fails.
    fn tick(&self) -> std::result::Result<(), usize> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        if n >= self.fail_from {
            return Err(n);
        }
        Ok(())
    }
}

pub struct Faulty {
    inner: Arc<dyn ObjectStore>,
    count: Arc<Count>,
    fail_from: usize,
}

impl Faulty {
    pub fn new(inner: Arc<dyn ObjectStore>, fail_from: usize) -> Arc<Faulty> {
        Faulty::counting(inner, Count::new(fail_from))
    }

    /// A store counting into `count` (shared with a [`FaultyFs`]).
    pub fn counting(inner: Arc<dyn ObjectStore>, count: Arc<Count>) -> Arc<Faulty> {
        Arc::new(Faulty {
            inner,
            fail_from: count.fail_from,
            count,
        })
    }

    pub fn ops(&self) -> usize {
        self.count.ops()
    }

    fn tick(&self) -> Result<()> {
        self.count.tick().map_err(|n| object_store::Error::Generic {
            store: "faulty",
            source: format!("injected fault at operation {n}").into(),
        })
    }
}

impl fmt::Debug for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty(from {})", self.fail_from)
    }
}

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.tick()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.tick()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.tick()?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.tick()?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        if let Err(e) = self.tick() {
            return stream::once(async move { Err(e) }).boxed();
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if let Err(e) = self.tick() {
            return stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        if let Err(e) = self.tick() {
            return stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.tick()?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.tick()?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.tick()?;
        self.inner.rename_opts(from, to, options).await
    }
}

/// What a [`Tampering`] store does to the store underneath.
#[derive(Debug)]
pub enum Tamper {
    /// Every written object is stored with its last byte flipped, as a storage layer that
    /// damages writes would.
    FlipLastByte,
    /// The holder of the table lock releases it just before the first read of it: the
    /// race between a refused create and the read of who holds the lease.
    ReleaseLockBeforeFirstRead(std::sync::atomic::AtomicBool),
    /// Writes of a lock are stored at once but answered this much later, as a slow
    /// network would answer them.
    SlowLockReplies(std::time::Duration),
}

#[derive(Debug)]
pub struct Tampering {
    pub inner: Arc<dyn ObjectStore>,
    pub how: Tamper,
}

impl Tampering {
    pub fn new(inner: Arc<dyn ObjectStore>, how: Tamper) -> Arc<Tampering> {
        Arc::new(Tampering { inner, how })
    }

    /// Whether the lock was released (for [`Tamper::ReleaseLockBeforeFirstRead`]).
    pub fn released(&self) -> bool {
        matches!(&self.how, Tamper::ReleaseLockBeforeFirstRead(done) if done.load(Ordering::SeqCst))
    }
}

impl fmt::Display for Tampering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tampering({:?})", self.how)
    }
}

#[async_trait]
impl ObjectStore for Tampering {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if let Tamper::SlowLockReplies(after) = self.how {
            let stored = self.inner.put_opts(location, payload, opts).await;
            if location.filename() == Some("lock.json") {
                tokio::time::sleep(after).await;
            }
            return stored;
        }
        if !matches!(self.how, Tamper::FlipLastByte) {
            return self.inner.put_opts(location, payload, opts).await;
        }
        let mut bytes: Vec<u8> = Bytes::from(payload).to_vec();
        if let Some(last) = bytes.last_mut() {
            *last ^= 1;
        }
        self.inner.put_opts(location, bytes.into(), opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if let Tamper::ReleaseLockBeforeFirstRead(done) = &self.how {
            if location.filename() == Some("lock.json") && !done.swap(true, Ordering::SeqCst) {
                let gone = stream::iter([Ok(location.clone())]).boxed();
                let _: Vec<_> = self.inner.delete_stream(gone).collect().await;
            }
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// The local filesystem, failing from the count's k-th operation on.
#[derive(Debug)]
pub struct FaultyFs {
    inner: Arc<dyn Fs>,
    count: Arc<Count>,
}

impl FaultyFs {
    pub fn counting(count: Arc<Count>) -> Arc<FaultyFs> {
        Arc::new(FaultyFs {
            inner: backfill::storage::fs::real(),
            count,
        })
    }

    fn tick(&self) -> io::Result<()> {
        tick_io(&self.count)
    }
}

fn tick_io(count: &Count) -> io::Result<()> {
    count
        .tick()
        .map_err(|n| io::Error::other(format!("injected fault at operation {n}")))
}

impl Fs for FaultyFs {
    fn create_dir_all(&self, p: &FsPath) -> io::Result<()> {
        self.tick()?;
        self.inner.create_dir_all(p)
    }
    fn rename(&self, from: &FsPath, to: &FsPath) -> io::Result<()> {
        self.tick()?;
        self.inner.rename(from, to)
    }
    fn exchange(&self, a: &FsPath, b: &FsPath) -> io::Result<bool> {
        self.tick()?;
        self.inner.exchange(a, b)
    }
    fn hard_link(&self, from: &FsPath, to: &FsPath) -> io::Result<()> {
        self.tick()?;
        self.inner.hard_link(from, to)
    }
    fn remove_dir_all(&self, p: &FsPath) -> io::Result<()> {
        self.tick()?;
        self.inner.remove_dir_all(p)
    }
    fn sync(&self, p: &FsPath) -> io::Result<()> {
        self.tick()?;
        self.inner.sync(p)
    }
    fn read(&self, p: &FsPath) -> io::Result<Vec<u8>> {
        self.tick()?;
        self.inner.read(p)
    }
    fn write(&self, p: &FsPath, bytes: &[u8]) -> io::Result<()> {
        self.tick()?;
        self.inner.write(p, bytes)
    }
    fn read_dir(&self, p: &FsPath) -> io::Result<Vec<DirEntry>> {
        self.tick()?;
        self.inner.read_dir(p)
    }
    fn identity(&self, p: &FsPath) -> io::Result<String> {
        self.tick()?;
        self.inner.identity(p)
    }
    fn walk(&self, p: &FsPath) -> io::Result<Vec<backfill::storage::fs::Walked>> {
        self.tick()?;
        self.inner.walk(p)
    }
    fn exists(&self, p: &FsPath) -> bool {
        // A failed look reads as "absent", which is what a crashed process never acts on.
        self.tick().is_ok() && self.inner.exists(p)
    }
    fn is_dir(&self, p: &FsPath) -> io::Result<bool> {
        self.tick()?;
        self.inner.is_dir(p)
    }
    fn canonicalize(&self, p: &FsPath) -> io::Result<PathBuf> {
        self.tick()?;
        self.inner.canonicalize(p)
    }
    fn copy(&self, from: &FsPath, to: &FsPath) -> io::Result<u64> {
        self.tick()?;
        self.inner.copy(from, to)
    }
    fn open(&self, p: &FsPath, how: Open) -> io::Result<Arc<dyn File>> {
        self.tick()?;
        let inner = self.inner.open(p, how)?;
        Ok(Arc::new(FaultyFile {
            inner,
            count: self.count.clone(),
        }))
    }
}

struct FaultyFile {
    inner: Arc<dyn File>,
    count: Arc<Count>,
}

impl File for FaultyFile {
    fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        tick_io(&self.count)?;
        self.inner.write_all(bytes)
    }
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        tick_io(&self.count)?;
        self.inner.read(buf)
    }
    fn sync_all(&self) -> io::Result<()> {
        tick_io(&self.count)?;
        self.inner.sync_all()
    }
    fn sync_data(&self) -> io::Result<()> {
        tick_io(&self.count)?;
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        tick_io(&self.count)?;
        self.inner.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        tick_io(&self.count)?;
        self.inner.len()
    }
    fn try_lock(&self) -> io::Result<bool> {
        tick_io(&self.count)?;
        self.inner.try_lock()
    }
    fn try_lock_shared(&self) -> io::Result<bool> {
        tick_io(&self.count)?;
        self.inner.try_lock_shared()
    }
}
