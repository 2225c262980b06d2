//! What the journal says about runs: their states, the history `runs` lists, other
//! runs' unfinished steps, and releasing a run's backups.

use futures::StreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::commit::journal::{self, Event, Journal, RunDir, Side};
use crate::commit::{self, OpenStep, RunState};
use crate::error::{Error, Result};
use crate::lock::{LeaseTimes, Lock};
use crate::plan::Plan;
use crate::storage::Location;
use crate::table::PartitionId;

use futures::TryStreamExt;

use super::{PartitionReport, Status};

/// The report a partition's final journal record stands for, if it has one.
pub(super) fn final_report(ev: &Event) -> Option<PartitionReport> {
    let (partition, status, before, after, phases) = match ev {
        Event::Committed(c) => (
            &c.partition,
            Status::Rewritten,
            &c.before,
            Some(&c.after),
            Some(&c.phases),
        ),
        Event::Unchanged(u) => (
            &u.partition,
            Status::Unchanged,
            &u.before,
            Some(&u.before),
            Some(&u.phases),
        ),
        Event::Deleted(d) => (&d.partition, Status::Deleted, &d.before, None, None),
        Event::Kept(k) => (&k.partition, Status::Kept, &k.before, None, None),
        _ => return None,
    };
    let mut r = PartitionReport::new(partition, status);
    r.rows_before = Some(before.rows);
    r.checksum_before = Some(before.checksum.clone());
    if let Some(after) = after {
        r.rows_after = Some(after.rows);
        r.checksum_after = Some(after.checksum.clone());
    }
    if status == Status::Deleted {
        r.rows_after = Some(0);
    }
    if let Some(phases) = phases {
        r.phases = phases.clone();
    }
    r.duration_ms = 0.0;
    Some(r)
}

/// What `runs` and a run's start need of one run: its history line and the steps it left
/// unfinished.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Brief {
    info: RunInfo,
    open_steps: Vec<(PartitionId, Step)>,
    /// [`RunState::settled`]: nothing left for `resume`.
    pub(super) settled: bool,
}

/// An unfinished step's kind, as a [`Summary`] keeps it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Step {
    Commit,
    Delete,
    Rollback,
}

impl Step {
    fn of(step: &OpenStep) -> Step {
        match step {
            OpenStep::Committing(_) | OpenStep::Added(_) => Step::Commit,
            OpenStep::Deleting(_) => Step::Delete,
            OpenStep::RollingBack(_) => Step::Rollback,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Step::Commit => "commit",
            Step::Delete => "delete",
            Step::Rollback => "rollback",
        }
    }
}

impl Brief {
    fn of(run: &RunState) -> Brief {
        Brief {
            info: info(run),
            open_steps: run
                .open_steps()
                .map(|(p, step)| (p.clone(), Step::of(&step)))
                .collect(),
            settled: run.settled(),
        }
    }

    /// The unfinished step the run left on `partition`, if any.
    pub(super) fn open_step(&self, partition: &str) -> Option<&'static str> {
        self.open_steps
            .iter()
            .find(|(p, _)| p.as_str() == partition)
            .map(|(_, s)| s.name())
    }
}

/// An ended run's [`Brief`], kept beside its journal (`runs/ID/summary.json`) so that
/// later runs and `runs` need not read every record of every earlier run: that grew with
/// the history, and on object stores took one request per record. It holds for the
/// journal's `extent` only; a record written since makes it stale, and the journal is
/// read again. Only ever a copy: a summary that is missing, damaged or stale is ignored.
#[derive(Serialize, Deserialize)]
struct Summary {
    format: u32,
    extent: journal::Extent,
    brief: Brief,
}

const SUMMARY: &str = "summary.json";
const SUMMARY_FORMAT: u32 = 1;
/// Runs looked at once.
const RUNS_AT_ONCE: usize = 8;

/// Every run of the table, oldest first; a run whose journal has no plan (it stopped
/// before it started) is left out.
async fn briefs(loc: &Location) -> Result<Vec<Brief>> {
    let ids = journal::run_ids(loc).await?;
    let all: Vec<Option<Brief>> = futures::stream::iter(&ids)
        .map(|id| brief(loc, id))
        .buffered(RUNS_AT_ONCE)
        .try_collect()
        .await?;
    Ok(all.into_iter().flatten().collect())
}

/// Writes the summaries of ended runs that have none (or a stale one), so that later
/// readers find them: a frozen run's workers read other runs one partition at a time, which
/// never makes a summary.
pub(super) async fn summarise(loc: &Location) -> Result<()> {
    briefs(loc).await.map(|_| ())
}

/// Run `id`'s summary, if it has one that still holds.
pub(super) async fn valid_summary(loc: &Location, id: &str) -> Result<Option<Brief>> {
    Ok(summary_and_extent(loc, id).await?.0)
}

async fn summary_and_extent(loc: &Location, id: &str) -> Result<(Option<Brief>, journal::Extent)> {
    let path = RunDir::new(loc, id).root.join(SUMMARY);
    // Taken before the journal is read: a record written meanwhile makes a summary written
    // from that reading stale at once, never wrong.
    let extent = journal::extent(loc, id).await?;
    let brief = read_summary(loc, &path)
        .await
        .filter(|s| s.format == SUMMARY_FORMAT && s.extent == extent)
        .map(|s| s.brief);
    Ok((brief, extent))
}

async fn brief(loc: &Location, id: &str) -> Result<Option<Brief>> {
    let path = RunDir::new(loc, id).root.join(SUMMARY);
    let (valid, extent) = summary_and_extent(loc, id).await?;
    if valid.is_some() {
        return Ok(valid);
    }
    let Some(state) = run_state(loc, id, None).await? else {
        return Ok(None);
    };
    let brief = Brief::of(&state);
    let ended =
        state.finished.is_some() || state.rolled_back || (state.plan.frozen && state.all_final());
    if ended {
        let summary = Summary {
            format: SUMMARY_FORMAT,
            extent,
            brief: brief.clone(),
        };
        let body = serde_json::to_vec(&summary).expect("a summary serialises");
        // A copy: where it cannot be written, the journal is read next time.
        let _ = loc.store.put(&path, PutPayload::from(body)).await;
    }
    Ok(Some(brief))
}

async fn read_summary(loc: &Location, path: &object_store::path::Path) -> Option<Summary> {
    let bytes = loc.store.get(path).await.ok()?.bytes().await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Run `id` folded from its journal and, for a frozen run, its partitions' journals (all
/// of them, or only `only`'s); `None` when its journal has no plan.
pub(super) async fn run_state(
    loc: &Location,
    id: &str,
    only: Option<&str>,
) -> Result<Option<RunState>> {
    let records = journal::read(loc, id).await?;
    let Ok(state) = RunState::from_records(id, &records) else {
        return Ok(None);
    };
    if !state.plan.frozen {
        return Ok(Some(state));
    }
    // Many small reads: on object stores each is a round trip, so several at once.
    let partitions: Vec<Vec<journal::Record>> = futures::stream::iter(
        state
            .plan
            .partitions
            .iter()
            .filter(|p| only.is_none_or(|o| p.partition == o)),
    )
    .map(|p| journal::read_partition(loc, id, &p.partition))
    .buffered(16)
    .try_collect()
    .await?;
    RunState::from_journals(id, &records, &partitions).map(Some)
}

/// A partition another run left between the first and last step of a commit, a delete
/// or a rollback: on object stores its files may be part old and part new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedStep {
    /// The run whose step it is.
    pub run_id: String,
    /// The partition.
    pub partition: PartitionId,
    /// `commit`, `delete` or `rollback`.
    pub step: &'static str,
}

/// Every partition some run left mid-step, oldest run first. Read under the table lock,
/// so none of those runs is still working.
pub async fn unfinished_steps(loc: &Location) -> Result<Vec<UnfinishedStep>> {
    let mut out = Vec::new();
    for run in briefs(loc).await? {
        for (partition, step) in run.open_steps {
            out.push(UnfinishedStep {
                run_id: run.info.run_id.clone(),
                partition,
                step: step.name(),
            });
        }
    }
    Ok(out)
}

/// Refuses to start on a partition that holds another run's unfinished step: its files
/// would be read as one version when they are two.
pub(super) async fn refuse_unfinished(loc: &Location, run_id: &str, plan: &Plan) -> Result<()> {
    let unfinished = unfinished_steps(loc).await?;
    if unfinished.is_empty() {
        return Ok(());
    }
    let wanted: std::collections::HashSet<&str> = plan
        .partitions
        .iter()
        .map(|p| p.partition.as_str())
        .collect();
    match unfinished
        .into_iter()
        .find(|u| u.run_id != run_id && wanted.contains(u.partition.as_str()))
    {
        Some(u) => Err(Error::Unfinished {
            table: loc.display.clone(),
            partition: u.partition.to_string(),
            run_id: u.run_id,
            step: u.step,
        }),
        None => Ok(()),
    }
}

/// One line of the run history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run's id.
    pub run_id: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// The first 16 hex digits of its SQL's BLAKE3.
    pub sql_hash: String,
    /// Its selection, as flags.
    pub selection: String,
    /// Partitions planned.
    pub partitions: usize,
    /// Partitions committed or deleted.
    pub rewritten: usize,
    /// Partitions found unchanged.
    pub unchanged: usize,
    /// Partitions that failed.
    pub failed: usize,
    /// `finished`, `finished_with_failures`, `interrupted`, `open` or `rolled_back`.
    pub status: String,
    /// Whether its backups were released.
    pub released: bool,
}

/// A table's run history, as `runs` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunHistory {
    /// The table, as the user named it.
    pub table: String,
    /// Oldest first.
    pub runs: Vec<RunInfo>,
}

/// The run history of a table, oldest first.
pub async fn history(loc: &Location) -> Result<RunHistory> {
    Ok(RunHistory {
        table: loc.display.clone(),
        runs: briefs(loc).await?.into_iter().map(|b| b.info).collect(),
    })
}

fn info(run: &RunState) -> RunInfo {
    let failed = run.count(|e| matches!(e, Event::Failed(_)));
    // A frozen run ends partition by partition: its workers write no `finished`.
    let finished = run.finished.is_some() || (run.plan.frozen && run.all_final());
    let status = if run.rolled_back {
        "rolled_back"
    } else if finished && failed > 0 {
        "finished_with_failures"
    } else if finished {
        "finished"
    } else if run.plan.frozen {
        "open"
    } else {
        "interrupted"
    };
    RunInfo {
        run_id: run.run_id.clone(),
        started_at: run.plan.started_at.clone(),
        sql_hash: run
            .plan
            .settings
            .as_ref()
            .map(|s| s.sql_hash.clone())
            .unwrap_or_default(),
        selection: run.plan.selection.describe(),
        partitions: run.plan.partitions.len(),
        rewritten: run.count(|e| {
            matches!(
                e,
                Event::Committed(_)
                    | Event::Deleted(_)
                    | Event::RolledBack(_)
                    | Event::RollbackSkipped(_)
            )
        }),
        unchanged: run.count(|e| matches!(e, Event::Unchanged(_))),
        failed,
        status: status.into(),
        released: run.released,
    }
}

/// Where a run left one of its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionState {
    /// Committed: the new files are live.
    Rewritten,
    /// Its new content equals the old: nothing was written.
    Unchanged,
    /// Removed (`--on-empty delete`).
    Deleted,
    /// Left as it was (`--on-empty keep`).
    Kept,
    /// Put back by a rollback.
    RolledBack,
    /// Not processed yet.
    Pending,
    /// Failed, left as it was.
    Failed,
    /// Between the first and last step of a commit, a delete or a rollback.
    MidCommit,
    /// Between the start and the end of a delete.
    MidDelete,
    /// Between the start and the end of a rollback.
    MidRollback,
    /// Rollback found the partition changed since and left it.
    RollbackSkipped,
}

impl PartitionState {
    /// The state's name in output (`mid_commit`...).
    pub fn name(self) -> &'static str {
        match self {
            PartitionState::Pending => "pending",
            PartitionState::Rewritten => "rewritten",
            PartitionState::Unchanged => "unchanged",
            PartitionState::Deleted => "deleted",
            PartitionState::Kept => "kept",
            PartitionState::Failed => "failed",
            PartitionState::MidCommit => "mid_commit",
            PartitionState::MidDelete => "mid_delete",
            PartitionState::MidRollback => "mid_rollback",
            PartitionState::RolledBack => "rolled_back",
            PartitionState::RollbackSkipped => "rollback_skipped",
        }
    }
}

/// One partition of a run as its journal leaves it.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionProgress {
    /// The partition.
    pub partition: PartitionId,
    /// Where the run left it.
    pub state: PartitionState,
    /// Rows before the run, where the journal says.
    pub rows_before: Option<u64>,
    /// Checksum before the run, where the journal says.
    pub checksum_before: Option<String>,
    /// What the partition holds now, as the run recorded it: its new content, its old
    /// content (unchanged, kept, rolled back), or nothing (deleted). `None` where the
    /// journal does not say (pending, failed, mid-step, rollback skipped).
    pub rows_after: Option<u64>,
    /// Checksum after the run, where the journal says.
    pub checksum_after: Option<String>,
    /// The error, reason or note the journal gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One run in full: its history line and each planned partition, in plan order.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    /// The run's history line.
    #[serde(flatten)]
    pub info: RunInfo,
    /// The table, as the user named it.
    pub table: String,
    /// The checksum version of the journal's checksums; `None` for journals of format 1,
    /// written by versions that computed v1 or v2.
    pub checksum_version: Option<u32>,
    /// Every planned partition, in plan order.
    pub partitions: Vec<PartitionProgress>,
}

/// Run `run_id` of the table at `loc`, partition by partition.
pub async fn run_detail(loc: &Location, run_id: &str) -> Result<RunDetail> {
    let Some(run) = run_state(loc, run_id, None).await? else {
        return Err(Error::NoRun {
            table: loc.display.clone(),
            run_id: run_id.into(),
        });
    };
    let partitions = run
        .plan
        .partitions
        .iter()
        .map(|p| progress(&p.partition, run.partitions.get(&p.partition)))
        .collect();
    Ok(RunDetail {
        info: info(&run),
        table: loc.display.clone(),
        // Format 2 came after checksum v2; format 1 was written with either.
        checksum_version: (run.format >= 2).then_some(2),
        partitions,
    })
}

fn progress(id: &str, state: Option<&commit::PartitionState>) -> PartitionProgress {
    let mut out = PartitionProgress {
        partition: id.into(),
        state: PartitionState::Pending,
        rows_before: None,
        checksum_before: None,
        rows_after: None,
        checksum_after: None,
        detail: None,
    };
    let Some(st) = state else {
        return out;
    };
    let before = |out: &mut PartitionProgress, side: &Side| {
        out.rows_before = Some(side.rows);
        out.checksum_before = Some(side.checksum.clone());
    };
    let after = |out: &mut PartitionProgress, side: &Side| {
        out.rows_after = Some(side.rows);
        out.checksum_after = Some(side.checksum.clone());
    };
    let change_before = st.change.as_ref().map(|c| match c {
        commit::Change::Commit(c) => c.before.clone(),
        commit::Change::Delete(d) => d.before.clone(),
    });
    out.state = match &st.last {
        Event::Committed(c) => {
            before(&mut out, &c.before);
            after(&mut out, &c.after);
            PartitionState::Rewritten
        }
        Event::Unchanged(u) => {
            before(&mut out, &u.before);
            after(&mut out, &u.before);
            PartitionState::Unchanged
        }
        Event::Kept(k) => {
            before(&mut out, &k.before);
            after(&mut out, &k.before);
            out.detail = Some(k.reason.clone());
            PartitionState::Kept
        }
        Event::Deleted(d) => {
            before(&mut out, &d.before);
            out.rows_after = Some(0);
            PartitionState::Deleted
        }
        Event::Failed(f) => {
            out.detail = Some(f.error.clone());
            PartitionState::Failed
        }
        Event::RolledBack(_) => {
            if let Some(b) = &change_before {
                before(&mut out, b);
                after(&mut out, b);
            }
            PartitionState::RolledBack
        }
        Event::RollbackSkipped(r) => {
            if let Some(b) = &change_before {
                before(&mut out, b);
            }
            out.detail = Some(r.reason.clone());
            PartitionState::RollbackSkipped
        }
        _ => match st.open_step() {
            Some(OpenStep::Committing(c)) | Some(OpenStep::Added(c)) => {
                before(&mut out, &c.before);
                PartitionState::MidCommit
            }
            Some(OpenStep::Deleting(d)) => {
                before(&mut out, &d.before);
                PartitionState::MidDelete
            }
            Some(OpenStep::RollingBack(_)) => {
                if let Some(b) = &change_before {
                    before(&mut out, b);
                }
                PartitionState::MidRollback
            }
            None => PartitionState::Pending,
        },
    };
    out
}

/// Deletes a finished run's backups; it can no longer be rolled back.
pub async fn release(loc: &Location, run_id: &str, lease: LeaseTimes) -> Result<()> {
    let lock = Lock::acquire(loc, run_id, lease).await?;
    let result = async {
        let (journal, records) = Journal::open(loc, run_id).await?;
        let state = match run_state(loc, run_id, None).await? {
            Some(s) => s,
            None => RunState::from_records(run_id, &records)?,
        };
        let settled = state.finished.is_some()
            || state.rolled_back
            || (state.plan.frozen && state.all_final());
        let open = state.open_steps().next().map(|(p, _)| p.to_string());
        if !settled || open.is_some() {
            let which = open
                .map(|p| format!(" (partition {p} is mid-commit)"))
                .unwrap_or_default();
            return Err(Error::RunNotFinished {
                run_id: run_id.into(),
                detail: which,
            });
        }
        journal.append(Event::Released).await?;
        commit::release(loc, &RunDir::new(loc, run_id)).await
    }
    .await;
    let released = lock.release().await;
    result?;
    released
}
