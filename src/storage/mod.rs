//! Table location -> object store.
//!
//! A location is a local path, `file://`, `s3://bucket/prefix` or `memory://`.
//! S3 settings come from the usual `AWS_*` environment variables; they are never
//! printed, and [`Location`]'s `Display` shows only the scheme, bucket and prefix.
//! Local filesystem calls go through [`fs::Fs`], the location's `fs`.

#[doc(hidden)]
pub mod fs;

use std::sync::Arc;

use object_store::{local::LocalFileSystem, memory::InMemory, path::Path, ObjectStore};

use crate::error::{Error, Result};

/// Which kind of store a location lives on; the commit protocol differs per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A local folder.
    Local,
    /// S3 or an S3-speaking server.
    S3,
    /// An in-memory store (tests).
    Memory,
}

/// An opened table location: the store, and the root path of the table inside it.
///
/// - `root` never starts or ends with `/`;
/// - `display` is safe to print (no credentials).
#[derive(Clone)]
pub struct Location {
    /// The object store.
    pub store: Arc<dyn ObjectStore>,
    /// The table's root path in the store.
    pub root: Path,
    /// Which kind of store.
    pub backend: Backend,
    /// The location as safe to print (no credentials).
    pub display: String,
    /// For local tables, the absolute directory of the table.
    pub local_dir: Option<std::path::PathBuf>,
    /// The local filesystem (local tables' journal, lock, staged files and commits).
    pub fs: Arc<dyn fs::Fs>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location")
            .field("display", &self.display)
            .finish()
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl Location {
    /// Opens a location string as given on the command line.
    ///
    /// Local locations must exist; remote ones are checked when first listed.
    pub fn open(location: &str) -> Result<Location> {
        if let Some(rest) = location.strip_prefix("s3://") {
            return open_s3(location, rest);
        }
        if let Some(rest) = location.strip_prefix("memory://") {
            return Ok(Location::in_memory(Arc::new(InMemory::new()), rest));
        }
        if location.contains("://") && !location.starts_with("file://") {
            return Err(Error::Location {
                location: location.to_string(),
                reason: "unknown scheme; use a local path, file://, s3:// or memory://".into(),
            });
        }
        let raw = location.strip_prefix("file://").unwrap_or(location);
        let dir = std::path::Path::new(raw);
        let local = fs::real();
        let is_dir = local.is_dir(dir).map_err(|e| Error::TableNotFound {
            location: location.to_string(),
            reason: format!("{e}; check the path"),
        })?;
        if !is_dir {
            return Err(Error::TableNotFound {
                location: location.to_string(),
                reason: "it is a file, not a folder; give the table's root folder".into(),
            });
        }
        let abs = local.canonicalize(dir).map_err(|e| Error::Io {
            path: dir.into(),
            error: e,
        })?;
        let root = Path::from_absolute_path(&abs).map_err(|e| Error::Location {
            location: location.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Location {
            store: Arc::new(LocalFileSystem::new()),
            root,
            backend: Backend::Local,
            display: location.to_string(),
            local_dir: Some(abs),
            fs: local,
        })
    }

    /// A location inside an existing in-memory store (tests share one store between calls).
    pub fn in_memory(store: Arc<dyn ObjectStore>, prefix: &str) -> Location {
        let prefix = prefix.trim_matches('/');
        Location {
            store,
            root: Path::from(prefix),
            backend: Backend::Memory,
            display: format!("memory://{prefix}"),
            local_dir: None,
            fs: fs::real(),
        }
    }

    /// A location on an already built store (tests, and callers with their own settings).
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        backend: Backend,
        scheme_and_bucket: &str,
        prefix: &str,
    ) -> Location {
        let prefix = prefix.trim_matches('/');
        Location {
            store,
            root: Path::from(prefix),
            backend,
            display: format!("{}/{prefix}", scheme_and_bucket.trim_end_matches('/')),
            local_dir: None,
            fs: fs::real(),
        }
    }

    /// The store path of `relative` (a `/`-separated path below the root).
    pub fn child(&self, relative: &str) -> Path {
        let mut p = self.root.clone();
        for part in relative.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(segment(part));
        }
        p
    }

    /// Where runs keep their journal, staged files and backups: beside the table, outside
    /// its prefix (`lake/events` -> `lake/.backfill/events`), so no reader of the table
    /// lists them. A table at the very root of a store uses `.backfill/_root` inside it.
    pub fn work_root(&self) -> Path {
        let parts: Vec<_> = self.root.parts().collect();
        match parts.split_last() {
            Some((name, parent)) => Path::from_iter(parent.iter().cloned())
                .join(".backfill")
                .join(name.clone()),
            None => Path::from(".backfill").join("_root"),
        }
    }

    /// The table's name whatever the spelling it was given in: its absolute folder on
    /// local disk, its URL without a trailing `/` elsewhere.
    pub fn identity(&self) -> String {
        match &self.local_dir {
            Some(dir) => dir.display().to_string(),
            None => self.display.trim_end_matches('/').to_string(),
        }
    }

    /// Whether the table is on local disk (the one truth: its backend).
    pub fn is_local(&self) -> bool {
        self.backend == Backend::Local
    }

    /// The filesystem path of a store path, for local tables.
    pub fn fs_path(&self, path: &Path) -> Option<std::path::PathBuf> {
        self.is_local()
            .then(|| std::path::PathBuf::from("/").join(path.as_ref()))
    }

    /// fsync of a local file or folder.
    pub fn sync(&self, path: &std::path::Path) -> Result<()> {
        self.fs.sync(path).map_err(|e| Error::io(path, e))
    }

    /// Makes a written file and the folder entry naming it durable (local tables only;
    /// object_store never fsyncs, object stores are durable on success).
    pub fn sync_file(&self, path: &Path) -> Result<()> {
        if let Some(fs) = self.fs_path(path) {
            self.sync(&fs)?;
            if let Some(parent) = fs.parent() {
                self.sync(parent)?;
            }
        }
        Ok(())
    }

    /// Every object under `prefix` (recursively).
    pub async fn list_paths(&self, prefix: &Path) -> Result<Vec<Path>> {
        use futures::TryStreamExt;
        self.store
            .list(Some(prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| Error::storage(prefix, e))
    }

    /// A path of this store as a user would write it (a local path, or `s3://bucket/key`).
    pub fn describe(&self, path: &Path) -> String {
        if let Some(fs) = self.fs_path(path) {
            return fs.display().to_string();
        }
        let root = self.root.as_ref();
        match self.display.strip_suffix(root) {
            Some(base) if !root.is_empty() => format!("{base}{path}"),
            _ => format!("{}/{path}", self.display.trim_end_matches('/')),
        }
    }

    /// The path of `path` relative to the root, `/`-separated.
    pub fn relative(&self, path: &Path) -> String {
        match path.prefix_match(&self.root) {
            Some(parts) => parts
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/"),
            None => path.to_string(),
        }
    }
}

/// A folder or file name as listed, as one path segment. Kept as it is: Hive folder names
/// carry `%` escapes (`city=S%C3%A3o Paulo`), which object_store would escape once more
/// and so name another folder. Encoded only if it cannot be a segment as it is.
pub fn segment(name: &str) -> object_store::path::PathPart<'_> {
    object_store::path::PathPart::parse(name)
        .unwrap_or_else(|_| object_store::path::PathPart::from(name))
}

fn open_s3(location: &str, rest: &str) -> Result<Location> {
    use object_store::aws::AmazonS3Builder;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::Location {
            location: location.to_string(),
            reason: "no bucket; write s3://bucket/prefix".into(),
        });
    }
    let has = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if !has("AWS_ENDPOINT_URL")
        && !has("AWS_ENDPOINT")
        && !has("AWS_REGION")
        && !has("AWS_DEFAULT_REGION")
    {
        return Err(Error::Location {
            location: location.to_string(),
            reason: "no AWS_REGION and no AWS_ENDPOINT_URL are set; set AWS_REGION for AWS S3, or AWS_ENDPOINT_URL for another S3 server".into(),
        });
    }
    // Transient errors (timeouts, 5xx, throttling) are retried with backoff, for a bounded time.
    let retry = object_store::RetryConfig {
        backoff: object_store::BackoffConfig::default(),
        max_retries: 6,
        retry_timeout: std::time::Duration::from_secs(90),
    };
    let store = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry)
        // Set key by key: client options from the environment (AWS_ALLOW_HTTP) stay.
        .with_config(
            object_store::aws::AmazonS3ConfigKey::Client(object_store::ClientConfigKey::ConnectTimeout),
            "5s",
        )
        .build()
        .map_err(|e| Error::Location {
            location: location.to_string(),
            reason: format!("{e}; set AWS_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for non-AWS servers)"),
        })?;
    let prefix = prefix.trim_matches('/');
    Ok(Location {
        store: Arc::new(store),
        root: Path::from(prefix),
        backend: Backend::S3,
        display: format!("s3://{bucket}/{prefix}"),
        local_dir: None,
        fs: fs::real(),
    })
}

/// Runs filesystem work off the async workers, so one job's fsync does not stall
/// another job's computation.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("a filesystem task failed: {e}")))?
}
