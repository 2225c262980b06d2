//! The protocol on local disk: a partition is a folder, swapped with its staged folder
//! in one `renameat2(RENAME_EXCHANGE)`; the journal is an append-only file.

use std::path::{Path as FsPath, PathBuf};

use super::journal::{Committing, Deleting, LocalJournal, RunDir};
use super::state::Change;
use super::Recovered;
use crate::error::{Error, Result};
use crate::storage::Location;

fn fs(loc: &Location, p: &object_store::path::Path) -> PathBuf {
    loc.fs_path(p).expect("local table")
}

fn sync_parent(loc: &Location, p: &FsPath) -> Result<()> {
    match p.parent() {
        Some(parent) => loc.sync(parent),
        None => Ok(()),
    }
}

/// Swaps two directories atomically. `Ok(false)` when the system cannot.
fn exchange(loc: &Location, a: &FsPath, b: &FsPath) -> Result<bool> {
    loc.fs.exchange(a, b).map_err(|e| match e.raw_os_error() {
        Some(libc::EXDEV) => Error::Unsupported {
            store: format!("{} and {}", a.display(), b.display()),
            lacks: "are on different filesystems, so they cannot be swapped atomically".into(),
            next: "the work area must share the table's filesystem",
        },
        _ => Error::io(b, e),
    })
}

fn rename(loc: &Location, from: &FsPath, to: &FsPath) -> Result<()> {
    if let Some(parent) = to.parent() {
        loc.fs
            .create_dir_all(parent)
            .map_err(|e| Error::io(parent, e))?;
    }
    loc.fs.rename(from, to).map_err(|e| Error::io(from, e))?;
    sync_parent(loc, from)?;
    sync_parent(loc, to)
}

/// Journals `committing` and swaps the staged folder in (blocking).
pub(super) fn commit(
    loc: &Location,
    run: &RunDir,
    journal: &LocalJournal,
    committing: &Committing,
) -> Result<()> {
    let p = &committing.partition;
    let live = fs(loc, &loc.child(p));
    let stage = fs(loc, &run.stage(p));
    // The staged file's write already made the stage folder durable.
    if carry_over(loc, &live, &stage, &committing.old_files)? {
        loc.sync(&stage)?;
    }
    journal.append(super::journal::Event::Committing(committing.clone()))?;
    swap(loc, run, p)
}

/// Files in a live partition folder that are not data (markers like `_SUCCESS`) move
/// with the partition: hard-linked into the staged folder before the swap. Returns
/// whether any were.
fn carry_over(loc: &Location, live: &FsPath, stage: &FsPath, old_files: &[String]) -> Result<bool> {
    let entries = match loc.fs.read_dir(live) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::PartitionChanged {
                partition: live.display().to_string(),
                reason: "its folder disappeared".into(),
            })
        }
        Err(e) => return Err(Error::io(live, e)),
    };
    let mut linked = false;
    for entry in entries {
        let name = entry.name;
        if !entry.is_file || old_files.contains(&name) || !crate::table::is_carried_over(&name) {
            continue;
        }
        let target = stage.join(&name);
        if !loc.fs.exists(&target) {
            loc.fs
                .hard_link(&entry.path, &target)
                .map_err(|e| Error::io(&target, e))?;
            linked = true;
        }
    }
    Ok(linked)
}

/// The swap, from any point after `Committing` was journalled.
fn swap(loc: &Location, run: &RunDir, partition: &str) -> Result<()> {
    let live = fs(loc, &loc.child(partition));
    let stage = fs(loc, &run.stage(partition));
    let backup = fs(loc, &run.backup(partition));
    if let Some(parent) = backup.parent() {
        loc.fs
            .create_dir_all(parent)
            .map_err(|e| Error::io(parent, e))?;
    }
    if exchange(loc, &stage, &live)? {
        sync_parent(loc, &live)?;
        // The stage folder now holds the old files: it becomes the backup (the rename
        // fsyncs the stage folder's parent, which the exchange also changed).
        rename(loc, &stage, &backup)
    } else {
        rename(loc, &live, &backup)?;
        rename(loc, &stage, &live)
    }
}

/// Moves the partition folder into the backup (`Deleting` is journalled).
pub(super) fn remove(loc: &Location, run: &RunDir, deleting: &Deleting) -> Result<()> {
    let p = &deleting.partition;
    rename(loc, &fs(loc, &loc.child(p)), &fs(loc, &run.backup(p)))
}

/// Finishes an interrupted commit; `live_names` are the data files in the partition now.
pub(super) fn recover_commit(
    loc: &Location,
    run: &RunDir,
    committing: &Committing,
    live_names: &[String],
) -> Result<Recovered> {
    let p = &committing.partition;
    let live = fs(loc, &loc.child(p));
    let stage = fs(loc, &run.stage(p));
    let backup = fs(loc, &run.backup(p));
    let new_files = &committing.new_files;
    let live_has_new = !new_files.is_empty() && new_files.iter().all(|f| live_names.contains(f));
    let exists = |p: &FsPath| loc.fs.exists(p);
    if live_has_new {
        if exists(&stage) && !exists(&backup) {
            rename(loc, &stage, &backup)?;
        }
        Ok(Recovered::Done)
    } else if !exists(&live) && exists(&stage) {
        // The two-rename fallback stopped half-way: the old files are the backup.
        rename(loc, &stage, &live)?;
        Ok(Recovered::Done)
    } else if exists(&stage) {
        swap(loc, run, p)?;
        Ok(Recovered::Done)
    } else {
        Ok(Recovered::NotStarted)
    }
}

/// Finishes an interrupted delete.
pub(super) fn recover_delete(loc: &Location, run: &RunDir, deleting: &Deleting) -> Result<()> {
    let live = fs(loc, &loc.child(&deleting.partition));
    if loc.fs.exists(&live) {
        rename(loc, &live, &fs(loc, &run.backup(&deleting.partition)))?;
    }
    Ok(())
}

/// Puts the backup back (`RollingBack` is journalled); `live_names` as in
/// [`recover_commit`], `sorted_old` the change's old files sorted.
pub(super) fn undo(
    loc: &Location,
    run: &RunDir,
    change: &Change,
    live_names: &[String],
    sorted_old: &[String],
) -> Result<()> {
    let p = change.partition();
    let deleted = matches!(change, Change::Delete(_));
    let live = fs(loc, &loc.child(p));
    let backup = fs(loc, &run.backup(p));
    let undone = fs(loc, &run.undone(p));
    let exists = |p: &FsPath| loc.fs.exists(p);
    let old_back = if deleted {
        exists(&live)
    } else {
        !sorted_old.is_empty() && live_names == sorted_old
    };
    if old_back {
        // Done already; the backup path may still hold the new files.
        if !deleted && exists(&backup) {
            rename(loc, &backup, &undone)?;
        }
    } else if deleted || !exists(&live) {
        rename(loc, &backup, &live)?;
    } else if exchange(loc, &backup, &live)? {
        sync_parent(loc, &live)?;
        sync_parent(loc, &backup)?;
        rename(loc, &backup, &undone)?;
    } else {
        rename(loc, &live, &undone)?;
        rename(loc, &backup, &live)?;
    }
    Ok(())
}

/// Deletes a folder of the run's work area, if it exists.
pub(super) fn release(loc: &Location, prefix: &object_store::path::Path) -> Result<()> {
    let dir = fs(loc, prefix);
    if loc.fs.exists(&dir) {
        loc.fs
            .remove_dir_all(&dir)
            .map_err(|e| Error::io(&dir, e))?;
    }
    Ok(())
}

/// Removes what an earlier attempt may have left in a partition's stage folder.
pub(super) fn clear_stage(loc: &Location, run: &RunDir, partition: &str) -> Result<()> {
    release(loc, &run.stage(partition))
}
