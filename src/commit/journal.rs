//! The append-only record of every run and every partition's state.
//!
//! On local disk a run's journal is one file, `<work>/runs/<run_id>/journal/log.jsonl`, a
//! line of JSON per record, appended and fdatasynced before the step it announces is taken
//! (one file: no new inode and no folder fsync per record). On object stores it is a
//! folder of create-only objects `<seq>.json`. Either way a stale process that lost the
//! lock fails on its next record: the object exists already, or the file has grown since
//! the process read it. The first record is the frozen plan; `resume` reads it and never
//! recomputes the selection or the clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use object_store::{path::Path, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::storage::fs::{Fs, Open};
use crate::storage::{blocking, Location};
use crate::table::PartitionId;

/// Rows and checksum of one side of a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Side {
    pub rows: u64,
    pub checksum: String,
}

/// Time spent per phase, in milliseconds (summed over partitions in run totals):
/// - `read_ms`: reading and decoding the old files;
/// - `transform_ms`: the SQL and the output checks;
/// - `checksum_ms`: the before-checksum (computed as the old files are decoded) and the
///   after-checksum;
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

/// The journal format this backfill writes, recorded in every run's first record
/// (journals written before it was recorded are format 1: the same records).
pub const FORMAT: u32 = 2;

fn format_1() -> u32 {
    1
}

/// New content equals the old: nothing written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unchanged {
    pub partition: PartitionId,
    pub before: Side,
    pub phases: Phases,
}

/// The new files are staged and verified, and about to be made live; `old_files` are the
/// data files they replace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Committing {
    pub partition: PartitionId,
    pub new_files: Vec<String>,
    pub old_files: Vec<String>,
    pub before: Side,
    pub after: Side,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_change: Option<String>,
}

/// Object stores: the new files are live beside the old ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Added {
    pub partition: PartitionId,
}

/// The partition is wholly new.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Committed {
    pub partition: PartitionId,
    pub before: Side,
    pub after: Side,
    pub phases: Phases,
}

/// `--on-empty delete`: about to remove the partition (files kept as backup).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deleting {
    pub partition: PartitionId,
    pub old_files: Vec<String>,
    pub before: Side,
}

/// The partition is gone; its files are the backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    pub partition: PartitionId,
    pub before: Side,
}

/// The transform gave nothing; `--on-empty keep` left the partition as it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    pub partition: PartitionId,
    pub before: Side,
    pub reason: String,
}

/// The partition was left as it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failed {
    pub partition: PartitionId,
    pub error: String,
}

/// A record naming only its partition (`rolling_back`, `rolled_back`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Of {
    pub partition: PartitionId,
}

/// `rollback` left a partition as it is (reason says why).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackSkipped {
    pub partition: PartitionId,
    pub reason: String,
}

/// One journal record. The states of the commit protocol are drawn in
/// [`crate::commit`]; [`crate::commit::RunState`] folds a journal into them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The frozen plan; always record 0.
    Planned {
        plan: Box<Plan>,
        /// The journal's format ([`FORMAT`]).
        #[serde(default = "format_1")]
        format: u32,
    },
    /// `resume` took the run over.
    Resumed,
    Unchanged(Unchanged),
    Committing(Committing),
    Added(Added),
    Committed(Committed),
    Deleting(Deleting),
    Deleted(Deleted),
    Kept(Kept),
    Failed(Failed),
    /// The run ended (some partitions may have failed).
    Finished {
        rewritten: usize,
        unchanged: usize,
        failed: usize,
    },
    /// `rollback` is putting back a partition's old files.
    RollingBack(Of),
    RolledBack(Of),
    RollbackSkipped(RollbackSkipped),
    RollbackFinished,
    /// Backups were deleted; the run can no longer be rolled back.
    Released,
}

impl Event {
    pub fn partition(&self) -> Option<&PartitionId> {
        use Event::*;
        Some(match self {
            Unchanged(e) => &e.partition,
            Committing(e) => &e.partition,
            Added(e) => &e.partition,
            Committed(e) => &e.partition,
            Deleting(e) => &e.partition,
            Deleted(e) => &e.partition,
            Kept(e) => &e.partition,
            Failed(e) => &e.partition,
            RollingBack(e) | RolledBack(e) => &e.partition,
            RollbackSkipped(e) => &e.partition,
            Planned { .. } | Resumed | Finished { .. } | RollbackFinished | Released => {
                return None
            }
        })
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

    /// The journal of one partition of a run frozen by `plan --freeze`: the records its
    /// workers append (one worker at a time, under the partition's lease).
    pub fn partition_journal(&self, partition: &str) -> Path {
        self.under("partitions", partition).join("journal")
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
    run_id: String,
    sink: Sink,
}

enum Sink {
    /// Local disk: one append-only file, [`LOG`].
    Log(Arc<Log>),
    /// Object stores: one create-only object per record, named by its sequence number.
    Objects(Arc<AtomicU64>),
}

/// The file a local journal appends to, inside the journal folder.
pub const LOG: &str = "log.jsonl";

impl Journal {
    /// Starts the journal of a new run with its plan.
    pub async fn create(loc: &Location, plan: &Plan) -> Result<Journal> {
        let dir = RunDir::new(loc, &plan.run_id).journal();
        let journal = Journal::start(loc, &plan.run_id, dir, 0, true).await?;
        journal
            .append(Event::Planned {
                plan: Box::new(plan.clone()),
                format: FORMAT,
            })
            .await?;
        Ok(journal)
    }

    async fn start(
        loc: &Location,
        run_id: &str,
        dir: Path,
        next: u64,
        new: bool,
    ) -> Result<Journal> {
        let sink = match loc.fs_path(&dir) {
            Some(folder) => {
                let fs = loc.fs.clone();
                let log = blocking(move || Log::open(fs, folder, next, new)).await?;
                Sink::Log(Arc::new(log))
            }
            None => Sink::Objects(Arc::new(AtomicU64::new(next))),
        };
        Ok(Journal {
            loc: loc.clone(),
            dir,
            run_id: run_id.into(),
            sink,
        })
    }

    /// Opens an existing journal: its records, and the journal positioned after them.
    pub async fn open(loc: &Location, run_id: &str) -> Result<(Journal, Vec<Record>)> {
        let records = read(loc, run_id).await?;
        if records.is_empty() {
            return Err(Error::NoRun {
                table: loc.display.clone(),
                run_id: run_id.into(),
            });
        }
        let next = records.last().map(|r| r.seq + 1).unwrap_or(0);
        let dir = RunDir::new(loc, run_id).journal();
        let journal = Journal::start(loc, run_id, dir, next, false).await?;
        Ok((journal, records))
    }

    /// Opens (or starts) the journal of one partition of a frozen run: its records, and
    /// the journal positioned after them.
    pub async fn open_partition(
        loc: &Location,
        run_id: &str,
        partition: &str,
    ) -> Result<(Journal, Vec<Record>)> {
        let dir = RunDir::new(loc, run_id).partition_journal(partition);
        let records = read_at(loc, &dir).await?;
        if let Some(folder) = loc.fs_path(&dir) {
            if !loc.fs.exists(&folder) {
                let fs = loc.fs.clone();
                let run_root = loc.fs_path(&RunDir::new(loc, run_id).root).expect("local");
                blocking(move || {
                    fs.create_dir_all(&folder)
                        .map_err(|e| Error::io(&folder, e))?;
                    // The folders are new: make the names leading to the journal durable.
                    for dir in folder.ancestors().take_while(|d| d.starts_with(&run_root)) {
                        fs.sync(dir).map_err(|e| Error::io(dir, e))?;
                    }
                    Ok(())
                })
                .await?;
            }
        }
        let next = records.last().map(|r| r.seq + 1).unwrap_or(0);
        let journal = Journal::start(loc, run_id, dir, next, false).await?;
        Ok((journal, records))
    }

    /// Makes every record written so far durable (the local log's [`Journal::note`]s).
    pub async fn flush(&self) -> Result<()> {
        if let Sink::Log(log) = &self.sink {
            let log = log.clone();
            return blocking(move || log.flush()).await;
        }
        Ok(())
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Appends a record durably: it is on disk (or in the store) before this returns, so
    /// the step it announces may be taken.
    pub async fn append(&self, event: Event) -> Result<()> {
        self.write(event, true).await
    }

    /// Appends a record of an outcome that `resume` can find out again from the table
    /// (`committed`, `unchanged`). On local disk it is written but made durable only by
    /// the next [`Journal::append`] (the run's last record always is one): a crash may
    /// lose it, and `resume` then checks the partition instead.
    pub async fn note(&self, event: Event) -> Result<()> {
        self.write(event, false).await
    }

    async fn write(&self, event: Event, durable: bool) -> Result<()> {
        let next = match &self.sink {
            Sink::Log(log) => {
                let log = log.clone();
                let run_id = self.run_id.clone();
                return if durable {
                    blocking(move || log.append(&run_id, event, true)).await
                } else {
                    // A write into the page cache: too short to hand to a blocking thread.
                    log.append(&run_id, event, false)
                };
            }
            Sink::Objects(next) => next,
        };
        let seq = next.fetch_add(1, Ordering::SeqCst);
        let record = Record {
            seq,
            at: now(),
            event,
        };
        let path = self.dir.clone().join(format!("{seq:08}.json"));
        let body = serde_json::to_vec(&record).expect("record serialises");
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
            Err(object_store::Error::AlreadyExists { .. }) => Err(taken(&self.run_id, seq)),
            Err(e) => Err(Error::storage(&path, e)),
        }
    }

    /// The journal as a [`LocalJournal`], for a run on local disk.
    pub fn local(&self) -> Option<LocalJournal> {
        match &self.sink {
            Sink::Log(log) => Some(LocalJournal {
                log: log.clone(),
                run_id: self.run_id.clone(),
            }),
            Sink::Objects(_) => None,
        }
    }
}

/// The journal of a local run, to append from a blocking task together with the
/// filesystem work a record announces (one hand-over to a blocking thread, not two).
pub struct LocalJournal {
    log: Arc<Log>,
    run_id: String,
}

impl LocalJournal {
    /// Appends a record durably (blocking).
    pub fn append(&self, event: Event) -> Result<()> {
        self.log.append(&self.run_id, event, true)
    }
}

/// A local journal file. Records are lines of JSON; each is written with one `write` at
/// the end of the file and, when durable, followed by `fdatasync`, which also makes every
/// earlier line durable. So after a crash only lines that were never synced can be cut
/// short, and every line after a damaged one was never synced either: [`parse_log`] keeps
/// the lines before the first damaged one, and [`Log::open`] cuts the rest off before
/// appending again.
struct Log {
    fs: Arc<dyn Fs>,
    path: std::path::PathBuf,
    state: Mutex<LogState>,
}

struct LogState {
    file: Option<Arc<dyn crate::storage::fs::File>>,
    /// Where the next record goes; the file's length unless another process wrote to it.
    end: u64,
    next: u64,
}

impl Log {
    fn open(fs: Arc<dyn Fs>, folder: std::path::PathBuf, next: u64, new: bool) -> Result<Log> {
        let path = folder.join(LOG);
        let io = |p: &std::path::Path| {
            let p = p.to_path_buf();
            move |e| Error::io(&p, e)
        };
        let (file, end) = if new {
            fs.create_dir_all(&folder).map_err(io(&folder))?;
            let file = fs.open(&path, Open::CreateNew).map_err(io(&path))?;
            // The folders are new: make the names leading to the log durable.
            for dir in folder.ancestors().take(4) {
                fs.sync(dir).map_err(io(dir))?;
            }
            (Some(file), 0)
        } else {
            match fs.open(&path, Open::Append) {
                Ok(file) => {
                    let bytes = fs.read(&path).map_err(io(&path))?;
                    let (_, good) = parse_log(&bytes, &path)?;
                    if good < bytes.len() {
                        file.set_len(good as u64).map_err(io(&path))?;
                        file.sync_all().map_err(io(&path))?;
                    }
                    (Some(file), good as u64)
                }
                // A journal of records in their own files: the log starts with the next one.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, 0),
                Err(e) => return Err(Error::io(&path, e)),
            }
        };
        Ok(Log {
            fs,
            path,
            state: Mutex::new(LogState { file, end, next }),
        })
    }

    /// fdatasync of the log: every line written is durable.
    fn flush(&self) -> Result<()> {
        let file = self.state.lock().expect("journal lock").file.clone();
        match file {
            Some(f) => f.sync_data().map_err(|e| Error::io(&self.path, e)),
            None => Ok(()),
        }
    }

    fn append(&self, run_id: &str, event: Event, durable: bool) -> Result<()> {
        let mut state = self.state.lock().expect("journal lock");
        let record = Record {
            seq: state.next,
            at: now(),
            event,
        };
        let mut line = serde_json::to_vec(&record).expect("record serialises");
        line.push(b'\n');
        if state.file.is_none() {
            let file = self
                .fs
                .open(&self.path, Open::CreateNew)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => taken(run_id, record.seq),
                    _ => Error::io(&self.path, e),
                })?;
            let folder = self.path.parent().expect("the log is in a folder");
            self.fs.sync(folder).map_err(|e| Error::io(folder, e))?;
            state.file = Some(file);
        }
        let file = state.file.clone().expect("opened above");
        // Another process appended since this one read the journal: it holds the run now.
        let len = file.len().map_err(|e| Error::io(&self.path, e))?;
        if len != state.end {
            return Err(taken(run_id, record.seq));
        }
        if let Err(e) = file.write_all(&line) {
            // A disk that filled up mid-line: take the part back, so that the journal
            // stays whole lines and a later append is not taken for another process's.
            let _ = file.set_len(state.end);
            return Err(Error::io(&self.path, e));
        }
        state.end += line.len() as u64;
        state.next += 1;
        drop(state);
        // Outside the lock: appends of other partitions go on meanwhile, and one sync
        // makes them all durable.
        if durable {
            file.sync_data().map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }
}

/// The records of a local journal file and the length of the part that holds them: the
/// lines before the first one that is cut short or damaged (see [`Log`]).
fn parse_log(bytes: &[u8], path: &std::path::Path) -> Result<(Vec<Record>, usize)> {
    let mut records = Vec::new();
    let mut good = 0;
    while let Some(n) = bytes[good..].iter().position(|b| *b == b'\n') {
        match serde_json::from_slice::<Record>(&bytes[good..good + n]) {
            Ok(r) => records.push(r),
            Err(_) => break,
        }
        good += n + 1;
    }
    if let Some(w) = records.windows(2).find(|w| w[1].seq != w[0].seq + 1) {
        return Err(Error::JournalDamaged {
            path: path.display().to_string(),
            reason: format!("it jumps from record {} to {}", w[0].seq, w[1].seq),
        });
    }
    Ok((records, good))
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

/// All records of a run's own journal, in order.
pub async fn read(loc: &Location, run_id: &str) -> Result<Vec<Record>> {
    read_at(loc, &RunDir::new(loc, run_id).journal()).await
}

/// The records of one partition of a frozen run, in order.
pub async fn read_partition(loc: &Location, run_id: &str, partition: &str) -> Result<Vec<Record>> {
    read_at(loc, &RunDir::new(loc, run_id).partition_journal(partition)).await
}

/// The records of the journal in folder `dir`, in order.
async fn read_at(loc: &Location, dir: &Path) -> Result<Vec<Record>> {
    let dir = dir.clone();
    let mut metas: Vec<object_store::ObjectMeta> = loc
        .store
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|e| Error::storage(&dir, e))?;
    // Records in their own files (object stores), and the local log.
    let log = metas
        .iter()
        .position(|m| m.location.filename() == Some(LOG))
        .map(|i| metas.swap_remove(i));
    metas.retain(|m| m.location.as_ref().ends_with(".json"));
    metas.sort_by(|a, b| a.location.cmp(&b.location));
    // One object per record: each is a round trip, so many at once, kept in order.
    let mut out: Vec<Record> = futures::stream::iter(metas)
        .map(|m| async move {
            let bytes = get(loc, &m.location).await?;
            serde_json::from_slice(&bytes).map_err(|e| Error::JournalDamaged {
                path: m.location.to_string(),
                reason: format!("the record is damaged ({e})"),
            })
        })
        .buffered(RECORDS_AT_ONCE)
        .try_collect()
        .await?;
    if let Some(m) = log {
        let bytes = get(loc, &m.location).await?;
        let shown = std::path::PathBuf::from(m.location.as_ref());
        out.extend(parse_log(&bytes, &shown)?.0);
    }
    Ok(out)
}

/// How much a run's journals hold: their record objects, the bytes of their logs, and
/// the newest change to either. Records are only ever added (objects created, lines
/// appended, after cutting off a torn line, which changes the time), so a journal of the
/// same extent holds the same records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    pub objects: u64,
    pub log_bytes: u64,
    pub newest: Option<String>,
}

/// The extent of run `run_id`'s journals: its own and, for a frozen run, its partitions'.
/// A listing, no record read: on object stores one request per thousand records.
pub async fn extent(loc: &Location, run_id: &str) -> Result<Extent> {
    let run = RunDir::new(loc, run_id);
    let mut out = Extent::default();
    for dir in [run.journal(), run.root.clone().join("partitions")] {
        let metas: Vec<object_store::ObjectMeta> =
            match loc.store.list(Some(&dir)).try_collect().await {
                Ok(m) => m,
                Err(object_store::Error::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(Error::storage(&dir, e)),
            };
        for m in metas {
            if m.location.filename() == Some(LOG) {
                out.log_bytes += m.size;
            } else if m.location.as_ref().ends_with(".json") {
                out.objects += 1;
            } else {
                continue;
            }
            let at = m
                .last_modified
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            if out.newest.as_ref().is_none_or(|n| *n < at) {
                out.newest = Some(at);
            }
        }
    }
    Ok(out)
}

/// Journal records read at once from an object store.
const RECORDS_AT_ONCE: usize = 32;

async fn get(loc: &Location, path: &Path) -> Result<bytes::Bytes> {
    loc.store
        .get(path)
        .await
        .map_err(|e| Error::storage(path, e))?
        .bytes()
        .await
        .map_err(|e| Error::storage(path, e))
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

/// A new run id: start time (sortable) and a short random suffix.
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let noise = blake3::hash(format!("{:?}{}", now, std::process::id()).as_bytes()).to_hex();
    format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), &noise[..6])
}
