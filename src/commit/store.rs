//! The protocol on object stores: no rename, so a commit copies the new files in beside
//! the old ones, journals that, then deletes the old ones; the journal is create-only
//! objects.

use futures::TryStreamExt;
use object_store::{path::Path, ObjectStoreExt};

use super::journal::{Added, Committing, Deleting, Event, Journal, RunDir};
use super::state::Change;
use crate::error::{Error, Result};
use crate::storage::{segment, Backend, Location};

/// Above this size a server-side copy is not assumed to work (S3's CopyObject limit).
const COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

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
            .map_err(|e| copy_failed(to, e))?;
    }
    sink.shutdown().await.map_err(|e| copy_failed(to, e))
}

fn copy_failed(to: &Path, error: std::io::Error) -> Error {
    Error::Io {
        path: to.as_ref().into(),
        error,
    }
}

async fn delete(loc: &Location, path: &Path) -> Result<()> {
    match loc.store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::storage(path, e)),
    }
}

/// Copies the named files from one folder to another.
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

/// Deletes the named files of a partition (a file already gone is fine).
async fn delete_files(loc: &Location, partition: &str, files: &[String]) -> Result<()> {
    for f in files {
        delete(loc, &loc.child(partition).join(segment(f))).await?;
    }
    Ok(())
}

/// Copies the old data files of a partition into the run's backup.
async fn backup_files(loc: &Location, run: &RunDir, partition: &str, old: &[String]) -> Result<()> {
    copy_files(loc, &loc.child(partition), &run.backup(partition), old).await
}

/// Backs the old files up, journals `committing`, adds the new files, journals that,
/// deletes the old ones.
pub(super) async fn commit(
    loc: &Location,
    run: &RunDir,
    journal: &Journal,
    committing: &Committing,
) -> Result<()> {
    backup_files(loc, run, &committing.partition, &committing.old_files).await?;
    journal
        .append(Event::Committing(committing.clone()))
        .await?;
    add_then_delete(loc, run, journal, committing).await
}

/// From `Committing` on: the new files in, `Added`, the old files out.
pub(super) async fn add_then_delete(
    loc: &Location,
    run: &RunDir,
    journal: &Journal,
    committing: &Committing,
) -> Result<()> {
    let p = &committing.partition;
    copy_files(loc, &run.stage(p), &loc.child(p), &committing.new_files).await?;
    journal
        .append(Event::Added(Added {
            partition: p.clone(),
        }))
        .await?;
    delete_old(loc, committing).await
}

/// From `Added` on: the old files out.
pub(super) async fn delete_old(loc: &Location, committing: &Committing) -> Result<()> {
    delete_files(loc, &committing.partition, &committing.old_files).await
}

/// Backs the old files up, journals `deleting`, deletes them.
pub(super) async fn remove(
    loc: &Location,
    run: &RunDir,
    journal: &Journal,
    deleting: &Deleting,
) -> Result<()> {
    backup_files(loc, run, &deleting.partition, &deleting.old_files).await?;
    journal.append(Event::Deleting(deleting.clone())).await?;
    recover_delete(loc, deleting).await
}

/// From `Deleting` on: the files out.
pub(super) async fn recover_delete(loc: &Location, deleting: &Deleting) -> Result<()> {
    delete_files(loc, &deleting.partition, &deleting.old_files).await
}

/// Puts the backup back (`RollingBack` is journalled): old files in, new files out.
pub(super) async fn undo(loc: &Location, run: &RunDir, change: &Change) -> Result<()> {
    let p = change.partition();
    copy_files(loc, &run.backup(p), &loc.child(p), change.old_files()).await?;
    delete_files(loc, p, change.new_files()).await
}

/// Deletes every object under a folder of the run's work area.
pub(super) async fn release(loc: &Location, prefix: &Path) -> Result<()> {
    for p in loc.list_paths(prefix).await? {
        delete(loc, &p).await?;
    }
    Ok(())
}
