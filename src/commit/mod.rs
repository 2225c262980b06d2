//! The commit protocol: how a staged partition becomes live, how a crash at any point is
//! finished, and how a committed partition is put back.
//!
//! Correctness depends on three things, and nothing else:
//! 1. every step is journalled *before* it is taken, durably, so that after a crash the
//!    journal names the step that may be half-done ([`journal::Journal::append`]);
//! 2. each step is one atomic operation of the storage (a rename exchange, a
//!    create-only put, one copy, one delete), or a sequence whose every prefix
//!    [`recover`] can finish from the record that announced it;
//! 3. only the holder of the table's lock ([`crate::lock`]) appends to a run's journal or
//!    touches its partitions; a process that lost the lock fails on its next record.
//!
//! ```text
//!  state (journal)     local disk                           object store (S3, memory)
//!  ─────────────────   ──────────────────────────────────   ─────────────────────────────────
//!  (staged)            stage/<p>/ holds the new files       stage/<p>/ holds the new files
//!                                                           copy old files -> backup/<p>/
//!  Committing{new,old} ─ journalled, then: ───────────────  ─ journalled, then: ──────────────
//!                      renameat2(stage/<p>, <p>, EXCHANGE)  copy new files into <p>/
//!                      rename(stage/<p>, backup/<p>)        Added ─ journalled, then:
//!                                                           delete the old files from <p>/
//!  Committed           the partition is wholly new          the partition is wholly new
//!
//!  Deleting{old}       rename(<p>, backup/<p>)              (backup copied) delete old files
//!  Deleted
//!  RollingBack         exchange(backup/<p>, <p>), or copy   copy backup/<p> into <p>/,
//!                      back and move the new files aside    delete the new files
//!  RolledBack
//! ```
//!
//! [`RunState::from_records`] folds a journal into these states once; an [`OpenStep`]
//! is a partition left between two of them, and [`recover`] finishes it forward.
//!
//! What a reader of the table sees during a commit:
//! - local disk: the old folder, then the new folder, in one syscall: never a mix, never
//!   nothing. Where `RENAME_EXCHANGE` is missing (not Linux, or a filesystem without it)
//!   the fallback is two renames, between which the partition folder is briefly absent;
//! - object stores: old files, then old and new files together (rows counted twice)
//!   until the old files are deleted, then new files. A crash in that window leaves
//!   extra files, never missing ones; `resume` deletes the old ones, and no other run
//!   reads a partition in that state (`crate::run` refuses it).
//!
//! The work area (`<table parent>/.backfill/<table>/`) is outside the table's prefix, so
//! staged files and backups are never listed by readers of the table.

pub mod journal;
mod local;
mod state;
mod store;

use crate::error::{Error, Result};
use crate::storage::{Backend, Location};
use journal::{Committing, Deleting, Event, Journal, Of, RunDir};
pub use state::{Change, OpenStep, PartitionState, RunState};

/// Names and sizes of the data files (`*.parquet`, not hidden) directly in a partition.
pub async fn live_files(loc: &Location, partition: &str) -> Result<Vec<(String, u64)>> {
    Ok(live_objects(loc, partition)
        .await?
        .into_iter()
        .map(|(n, s, _)| (n, s))
        .collect())
}

/// [`live_files`], each with the ETag the listing gives it (object stores), by name.
pub async fn live_objects(
    loc: &Location,
    partition: &str,
) -> Result<Vec<(String, u64, Option<String>)>> {
    let prefix = loc.child(partition);
    let listing = match loc.store.list_with_delimiter(Some(&prefix)).await {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(Error::storage(&prefix, e)),
    };
    let mut out: Vec<(String, u64, Option<String>)> = listing
        .objects
        .into_iter()
        .filter_map(|m| {
            let name = m.location.filename()?.to_string();
            crate::table::is_data_file_name(&name).then_some((name, m.size, m.e_tag))
        })
        .collect();
    out.sort();
    Ok(out)
}

async fn live_names(loc: &Location, partition: &str) -> Result<Vec<String>> {
    Ok(live_files(loc, partition)
        .await?
        .into_iter()
        .map(|(n, _)| n)
        .collect())
}

fn is_local(loc: &Location) -> bool {
    loc.backend == Backend::Local
}

/// Makes the staged files of `committing.partition` live and keeps the old ones as its
/// backup, journalling `committing` first.
pub async fn commit(
    loc: &Location,
    run: &RunDir,
    journal: &Journal,
    committing: &Committing,
) -> Result<()> {
    if !is_local(loc) {
        return store::commit(loc, run, journal, committing).await;
    }
    let local = journal
        .local()
        .ok_or_else(|| Error::Internal("a local table without a local journal".into()))?;
    let (loc, run, committing) = (loc.clone(), run.clone(), committing.clone());
    crate::storage::blocking(move || local::commit(&loc, &run, &local, &committing)).await
}

/// Removes a partition (`--on-empty delete`), journalling `deleting` first; its files
/// become the backup.
pub async fn remove(
    loc: &Location,
    run: &RunDir,
    journal: &Journal,
    deleting: &Deleting,
) -> Result<()> {
    if !is_local(loc) {
        return store::remove(loc, run, journal, deleting).await;
    }
    journal.append(Event::Deleting(deleting.clone())).await?;
    local::remove(loc, run, deleting)
}

/// Removes what an earlier attempt may have left in a partition's stage folder (local
/// disk; on object stores the staged files are overwritten by name).
pub async fn clear_stage(loc: &Location, run: &RunDir, partition: &str) -> Result<()> {
    if is_local(loc) {
        local::clear_stage(loc, run, partition)?;
    }
    Ok(())
}

/// Where an interrupted step stands after [`recover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// The step is finished: the partition is wholly new (deleted, for a delete; wholly
    /// old again, for a rollback).
    Done,
    /// The commit never began to change the partition: it is wholly old, and the commit
    /// can be done again.
    NotStarted,
}

/// Finishes a step the journal shows begun and not ended. A rollback's step is finished
/// as the rollback (its `RolledBack` is journalled).
pub async fn recover(
    loc: &Location,
    run: &RunDir,
    journal: &Journal,
    step: &OpenStep,
) -> Result<Recovered> {
    match step {
        OpenStep::Committing(c) if is_local(loc) => {
            let names = live_names(loc, &c.partition).await?;
            local::recover_commit(loc, run, c, &names)
        }
        OpenStep::Committing(c) => {
            store::add_then_delete(loc, run, journal, c).await?;
            Ok(Recovered::Done)
        }
        // Only object stores journal `Added`.
        OpenStep::Added(c) => {
            store::delete_old(loc, c).await?;
            Ok(Recovered::Done)
        }
        OpenStep::Deleting(d) if is_local(loc) => {
            local::recover_delete(loc, run, d)?;
            Ok(Recovered::Done)
        }
        OpenStep::Deleting(d) => {
            store::recover_delete(loc, d).await?;
            Ok(Recovered::Done)
        }
        OpenStep::RollingBack(change) => {
            put_back(loc, run, journal, change).await?;
            Ok(Recovered::Done)
        }
    }
}

/// Puts back the old files of a partition the run committed (or deleted).
///
/// Refuses (`Ok(Some(reason))`) when the live partition is no longer what the run left.
pub async fn undo(
    loc: &Location,
    run: &RunDir,
    journal: &Journal,
    change: &Change,
) -> Result<Option<String>> {
    let names = live_names(loc, change.partition()).await?;
    match change {
        Change::Delete(_) if !names.is_empty() => {
            return Ok(Some(
                "the partition was written again after this run deleted it".into(),
            ))
        }
        Change::Commit(c) if names != sorted(&c.new_files) => {
            return Ok(Some(format!(
                "its files changed after this run committed it (now: {})",
                names.join(", ")
            )))
        }
        _ => {}
    }
    journal
        .append(Event::RollingBack(Of {
            partition: change.partition().into(),
        }))
        .await?;
    put_back(loc, run, journal, change).await?;
    Ok(None)
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// From `RollingBack` on: the old files back, `RolledBack`.
async fn put_back(loc: &Location, run: &RunDir, journal: &Journal, change: &Change) -> Result<()> {
    if is_local(loc) {
        let names = live_names(loc, change.partition()).await?;
        local::undo(loc, run, change, &names, &sorted(change.old_files()))?;
    } else {
        store::undo(loc, run, change).await?;
    }
    journal
        .append(Event::RolledBack(Of {
            partition: change.partition().into(),
        }))
        .await
}

/// Deletes a run's staged files, backups and undone files (the journal stays).
pub async fn release(loc: &Location, run: &RunDir) -> Result<()> {
    for what in ["stage", "backup", "undone"] {
        let prefix = run.root.clone().join(what);
        if is_local(loc) {
            local::release(loc, &prefix)?;
        } else {
            store::release(loc, &prefix).await?;
        }
    }
    Ok(())
}
