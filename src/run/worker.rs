//! Frozen runs: planned once, worked on by many processes, one partition per task.

use std::sync::Arc;
use std::time::Instant;

use crate::commit::journal::{self, Journal, RunDir};
use crate::commit::{self, Recovered, RunState};
use crate::error::{Error, Result};
use crate::lock::{LeaseTimes, Lock};
use crate::plan::{Plan, PlannedPartition};
use crate::snapshot::Cache;
use crate::storage::Location;
use crate::table::{PartitionId, Table};
use crate::transform::{ms, Transform};

use super::execute::{process, Ctx, Slots, WRITE_BUDGET_MB};
use super::history::{final_report, run_state, valid_summary};
use super::{no_settings, plan_run, prepare, PartitionReport, RunReport, RunRequest};

/// Plans a run and freezes it into its journal for workers, without touching a partition:
/// `run --run ID --partition P` then does P, on any machine, any number at once.
pub async fn freeze(table: &Table, req: RunRequest) -> Result<Plan> {
    let (transform, preflight) = prepare(table, &req).await?;
    let run_id = journal::new_run_id();
    let mut plan = plan_run(table, &req, &run_id, preflight).await?;
    super::sample_plan(&table.location, &mut plan, &transform, &req, true).await?;
    plan.frozen = true;
    // Its workers look at every earlier run for their partition: from summaries, where
    // ended runs have them, instead of every record. Only a speed-up: a journal that does
    // not read is for the workers to report.
    let _ = super::history::summarise(&table.location).await;
    // A new run's folder: no other process writes it, so no lock is needed.
    Journal::create(&table.location, &plan).await?;
    Ok(plan)
}

/// The partitions frozen run `run_id` planned, in plan order.
pub async fn planned_partitions(loc: &Location, run_id: &str) -> Result<Vec<PartitionId>> {
    let records = journal::read(loc, run_id).await?;
    if records.is_empty() {
        return Err(Error::NoRun {
            table: loc.display.clone(),
            run_id: run_id.into(),
        });
    }
    let state = RunState::from_records(run_id, &records)?;
    Ok(state
        .plan
        .partitions
        .into_iter()
        .map(|p| p.partition)
        .collect())
}

/// One worker's task: partition `partition` of frozen run `run_id`.
///
/// Retry-safe: a partition the run already committed (or found unchanged, deleted or
/// kept) is reported from the journal and not transformed again; one whose commit was
/// interrupted is finished, as `resume` would; otherwise it is processed as `run` does.
/// Busy (another worker holds the partition, or a whole-table operation holds the
/// table) is [`Error::Locked`]: retry later.
pub async fn run_partition(
    loc: &Location,
    run_id: &str,
    partition: &str,
    lease: LeaseTimes,
) -> Result<RunReport> {
    let started = Instant::now();
    let Some(state) = run_state(loc, run_id, Some(partition)).await? else {
        return Err(Error::NoRun {
            table: loc.display.clone(),
            run_id: run_id.into(),
        });
    };
    let plan = state.plan.clone();
    if !plan.frozen {
        return Err(Error::Usage(format!(
            "run {run_id} was not frozen by `backfill plan --freeze`, so it takes no workers; `backfill resume {} {run_id}` finishes it",
            loc.display
        )));
    }
    let Some(planned) = plan
        .partitions
        .iter()
        .find(|p| p.partition == partition)
        .cloned()
    else {
        let first: Vec<&str> = plan
            .partitions
            .iter()
            .take(3)
            .map(|p| p.partition.as_str())
            .collect();
        return Err(Error::Usage(format!(
            "partition {partition} is not in run {run_id}'s plan, whose {} partitions are {}{}; give one of them as it is spelled there",
            plan.partitions.len(),
            first.join(", "),
            if plan.partitions.len() > 3 { ", ..." } else { "" }
        )));
    };
    if state.rolling_back || state.rolled_back || state.released {
        return Err(Error::RunClosed {
            run_id: run_id.into(),
            how: if state.released {
                "released"
            } else {
                "rolled back"
            },
            next: "plan a new run instead",
        });
    }
    let lock = Lock::partition(loc, run_id, partition, lease).await?;
    let result = work_partition(loc, run_id, &plan, &planned, lock).await;
    let report = result?;
    Ok(RunReport::new(&plan, vec![report], ms(started)))
}

async fn work_partition(
    loc: &Location,
    run_id: &str,
    plan: &Plan,
    planned: &PlannedPartition,
    lock: Lock,
) -> Result<PartitionReport> {
    let id = planned.partition.as_str();
    let run = RunDir::new(loc, run_id);
    let opened = async {
        // Read again under the lease: an earlier try may have ended meanwhile.
        let (journal, records) = Journal::open_partition(loc, run_id, id).await?;
        let main = journal::read(loc, run_id).await?;
        let state = RunState::from_journals(run_id, &main, &[records])?;
        Ok::<_, Error>((journal, state))
    }
    .await;
    let (journal, state) = match opened {
        Ok(x) => x,
        Err(e) => {
            let _ = lock.release().await;
            return Err(e);
        }
    };
    let done = async {
        if let Some(p) = state.partitions.get(id) {
            if let Some(mut r) = final_report(&p.last) {
                r.note = Some("done already by an earlier try; not transformed again".into());
                return Ok(Some(r));
            }
            if let Some(step) = p.open_step() {
                if commit::recover(loc, &run, &journal, &step).await? == Recovered::Done {
                    if let Some(ev) = step.closing() {
                        journal.append(ev.clone()).await?;
                        let mut r = final_report(&ev).expect("a closing record is final");
                        r.note =
                            Some("an interrupted commit of an earlier try was finished".into());
                        return Ok(Some(r));
                    }
                }
            }
        }
        // Another run's unfinished step on this partition: its files are two versions.
        for other in journal::run_ids(loc).await? {
            if other == run_id {
                continue;
            }
            // An ended run's summary when it still holds; otherwise its records of this
            // partition.
            let step = match valid_summary(loc, &other).await? {
                Some(brief) => brief.open_step(id),
                None => run_state(loc, &other, Some(id)).await?.and_then(|st| {
                    st.partitions
                        .get(id)
                        .and_then(|p| p.open_step())
                        .map(|s| s.step())
                }),
            };
            if let Some(step) = step {
                return Err(Error::Unfinished {
                    table: loc.display.clone(),
                    partition: id.into(),
                    run_id: other,
                    step,
                });
            }
        }
        Ok::<_, Error>(None)
    }
    .await;
    let done = match done {
        Ok(d) => d,
        Err(e) => {
            let _ = lock.release().await;
            return Err(e);
        }
    };
    if let Some(r) = done {
        lock.release().await?;
        return Ok(r);
    }
    let settings = match plan.settings.clone() {
        Some(s) => s,
        None => {
            let _ = lock.release().await;
            return Err(no_settings(run_id));
        }
    };
    let transform = match Transform::new(&settings.sql, &settings.tables).await {
        Ok(t) => t,
        Err(e) => {
            let _ = lock.release().await;
            return Err(e);
        }
    };
    let ctx = Ctx {
        loc: loc.clone(),
        run,
        journal,
        lock,
        transform,
        keys: plan.keys.clone(),
        settings,
        progress: None,
        cache: Some(Arc::new(Cache::for_writing(loc))),
    };
    let slots = Slots {
        compute: tokio::sync::Semaphore::new(1),
        writing: tokio::sync::Semaphore::new(WRITE_BUDGET_MB as usize),
    };
    let report = process(&ctx, planned, &slots).await;
    if let Some(cache) = &ctx.cache {
        cache.save_written().await;
    }
    // The last record of a try must be durable: no later append of this worker will be.
    let flushed = ctx.journal.flush().await;
    ctx.lock.release().await?;
    flushed?;
    Ok(report)
}
