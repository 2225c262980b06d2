//! Snapshot vs snapshot (pure). Partitions are matched by their folder path.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::snapshot::{PartitionSnapshot, Snapshot};
use crate::table::PartitionId;

/// The comparison of two snapshots.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Diff {
    /// BEFORE as given: a snapshot file or a table.
    pub before: String,
    /// AFTER as given.
    pub after: String,
    /// Whether every partition is unchanged and none is missing or new.
    pub identical: bool,
    /// Counts and row totals.
    pub summary: Summary,
    /// Partition keys differ between the sides (then every partition differs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys_changed: Option<KeysChanged>,
    /// Partitions in both whose checksum differs.
    pub changed: Vec<Changed>,
    /// Only in BEFORE.
    pub missing: Vec<Side>,
    /// Only in AFTER.
    pub new: Vec<Side>,
    /// Partitions in both with the same checksum.
    pub unchanged: Vec<PartitionId>,
}

/// What a diff counts.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Summary {
    /// Partitions with the same checksum on both sides.
    pub unchanged: usize,
    /// Partitions whose checksum differs.
    pub changed: usize,
    /// Partitions only in BEFORE.
    pub missing: usize,
    /// Partitions only in AFTER.
    pub new: usize,
    /// Changed partitions whose schema differs too.
    pub schema_changed: usize,
    /// Rows of BEFORE's partitions.
    pub rows_before: u64,
    /// Rows of AFTER's partitions.
    pub rows_after: u64,
    /// `rows_after - rows_before`.
    pub rows_delta: i64,
}

/// The partition keys of BEFORE and AFTER, when they differ.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeysChanged {
    /// BEFORE's keys.
    pub before: Vec<String>,
    /// AFTER's keys.
    pub after: Vec<String>,
}

/// A partition on both sides whose checksum differs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Changed {
    /// The partition.
    pub partition: PartitionId,
    /// Rows in BEFORE.
    pub rows_before: u64,
    /// Rows in AFTER.
    pub rows_after: u64,
    /// `rows_after - rows_before`.
    pub rows_delta: i64,
    /// BEFORE's checksum.
    pub checksum_before: String,
    /// AFTER's checksum.
    pub checksum_after: String,
    /// Columns whose checksum differs; `None` when a side has no per-column checksums.
    pub columns: Option<Vec<String>>,
    /// Columns only AFTER has.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns_added: Vec<String>,
    /// Columns only BEFORE has.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns_removed: Vec<String>,
    /// Both schemas, when they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaChange>,
}

/// A partition's schema on both sides (`name:type, ...`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SchemaChange {
    /// BEFORE's schema.
    pub before: String,
    /// AFTER's schema.
    pub after: String,
}

/// A partition present on one side only.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Side {
    /// The partition.
    pub partition: PartitionId,
    /// Its rows.
    pub rows: u64,
    /// Its checksum.
    pub checksum: String,
}

fn side(p: &PartitionSnapshot) -> Side {
    Side {
        partition: p.partition.clone(),
        rows: p.rows,
        checksum: p.checksum.clone(),
    }
}

fn column_types(p: &PartitionSnapshot) -> BTreeMap<String, String> {
    p.schema
        .split(", ")
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            s.split_once(':')
                .map(|(n, t)| (n.to_string(), t.to_string()))
        })
        .collect()
}

fn compare(b: &PartitionSnapshot, a: &PartitionSnapshot) -> Changed {
    let (tb, ta) = (column_types(b), column_types(a));
    let columns_added: Vec<String> = ta
        .keys()
        .filter(|k| !tb.contains_key(*k))
        .cloned()
        .collect();
    let columns_removed: Vec<String> = tb
        .keys()
        .filter(|k| !ta.contains_key(*k))
        .cloned()
        .collect();
    let columns = match (&b.columns, &a.columns) {
        (Some(cb), Some(ca)) => Some(
            cb.iter()
                .filter(|(name, c)| {
                    ca.get(*name)
                        .is_some_and(|other| other.checksum != c.checksum)
                })
                .map(|(name, _)| name.clone())
                .collect(),
        ),
        _ => None,
    };
    Changed {
        partition: b.partition.clone(),
        rows_before: b.rows,
        rows_after: a.rows,
        rows_delta: a.rows as i64 - b.rows as i64,
        checksum_before: b.checksum.clone(),
        checksum_after: a.checksum.clone(),
        columns,
        columns_added,
        columns_removed,
        schema: (b.schema != a.schema).then(|| SchemaChange {
            before: b.schema.clone(),
            after: a.schema.clone(),
        }),
    }
}

/// Compares `before` with `after`.
pub fn diff(before: &Snapshot, after: &Snapshot) -> Diff {
    let key_names = |s: &Snapshot| s.keys.iter().map(|k| k.name.clone()).collect::<Vec<_>>();
    let keys_changed = (key_names(before) != key_names(after)).then(|| KeysChanged {
        before: key_names(before),
        after: key_names(after),
    });
    let after_by_id: BTreeMap<&str, &PartitionSnapshot> = after
        .partitions
        .iter()
        .map(|p| (p.partition.as_str(), p))
        .collect();
    let before_ids: std::collections::HashSet<&str> = before
        .partitions
        .iter()
        .map(|p| p.partition.as_str())
        .collect();

    let (mut changed, mut missing, mut unchanged) = (Vec::new(), Vec::new(), Vec::new());
    for b in &before.partitions {
        match after_by_id.get(b.partition.as_str()) {
            None => missing.push(side(b)),
            Some(a) if a.checksum == b.checksum => unchanged.push(b.partition.clone()),
            Some(a) => changed.push(compare(b, a)),
        }
    }
    let new: Vec<Side> = after
        .partitions
        .iter()
        .filter(|a| !before_ids.contains(a.partition.as_str()))
        .map(side)
        .collect();
    let summary = Summary {
        unchanged: unchanged.len(),
        changed: changed.len(),
        missing: missing.len(),
        new: new.len(),
        schema_changed: changed.iter().filter(|c| c.schema.is_some()).count(),
        rows_before: before.totals.rows,
        rows_after: after.totals.rows,
        rows_delta: after.totals.rows as i64 - before.totals.rows as i64,
    };
    Diff {
        before: before.table.clone(),
        after: after.table.clone(),
        identical: changed.is_empty()
            && missing.is_empty()
            && new.is_empty()
            && keys_changed.is_none(),
        summary,
        keys_changed,
        changed,
        missing,
        new,
        unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{ColumnSnapshot, Totals};

    fn part(id: &str, rows: u64, sum: &str, cols: &[(&str, &str)]) -> PartitionSnapshot {
        PartitionSnapshot {
            partition: id.into(),
            values: Default::default(),
            rows,
            checksum: sum.into(),
            files: 1,
            bytes: 10,
            schema: cols
                .iter()
                .map(|(n, _)| format!("{n}:int64"))
                .collect::<Vec<_>>()
                .join(", "),
            columns: Some(
                cols.iter()
                    .map(|(n, c)| {
                        (
                            n.to_string(),
                            ColumnSnapshot {
                                logical_type: "int64".into(),
                                checksum: c.to_string(),
                            },
                        )
                    })
                    .collect(),
            ),
            differs_in_v1: false,
        }
    }

    fn snap(parts: Vec<PartitionSnapshot>) -> Snapshot {
        Snapshot {
            format: "backfill-snapshot".into(),
            version: 1,
            checksum_version: 1,
            table: "t".into(),
            taken_at: "now".into(),
            keys: vec![],
            totals: Totals {
                partitions: parts.len(),
                rows: parts.iter().map(|p| p.rows).sum(),
                files: 0,
                bytes: 0,
            },
            partitions: parts,
            outside_layout: vec![],
            cache: None,
        }
    }

    #[test]
    fn sorts_partitions_into_the_four_outcomes() {
        let before = snap(vec![
            part("d=1", 10, "aa", &[("x", "1"), ("y", "2")]),
            part("d=2", 10, "bb", &[("x", "1"), ("y", "2")]),
            part("d=3", 5, "cc", &[("x", "1")]),
        ]);
        let after = snap(vec![
            part("d=1", 10, "aa", &[("x", "1"), ("y", "2")]),
            part("d=2", 12, "bz", &[("x", "1"), ("y", "9")]),
            part("d=4", 7, "dd", &[("x", "1")]),
        ]);
        let d = diff(&before, &after);
        assert!(!d.identical);
        assert_eq!(d.unchanged, ["d=1"]);
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].rows_delta, 2);
        assert_eq!(
            d.changed[0].columns.as_deref(),
            Some(&["y".to_string()][..])
        );
        assert_eq!(d.missing[0].partition, "d=3");
        assert_eq!(d.new[0].partition, "d=4");
        assert_eq!(d.summary.rows_delta, 4);
    }

    #[test]
    fn added_column_is_a_schema_change() {
        let before = snap(vec![part("d=1", 1, "aa", &[("x", "1")])]);
        let after = snap(vec![part("d=1", 1, "ab", &[("x", "1"), ("z", "3")])]);
        let d = diff(&before, &after);
        let c = &d.changed[0];
        assert_eq!(c.columns_added, ["z"]);
        assert_eq!(c.columns.as_deref(), Some(&[][..]));
        assert!(c.schema.is_some());
        assert_eq!(d.summary.schema_changed, 1);
    }

    #[test]
    fn same_snapshot_is_identical() {
        let s = snap(vec![part("d=1", 1, "aa", &[("x", "1")])]);
        assert!(diff(&s, &s).identical);
    }
}
