//! Finishing an interrupted run from its journal.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::commit::journal::{self, Event, Journal, RunDir};
use crate::commit::{self, Recovered, RunState};
use crate::error::{Error, Result};
use crate::lock::{LeaseTimes, Lock};
use crate::snapshot::Cache;
use crate::storage::Location;
use crate::transform::{ms, Transform};

use super::execute::{execute, Ctx};
use super::history::{final_report, refuse_unfinished, run_state, valid_summary};
use super::worker::run_partition;
use super::{finish, no_settings, retrying, PartitionReport, Progress, RunReport, Status};

/// The latest run with unfinished business (not finished, or finished with failures).
pub async fn resumable(loc: &Location) -> Result<String> {
    let ids = journal::run_ids(loc).await?;
    for id in ids.iter().rev() {
        // An ended run's summary says whether it is settled, without reading its records.
        match valid_summary(loc, id).await? {
            Some(brief) if brief.settled => continue,
            Some(_) => return Ok(id.clone()),
            None => {}
        }
        let records = journal::read(loc, id).await?;
        // No plan recorded: the run stopped before it started anything.
        if records.is_empty() {
            continue;
        }
        match RunState::from_records(id, &records) {
            Ok(run) if run.settled() => {}
            // Unsettled, or a journal `resume` must report on.
            _ => return Ok(id.clone()),
        }
    }
    Err(Error::NothingToResume {
        table: loc.display.clone(),
    })
}

/// The bytes of the largest partition a run planned to rewrite (from its journal), to size
/// memory settings before resuming it.
pub async fn largest_planned_partition(loc: &Location, run_id: &str) -> Result<u64> {
    let records = journal::read(loc, run_id).await?;
    let run = RunState::from_records(run_id, &records)?;
    Ok(run
        .plan
        .partitions
        .iter()
        .map(|p| p.bytes)
        .max()
        .unwrap_or(0))
}

/// Finishes an interrupted run from its journal; never recomputes the plan. While the
/// table (or, for a frozen run, a partition) is busy, tries again every second for up to
/// `wait`.
pub async fn resume(
    loc: &Location,
    run_id: &str,
    lease: LeaseTimes,
    wait: Duration,
    progress: Option<Progress>,
) -> Result<RunReport> {
    let started = Instant::now();
    let deadline = started + wait;
    if let Some(state) = run_state(loc, run_id, None).await? {
        if state.plan.frozen {
            if state.rolling_back || state.rolled_back || state.released {
                return Err(Error::RunClosed {
                    run_id: run_id.into(),
                    how: "rolled back or released",
                    next: "start a new run instead",
                });
            }
            return resume_frozen(loc, &state, lease, deadline, progress).await;
        }
    }
    let lock = retrying(deadline, || Lock::acquire(loc, run_id, lease)).await?;
    let opened = async {
        let (journal, records) = Journal::open(loc, run_id).await?;
        let state = RunState::from_records(run_id, &records)?;
        let plan = state.plan.clone();
        if state.rolling_back || state.rolled_back {
            return Err(Error::RunClosed {
                run_id: run_id.into(),
                how: "rolled back",
                next: "start a new run instead",
            });
        }
        if state.released {
            return Err(Error::RunClosed {
                run_id: run_id.into(),
                how: "released",
                next: "start a new run instead",
            });
        }
        let settings = plan.settings.clone().ok_or_else(|| no_settings(run_id))?;
        let transform = Transform::new(&settings.sql, &settings.tables).await?;
        refuse_unfinished(loc, run_id, &plan).await?;
        journal.append(Event::Resumed).await?;
        Ok::<_, Error>((journal, state, plan, settings, transform))
    }
    .await;
    let (journal, state, plan, settings, transform) = match opened {
        Ok(x) => x,
        Err(e) => {
            let _ = lock.release().await;
            return Err(e);
        }
    };
    let ctx = Arc::new(Ctx {
        loc: loc.clone(),
        run: RunDir::new(loc, run_id),
        journal,
        lock,
        transform,
        keys: plan.keys.clone(),
        settings,
        progress,
        cache: Some(Arc::new(Cache::for_writing(loc))),
    });
    let mut done = HashMap::new();
    for p in &plan.partitions {
        let Some(partition) = state.partitions.get(&p.partition) else {
            continue;
        };
        if let Some(r) = final_report(&partition.last) {
            done.insert(p.partition.clone(), r);
            continue;
        }
        let Some(step) = partition.open_step() else {
            continue;
        };
        match commit::recover(&ctx.loc, &ctx.run, &ctx.journal, &step).await {
            Ok(Recovered::Done) => {
                if let Some(ev) = step.closing() {
                    ctx.journal.append(ev.clone()).await?;
                    if let Some(r) = final_report(&ev) {
                        done.insert(p.partition.clone(), r);
                    }
                }
            }
            Ok(Recovered::NotStarted) => {}
            Err(e) => {
                let mut r = PartitionReport::new(&p.partition, Status::Failed);
                r.error = Some(e.to_string());
                done.insert(p.partition.clone(), r);
            }
        }
    }
    let reports = execute(&ctx, &plan, &done).await;
    finish(ctx, &plan, reports, started).await
}

/// Finishes a frozen run as its workers would: every partition not yet done, `jobs` at
/// once, each under its own lease.
async fn resume_frozen(
    loc: &Location,
    state: &RunState,
    lease: LeaseTimes,
    deadline: Instant,
    progress: Option<Progress>,
) -> Result<RunReport> {
    let started = Instant::now();
    let jobs = state.plan.settings.as_ref().map_or(1, |s| s.jobs.max(1));
    let reports: Vec<Result<RunReport>> = futures::stream::iter(state.plan.partitions.clone())
        .map(|p| {
            let loc = loc.clone();
            let run_id = state.run_id.clone();
            let progress = progress.clone();
            async move {
                let r = retrying(deadline, || {
                    run_partition(&loc, &run_id, &p.partition, lease)
                })
                .await;
                if let (Ok(r), Some(progress)) = (&r, &progress) {
                    progress(&r.partitions[0]);
                }
                r
            }
        })
        .buffered(jobs)
        .collect()
        .await;
    let mut partitions = Vec::new();
    for (p, r) in state.plan.partitions.iter().zip(reports) {
        partitions.push(match r {
            Ok(mut r) => r.partitions.remove(0),
            Err(e) if e.is_retryable() => PartitionReport::busy(&p.partition, &e),
            Err(e) => {
                let mut r = PartitionReport::new(&p.partition, Status::Failed);
                r.error = Some(e.to_string());
                r
            }
        });
    }
    Ok(RunReport::new(&state.plan, partitions, ms(started)))
}
