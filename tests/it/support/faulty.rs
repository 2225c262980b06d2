//! A store wrapper that counts operations and fails every one from the k-th on, as a
//! crash would: nothing after the fault reaches the store.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

pub struct Faulty {
    inner: Arc<dyn ObjectStore>,
    ops: AtomicUsize,
    fail_from: usize,
}

impl Faulty {
    pub fn new(inner: Arc<dyn ObjectStore>, fail_from: usize) -> Arc<Faulty> {
        Arc::new(Faulty {
            inner,
            ops: AtomicUsize::new(0),
            fail_from,
        })
    }

    pub fn ops(&self) -> usize {
        self.ops.load(Ordering::SeqCst)
    }

    fn tick(&self) -> Result<()> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        if n >= self.fail_from {
            return Err(object_store::Error::Generic {
                store: "faulty",
                source: format!("injected fault at operation {n}").into(),
            });
        }
        Ok(())
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
