//! A run's journal folded into the state of the run and of each of its partitions, once:
//! `resume`, `rollback`, `release`, the run history and the check for other runs'
//! unfinished steps all read the same [`RunState`].

use std::collections::BTreeMap;

use super::journal::{Committing, Deleting, Event, Record};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::table::PartitionId;

/// The change a run made (or set out to make) to a partition: what undo puts back.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Commit(Committing),
    Delete(Deleting),
}

impl Change {
    pub fn partition(&self) -> &str {
        match self {
            Change::Commit(c) => &c.partition,
            Change::Delete(d) => &d.partition,
        }
    }

    /// The data files the change replaced (or removed).
    pub fn old_files(&self) -> &[String] {
        match self {
            Change::Commit(c) => &c.old_files,
            Change::Delete(d) => &d.old_files,
        }
    }

    /// The data files the change made live (none for a delete).
    pub fn new_files(&self) -> &[String] {
        match self {
            Change::Commit(c) => &c.new_files,
            Change::Delete(_) => &[],
        }
    }
}

/// A step journalled as begun and not as ended: the partition may be part old, part new.
#[derive(Debug, Clone, PartialEq)]
pub enum OpenStep {
    /// `Committing` journalled: the swap (local) or the copy of the new files (object
    /// stores) may have happened or not.
    Committing(Committing),
    /// Object stores: the new files are live; the old ones may not all be deleted yet.
    Added(Committing),
    /// `Deleting` journalled: the partition may be gone or not.
    Deleting(Deleting),
    /// `RollingBack` journalled: the old files may be back or not.
    RollingBack(Change),
}

impl OpenStep {
    /// `commit`, `delete` or `rollback`, for messages.
    pub fn step(&self) -> &'static str {
        match self {
            OpenStep::Committing(_) | OpenStep::Added(_) => "commit",
            OpenStep::Deleting(_) => "delete",
            OpenStep::RollingBack(_) => "rollback",
        }
    }

    /// The record that ends the step once it is finished forward (`rollback`: none).
    pub fn closing(&self) -> Option<Event> {
        use super::journal::{Committed, Deleted, Phases};
        match self {
            OpenStep::Committing(c) | OpenStep::Added(c) => Some(Event::Committed(Committed {
                partition: c.partition.clone(),
                before: c.before.clone(),
                after: c.after.clone(),
                phases: Phases::default(),
            })),
            OpenStep::Deleting(d) => Some(Event::Deleted(Deleted {
                partition: d.partition.clone(),
                before: d.before.clone(),
            })),
            OpenStep::RollingBack(_) => None,
        }
    }
}

/// One partition of a run, as its journal leaves it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionState {
    /// The partition's last record.
    pub last: Event,
    /// Its last commit or delete.
    pub change: Option<Change>,
}

impl PartitionState {
    /// The step this partition was left in the middle of, if any.
    pub fn open_step(&self) -> Option<OpenStep> {
        match (&self.last, &self.change) {
            (Event::Committing(c), _) => Some(OpenStep::Committing(c.clone())),
            (Event::Added(_), Some(Change::Commit(c))) => Some(OpenStep::Added(c.clone())),
            (Event::Deleting(d), _) => Some(OpenStep::Deleting(d.clone())),
            (Event::RollingBack(_), Some(change)) => Some(OpenStep::RollingBack(change.clone())),
            _ => None,
        }
    }
}

/// The whole run, as its journal leaves it.
#[derive(Debug, Clone)]
pub struct RunState {
    pub run_id: String,
    pub plan: Plan,
    /// The journal's format (see [`super::journal::FORMAT`]).
    pub format: u32,
    pub partitions: BTreeMap<PartitionId, PartitionState>,
    /// Partitions in the order their first commit or delete was journalled.
    pub change_order: Vec<PartitionId>,
    /// The counts of the last `Finished` record, if the run ever finished.
    pub finished: Option<(usize, usize, usize)>,
    /// Whether a rollback began, and whether one finished.
    pub rolling_back: bool,
    pub rolled_back: bool,
    pub released: bool,
}

impl RunState {
    /// Folds the records of run `run_id` (in journal order).
    pub fn from_records(run_id: &str, records: &[Record]) -> Result<RunState> {
        let (plan, format) = match records.first().map(|r| &r.event) {
            Some(Event::Planned { plan, format }) => ((**plan).clone(), *format),
            _ => {
                return Err(Error::JournalDamaged {
                    path: format!("of run {run_id}"),
                    reason: "it does not start with a plan".into(),
                })
            }
        };
        if format > super::journal::FORMAT {
            return Err(Error::JournalDamaged {
                path: format!("of run {run_id}"),
                reason: format!(
                    "it is format {format}, written by a newer backfill (this one reads up to {}); use that version",
                    super::journal::FORMAT
                ),
            });
        }
        let mut state = RunState {
            run_id: run_id.into(),
            plan,
            format,
            partitions: BTreeMap::new(),
            change_order: Vec::new(),
            finished: None,
            rolling_back: false,
            rolled_back: false,
            released: false,
        };
        for r in &records[1..] {
            state.apply(r);
        }
        Ok(state)
    }

    /// Folds a frozen run: its own journal, then each partition's journal (the records of
    /// one partition are all in one of them).
    pub fn from_journals(
        run_id: &str,
        records: &[Record],
        partitions: &[Vec<Record>],
    ) -> Result<RunState> {
        let mut state = RunState::from_records(run_id, records)?;
        for journal in partitions {
            for r in journal {
                state.apply(r);
            }
        }
        Ok(state)
    }

    fn apply(&mut self, r: &Record) {
        let state = self;
        {
            match &r.event {
                Event::Finished {
                    rewritten,
                    unchanged,
                    failed,
                } => state.finished = Some((*rewritten, *unchanged, *failed)),
                Event::RollbackFinished => state.rolled_back = true,
                Event::Released => state.released = true,
                _ => {}
            }
            let Some(p) = r.event.partition() else {
                return;
            };
            let change = match &r.event {
                Event::Committing(c) => Some(Change::Commit(c.clone())),
                Event::Deleting(d) => Some(Change::Delete(d.clone())),
                _ => None,
            };
            if matches!(r.event, Event::RollingBack(_)) {
                state.rolling_back = true;
            }
            if change.is_some() && !state.change_order.iter().any(|x| x == p) {
                state.change_order.push(p.clone());
            }
            let entry = state
                .partitions
                .entry(p.clone())
                .or_insert_with(|| PartitionState {
                    last: r.event.clone(),
                    change: None,
                });
            entry.last = r.event.clone();
            if change.is_some() {
                entry.change = change;
            }
        }
    }

    /// Whether every planned partition has a final record (a frozen run has no
    /// `finished` record: its workers end it partition by partition).
    pub fn all_final(&self) -> bool {
        self.plan.partitions.iter().all(|p| {
            self.partitions.get(&p.partition).is_some_and(|s| {
                matches!(
                    s.last,
                    Event::Committed(_) | Event::Unchanged(_) | Event::Deleted(_) | Event::Kept(_)
                )
            })
        })
    }

    /// Whether the run finished with nothing left to do (no failed partition) or was
    /// rolled back.
    pub fn settled(&self) -> bool {
        self.rolled_back
            || matches!(self.finished, Some((_, _, 0)))
            || (self.plan.frozen && self.all_final())
    }

    /// Every partition left mid-step, by partition.
    pub fn open_steps(&self) -> impl Iterator<Item = (&PartitionId, OpenStep)> {
        self.partitions
            .iter()
            .filter_map(|(p, s)| s.open_step().map(|o| (p, o)))
    }

    /// How many partitions' last record matches `f`.
    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.partitions.values().filter(|s| f(&s.last)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::super::journal::{Added, Committed, Of, Phases, Side};
    use super::*;

    fn record(seq: u64, event: Event) -> Record {
        Record {
            seq,
            at: String::new(),
            event,
        }
    }

    fn committing(p: &str, new: &str) -> Committing {
        let side = Side {
            rows: 1,
            checksum: "c".into(),
        };
        Committing {
            partition: p.into(),
            new_files: vec![new.into()],
            old_files: vec!["old.parquet".into()],
            before: side.clone(),
            after: side,
            schema_change: None,
        }
    }

    fn plan() -> Event {
        let plan: Plan = serde_json::from_value(serde_json::json!({
            "run_id": "r", "table": "t", "started_at": "x", "selection": {},
            "keys": [], "partitions": [],
            "totals": {"partitions": 0, "files": 0, "bytes": 0, "rows": 0},
            "estimated_seconds": 0.0
        }))
        .unwrap();
        Event::Planned {
            plan: Box::new(plan),
            format: 1,
        }
    }

    #[test]
    fn the_last_commit_of_each_partition_is_what_recovery_and_undo_act_on() {
        let (a1, a2) = (committing("a", "a1"), committing("a", "a2"));
        let records = vec![
            record(0, plan()),
            record(1, Event::Committing(a1.clone())),
            record(2, Event::Committing(committing("b", "b1"))),
            record(
                3,
                Event::Committed(Committed {
                    partition: "a".into(),
                    before: a1.before.clone(),
                    after: a1.after.clone(),
                    phases: Phases::default(),
                }),
            ),
            // Resumed and committed again: the second commit is the one that counts.
            record(4, Event::Committing(a2.clone())),
            record(
                5,
                Event::Added(Added {
                    partition: "a".into(),
                }),
            ),
            record(
                6,
                Event::RollingBack(Of {
                    partition: "b".into(),
                }),
            ),
        ];
        let s = RunState::from_records("r", &records).unwrap();
        assert_eq!(s.change_order, ["a", "b"]);
        assert_eq!(s.partitions["a"].change, Some(Change::Commit(a2.clone())));
        let open: Vec<(&str, OpenStep)> = s.open_steps().map(|(p, o)| (p.as_str(), o)).collect();
        assert_eq!(
            open,
            [
                ("a", OpenStep::Added(a2)),
                (
                    "b",
                    OpenStep::RollingBack(Change::Commit(committing("b", "b1")))
                )
            ]
        );
        assert!(s.rolling_back && !s.rolled_back && !s.settled());
    }

    #[test]
    fn a_journal_without_a_plan_or_of_a_newer_format_is_refused() {
        let err = RunState::from_records("r", &[record(0, Event::Resumed)]).unwrap_err();
        assert!(
            err.to_string().contains("does not start with a plan"),
            "{err}"
        );
        let Event::Planned { plan, .. } = plan() else {
            unreachable!()
        };
        let newer = Event::Planned {
            plan,
            format: super::super::journal::FORMAT + 1,
        };
        let err = RunState::from_records("r", &[record(0, newer)]).unwrap_err();
        assert!(
            err.to_string().contains("written by a newer backfill"),
            "{err}"
        );
    }
}
