//! Who may change a table: one whole-table operation (`run`, `resume`, `rollback`,
//! `release`), or any number of workers of frozen runs, each on its own partition.
//!
//! - Local tables: `flock` on `<work>/lock`, exclusive for a whole-table operation and
//!   shared for a worker, who also holds an exclusive `flock` on `<work>/locks/<partition>`.
//!   The kernel drops the locks when the process dies, so a crashed run never blocks the
//!   next one; the files name the holder.
//! - Object stores: a lease object `<work>/lock.json` for the whole table, and
//!   `<work>/locks/<partition>.json` per worker, each taken with a create-only write and
//!   renewed (or taken over once expired) with a write conditional on its ETag, so two
//!   holders can never both have one. A worker, once it holds its partition's lease,
//!   checks that no live table lease exists; a whole-table operation, once it holds the
//!   table's, checks that no live partition lease exists; each gives its own lease back
//!   and is refused if it finds the other, so the two never both go on. A holder that
//!   fails to renew stops before its next commit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use object_store::{
    path::Path, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::{Backend, Location};

/// How long a lease lives without renewal, and how often it is renewed.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTimes {
    pub ttl: Duration,
    pub renew_every: Duration,
}

impl LeaseTimes {
    /// The default, or `BACKFILL_LEASE_TTL_SECS` seconds (renewed every quarter of it):
    /// crash tests and orchestrators that retry quickly after a kill set it short.
    pub fn from_env() -> LeaseTimes {
        match std::env::var("BACKFILL_LEASE_TTL_SECS")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| *s >= 1.0)
        {
            Some(secs) => LeaseTimes {
                ttl: Duration::from_secs_f64(secs),
                renew_every: Duration::from_secs_f64(secs / 4.0),
            },
            None => LeaseTimes::default(),
        }
    }
}

impl Default for LeaseTimes {
    fn default() -> Self {
        LeaseTimes {
            ttl: Duration::from_secs(60),
            renew_every: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holder {
    run_id: String,
    owner: String,
    since: String,
    expires_at_ms: i64,
}

fn owner() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let host = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown host".into()
    };
    format!("pid {} on {host}", std::process::id())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A held lock; released on [`Lock::release`] or when dropped (local) / when the lease expires.
pub struct Lock {
    run_id: String,
    kind: Kind,
    lost: Arc<AtomicBool>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

enum Kind {
    Local {
        file: Arc<dyn crate::storage::fs::File>,
    },
    /// A worker on local disk: the table's lock shared, its partition's exclusive.
    Worker {
        #[allow(dead_code)]
        table: Arc<dyn crate::storage::fs::File>,
        file: Arc<dyn crate::storage::fs::File>,
    },
    Lease {
        store: Arc<dyn ObjectStore>,
        path: Path,
        etag: Arc<tokio::sync::Mutex<Option<String>>>,
    },
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}

impl Lock {
    /// Takes the table's lock for `run_id`, or fails with [`Error::Locked`] naming the holder.
    pub async fn acquire(loc: &Location, run_id: &str, times: LeaseTimes) -> Result<Lock> {
        let lost = Arc::new(AtomicBool::new(false));
        match loc.backend {
            Backend::Local => {
                let dir = loc.fs_path(&loc.work_root()).expect("local");
                loc.fs.create_dir_all(&dir).map_err(|e| Error::Io {
                    path: dir.clone(),
                    error: e,
                })?;
                let path = dir.join("lock");
                let io = |e| Error::Io {
                    path: path.clone(),
                    error: e,
                };
                let file = loc
                    .fs
                    .open(&path, crate::storage::fs::Open::Lock)
                    .map_err(io)?;
                if !file.try_lock().map_err(io)? {
                    let text = loc
                        .fs
                        .read(&path)
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    let holder: Option<Holder> = serde_json::from_str(&text).ok();
                    return Err(locked(loc, holder));
                }
                let holder = Holder {
                    run_id: run_id.into(),
                    owner: owner(),
                    since: chrono::Utc::now().to_rfc3339(),
                    expires_at_ms: i64::MAX,
                };
                file.set_len(0)
                    .and_then(|_| {
                        file.write_all(serde_json::to_string(&holder).unwrap().as_bytes())
                    })
                    .map_err(io)?;
                Ok(Lock {
                    run_id: run_id.into(),
                    kind: Kind::Local { file },
                    lost,
                    renewer: None,
                })
            }
            Backend::S3 | Backend::Memory => {
                let path = loc.work_root().join("lock.json");
                let lock = Lock::lease(loc, path, run_id, times).await?;
                // Workers of frozen runs hold partitions: wait for them to finish.
                if let Some(worker) = live_lease_under(loc, &loc.work_root().join("locks")).await? {
                    let _ = lock.release().await;
                    return Err(locked(loc, Some(worker)));
                }
                Ok(lock)
            }
        }
    }

    async fn lease(loc: &Location, path: Path, run_id: &str, times: LeaseTimes) -> Result<Lock> {
        let lost = Arc::new(AtomicBool::new(false));
        let store = loc.store.clone();
        let etag = take_lease(&store, &path, loc, run_id, times).await?;
        let etag = Arc::new(tokio::sync::Mutex::new(Some(etag)));
        let renewer = tokio::spawn(renew(
            store.clone(),
            path.clone(),
            run_id.to_string(),
            times,
            etag.clone(),
            lost.clone(),
        ));
        Ok(Lock {
            run_id: run_id.into(),
            kind: Kind::Lease { store, path, etag },
            lost,
            renewer: Some(renewer),
        })
    }

    /// Takes partition `partition` for a worker of frozen run `run_id`: other workers may
    /// hold other partitions meanwhile; no whole-table operation may run. Fails with
    /// [`Error::Locked`] (busy, retry) naming the holder.
    pub async fn partition(
        loc: &Location,
        run_id: &str,
        partition: &str,
        times: LeaseTimes,
    ) -> Result<Lock> {
        let name = lock_name(partition);
        if !loc.is_local() {
            let path = loc
                .work_root()
                .join("locks")
                .join(format!("{name}.json").as_str());
            let lock = Lock::lease(loc, path, run_id, times).await?;
            if let Some(table) = live_lease_at(loc, &loc.work_root().join("lock.json")).await? {
                let _ = lock.release().await;
                return Err(locked(loc, Some(table)));
            }
            return Ok(lock);
        }
        let dir = loc.fs_path(&loc.work_root()).expect("local");
        let locks = dir.join("locks");
        loc.fs
            .create_dir_all(&locks)
            .map_err(|e| Error::io(&locks, e))?;
        let open = |path: &std::path::Path| {
            loc.fs
                .open(path, crate::storage::fs::Open::Lock)
                .map_err(|e| Error::io(path, e))
        };
        let holder_of = |path: &std::path::Path| -> Option<Holder> {
            let bytes = loc.fs.read(path).ok()?;
            serde_json::from_slice(&bytes).ok()
        };
        let table_path = dir.join("lock");
        let table = open(&table_path)?;
        if !table
            .try_lock_shared()
            .map_err(|e| Error::io(&table_path, e))?
        {
            let h = holder_of(&table_path);
            return Err(locked(loc, h));
        }
        let path = locks.join(&name);
        let file = open(&path)?;
        if !file.try_lock().map_err(|e| Error::io(&path, e))? {
            return Err(locked(loc, holder_of(&path)));
        }
        let holder = Holder {
            run_id: run_id.into(),
            owner: owner(),
            since: chrono::Utc::now().to_rfc3339(),
            expires_at_ms: i64::MAX,
        };
        file.set_len(0)
            .and_then(|_| file.write_all(serde_json::to_string(&holder).unwrap().as_bytes()))
            .map_err(|e| Error::io(&path, e))?;
        Ok(Lock {
            run_id: run_id.into(),
            kind: Kind::Worker { table, file },
            lost: Arc::new(AtomicBool::new(false)),
            renewer: None,
        })
    }

    /// Fails if the lease could not be renewed: the caller must stop changing the table.
    pub fn check(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::LockLost {
                run_id: self.run_id.clone(),
                reason: "its lease could not be renewed".into(),
            });
        }
        Ok(())
    }

    pub async fn release(mut self) -> Result<()> {
        let renewer = self.renewer.take();
        match &self.kind {
            Kind::Local { file } | Kind::Worker { file, .. } => {
                let _ = file.set_len(0);
                Ok(())
            }
            Kind::Lease { store, path, etag } => {
                // The renewer writes while holding the ETag: wait for a renewal in flight
                // to record its new ETag before stopping it. Stopped mid-write instead,
                // the store would hold a renewed lease under an ETag nobody knows, left
                // for its whole life.
                let current = {
                    let guard = etag.lock().await;
                    if let Some(r) = renewer {
                        r.abort();
                    }
                    guard.clone()
                };
                // Delete only our own lease: re-read and compare the ETag first.
                if let Ok(meta) = store.head(path).await {
                    if meta.e_tag == current {
                        store
                            .delete(path)
                            .await
                            .map_err(|e| Error::storage(path, e))?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// A partition's lock file name: its id with `%` and `/` escaped (one file per id).
fn lock_name(partition: &str) -> String {
    partition.replace('%', "%25").replace('/', "%2F")
}

fn locked(loc: &Location, holder: Option<Holder>) -> Error {
    Error::Locked {
        table: loc.display.clone(),
        run_id: holder
            .as_ref()
            .map(|h| h.run_id.clone())
            .unwrap_or_else(|| "?".into()),
        holder: holder
            .map(|h| format!("{}, since {}", h.owner, h.since))
            .unwrap_or_else(|| "workers of a frozen run hold partitions of it".into()),
    }
}

/// The holder of the lease at `path`, if it exists and has not expired.
async fn live_lease_at(loc: &Location, path: &Path) -> Result<Option<Holder>> {
    let got = match loc.store.get(path).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::storage(path, e)),
    };
    let bytes = match got.bytes().await {
        Ok(b) => b,
        // Released meanwhile.
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::storage(path, e)),
    };
    // An unreadable lease is taken as live: never go on beside a holder we cannot read.
    let holder: Holder = serde_json::from_slice(&bytes).unwrap_or(Holder {
        run_id: "?".into(),
        owner: format!("an unreadable lease {path}"),
        since: "?".into(),
        expires_at_ms: i64::MAX,
    });
    Ok((holder.expires_at_ms > now_ms()).then_some(holder))
}

/// The holder of some live lease under `prefix`.
async fn live_lease_under(loc: &Location, prefix: &Path) -> Result<Option<Holder>> {
    for p in loc.list_paths(prefix).await? {
        if let Some(h) = live_lease_at(loc, &p).await? {
            return Ok(Some(h));
        }
    }
    Ok(None)
}

fn body(run_id: &str, times: LeaseTimes) -> PutPayload {
    let holder = Holder {
        run_id: run_id.into(),
        owner: owner(),
        since: chrono::Utc::now().to_rfc3339(),
        expires_at_ms: now_ms() + times.ttl.as_millis() as i64,
    };
    PutPayload::from(serde_json::to_vec(&holder).expect("holder serialises"))
}

/// Checks that the store refuses a second create-only write: a store that silently
/// overwrites would let two runs both take the lease and both write the journal.
async fn probe_conditional_writes(
    store: &Arc<dyn ObjectStore>,
    loc: &Location,
    run_id: &str,
) -> Result<()> {
    // One probe object per attempt: workers of one run probe at the same time.
    let nonce = blake3::hash(format!("{}{:?}", owner(), std::time::SystemTime::now()).as_bytes());
    let probe = loc
        .work_root()
        .join(format!("probe-{run_id}-{}", &nonce.to_hex()[..12]));
    let create = || PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    let unsupported = || {
        Error::Unsupported {
            store: loc.display.clone(),
            lacks: "does not honour conditional writes (If-None-Match), which the table lock and the journal need".into(),
            next: "use a store or bucket that supports them",
        }
    };
    match store
        .put_opts(&probe, PutPayload::from_static(b"probe"), create())
        .await
    {
        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
        Err(object_store::Error::NotImplemented { .. }) => return Err(unsupported()),
        Err(e) => return Err(Error::storage(&probe, e)),
    }
    let second = store
        .put_opts(&probe, PutPayload::from_static(b"probe"), create())
        .await;
    let _ = store.delete(&probe).await;
    match second {
        Err(object_store::Error::AlreadyExists { .. })
        | Err(object_store::Error::Precondition { .. }) => Ok(()),
        Ok(_) | Err(object_store::Error::NotImplemented { .. }) => Err(unsupported()),
        Err(e) => Err(Error::storage(&probe, e)),
    }
}

async fn take_lease(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    loc: &Location,
    run_id: &str,
    times: LeaseTimes,
) -> Result<String> {
    if loc.backend == Backend::S3 {
        probe_conditional_writes(store, loc, run_id).await?;
    }
    // The holder may release between our create and our read: then create again.
    let mut attempts = 0;
    let current = loop {
        attempts += 1;
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match store.put_opts(path, body(run_id, times), create).await {
            Ok(r) => {
                return r.e_tag.ok_or_else(|| Error::Unsupported {
                    store: loc.display.clone(),
                    lacks: "returned no ETag for the lock, so it cannot hold a lease".into(),
                    next: "use a store that returns ETags",
                })
            }
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(object_store::Error::NotImplemented { .. }) => {
                return Err(Error::Unsupported {
                    store: loc.display.clone(),
                    lacks: "does not support conditional writes, which the table lock needs".into(),
                    next: "enable them on the server",
                })
            }
            Err(e) => return Err(Error::storage(path, e)),
        }
        match store.get(path).await {
            Ok(current) => break current,
            Err(object_store::Error::NotFound { .. }) if attempts < 5 => continue,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::Locked {
                    table: loc.display.clone(),
                    run_id: "another run".into(),
                    holder: "runs keep taking and releasing it".into(),
                })
            }
            Err(e) => return Err(Error::storage(path, e)),
        }
    };
    let version = UpdateVersion {
        e_tag: current.meta.e_tag.clone(),
        version: current.meta.version.clone(),
    };
    let bytes = current.bytes().await.map_err(|e| Error::storage(path, e))?;
    let holder: Holder = serde_json::from_slice(&bytes).map_err(|e| Error::LockDamaged {
        path: path.to_string(),
        reason: e.to_string(),
    })?;
    if holder.expires_at_ms > now_ms() {
        return Err(Error::Locked {
            table: loc.display.clone(),
            run_id: holder.run_id,
            holder: format!("{}, since {}", holder.owner, holder.since),
        });
    }
    // Expired: take it over, but only if nobody else did first.
    let update = PutOptions {
        mode: PutMode::Update(version),
        ..Default::default()
    };
    match store.put_opts(path, body(run_id, times), update).await {
        Ok(r) => r.e_tag.ok_or_else(|| Error::Unsupported {
            store: loc.display.clone(),
            lacks: "returned no ETag for the lock, so it cannot hold a lease".into(),
            next: "use a store that returns ETags",
        }),
        Err(object_store::Error::Precondition { .. })
        | Err(object_store::Error::AlreadyExists { .. }) => Err(Error::Locked {
            table: loc.display.clone(),
            run_id: "another run".into(),
            holder: "it took over the expired lock first".into(),
        }),
        Err(e) => Err(Error::storage(path, e)),
    }
}

async fn renew(
    store: Arc<dyn ObjectStore>,
    path: Path,
    run_id: String,
    times: LeaseTimes,
    etag: Arc<tokio::sync::Mutex<Option<String>>>,
    lost: Arc<AtomicBool>,
) {
    let mut last_ok = std::time::Instant::now();
    loop {
        tokio::time::sleep(times.renew_every).await;
        let mut current = etag.lock().await;
        let version = UpdateVersion {
            e_tag: current.clone(),
            version: None,
        };
        let update = PutOptions {
            mode: PutMode::Update(version),
            ..Default::default()
        };
        match store.put_opts(&path, body(&run_id, times), update).await {
            Ok(r) => {
                *current = r.e_tag;
                last_ok = std::time::Instant::now();
            }
            // Somebody else holds it now.
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::NotFound { .. }) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            // A passing error: try again, but give up before the lease could expire.
            Err(_) if last_ok.elapsed() < times.ttl.mul_f32(0.6) => {}
            Err(_) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
        }
    }
}
