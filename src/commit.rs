//! The swap that makes a staged partition live, its backup, its recovery and its undo.
//!
//! Correctness depends on two things: every step is journalled *before* it is taken
//! (so `resume` knows where a crash happened), and each step is one atomic operation
//! of the backend.
//!
//! ```text
//!            local disk                              object store (S3, memory)
//!  staged    stage/<p>/ holds the new files         stage/<p>/ holds the new files
//!  backup    (the exchange makes it)                copy old files -> backup/<p>/
//!  journal   Committing{new, old, before, after}    Committing{new, old, before, after}
//!  swap      renameat2(stage/<p>, <p>, EXCHANGE)    copy new files into <p>/ ; journal Added
//!            rename(stage/<p>, backup/<p>)          delete the old files from <p>/
//!  journal   Committed                              Committed
//! ```
//!
//! What a reader of the table sees during a commit:
//! - local disk: the old folder, then the new folder, in one syscall: never a mix, never
//!   nothing. Where `RENAME_EXCHANGE` is missing (not Linux, or a filesystem without it)
//!   the fallback is two renames, between which the partition folder is briefly absent;
//! - object stores: old files, then old and new files together (rows counted twice)
//!   until the old files are deleted, then new files. A crash in that window leaves
//!   extra files, never missing ones; `resume` deletes the old ones.
//!
//! The work area (`<table parent>/.backfill/<table>/`) is outside the table's prefix, so
//! staged files and backups are never listed by readers of the table.

use std::path::PathBuf;

use futures::TryStreamExt;
use object_store::{path::Path, ObjectStoreExt};

use crate::error::{Error, Result};
use crate::journal::{Event, Journal, RunDir, Side};
use crate::storage::{segment, sync_path, Backend, Location};

/// Above this size a server-side copy is not assumed to work (S3's CopyObject limit).
const COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

fn fs(loc: &Location, p: &Path) -> PathBuf {
    loc.fs_path(p).expect("local table")
}

fn sync_parent(p: &std::path::Path) -> Result<()> {
    match p.parent() {
        Some(parent) => sync_path(parent),
        None => Ok(()),
    }
}

/// Swaps two directories atomically. `Ok(false)` when the system cannot.
fn exchange(a: &std::path::Path, b: &std::path::Path) -> Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let ca = std::ffi::CString::new(a.as_os_str().as_bytes())
            .map_err(|e| Error::io(a, std::io::Error::other(e)))?;
        let cb = std::ffi::CString::new(b.as_os_str().as_bytes())
            .map_err(|e| Error::io(b, std::io::Error::other(e)))?;
        // SAFETY: both are valid NUL-terminated paths.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                ca.as_ptr(),
                libc::AT_FDCWD,
                cb.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => Ok(false),
            Some(libc::EXDEV) => Err(Error::Run(format!(
                "{} and {} are on different filesystems; the work area must share the table's filesystem",
                a.display(),
                b.display()
            ))),
            _ => Err(Error::io(b, err)),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

fn rename(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::rename(from, to).map_err(|e| Error::io(from, e))?;
    sync_parent(from)?;
    sync_parent(to)
}

/// Names of the data files (`*.parquet`, not hidden) directly in a partition.
pub async fn live_files(loc: &Location, partition: &str) -> Result<Vec<(String, u64)>> {
    let prefix = loc.child(partition);
    let listing = match loc.store.list_with_delimiter(Some(&prefix)).await {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(Error::storage(&prefix, e)),
    };
    let mut out: Vec<(String, u64)> = listing
        .objects
        .into_iter()
        .filter_map(|m| {
            let name = m.location.filename()?.to_string();
            let data = name.to_ascii_lowercase().ends_with(".parquet")
                && !name.starts_with('_')
                && !name.starts_with('.');
            data.then_some((name, m.size))
        })
        .collect();
    out.sort();
    Ok(out)
}

async fn copy(loc: &Location, from: &Path, to: &Path) -> Result<()> {
    let size = loc
        .store
        .head(from)
        .await
        .map_err(|e| Error::storage(from, e))?
        .size;
    if size <= COPY_LIMIT || loc.backend != Backend::S3 {
        return loc
            .store
            .copy(from, to)
            .await
            .map_err(|e| Error::storage(to, e));
    }
    // Too big for a server-side copy: stream it through as a multipart upload.
    let mut src = loc
        .store
        .get(from)
        .await
        .map_err(|e| Error::storage(from, e))?
        .into_stream();
    let mut sink = object_store::buffered::BufWriter::new(loc.store.clone(), to.clone());
    use tokio::io::AsyncWriteExt;
    while let Some(chunk) = src.try_next().await.map_err(|e| Error::storage(from, e))? {
        sink.write_all(&chunk)
            .await
            .map_err(|e| Error::Run(format!("copying {from} to {to}: {e}")))?;
    }
    sink.shutdown()
        .await
        .map_err(|e| Error::Run(format!("copying {from} to {to}: {e}")))
}

async fn delete(loc: &Location, path: &Path) -> Result<()> {
    match loc.store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::storage(path, e)),
    }
}

/// Copies the named files from one folder to another (object stores).
async fn copy_files(loc: &Location, from: &Path, to: &Path, files: &[String]) -> Result<()> {
    for f in files {
        copy(
            loc,
            &from.clone().join(segment(f)),
            &to.clone().join(segment(f)),
        )
        .await?;
    }
    Ok(())
}

/// Copies the old data files of a partition into the run's backup (object stores).
async fn backup_files(
    loc: &Location,
    run: &RunDir,
    partition: &str,
    old_files: &[String],
) -> Result<()> {
    copy_files(
        loc,
        &loc.child(partition),
        &run.backup(partition),
        old_files,
    )
    .await
}

/// Makes the staged files of a partition live and keeps the old ones as its backup.
/// `committing` is the [`Event::Committing`] record journalled just before the swap.
pub async fn commit(
    loc: &Location,
    run: &RunDir,
    journal: &Journal,
    committing: Event,
) -> Result<()> {
    let Event::Committing {
        partition,
        new_files,
        old_files,
        ..
    } = committing.clone()
    else {
        return Err(Error::Run(format!(
            "internal error: commit called with {committing:?}"
        )));
    };
    match loc.backend {
        Backend::Local => {
            let live = fs(loc, &loc.child(&partition));
            let stage = fs(loc, &run.stage(&partition));
            let carry = old_files.clone();
            let local = journal.local().ok_or_else(|| {
                Error::Run("internal error: a local table without a local journal".into())
            })?;
            let (loc, run) = (loc.clone(), run.clone());
            crate::storage::blocking(move || {
                // The staged file's write already made the stage folder durable.
                if carry_over(&live, &stage, &carry)? {
                    sync_path(&stage)?;
                }
                local.append(committing)?;
                swap_local(&loc, &run, &partition)
            })
            .await
        }
        Backend::S3 | Backend::Memory => {
            backup_files(loc, run, &partition, &old_files).await?;
            journal.append(committing).await?;
            add_then_delete(loc, run, journal, &partition, &new_files, &old_files).await
        }
    }
}

/// Files in a live partition folder that are not data (markers like `_SUCCESS`) move
/// with the partition: hard-linked into the staged folder before the swap. Returns
/// whether any were.
fn carry_over(
    live: &std::path::Path,
    stage: &std::path::Path,
    old_files: &[String],
) -> Result<bool> {
    let entries = match std::fs::read_dir(live) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Run(format!(
                "partition folder {} disappeared since the plan",
                live.display()
            )))
        }
        Err(e) => return Err(Error::io(live, e)),
    };
    let mut linked = false;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(live, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if !is_file
            || old_files.contains(&name)
            || name.ends_with(".crc")
            || name.to_ascii_lowercase().ends_with(".parquet")
        {
            continue;
        }
        let target = stage.join(&name);
        if !target.exists() {
            std::fs::hard_link(entry.path(), &target).map_err(|e| Error::io(&target, e))?;
            linked = true;
        }
    }
    Ok(linked)
}

/// Local swap, from any point after `Committing` was journalled.
fn swap_local(loc: &Location, run: &RunDir, partition: &str) -> Result<()> {
    let live = fs(loc, &loc.child(partition));
    let stage = fs(loc, &run.stage(partition));
    let backup = fs(loc, &run.backup(partition));
    if let Some(parent) = backup.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    if exchange(&stage, &live)? {
        sync_parent(&live)?;
        // The stage folder now holds the old files: it becomes the backup (the rename
        // fsyncs the stage folder's parent, which the exchange also changed).
        rename(&stage, &backup)
    } else {
        rename(&live, &backup)?;
        rename(&stage, &live)
    }
}

async fn add_then_delete(
    loc: &Location,
    run: &RunDir,
    journal: &Journal,
    partition: &str,
    new_files: &[String],
    old_files: &[String],
) -> Result<()> {
    copy_files(loc, &run.stage(partition), &loc.child(partition), new_files).await?;
    journal
        .append(Event::Added {
            partition: partition.into(),
        })
        .await?;
    delete_files(loc, partition, old_files).await
}

/// Deletes the named files of a partition (a file already gone is fine).
async fn delete_files(loc: &Location, partition: &str, files: &[String]) -> Result<()> {
    for f in files {
        delete(loc, &loc.child(partition).join(segment(f))).await?;
    }
    Ok(())
}

/// Removes a partition (`--on-empty delete`); its files become the backup.
pub async fn remove(
    loc: &Location,
    run: &RunDir,
    journal: &Journal,
    partition: &str,
    old_files: &[String],
    before: &Side,
) -> Result<()> {
    match loc.backend {
        Backend::Local => {
            journal
                .append(Event::Deleting {
                    partition: partition.into(),
                    old_files: old_files.into(),
                    before: before.clone(),
                })
                .await?;
            rename(
                &fs(loc, &loc.child(partition)),
                &fs(loc, &run.backup(partition)),
            )
        }
        Backend::S3 | Backend::Memory => {
            backup_files(loc, run, partition, old_files).await?;
            journal
                .append(Event::Deleting {
                    partition: partition.into(),
                    old_files: old_files.into(),
                    before: before.clone(),
                })
                .await?;
            delete_files(loc, partition, old_files).await
        }
    }
}

/// Where an interrupted commit stands after [`recover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// The partition is wholly new (or deleted, for `Deleting`).
    Done,
    /// The partition is wholly old; the commit can be redone.
    NotStarted,
}

/// Finishes a commit (or delete) that was journalled as started but not as finished.
pub async fn recover(
    loc: &Location,
    run: &RunDir,
    journal: &Journal,
    state: &Event,
) -> Result<Recovered> {
    match (loc.backend, state) {
        (
            Backend::Local,
            Event::Committing {
                partition,
                new_files,
                ..
            },
        ) => {
            let live = fs(loc, &loc.child(partition));
            let stage = fs(loc, &run.stage(partition));
            let backup = fs(loc, &run.backup(partition));
            let names = live_files(loc, partition).await?;
            let live_has_new = !new_files.is_empty()
                && new_files.iter().all(|f| names.iter().any(|(n, _)| n == f));
            if live_has_new {
                if stage.exists() && !backup.exists() {
                    rename(&stage, &backup)?;
                }
                Ok(Recovered::Done)
            } else if !live.exists() && stage.exists() {
                // The two-rename fallback stopped half-way: the old files are the backup.
                rename(&stage, &live)?;
                Ok(Recovered::Done)
            } else if stage.exists() {
                swap_local(loc, run, partition)?;
                Ok(Recovered::Done)
            } else {
                Ok(Recovered::NotStarted)
            }
        }
        (Backend::Local, Event::Deleting { partition, .. }) => {
            let live = fs(loc, &loc.child(partition));
            if live.exists() {
                rename(&live, &fs(loc, &run.backup(partition)))?;
            }
            Ok(Recovered::Done)
        }
        (
            _,
            Event::Committing {
                partition,
                new_files,
                old_files,
                ..
            },
        ) => {
            add_then_delete(loc, run, journal, partition, new_files, old_files).await?;
            Ok(Recovered::Done)
        }
        (_, Event::Added { partition }) => {
            let old = old_files_of(journal, loc, partition).await?;
            delete_files(loc, partition, &old).await?;
            Ok(Recovered::Done)
        }
        (
            _,
            Event::Deleting {
                partition,
                old_files,
                ..
            },
        ) => {
            delete_files(loc, partition, old_files).await?;
            Ok(Recovered::Done)
        }
        _ => Ok(Recovered::NotStarted),
    }
}

async fn old_files_of(journal: &Journal, loc: &Location, partition: &str) -> Result<Vec<String>> {
    let records = crate::journal::read(loc, journal.run_id()).await?;
    records
        .iter()
        .rev()
        .find_map(|r| match &r.event {
            Event::Committing {
                partition: p,
                old_files,
                ..
            } if p == partition => Some(old_files.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            Error::Run(format!(
                "journal of run {} has no commit record for {partition}",
                journal.run_id()
            ))
        })
}

/// Puts back the old files of a partition the run committed (or deleted).
///
/// Refuses (`Ok(Some(reason))`) when the live partition is no longer what the run left.
/// With `resuming`, finishes an undo that was journalled as started.
#[allow(clippy::too_many_arguments)]
pub async fn undo(
    loc: &Location,
    run: &RunDir,
    journal: &Journal,
    partition: &str,
    new_files: &[String],
    old_files: &[String],
    deleted: bool,
    resuming: bool,
) -> Result<Option<String>> {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let live_names: Vec<String> = live_files(loc, partition)
        .await?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    if !resuming {
        if deleted && !live_names.is_empty() {
            return Ok(Some(
                "the partition was written again after this run deleted it".into(),
            ));
        }
        if !deleted && live_names != sorted(new_files) {
            return Ok(Some(format!(
                "its files changed after this run committed it (now: {})",
                live_names.join(", ")
            )));
        }
        journal
            .append(Event::RollingBack {
                partition: partition.into(),
            })
            .await?;
    }
    match loc.backend {
        Backend::Local => {
            let live = fs(loc, &loc.child(partition));
            let backup = fs(loc, &run.backup(partition));
            let undone = fs(loc, &run.undone(partition));
            let old_back = if deleted {
                live.exists()
            } else {
                !old_files.is_empty() && live_names == sorted(old_files)
            };
            if old_back {
                // Done already; the backup path may still hold the new files.
                if !deleted && backup.exists() {
                    rename(&backup, &undone)?;
                }
            } else if deleted || !live.exists() {
                rename(&backup, &live)?;
            } else if exchange(&backup, &live)? {
                sync_parent(&live)?;
                sync_parent(&backup)?;
                rename(&backup, &undone)?;
            } else {
                rename(&live, &undone)?;
                rename(&backup, &live)?;
            }
        }
        Backend::S3 | Backend::Memory => {
            copy_files(
                loc,
                &run.backup(partition),
                &loc.child(partition),
                old_files,
            )
            .await?;
            delete_files(loc, partition, new_files).await?;
        }
    }
    journal
        .append(Event::RolledBack {
            partition: partition.into(),
        })
        .await?;
    Ok(None)
}

/// Deletes a run's staged files, backups and undone files (the journal stays).
pub async fn release(loc: &Location, run: &RunDir) -> Result<()> {
    for what in ["stage", "backup", "undone"] {
        let prefix = run.root.clone().join(what);
        match loc.backend {
            Backend::Local => {
                let dir = fs(loc, &prefix);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                }
            }
            _ => {
                let paths: Vec<Path> = loc
                    .store
                    .list(Some(&prefix))
                    .map_ok(|m| m.location)
                    .try_collect()
                    .await
                    .map_err(|e| Error::storage(&prefix, e))?;
                for p in paths {
                    delete(loc, &p).await?;
                }
            }
        }
    }
    Ok(())
}
