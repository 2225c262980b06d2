//! Standalone checks of a table, for partitions written by any job.
//!
//! Every selected file is read in full (a footer can be fine while a page is not).
//! Findings are facts about the table; [`VerifyReport::ok`] is true when there are none.

use std::collections::BTreeMap;

pub mod anomaly;
mod summary;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime};
use serde::Serialize;

use crate::diff;
use crate::error::{Error, Result};
use crate::run::{PartitionState, RunDetail};
use crate::snapshot::{self, ScanOptions, Snapshot};
use crate::table::{KeyType, Table, Typed};

/// The step of an expected partition sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Every {
    /// One partition per hour
    Hour,
    /// One partition per day
    Day,
    /// One partition per month
    Month,
}

impl Every {
    fn truncate(self, t: NaiveDateTime) -> NaiveDateTime {
        let d = t.date();
        match self {
            Every::Hour => d.and_hms_opt(t.time().hour_of(), 0, 0).expect("valid hour"),
            Every::Day => d.and_time(NaiveTime::MIN),
            Every::Month => NaiveDate::from_ymd_opt(d.year(), d.month(), 1)
                .expect("valid month")
                .and_time(NaiveTime::MIN),
        }
    }

    fn next(self, t: NaiveDateTime) -> NaiveDateTime {
        match self {
            Every::Hour => t + Duration::hours(1),
            Every::Day => t + Duration::days(1),
            Every::Month => t
                .checked_add_months(chrono::Months::new(1))
                .expect("month in range"),
        }
    }

    fn show(self, t: NaiveDateTime) -> String {
        match self {
            Every::Hour => t.format("%Y-%m-%dT%H").to_string(),
            Every::Day => t.format("%Y-%m-%d").to_string(),
            Every::Month => t.format("%Y-%m").to_string(),
        }
    }
}

trait HourOf {
    fn hour_of(&self) -> u32;
}
impl HourOf for NaiveTime {
    fn hour_of(&self) -> u32 {
        chrono::Timelike::hour(self)
    }
}

/// Reads a time point from text: `YYYY-MM-DD`, `YYYY-MM`, `YYYY-MM-DDTHH`, `YYYY-MM-DD HH`,
/// `YYYY-MM-DD-HH`, or those with `:MM[:SS]`.
fn parse_point(s: &str) -> Option<NaiveDateTime> {
    if let Some(d) = crate::table::value::parse_date(s) {
        return Some(d.and_time(NaiveTime::MIN));
    }
    if s.len() == 7 {
        if let Ok(d) = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d") {
            return Some(d.and_time(NaiveTime::MIN));
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t);
        }
    }
    for sep in ['T', ' ', '-'] {
        if s.len() == 13 && s.as_bytes()[10] == sep as u8 {
            let (d, h) = (&s[..10], &s[11..]);
            if let (Some(d), Ok(h)) = (crate::table::value::parse_date(d), h.parse::<u32>()) {
                return d.and_hms_opt(h, 0, 0);
            }
        }
    }
    None
}

/// One thing verify found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// What was found.
    pub kind: FindingKind,
    /// The partition it is in, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// The file, relative to the table root, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What, in words.
    pub detail: String,
}

/// The kinds of finding (README, "`verify` findings").
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A step of `--expect-every` has no partition.
    MissingPartition,
    /// A partition without rows.
    EmptyPartition,
    /// A partition value is NULL.
    NullPartition,
    /// A data file of 0 bytes.
    ZeroByteFile,
    /// A data file that does not read to the end.
    UnreadableFile,
    /// Files of one partition with different schemas.
    MixedSchema,
    /// A column typed differently by different partitions.
    MixedColumnTypes,
    /// A Parquet file outside the `key=value` layout.
    OutsideLayout,
    /// A non-Parquet, non-hidden file in a partition.
    StrayFile,
    /// A Parquet summary file (`_metadata`) that disagrees with the data files.
    StaleSummary,
    /// Drift: the partition differs from the snapshot.
    Changed,
    /// Drift: the partition is gone since the snapshot.
    Missing,
    /// Drift: the partition is new since the snapshot.
    New,
    /// `--deep`: a file's content differs from its checksum cache entry while its size
    /// and version (ETag, or inode and modification time) did not change: bit rot, or a
    /// writer that kept the metadata.
    ContentChangedInPlace,
    /// `--rows-anomaly`: a row count far from what the partition's predecessors predict.
    RowCountAnomaly,
    /// `--run`: the partition does not hold what the run recorded leaving in it.
    RunMismatch,
    /// `--run`: the run has not finished the partition (pending, failed, mid-step).
    RunUnfinished,
}

impl FindingKind {
    /// The kind's name in output.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::MissingPartition => "missing_partition",
            FindingKind::EmptyPartition => "empty_partition",
            FindingKind::NullPartition => "null_partition",
            FindingKind::ZeroByteFile => "zero_byte_file",
            FindingKind::UnreadableFile => "unreadable_file",
            FindingKind::MixedSchema => "mixed_schema",
            FindingKind::MixedColumnTypes => "mixed_column_types",
            FindingKind::OutsideLayout => "outside_layout",
            FindingKind::StrayFile => "stray_file",
            FindingKind::StaleSummary => "stale_summary",
            FindingKind::Changed => "changed",
            FindingKind::Missing => "missing",
            FindingKind::New => "new",
            FindingKind::ContentChangedInPlace => "content_changed_in_place",
            FindingKind::RowCountAnomaly => "row_count_anomaly",
            FindingKind::RunMismatch => "run_mismatch",
            FindingKind::RunUnfinished => "run_unfinished",
        }
    }
}

/// What `verify` reports.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The table, as the user named it.
    pub table: String,
    /// Whether nothing was found.
    pub ok: bool,
    /// Partitions verified.
    pub partitions: usize,
    /// Data files verified.
    pub files: usize,
    /// Rows verified.
    pub rows: u64,
    /// The expected sequence, with `--expect-every`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Expected>,
    /// Everything found.
    pub findings: Vec<Finding>,
    /// Each partition verified and its rows, in table order (for the HTML report).
    #[serde(skip)]
    pub partition_rows: Vec<(crate::table::PartitionId, u64)>,
    /// Only footers were read (`--footers-only`): the data was not checked.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub footers_only: bool,
    /// How many files were read and how many came from the checksum cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::snapshot::CacheReport>,
}

/// The sequence `--expect-every` expected.
#[derive(Debug, Clone, Serialize)]
pub struct Expected {
    /// The step.
    pub every: Every,
    /// The first step.
    pub from: String,
    /// The last step.
    pub to: String,
    /// Steps in all.
    pub count: usize,
}

/// What to check besides the table's files.
pub struct VerifyOptions {
    /// Expect one partition per step of the first key.
    pub every: Option<Every>,
    /// Bounds of the expected sequence (`--from` / `--to`), else first and last present.
    pub from: Option<String>,
    /// The last expected step (default: the last partition).
    pub to: Option<String>,
    /// A snapshot to compare with (drift).
    pub against: Option<Snapshot>,
    /// Look for row counts far from their predecessors' (`--rows-anomaly`).
    pub anomalies: Option<anomaly::AnomalyOptions>,
    /// A run whose partitions must hold what its journal recorded (`--run`); the
    /// selected partitions are the run's.
    pub run: Option<RunDetail>,
    /// The selection the partitions came from; applied to `against` too.
    pub selection: crate::selection::Selection,
    /// How files are read.
    pub scan: ScanOptions,
}

fn finding(
    kind: FindingKind,
    partition: Option<&str>,
    path: Option<&str>,
    detail: String,
) -> Finding {
    Finding {
        kind,
        partition: partition.map(str::to_string),
        path: path.map(str::to_string),
        detail,
    }
}

/// The time point of a partition for the sequence check.
fn point_of(
    table: &Table,
    typed: &[Typed],
    raw: &[Option<String>],
    every: Every,
) -> Result<Option<NaiveDateTime>> {
    let first = match &typed[0] {
        Typed::Null => return Ok(None),
        Typed::Date(d) => d.and_time(NaiveTime::MIN),
        _ => {
            let s = raw[0].as_deref().unwrap_or_default();
            parse_point(s).ok_or_else(|| {
                Error::Usage(format!(
                    "--expect-every {}: value {s:?} of key {} is not a date or time; it needs a first key like 2024-01-03 or 2024-01-03T05",
                    every.show_name(),
                    table.keys[0].name
                ))
            })?
        }
    };
    // `dt=2024-01-03/hour=5` is the other common hourly layout.
    if every == Every::Hour
        && table.keys.len() > 1
        && table.keys[1].key_type == KeyType::Int
        && table.keys[1].name.contains("hour")
    {
        if let Typed::Int(h) = typed[1] {
            return Ok(first.date().and_hms_opt(h as u32, 0, 0));
        }
    }
    Ok(Some(first))
}

impl Every {
    fn show_name(self) -> &'static str {
        match self {
            Every::Hour => "hour",
            Every::Day => "day",
            Every::Month => "month",
        }
    }
}

/// Verifies the partitions of `table` (narrowed to a selection by [`Table::select`]).
pub async fn verify(table: &Table, options: &VerifyOptions) -> Result<VerifyReport> {
    let mut findings = Vec::new();
    for path in &table.outside_layout {
        findings.push(finding(
            FindingKind::OutsideLayout,
            None,
            Some(path),
            "Parquet file outside the key=value layout; readers of the table may or may not see it"
                .into(),
        ));
    }
    let partitions: Vec<&crate::table::Partition> = table.partitions.iter().collect();

    let mut expected = None;
    if let Some(every) = options.every {
        let mut present = std::collections::BTreeSet::new();
        for p in &partitions {
            if let Some(t) = point_of(table, &p.typed, p.values.raw(), every)? {
                present.insert(every.truncate(t));
            }
        }
        let bound = |flag: &str, v: &Option<String>| -> Result<Option<NaiveDateTime>> {
            v.as_deref()
                .map(|s| {
                    parse_point(s)
                        .map(|t| every.truncate(t))
                        .ok_or_else(|| Error::Usage(format!("{flag} {s:?} is not a date or time")))
                })
                .transpose()
        };
        let from = bound("--from", &options.from)?.or_else(|| present.first().copied());
        let to = bound("--to", &options.to)?.or_else(|| present.last().copied());
        if let (Some(from), Some(to)) = (from, to) {
            let mut t = from;
            let mut count = 0;
            while t <= to {
                count += 1;
                if !present.contains(&t) {
                    findings.push(finding(
                        FindingKind::MissingPartition,
                        Some(&every.show(t)),
                        None,
                        format!("no partition for {} {}", every.show_name(), every.show(t)),
                    ));
                }
                t = every.next(t);
                if count > 10_000_000 {
                    return Err(Error::Usage("--expect-every: the expected range has over ten million steps; narrow --from/--to".into()));
                }
            }
            expected = Some(Expected {
                every,
                from: every.show(from),
                to: every.show(to),
                count,
            });
        }
    }

    let scans = snapshot::scan_files(table, &partitions, &options.scan).await;
    // Column -> logical type -> partitions holding it as that type.
    let mut types: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut snaps = Vec::new();
    let mut shared = snapshot::Shared::default();
    let mut rows = 0;
    let mut file_rows = BTreeMap::new();
    for (p, scans) in partitions.iter().zip(scans) {
        for (file, scan) in p.files.iter().zip(&scans) {
            if let Ok(scan) = scan {
                file_rows.insert(file.relative.clone(), scan.part.rows);
            }
        }
        if p.has_null() {
            findings.push(finding(
                FindingKind::NullPartition,
                Some(&p.id),
                None,
                "a partition value is NULL (__HIVE_DEFAULT_PARTITION__)".into(),
            ));
        }
        for s in &p.stray {
            findings.push(finding(
                FindingKind::StrayFile,
                Some(&p.id),
                Some(s),
                "not a Parquet file and not hidden; readers that list the folder may trip on it"
                    .into(),
            ));
        }
        let mut good = Vec::new();
        let mut bad = false;
        for (file, scan) in p.files.iter().zip(&scans) {
            if file.size == 0 {
                findings.push(finding(
                    FindingKind::ZeroByteFile,
                    Some(&p.id),
                    Some(&file.relative),
                    "file is empty (0 bytes)".into(),
                ));
                bad = true;
            } else if let Err(e) = scan {
                let reason = match e {
                    Error::Unreadable { reason, .. } => reason.clone(),
                    e => e.to_string(),
                };
                findings.push(finding(
                    FindingKind::UnreadableFile,
                    Some(&p.id),
                    Some(&file.relative),
                    reason,
                ));
                bad = true;
            } else {
                good.push(file);
            }
        }
        if bad {
            continue;
        }
        if let Some(scan) = scans.iter().find_map(|s| s.as_ref().ok()) {
            for (name, t) in scan.column_types.iter() {
                types
                    .entry(name.clone())
                    .or_default()
                    .entry(t.clone())
                    .or_default()
                    .push(p.id.to_string());
            }
        }
        match snapshot::combine(p, &table.keys, scans, options.scan.columns, &mut shared) {
            Ok(s) => {
                if s.rows == 0 {
                    let detail = if p.files.is_empty() {
                        "no data files".to_string()
                    } else {
                        format!("{} file(s), 0 rows", p.files.len())
                    };
                    findings.push(finding(
                        FindingKind::EmptyPartition,
                        Some(&p.id),
                        None,
                        detail,
                    ));
                }
                rows += s.rows;
                snaps.push(s);
            }
            Err(Error::MixedSchema {
                partition,
                first,
                first_schema,
                second,
                second_schema,
            }) => findings.push(finding(
                FindingKind::MixedSchema,
                Some(&partition),
                Some(&second),
                format!("[{second_schema}] differs from {first} [{first_schema}]"),
            )),
            Err(e) => return Err(e),
        }
    }

    // Summaries beside the partitions cover them all; one in a partition's folder, that
    // partition.
    for (at, covered, path) in table
        .summaries
        .iter()
        .map(|s| (None, partitions.clone(), s))
        .chain(partitions.iter().flat_map(|p| {
            p.summaries
                .iter()
                .map(|s| (Some(p.id.as_str()), vec![*p], s))
        }))
    {
        if path.rsplit('/').next() != Some("_metadata") {
            continue; // `_common_metadata` holds a schema, no files
        }
        let (problems, readers) = match summary::listed_rows(&table.location, path).await {
            Ok(listed) => (
                summary::disagreements(&listed, &covered, &file_rows),
                "see other files and counts than the table holds",
            ),
            Err(why) => (vec![format!("cannot be read: {why}")], "fail on it"),
        };
        if let Some(first) = problems.first() {
            let more = match problems.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            findings.push(finding(
                FindingKind::StaleSummary,
                at,
                Some(path),
                format!("the summary {first}{more}; readers that use it (fastparquet, dask) {readers}: delete it, or write it again with the tool that wrote it"),
            ));
        }
    }

    // A column typed differently by partitions: readers type it from whichever file they
    // read first, and a query over the table may fail or cast.
    for (column, by_type) in &types {
        if by_type.len() < 2 {
            continue;
        }
        let mut groups: Vec<(&String, &Vec<String>)> = by_type.iter().collect();
        groups.sort_by_key(|(_, ps)| std::cmp::Reverse(ps.len()));
        let shown: Vec<String> = groups
            .iter()
            .map(|(t, ps)| {
                let first: Vec<&str> = ps.iter().take(3).map(String::as_str).collect();
                let more = if ps.len() > 3 { ", ..." } else { "" };
                format!(
                    "{t} in {} partition(s) ({}{more})",
                    ps.len(),
                    first.join(", ")
                )
            })
            .collect();
        findings.push(finding(
            FindingKind::MixedColumnTypes,
            groups
                .last()
                .and_then(|(_, ps)| ps.first())
                .map(String::as_str),
            None,
            format!(
                "column {column} is {}; rewrite the odd partitions so the table has one type",
                shown.join(" but ")
            ),
        ));
    }

    if let Some(opts) = &options.anomalies {
        let rows: BTreeMap<&str, u64> = snaps
            .iter()
            .map(|s| (s.partition.as_str(), s.rows))
            .collect();
        // In the first key's order within each group (discovery orders by path).
        let mut ordered: Vec<&&crate::table::Partition> = partitions.iter().collect();
        ordered.sort_by(|a, b| a.typed.cmp(&b.typed));
        let points: Vec<anomaly::Point> = ordered
            .iter()
            .filter_map(|p| {
                Some(anomaly::Point {
                    partition: p.id.clone(),
                    group: p
                        .id
                        .split_once('/')
                        .map(|(_, g)| g.to_string())
                        .unwrap_or_default(),
                    date: match p.typed.first() {
                        Some(Typed::Date(d)) => Some(*d),
                        _ => None,
                    },
                    rows: *rows.get(p.id.as_str())?,
                })
            })
            .collect();
        for a in anomaly::row_count_anomalies(&points, opts) {
            findings.push(finding(
                FindingKind::RowCountAnomaly,
                Some(&a.partition),
                None,
                format!(
                    "{} rows; expected {}..{} ({}, threshold {})",
                    a.rows, a.expected_low, a.expected_high, a.method, opts.threshold
                ),
            ));
        }
    }

    if let (Some(cache), true) = (&options.scan.cache, options.scan.deep) {
        for path in cache.changed_in_place() {
            let partition = path.rsplit_once('/').map(|(p, _)| p.to_string());
            findings.push(finding(
                FindingKind::ContentChangedInPlace,
                partition.as_deref(),
                Some(&path),
                "its rows differ from what the checksum cache recorded for this same size and version of the file: it was changed in place (bit rot, or a writer that kept the metadata); restore it from a copy, or rewrite it, then `verify --prune-cache`"
                    .into(),
            ));
        }
    }

    let partition_rows: Vec<(crate::table::PartitionId, u64)> = {
        let read: BTreeMap<&str, u64> = snaps
            .iter()
            .map(|s| (s.partition.as_str(), s.rows))
            .collect();
        partitions
            .iter()
            .map(|p| (p.id.clone(), read.get(p.id.as_str()).copied().unwrap_or(0)))
            .collect()
    };

    if let Some(run) = &options.run {
        let present: std::collections::HashSet<&str> =
            partitions.iter().map(|p| p.id.as_str()).collect();
        let held: BTreeMap<&str, (u64, &str)> = snaps
            .iter()
            .map(|s| (s.partition.as_str(), (s.rows, s.checksum.as_str())))
            .collect();
        findings.extend(run_findings(run, &present, &held));
    }

    if let Some(against) = &options.against {
        let current = Snapshot::new(table, snaps);
        // Compare only what the selection covers, on both sides.
        let mut reference = against.clone();
        reference.retain_selected(&options.selection)?;
        reference
            .comparable(&current)
            .map_err(|e| Error::Snapshot {
                path: "--against".into(),
                reason: e,
            })?;
        let d = diff::diff(&reference, &current);
        for c in &d.changed {
            let cols = match &c.columns {
                Some(cols) if !cols.is_empty() => format!("; columns: {}", cols.join(", ")),
                _ => String::new(),
            };
            findings.push(finding(
                FindingKind::Changed,
                Some(&c.partition),
                None,
                format!(
                    "rows {} -> {} ({:+}){cols}",
                    c.rows_before, c.rows_after, c.rows_delta
                ),
            ));
        }
        for m in &d.missing {
            findings.push(finding(
                FindingKind::Missing,
                Some(&m.partition),
                None,
                format!("in the snapshot ({} rows) but not in the table", m.rows),
            ));
        }
        for n in &d.new {
            findings.push(finding(
                FindingKind::New,
                Some(&n.partition),
                None,
                format!("in the table ({} rows) but not in the snapshot", n.rows),
            ));
        }
    }

    Ok(VerifyReport {
        table: table.location.display.clone(),
        ok: findings.is_empty(),
        partitions: partitions.len(),
        files: partitions.iter().map(|p| p.files.len()).sum(),
        rows,
        expected,
        findings,
        partition_rows,
        footers_only: options.scan.footers_only,
        cache: None,
    })
}

/// What `verify --run` finds: each of the run's partitions against what the run recorded
/// leaving in it. `present`: the run's partitions in the table; `held`: those read, with
/// their rows and checksum (one with an unreadable file is already a finding).
fn run_findings(
    run: &RunDetail,
    present: &std::collections::HashSet<&str>,
    held: &BTreeMap<&str, (u64, &str)>,
) -> Vec<Finding> {
    let id = &run.info.run_id;
    let mut out = Vec::new();
    for p in &run.partitions {
        let part = Some(p.partition.as_str());
        match (p.state, &p.rows_after, &p.checksum_after) {
            (PartitionState::Deleted, _, _) => {
                if present.contains(p.partition.as_str()) {
                    let rows = held.get(p.partition.as_str()).map(|h| h.0).unwrap_or(0);
                    out.push(finding(
                        FindingKind::RunMismatch,
                        part,
                        None,
                        format!("run {id} deleted it, but the table has it ({rows} rows)"),
                    ));
                }
            }
            (state, Some(rows), Some(checksum)) => {
                if !present.contains(p.partition.as_str()) {
                    out.push(finding(
                        FindingKind::RunMismatch,
                        part,
                        None,
                        format!(
                            "run {id} left it {} with {rows} rows; the table has no such partition",
                            state.name()
                        ),
                    ));
                } else if let Some((has_rows, has_sum)) = held.get(p.partition.as_str()) {
                    if has_rows != rows || has_sum != checksum {
                        out.push(finding(
                            FindingKind::RunMismatch,
                            part,
                            None,
                            format!(
                                "holds {has_rows} rows, checksum {}; run {id} left it {} with {rows} rows, checksum {}: something changed it since",
                                short(has_sum),
                                state.name(),
                                short(checksum)
                            ),
                        ));
                    }
                }
            }
            (state, _, _) => {
                let why = p
                    .detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                let next = match state {
                    PartitionState::Pending | PartitionState::Failed => {
                        "run its task again, or `backfill resume`"
                    }
                    _ => "`backfill resume` or `rollback` finishes the step",
                };
                out.push(finding(
                    FindingKind::RunUnfinished,
                    part,
                    None,
                    format!("run {id} left it {}{why}; {next}", state.name()),
                ));
            }
        }
    }
    out
}

fn short(checksum: &str) -> &str {
    &checksum[..checksum.len().min(16)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_common_spellings() {
        let h = NaiveDate::from_ymd_opt(2024, 1, 3)
            .unwrap()
            .and_hms_opt(5, 0, 0)
            .unwrap();
        for s in [
            "2024-01-03T05",
            "2024-01-03 05",
            "2024-01-03-05",
            "2024-01-03T05:00:00",
        ] {
            assert_eq!(parse_point(s), Some(h), "{s}");
        }
        assert_eq!(
            parse_point("2024-02"),
            NaiveDate::from_ymd_opt(2024, 2, 1).map(|d| d.and_time(NaiveTime::MIN))
        );
        assert_eq!(parse_point("eu"), None);
    }

    #[test]
    fn months_step_over_year_ends() {
        let t = parse_point("2024-12").unwrap();
        assert_eq!(Every::Month.show(Every::Month.next(t)), "2025-01");
    }
}
