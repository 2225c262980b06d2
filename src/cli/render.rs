//! The one module that prints: tables for people, JSON for scripts, progress on a terminal.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use backfill::bench::BenchReport;
use backfill::diff::Diff;
use backfill::plan::Plan;
use backfill::run::{PartitionReport, RollbackReport, RunDetail, RunHistory, RunInfo, RunReport};
use backfill::snapshot::{CacheReport, Progress, Snapshot};
use backfill::verify::VerifyReport;

/// What a command gives back: one JSON document for scripts (`--json`), text for people,
/// and how the command exits (grep-style: 0 nothing to say, 1 differences or failures).
pub trait Report: serde::Serialize {
    /// The report for people: aligned tables and a summary line.
    fn human(&self) -> String;
    /// The exit code this report means.
    fn exit_code(&self) -> ExitCode {
        ExitCode::SUCCESS
    }
}

/// Prints a command's report, as JSON or as text, and gives its exit code: the one tail
/// of every command that reports.
pub fn emit<R: Report>(report: &R, as_json: bool) -> ExitCode {
    if as_json {
        json(report);
    } else {
        out(&report.human());
    }
    report.exit_code()
}

fn failed_if(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

impl Report for Snapshot {
    fn human(&self) -> String {
        snapshot(self)
    }
}

impl Report for Diff {
    fn human(&self) -> String {
        diff(self)
    }
    fn exit_code(&self) -> ExitCode {
        failed_if(!self.identical)
    }
}

impl Report for VerifyReport {
    fn human(&self) -> String {
        verify(self)
    }
    fn exit_code(&self) -> ExitCode {
        failed_if(!self.ok)
    }
}

impl Report for RunReport {
    fn human(&self) -> String {
        run_report(self)
    }
    fn exit_code(&self) -> ExitCode {
        if self.busy() {
            return ExitCode::from(75);
        }
        failed_if(!self.ok())
    }
}

impl Report for RollbackReport {
    fn human(&self) -> String {
        rollback(self)
    }
    fn exit_code(&self) -> ExitCode {
        failed_if(self.skipped > 0)
    }
}

impl Report for RunHistory {
    fn human(&self) -> String {
        runs(&self.runs)
    }
}

impl Report for RunDetail {
    fn human(&self) -> String {
        run_detail(self)
    }
}

impl Report for BenchReport {
    fn human(&self) -> String {
        bench(self)
    }
    fn exit_code(&self) -> ExitCode {
        failed_if(self.failed > 0)
    }
}

/// Writes to stdout; a closed pipe (`| head`) ends output quietly.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// A note for people, on stderr (never mixed into `--json` output).
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

pub fn json<T: serde::Serialize>(value: &T) {
    out(&(serde_json::to_string_pretty(value).expect("report serialises") + "\n"));
}

/// Aligned columns; columns named in `right` are right-aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>], right: &[&str]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = w - c.chars().count();
            let last = i + 1 == cells.len();
            if right.contains(&headers[i]) {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                if !last {
                    s.push_str(&" ".repeat(pad));
                }
            }
            if !last {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

pub fn bytes(n: u64) -> String {
    backfill::plan::human_bytes(n)
}

pub fn short(checksum: &str) -> String {
    checksum.chars().take(16).collect()
}

pub fn snapshot(s: &Snapshot) -> String {
    // With --columns, each column's checksum (first 8 hex digits) gets a column of its own.
    let names: Vec<String> = if s.has_columns() {
        let mut all: Vec<String> = s
            .partitions
            .iter()
            .flat_map(|p| p.columns.iter().flatten().map(|(n, _)| n.clone()))
            .collect();
        all.sort();
        all.dedup();
        all
    } else {
        Vec::new()
    };
    let rows: Vec<Vec<String>> = s
        .partitions
        .iter()
        .map(|p| {
            let mut row = vec![
                p.partition.to_string(),
                p.rows.to_string(),
                p.files.to_string(),
                bytes(p.bytes),
                short(&p.checksum),
            ];
            for n in &names {
                let c = p.columns.as_ref().and_then(|c| c.get(n));
                row.push(
                    c.map(|c| c.checksum[..8].to_string())
                        .unwrap_or_else(|| "-".into()),
                );
            }
            row
        })
        .collect();
    let mut headers = vec!["partition", "rows", "files", "bytes", "checksum"];
    headers.extend(names.iter().map(String::as_str));
    let mut text = table(&headers, &rows, &["rows", "files", "bytes"]);
    text.push_str(&format!(
        "\n{} partitions, {} rows, {} files, {}\n",
        s.totals.partitions,
        s.totals.rows,
        s.totals.files,
        bytes(s.totals.bytes)
    ));
    text.push_str(&outside(&s.outside_layout));
    text
}

fn outside(paths: &[String]) -> String {
    if paths.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "warning: {} Parquet file(s) outside the key=value layout were not read:\n",
        paths.len()
    );
    for p in paths.iter().take(10) {
        s.push_str(&format!("  {p}\n"));
    }
    if paths.len() > 10 {
        s.push_str(&format!("  ... and {} more\n", paths.len() - 10));
    }
    s
}

pub fn diff(d: &Diff) -> String {
    let mut rows = Vec::new();
    for c in &d.changed {
        let mut what = Vec::new();
        match &c.columns {
            Some(cols) if !cols.is_empty() => what.push(format!("columns: {}", cols.join(", "))),
            Some(_) => {}
            None => what.push("columns: unknown (snapshot without --columns)".into()),
        }
        if !c.columns_added.is_empty() {
            what.push(format!("added: {}", c.columns_added.join(", ")));
        }
        if !c.columns_removed.is_empty() {
            what.push(format!("removed: {}", c.columns_removed.join(", ")));
        }
        if c.schema.is_some() && c.columns_added.is_empty() && c.columns_removed.is_empty() {
            what.push("column types changed".into());
        }
        rows.push(vec![
            "changed".into(),
            c.partition.to_string(),
            c.rows_before.to_string(),
            c.rows_after.to_string(),
            format!("{:+}", c.rows_delta),
            what.join("; "),
        ]);
    }
    for m in &d.missing {
        rows.push(vec![
            "missing".into(),
            m.partition.to_string(),
            m.rows.to_string(),
            "-".into(),
            format!("{:+}", -(m.rows as i64)),
            String::new(),
        ]);
    }
    for n in &d.new {
        rows.push(vec![
            "new".into(),
            n.partition.to_string(),
            "-".into(),
            n.rows.to_string(),
            format!("{:+}", n.rows),
            String::new(),
        ]);
    }
    let mut text = format!("before: {}\nafter:  {}\n\n", d.before, d.after);
    if let Some(k) = &d.keys_changed {
        text.push_str(&format!(
            "partition keys changed: [{}] -> [{}]\n\n",
            k.before.join(", "),
            k.after.join(", ")
        ));
    }
    if !rows.is_empty() {
        text.push_str(&table(
            &[
                "status",
                "partition",
                "rows_before",
                "rows_after",
                "delta",
                "what",
            ],
            &rows,
            &["rows_before", "rows_after", "delta"],
        ));
        text.push('\n');
    }
    let s = &d.summary;
    text.push_str(&format!(
        "{} unchanged, {} changed, {} missing, {} new; rows {} -> {} ({:+})\n",
        s.unchanged, s.changed, s.missing, s.new, s.rows_before, s.rows_after, s.rows_delta
    ));
    text.push_str(if d.identical {
        "identical\n"
    } else {
        "different\n"
    });
    text
}

pub fn verify(r: &VerifyReport) -> String {
    let mut text = format!(
        "verified {} partitions, {} files, {} rows in {}{}\n",
        r.partitions,
        r.files,
        r.rows,
        r.table,
        if r.footers_only {
            " (footers only: the data was not read)"
        } else {
            ""
        }
    );
    if let Some(e) = &r.expected {
        let every = format!("{:?}", e.every).to_lowercase();
        text.push_str(&format!(
            "expected one partition every {every} from {} to {}: {} in all\n",
            e.from, e.to, e.count
        ));
    }
    text.push('\n');
    if r.findings.is_empty() {
        text.push_str("ok: no findings\n");
        return text;
    }
    let rows: Vec<Vec<String>> = r
        .findings
        .iter()
        .map(|f| {
            vec![
                f.kind.name().to_string(),
                f.partition.clone().unwrap_or_else(|| "-".into()),
                f.path.clone().unwrap_or_else(|| "-".into()),
                f.detail.clone(),
            ]
        })
        .collect();
    text.push_str(&table(
        &["finding", "partition", "file", "detail"],
        &rows,
        &[],
    ));
    text.push_str(&format!("\n{} finding(s)\n", r.findings.len()));
    text
}

/// Lists the resolved partitions of a command that acts, on stderr.
pub fn resolved(ids: &[&str]) {
    if ids.len() <= 12 {
        note(&format!(
            "selected {} partition(s): {}",
            ids.len(),
            ids.join(", ")
        ));
    } else {
        note(&format!(
            "selected {} partitions: {}, ... {}",
            ids.len(),
            ids[..3].join(", "),
            ids[ids.len() - 1]
        ));
    }
}

/// A progress bar over files and bytes, on stderr, only when stderr is a terminal.
pub fn progress(
    label: &str,
    files: u64,
    total_bytes: u64,
) -> Option<(indicatif::ProgressBar, Progress)> {
    if !std::io::stderr().is_terminal() || files < 2 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total_bytes);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(format!("{label} {files} files"));
    let b = bar.clone();
    let cached = std::sync::atomic::AtomicU64::new(0);
    let label = label.to_string();
    Some((
        bar,
        std::sync::Arc::new(move |bytes, from_cache| {
            if from_cache {
                let n = cached.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                b.set_message(format!("{label} {files} files ({n} from the cache)"));
            }
            b.inc(bytes);
        }),
    ))
}

pub fn plan(p: &Plan, jobs: usize) -> String {
    let rows: Vec<Vec<String>> = p
        .partitions
        .iter()
        .map(|q| {
            vec![
                q.partition.to_string(),
                q.files.len().to_string(),
                bytes(q.bytes),
                q.rows.to_string(),
            ]
        })
        .collect();
    let mut text = table(
        &["partition", "files", "bytes", "rows"],
        &rows,
        &["files", "bytes", "rows"],
    );
    let t = &p.totals;
    text.push_str(&format!(
        "\n{} partitions, {} files, {}, {} rows\n",
        t.partitions,
        t.files,
        bytes(t.bytes),
        t.rows,
    ));
    if let Some(e) = &p.estimate {
        text.push_str(&estimate(e, jobs));
    }
    text
}

/// A plan's estimate: the time, how it was measured, and the cost.
pub fn estimate(e: &backfill::plan::Estimate, jobs: usize) -> String {
    let c = &e.cost;
    let mut text = format!(
        "estimate: {:.1} s for the {} with {jobs} jobs ({})\n",
        e.seconds, e.of, e.method
    );
    let mut cost = format!("cost: reads {}", bytes(c.bytes_read));
    if e.of == "run" {
        cost.push_str(&format!(
            ", writes {}, keeps {} of backups until released",
            bytes(c.bytes_written),
            bytes(c.backup_bytes)
        ));
    }
    match &c.requests {
        Some(r) => cost.push_str(&format!(
            "; {} requests ({} list, {} get, {} head, {} put, {} copy, {} delete)",
            r.total(),
            r.list,
            r.get,
            r.head,
            r.put,
            r.copy,
            r.delete
        )),
        None => cost.push_str("; local disk: no requests"),
    }
    if let Some(p) = c.price {
        cost.push_str(&format!("; {p:.4} at the given prices"));
    }
    text.push_str(&cost);
    text.push('\n');
    text
}

/// What running the transform twice on the sample found.
pub fn sample_check(s: &backfill::run::SampleCheck) -> String {
    match (s.same, &s.detail) {
        (Some(true), _) => format!(
            "transform: deterministic on {} ({} rows read in two orders gave the same checksum; checked in {:.0} ms)\n",
            s.partition, s.rows, s.ms
        ),
        (Some(false), d) => format!(
            "transform: NOT deterministic on {} (allowed): {}\n",
            s.partition,
            d.as_deref().unwrap_or_default()
        ),
        (None, d) => format!(
            "transform: determinism not told on {}: {}\n",
            s.partition,
            d.as_deref().unwrap_or_default()
        ),
    }
}

fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

pub fn run_report(r: &RunReport) -> String {
    let rows: Vec<Vec<String>> = r
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.partition.to_string(),
                p.status.name().to_string(),
                opt(p.rows_before),
                opt(p.rows_after),
                p.checksum_before
                    .as_deref()
                    .map(short)
                    .unwrap_or_else(|| "-".into()),
                p.checksum_after
                    .as_deref()
                    .map(short)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut text = format!("run {} on {}\n\n", r.run_id, r.table);
    text.push_str(&table(
        &[
            "partition",
            "status",
            "rows_before",
            "rows_after",
            "checksum_before",
            "checksum_after",
        ],
        &rows,
        &["rows_before", "rows_after"],
    ));
    let notes: Vec<&PartitionReport> = r
        .partitions
        .iter()
        .filter(|p| p.error.is_some() || p.schema_change.is_some() || p.note.is_some())
        .collect();
    if !notes.is_empty() {
        text.push('\n');
        for p in notes {
            if let Some(n) = &p.note {
                text.push_str(&format!("{}: {n}\n", p.partition));
            }
            if let Some(e) = &p.error {
                text.push_str(&format!("{}: {e}\n", p.partition));
            }
            if let Some(c) = &p.schema_change {
                text.push_str(&format!("{}: schema change: {c}\n", p.partition));
            }
        }
    }
    let s = &r.summary;
    text.push_str(&format!(
        "\n{} rewritten, {} unchanged, {} failed, {} deleted, {} kept, {} skipped; rows {} -> {} ({:+})\n",
        s.rewritten, s.unchanged, s.failed, s.deleted, s.kept, s.skipped, s.rows_before, s.rows_after, s.rows_delta
    ));
    if r.busy() {
        text.push_str(
            "the failed partitions are only busy (held by another run or worker): the same command again later finishes them (exit 75), or with --wait SECS it waits\n",
        );
    }
    if let Some(e) = &r.estimate {
        text.push_str(&format!(
            "took {:.1} s and wrote {}; the plan estimated {:.1} s and {}\n",
            r.wall_ms / 1000.0,
            bytes(s.bytes_written),
            e.seconds,
            bytes(e.cost.bytes_written)
        ));
    }
    if let Some(s) = r.preflight.as_ref().and_then(|p| p.sample.as_ref()) {
        text.push_str(&sample_check(s));
    }
    text
}

pub fn rollback(r: &RollbackReport) -> String {
    let rows: Vec<Vec<String>> = r
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.partition.to_string(),
                p.status.clone(),
                p.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut text = format!("rollback of run {} on {}\n\n", r.run_id, r.table);
    if !rows.is_empty() {
        text.push_str(&table(&["partition", "status", "reason"], &rows, &[]));
        text.push('\n');
    }
    text.push_str(&format!(
        "{} rolled back, {} skipped\n",
        r.rolled_back, r.skipped
    ));
    text
}

pub fn runs(runs: &[RunInfo]) -> String {
    if runs.is_empty() {
        return "no runs\n".into();
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.run_id.clone(),
                r.started_at.clone(),
                r.sql_hash.clone(),
                r.selection.clone(),
                r.partitions.to_string(),
                r.rewritten.to_string(),
                r.unchanged.to_string(),
                r.failed.to_string(),
                if r.released {
                    format!("{} (released)", r.status)
                } else {
                    r.status.clone()
                },
            ]
        })
        .collect();
    table(
        &[
            "run_id",
            "started",
            "sql",
            "selection",
            "partitions",
            "rewritten",
            "unchanged",
            "failed",
            "status",
        ],
        &rows,
        &["partitions", "rewritten", "unchanged", "failed"],
    )
}

/// What the checksum cache did, on stderr (the output stays the command's).
pub fn cache(report: &CacheReport) {
    for n in &report.notes {
        note(&format!("note: {n}"));
    }
    note(&format!(
        "checksum cache: {} file(s) read, {} from the cache ({} entries, {} at {})",
        report.files_read,
        report.files_cached,
        report.entries,
        bytes(report.bytes),
        report.location
    ));
}

/// One run: its history line, a count per state, then each partition.
pub fn run_detail(run: &RunDetail) -> String {
    let mut out = runs(std::slice::from_ref(&run.info));
    let mut counts: std::collections::BTreeMap<_, usize> = Default::default();
    for p in &run.partitions {
        *counts.entry(p.state).or_default() += 1;
    }
    let counts: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.name()))
        .collect();
    out.push_str(&format!("\n{}\n\n", counts.join(", ")));
    let opt = |v: &Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let rows: Vec<Vec<String>> = run
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.partition.to_string(),
                p.state.name().to_string(),
                opt(&p.rows_before),
                opt(&p.rows_after),
                p.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&table(
        &["partition", "state", "rows_before", "rows_after", "detail"],
        &rows,
        &["rows_before", "rows_after"],
    ));
    out
}

/// A progress bar over a run's bytes for `run`, only on a terminal: its ETA is the run's
/// own pace, in bytes (partitions differ in size).
pub fn run_progress(
    table: &backfill::table::Table,
) -> Option<(indicatif::ProgressBar, backfill::run::Progress)> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let sizes: std::collections::HashMap<String, u64> = table
        .partitions
        .iter()
        .map(|p| (p.id.to_string(), p.bytes()))
        .collect();
    let total = table.partitions.len();
    let bar = indicatif::ProgressBar::new(table.bytes().max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(format!("0/{total} partitions"));
    let b = bar.clone();
    let done = std::sync::atomic::AtomicUsize::new(0);
    Some((
        bar,
        std::sync::Arc::new(move |p: &PartitionReport| {
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            b.set_message(format!("{n}/{total} partitions"));
            b.inc(sizes.get(p.partition.as_str()).copied().unwrap_or(0));
        }),
    ))
}

pub fn bench(b: &backfill::bench::BenchReport) -> String {
    let mut text = format!(
        "bench on {}: {} partitions, {} rows, {}, {} jobs\n\n",
        b.table,
        b.partitions,
        b.rows,
        bytes(b.bytes),
        b.jobs
    );
    let rows: Vec<Vec<String>> = b
        .phases
        .iter()
        .map(|p| {
            vec![
                p.phase.clone(),
                format!("{:.2}", p.seconds),
                format!("{:.0}", p.rows_per_second),
                format!("{:.1}", p.mb_per_second),
            ]
        })
        .collect();
    text.push_str(&table(
        &["phase", "seconds", "rows/s", "MB/s"],
        &rows,
        &["seconds", "rows/s", "MB/s"],
    ));
    text.push_str(&format!(
        "\nsnapshot: {:.2} s, {:.0} rows/s\nrun:      {:.2} s, {:.0} rows/s; per partition p50 {:.1} ms, p95 {:.1} ms\nchecksums: {:.0} % of the computing phases (read, transform, checksum, encode)\npeak memory: {:.0} MiB\n",
        b.snapshot_seconds, b.snapshot_rows_per_second, b.run_seconds, b.run_rows_per_second, b.partition_ms_p50, b.partition_ms_p95, b.checksum_share * 100.0, b.peak_rss_mb
    ));
    text.push_str(
        "(phase seconds are summed over partitions; write and commit include waiting on storage)\n",
    );
    text
}
