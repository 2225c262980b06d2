//! The append-only record of every run and every partition's state.
//!
//! A run's journal is a folder of records `<work>/runs/<run_id>/journal/<seq>.json`, each
//! written create-only (a record is never overwritten: a stale process that lost the lock
//! fails on the first sequence number a newer one already wrote) and, on local disk,
//! fsynced with its folder before the step it announces is taken. The first record is the
//! frozen plan; `resume` reads it and never recomputes the selection or the clock.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::TryStreamExt;
use object_store::{path::Path, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::storage::Location;

/// Rows and checksum of one side of a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Side {
    pub rows: u64,
    pub checksum: String,
}

/// Time spent per phase, in milliseconds (summed over partitions in run totals):
/// - `read_ms`: reading and decoding the old files, with the before-checksum;
/// - `transform_ms`: the SQL and the output checks;
/// - `checksum_ms`: the after-checksum;
/// - `encode_ms`: encoding the new file and proving it (decoded again; copied chunks
///   compared byte for byte);
/// - `write_ms`: staging it (write, fsync, read back), including any wait for storage;
/// - `commit_ms`: journal records, the swap and its fsyncs, including waits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    pub read_ms: f64,
    pub transform_ms: f64,
    pub checksum_ms: f64,
    #[serde(default)]
    pub encode_ms: f64,
    pub write_ms: f64,
    pub commit_ms: f64,
}

impl Phases {
    pub fn add(&mut self, o: &Phases) {
        self.read_ms += o.read_ms;
        self.transform_ms += o.transform_ms;
        self.checksum_ms += o.checksum_ms;
        self.encode_ms += o.encode_ms;
        self.write_ms += o.write_ms;
        self.commit_ms += o.commit_ms;
    }
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The frozen plan; always record 0.
    Planned {
        plan: Box<Plan>,
    },
    /// `resume` took the run over.
    Resumed,
    /// New content equals the old: nothing written.
    Unchanged {
        partition: String,
        before: Side,
        phases: Phases,
    },
    /// The new files are staged and verified, and about to be made live; `old_files`
    /// are the data files they replace.
    Committing {
        partition: String,
        new_files: Vec<String>,
        old_files: Vec<String>,
        before: Side,
        after: Side,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema_change: Option<String>,
    },
    /// Object stores: the new files are live beside the old ones.
    Added {
        partition: String,
    },
    /// The partition is wholly new.
    Committed {
        partition: String,
        before: Side,
        after: Side,
        phases: Phases,
    },
    /// `--on-empty delete`: about to remove the partition (files kept as backup).
    Deleting {
        partition: String,
        old_files: Vec<String>,
        before: Side,
    },
    /// The partition is gone; its files are the backup.
    Deleted {
        partition: String,
        before: Side,
    },
    /// The transform gave nothing; `--on-empty keep` left the partition as it was.
    Kept {
        partition: String,
        before: Side,
        reason: String,
    },
    /// The partition was left as it was.
    Failed {
        partition: String,
        error: String,
    },
    /// The run ended (some partitions may have failed).
    Finished {
        rewritten: usize,
        unchanged: usize,
        failed: usize,
    },
    /// `rollback` is putting back a partition's old files.
    RollingBack {
        partition: String,
    },
    RolledBack {
        partition: String,
    },
    /// `rollback` left a partition as it is (reason says why).
    RollbackSkipped {
        partition: String,
        reason: String,
    },
    RollbackFinished,
    /// Backups were deleted; the run can no longer be rolled back.
    Released,
}

impl Event {
    pub fn partition(&self) -> Option<&str> {
        use Event::*;
        match self {
            Unchanged { partition, .. }
            | Committing { partition, .. }
            | Added { partition }
            | Committed { partition, .. }
            | Deleting { partition, .. }
            | Deleted { partition, .. }
            | Kept { partition, .. }
            | Failed { partition, .. }
            | RollingBack { partition }
            | RolledBack { partition }
            | RollbackSkipped { partition, .. } => Some(partition),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub at: String,
    #[serde(flatten)]
    pub event: Event,
}

/// Paths of one run inside the work area.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: Path,
}

impl RunDir {
    pub fn new(loc: &Location, run_id: &str) -> RunDir {
        RunDir {
            root: loc.work_root().join("runs").join(run_id),
        }
    }
    pub fn journal(&self) -> Path {
        self.root.clone().join("journal")
    }
    fn under(&self, what: &str, partition: &str) -> Path {
        let mut p = self.root.clone().join(what);
        for part in partition.split('/') {
            p = p.join(crate::storage::segment(part));
        }
        p
    }
    /// Staged new files of a partition.
    pub fn stage(&self, partition: &str) -> Path {
        self.under("stage", partition)
    }
    /// The old files of a committed partition.
    pub fn backup(&self, partition: &str) -> Path {
        self.under("backup", partition)
    }
    /// The new files of a rolled-back partition.
    pub fn undone(&self, partition: &str) -> Path {
        self.under("undone", partition)
    }
}

/// A run's journal, open for appending.
pub struct Journal {
    loc: Location,
    dir: Path,
    next: std::sync::Arc<AtomicU64>,
    run_id: String,
}

impl Journal {
    /// Starts the journal of a new run with its plan.
    pub async fn create(loc: &Location, plan: &Plan) -> Result<Journal> {
        let dir = RunDir::new(loc, &plan.run_id).journal();
        let j = Journal {
            loc: loc.clone(),
            dir,
            next: std::sync::Arc::new(AtomicU64::new(0)),
            run_id: plan.run_id.clone(),
        };
        j.append(Event::Planned {
            plan: Box::new(plan.clone()),
        })
        .await?;
        Ok(j)
    }

    /// Opens an existing journal: its records, and the journal positioned after them.
    pub async fn open(loc: &Location, run_id: &str) -> Result<(Journal, Vec<Record>)> {
        let records = read(loc, run_id).await?;
        if records.is_empty() {
            return Err(Error::Run(format!(
                "no run {run_id} in the journal of {}; `backfill runs {}` lists them",
                loc.display, loc.display
            )));
        }
        let next = records.last().map(|r| r.seq + 1).unwrap_or(0);
        let dir = RunDir::new(loc, run_id).journal();
        Ok((
            Journal {
                loc: loc.clone(),
                dir,
                next: std::sync::Arc::new(AtomicU64::new(next)),
                run_id: run_id.into(),
            },
            records,
        ))
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Appends a record durably, create-only.
    pub async fn append(&self, event: Event) -> Result<()> {
        if let Some(local) = self.local() {
            return crate::storage::blocking(move || local.append(event)).await;
        }
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        let record = Record {
            seq,
            at: now(),
            event,
        };
        let path = self.dir.clone().join(format!("{seq:08}.json"));
        let body = serde_json::to_vec(&record).expect("record serialises");
        let taken = || taken(&self.run_id, seq);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .loc
            .store
            .put_opts(&path, PutPayload::from(body), opts)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(taken()),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }
}

/// The journal of a local run, to append from a blocking task together with the
/// filesystem work a record announces (one hand-over to a blocking thread, not two).
pub struct LocalJournal {
    dir: std::path::PathBuf,
    next: std::sync::Arc<AtomicU64>,
    run_id: String,
}

impl Journal {
    /// The journal as a [`LocalJournal`], for a run on local disk.
    pub fn local(&self) -> Option<LocalJournal> {
        Some(LocalJournal {
            dir: self.loc.fs_path(&self.dir)?,
            next: self.next.clone(),
            run_id: self.run_id.clone(),
        })
    }
}

impl LocalJournal {
    /// Appends a record durably, create-only (blocking).
    pub fn append(&self, event: Event) -> Result<()> {
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        let record = Record {
            seq,
            at: now(),
            event,
        };
        let body = serde_json::to_vec(&record).expect("record serialises");
        match create_local(&self.dir.join(format!("{seq:08}.json")), &body)? {
            true => Ok(()),
            false => Err(taken(&self.run_id, seq)),
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn taken(run_id: &str, seq: u64) -> Error {
    Error::LockLost {
        run_id: run_id.to_string(),
        reason: format!("journal record {seq} was already written by another process"),
    }
}

/// Writes a record file on local disk, whole or not at all, create-only, durably: the
/// body goes to `<name>.tmp`, is fsynced, then hard-linked to its name (which fails if
/// the name exists) and the folder is fsynced. `Ok(false)` when the record exists.
fn create_local(path: &std::path::Path, body: &[u8]) -> Result<bool> {
    use std::io::Write;
    let io = |p: &std::path::Path, e| Error::Io {
        path: p.into(),
        error: e,
    };
    let dir = path.parent().expect("records live in a folder");
    let tmp = path.with_extension("json.tmp");
    let mut file = match std::fs::File::create(&tmp) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
            std::fs::File::create(&tmp)
        }
        other => other,
    }
    .map_err(|e| io(&tmp, e))?;
    file.write_all(body).map_err(|e| io(&tmp, e))?;
    file.sync_all().map_err(|e| io(&tmp, e))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(io(path, e)),
    }
    crate::storage::sync_path(dir)?;
    Ok(true)
}

/// All records of a run, in order.
pub async fn read(loc: &Location, run_id: &str) -> Result<Vec<Record>> {
    let dir = RunDir::new(loc, run_id).journal();
    let mut metas: Vec<object_store::ObjectMeta> = loc
        .store
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|e| Error::storage(&dir, e))?;
    // Only records: a `.tmp` file is a record whose write never finished.
    metas.retain(|m| m.location.as_ref().ends_with(".json"));
    metas.sort_by(|a, b| a.location.cmp(&b.location));
    let mut out = Vec::with_capacity(metas.len());
    for m in metas {
        let bytes = loc
            .store
            .get(&m.location)
            .await
            .map_err(|e| Error::storage(&m.location, e))?
            .bytes()
            .await
            .map_err(|e| Error::storage(&m.location, e))?;
        let record: Record = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Run(format!(
                "journal record {} is damaged ({e}); the run cannot be resumed safely",
                m.location
            ))
        })?;
        out.push(record);
    }
    Ok(out)
}

/// Ids of every run with a journal, oldest first (ids sort by start time).
pub async fn run_ids(loc: &Location) -> Result<Vec<String>> {
    let runs = loc.work_root().join("runs");
    let listing = match loc.store.list_with_delimiter(Some(&runs)).await {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(Error::storage(&runs, e)),
    };
    let mut ids: Vec<String> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

/// The last recorded state of each partition of a run.
pub fn last_states(records: &[Record]) -> std::collections::HashMap<String, Event> {
    let mut out = std::collections::HashMap::new();
    for r in records {
        if let Some(p) = r.event.partition() {
            out.insert(p.to_string(), r.event.clone());
        }
    }
    out
}

/// A new run id: start time (sortable) and a short random suffix.
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let noise = blake3::hash(format!("{:?}{}", now, std::process::id()).as_bytes()).to_hex();
    format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), &noise[..6])
}
