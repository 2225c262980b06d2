//! Putting back what a run changed.

use serde::Serialize;

use crate::commit::journal::{Event, Journal, RollbackSkipped, RunDir};
use crate::commit::{self, OpenStep, Recovered, RunState};
use crate::error::{Error, Result};
use crate::lock::{LeaseTimes, Lock};
use crate::storage::Location;
use crate::table::PartitionId;

use super::history::run_state;

/// What rollback did to one partition.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackEntry {
    /// The partition.
    pub partition: PartitionId,
    /// `rolled_back`, `skipped` or `untouched`.
    pub status: String,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a rollback reports.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    /// The run rolled back.
    pub run_id: String,
    /// The table, as the user named it.
    pub table: String,
    /// Each partition the run changed, newest change first.
    pub partitions: Vec<RollbackEntry>,
    /// Partitions put back.
    pub rolled_back: usize,
    /// Partitions skipped (changed by something else since).
    pub skipped: usize,
}

/// Puts back the old content of every partition `run_id` committed, newest commit first.
pub async fn rollback(loc: &Location, run_id: &str, lease: LeaseTimes) -> Result<RollbackReport> {
    let lock = Lock::acquire(loc, run_id, lease).await?;
    let result = rollback_locked(loc, run_id).await;
    let released = lock.release().await;
    let report = result?;
    released?;
    Ok(report)
}

async fn rollback_locked(loc: &Location, run_id: &str) -> Result<RollbackReport> {
    let (journal, records) = Journal::open(loc, run_id).await?;
    let state = match run_state(loc, run_id, None).await? {
        Some(s) => s,
        None => RunState::from_records(run_id, &records)?,
    };
    if state.released {
        return Err(Error::RunClosed {
            run_id: run_id.into(),
            how: "released",
            next: "its backups are gone and it cannot be rolled back",
        });
    }
    let run = RunDir::new(loc, run_id);
    let mut entries = Vec::new();
    // The newest change first.
    for p in state.change_order.iter().rev() {
        let partition = &state.partitions[p];
        let Some(change) = &partition.change else {
            continue;
        };
        let entry = |status: &str, reason: Option<String>| RollbackEntry {
            partition: p.clone(),
            status: status.into(),
            reason,
        };
        // A frozen run's partition records are in the partition's own journal.
        let own = match state.plan.frozen {
            true => Some(Journal::open_partition(loc, run_id, p).await?.0),
            false => None,
        };
        let journal = own.as_ref().unwrap_or(&journal);
        if matches!(partition.last, Event::RolledBack(_)) {
            entries.push(entry(
                "rolled_back",
                Some("already, by an earlier rollback".into()),
            ));
            continue;
        }
        match partition.open_step() {
            // An interrupted rollback of this partition: finish it.
            Some(step @ OpenStep::RollingBack(_)) => {
                commit::recover(loc, &run, journal, &step).await?;
                entries.push(entry("rolled_back", None));
                continue;
            }
            // Bring an interrupted commit to a definite state first.
            Some(step)
                if commit::recover(loc, &run, journal, &step).await? == Recovered::NotStarted =>
            {
                entries.push(entry("untouched", Some("its commit never started".into())));
                continue;
            }
            _ => {}
        }
        match commit::undo(loc, &run, journal, change).await? {
            None => entries.push(entry("rolled_back", None)),
            Some(reason) => {
                journal
                    .append(Event::RollbackSkipped(RollbackSkipped {
                        partition: p.clone(),
                        reason: reason.clone(),
                    }))
                    .await?;
                entries.push(entry("skipped", Some(reason)));
            }
        }
    }
    journal.append(Event::RollbackFinished).await?;
    let rolled_back = entries.iter().filter(|e| e.status == "rolled_back").count();
    let skipped = entries.iter().filter(|e| e.status == "skipped").count();
    Ok(RollbackReport {
        run_id: run_id.into(),
        table: state.plan.table,
        partitions: entries,
        rolled_back,
        skipped,
    })
}
