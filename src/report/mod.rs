//! Reports: one self-contained HTML page (no network: its style, script and charts are
//! inline) of a snapshot, a diff, a verify or a run, with a partition calendar.
//!
//! - The calendar has one cell per partition: days as cells, weeks as columns, one row of
//!   weeks per year (when the first key is a date), and one calendar per value of the
//!   other keys (`region=eu`, `region=us`); other first keys are laid out in order.
//! - Cells are coloured by what the page is about (diff status, run status, findings) or
//!   by rows, and a button switches between the two; hovering a cell shows its partition,
//!   rows and checksums.
//! - The summary, the findings, the changed partitions and the run history are tables.
//!
//! Pure: a page is built from reports the library already made, as a `String`.

mod calendar;

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::diff::Diff;
use crate::run::{RunHistory, RunReport};
use crate::snapshot::Snapshot;
use crate::table::PartitionId;
use crate::verify::VerifyReport;

pub use calendar::Cell;

/// A page before it is written out.
struct Page {
    title: String,
    subtitle: String,
    /// Which colourings the calendar has (`status`, `rows`), the first one shown first.
    views: Vec<&'static str>,
    cells: Vec<Cell>,
    /// Label and value, each with an id for scripts (`sum-<id>`).
    summary: Vec<(&'static str, String, String)>,
    tables: Vec<Table>,
    /// Statuses in the legend, in this order, with their names.
    legend: Vec<(&'static str, &'static str)>,
    /// Days of the first key with no partition that should have one (`verify`'s gaps).
    missing_days: std::collections::BTreeSet<chrono::NaiveDate>,
}

/// A table of the page.
struct Table {
    title: String,
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

/// The report of a snapshot: rows per partition.
pub fn snapshot(s: &Snapshot) -> String {
    let cells = s
        .partitions
        .iter()
        .map(|p| {
            Cell::new(
                &p.partition,
                None,
                Some(p.rows),
                format!(
                    "{}\n{} rows, {} file(s), {} bytes\nchecksum {}",
                    p.partition, p.rows, p.files, p.bytes, p.checksum
                ),
            )
        })
        .collect();
    Page {
        title: format!("Snapshot of {}", s.table),
        subtitle: format!(
            "taken {}, checksum version {}",
            s.taken_at, s.checksum_version
        ),
        views: vec!["rows"],
        cells,
        summary: vec![
            (
                "partitions",
                "partitions".into(),
                s.totals.partitions.to_string(),
            ),
            ("rows", "rows".into(), s.totals.rows.to_string()),
            ("files", "files".into(), s.totals.files.to_string()),
            (
                "bytes",
                "bytes".into(),
                crate::plan::human_bytes(s.totals.bytes),
            ),
        ],
        tables: Vec::new(),
        legend: Vec::new(),
        missing_days: Default::default(),
    }
    .render()
}

/// The report of a diff; `before` and `after` are the two sides it compared.
pub fn diff(d: &Diff, before: &Snapshot, after: &Snapshot) -> String {
    let rows_of = |s: &Snapshot| -> BTreeMap<PartitionId, u64> {
        s.partitions
            .iter()
            .map(|p| (p.partition.clone(), p.rows))
            .collect()
    };
    let (rows_before, rows_after) = (rows_of(before), rows_of(after));
    let checksums: BTreeMap<&PartitionId, &str> = after
        .partitions
        .iter()
        .map(|p| (&p.partition, p.checksum.as_str()))
        .collect();
    let mut cells = Vec::new();
    for p in &d.unchanged {
        let rows = rows_after.get(p).copied();
        cells.push(Cell::new(
            p,
            Some("unchanged"),
            rows,
            format!(
                "{p}\nunchanged, {} rows\nchecksum {}",
                rows.unwrap_or(0),
                short(checksums.get(p).copied().unwrap_or("-"))
            ),
        ));
    }
    for c in &d.changed {
        let columns = match &c.columns {
            Some(cols) if !cols.is_empty() => format!("\ncolumns: {}", cols.join(", ")),
            _ => String::new(),
        };
        cells.push(Cell::new(
            &c.partition,
            Some("changed"),
            Some(c.rows_after),
            format!(
                "{}\nchanged: {} -> {} rows ({:+}){columns}\nchecksum {} -> {}",
                c.partition,
                c.rows_before,
                c.rows_after,
                c.rows_delta,
                short(&c.checksum_before),
                short(&c.checksum_after)
            ),
        ));
    }
    for m in &d.missing {
        cells.push(Cell::new(
            &m.partition,
            Some("missing"),
            Some(0),
            format!(
                "{}\nmissing: {} rows before, none after",
                m.partition,
                rows_before.get(&m.partition).copied().unwrap_or(m.rows)
            ),
        ));
    }
    for n in &d.new {
        cells.push(Cell::new(
            &n.partition,
            Some("new"),
            Some(n.rows),
            format!("{}\nnew: {} rows", n.partition, n.rows),
        ));
    }
    let s = &d.summary;
    let changed = Table {
        title: "Changed partitions".into(),
        headers: vec!["partition", "rows before", "rows after", "delta", "columns"],
        rows: d
            .changed
            .iter()
            .map(|c| {
                vec![
                    c.partition.to_string(),
                    c.rows_before.to_string(),
                    c.rows_after.to_string(),
                    format!("{:+}", c.rows_delta),
                    c.columns
                        .as_ref()
                        .map(|c| c.join(", "))
                        .unwrap_or_else(|| "unknown (no per-column checksums)".into()),
                ]
            })
            .chain(d.missing.iter().map(|m| {
                vec![
                    format!("{} (missing)", m.partition),
                    m.rows.to_string(),
                    "-".into(),
                    format!("{:+}", -(m.rows as i64)),
                    String::new(),
                ]
            }))
            .chain(d.new.iter().map(|n| {
                vec![
                    format!("{} (new)", n.partition),
                    "-".into(),
                    n.rows.to_string(),
                    format!("{:+}", n.rows),
                    String::new(),
                ]
            }))
            .collect(),
    };
    Page {
        title: format!("Diff: {} against {}", d.after, d.before),
        subtitle: if d.identical {
            "identical".into()
        } else {
            "different".into()
        },
        views: vec!["status", "rows"],
        cells,
        summary: [
            ("unchanged", "unchanged".into(), s.unchanged.to_string()),
            ("changed", "changed".into(), s.changed.to_string()),
            ("missing", "missing".into(), s.missing.to_string()),
            ("new", "new".into(), s.new.to_string()),
        ]
        .into_iter()
        .chain(rows_summary(s.rows_before, s.rows_after, s.rows_delta))
        .collect(),
        tables: vec![changed],
        legend: vec![
            ("unchanged", "unchanged"),
            ("changed", "changed"),
            ("missing", "missing"),
            ("new", "new"),
        ],
        missing_days: Default::default(),
    }
    .render()
}

/// The report of a verify: each partition verified, with or without findings.
pub fn verify(r: &VerifyReport) -> String {
    let mut found: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for f in &r.findings {
        if let Some(p) = &f.partition {
            found.entry(p.as_str()).or_default().push(f.kind.name());
        }
    }
    let mut cells: Vec<Cell> = r
        .partition_rows
        .iter()
        .map(|(p, rows)| {
            let kinds = found.remove(p.as_str());
            let (status, what) = match &kinds {
                Some(k) => ("finding", format!("\n{}", k.join(", "))),
                None => ("ok", String::new()),
            };
            Cell::new(
                p,
                Some(status),
                Some(*rows),
                format!("{p}\n{rows} rows{what}"),
            )
        })
        .collect();
    // Findings about partitions that are not there: a day of the sequence is a gap of
    // the calendar; a partition (drift against a snapshot) a cell of its own.
    let mut missing_days = std::collections::BTreeSet::new();
    for (p, kinds) in found {
        match crate::table::value::parse_date(p) {
            Some(day) => {
                missing_days.insert(day);
            }
            None => cells.push(Cell::new(
                &PartitionId::new(p),
                Some("missing"),
                Some(0),
                format!("{p}\n{}", kinds.join(", ")),
            )),
        }
    }
    let findings = Table {
        title: "Findings".into(),
        headers: vec!["finding", "partition", "file", "detail"],
        rows: r
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
            .collect(),
    };
    Page {
        title: format!("Verify {}", r.table),
        subtitle: if r.ok {
            "ok: no findings".into()
        } else {
            format!("{} finding(s)", r.findings.len())
        },
        views: vec!["status", "rows"],
        cells,
        summary: vec![
            ("partitions", "partitions".into(), r.partitions.to_string()),
            ("files", "files".into(), r.files.to_string()),
            ("rows", "rows".into(), r.rows.to_string()),
            ("findings", "findings".into(), r.findings.len().to_string()),
        ],
        tables: vec![findings],
        legend: vec![
            ("ok", "no finding"),
            ("finding", "finding"),
            ("missing", "missing"),
        ],
        missing_days,
    }
    .render()
}

/// The report of a run, with the table's run history when given.
pub fn run(r: &RunReport, history: Option<&RunHistory>) -> String {
    let cells = r
        .partitions
        .iter()
        .map(|p| {
            let rows = p.rows_after.or(p.rows_before);
            let mut tip = format!(
                "{}\n{}: {} -> {} rows",
                p.partition,
                p.status.name(),
                opt(p.rows_before),
                opt(p.rows_after)
            );
            if let (Some(b), Some(a)) = (&p.checksum_before, &p.checksum_after) {
                let _ = write!(tip, "\nchecksum {} -> {}", short(b), short(a));
            }
            if let Some(e) = &p.error {
                let _ = write!(tip, "\n{e}");
            }
            Cell::new(&p.partition, Some(p.status.name()), rows, tip)
        })
        .collect();
    let s = &r.summary;
    let partitions = Table {
        title: "Partitions".into(),
        headers: vec!["partition", "status", "rows before", "rows after", "note"],
        rows: r
            .partitions
            .iter()
            .map(|p| {
                vec![
                    p.partition.to_string(),
                    p.status.name().to_string(),
                    opt(p.rows_before),
                    opt(p.rows_after),
                    p.error
                        .clone()
                        .or_else(|| p.note.clone())
                        .or_else(|| p.schema_change.clone())
                        .unwrap_or_default(),
                ]
            })
            .collect(),
    };
    let mut tables = vec![partitions];
    if let Some(h) = history {
        tables.push(Table {
            title: "Run history".into(),
            headers: vec![
                "run",
                "started",
                "sql",
                "selection",
                "partitions",
                "rewritten",
                "status",
            ],
            rows: h
                .runs
                .iter()
                .map(|i| {
                    vec![
                        i.run_id.clone(),
                        i.started_at.clone(),
                        i.sql_hash.clone(),
                        i.selection.clone(),
                        i.partitions.to_string(),
                        i.rewritten.to_string(),
                        i.status.clone(),
                    ]
                })
                .collect(),
        });
    }
    let mut summary = vec![
        ("rewritten", "rewritten".into(), s.rewritten.to_string()),
        ("unchanged", "unchanged".into(), s.unchanged.to_string()),
        ("failed", "failed".into(), s.failed.to_string()),
        ("deleted", "deleted".into(), s.deleted.to_string()),
        ("kept", "kept".into(), s.kept.to_string()),
    ];
    summary.extend(rows_summary(s.rows_before, s.rows_after, s.rows_delta));
    summary.push((
        "wall",
        "took".into(),
        format!("{:.1} s", r.wall_ms / 1000.0),
    ));
    if let Some(e) = &r.estimate {
        summary.push((
            "estimate",
            "estimated".into(),
            format!("{:.1} s", e.seconds),
        ));
    }
    Page {
        title: format!("Run {} on {}", r.run_id, r.table),
        subtitle: format!("sql {}", r.sql_hash),
        views: vec!["status", "rows"],
        cells,
        summary,
        tables,
        legend: vec![
            ("rewritten", "rewritten"),
            ("unchanged", "unchanged"),
            ("failed", "failed"),
            ("deleted", "deleted"),
            ("kept", "kept"),
            ("skipped", "skipped"),
        ],
        missing_days: Default::default(),
    }
    .render()
}

/// Rows before and after, and their difference, as summary entries.
fn rows_summary(before: u64, after: u64, delta: i64) -> [(&'static str, String, String); 3] {
    [
        ("rows-before", "rows before".into(), before.to_string()),
        ("rows-after", "rows after".into(), after.to_string()),
        ("rows-delta", "rows delta".into(), format!("{delta:+}")),
    ]
}

fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn short(checksum: &str) -> &str {
    &checksum[..checksum.len().min(16)]
}

/// Text made safe inside HTML elements and attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

impl Page {
    fn render(mut self) -> String {
        calendar::bin_rows(&mut self.cells);
        let mut h = String::with_capacity(512 + self.cells.len() * 220);
        let view = self.views.first().copied().unwrap_or("rows");
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width\">\
             <title>{}</title><style>{STYLE}</style></head>\n\
             <body class=\"view-{view}\" data-partitions=\"{}\">\n<header><h1>{}</h1><p>{}</p></header>\n",
            esc(&self.title),
            self.cells.len(),
            esc(&self.title),
            esc(&self.subtitle)
        );
        h.push_str("<section class=\"summary\">");
        for (id, label, value) in &self.summary {
            let _ = write!(
                h,
                "<div class=\"stat\"><b id=\"sum-{id}\">{}</b><span>{}</span></div>",
                esc(value),
                esc(label)
            );
        }
        h.push_str("</section>\n<section class=\"calendar\"><h2>Partitions</h2>");
        if self.views.len() > 1 {
            h.push_str("<p class=\"views\">colour by ");
            for v in &self.views {
                let _ = write!(h, "<button data-view=\"{v}\">{v}</button> ");
            }
            h.push_str("</p>");
        }
        h.push_str("<p class=\"legend\">");
        for (status, name) in &self.legend {
            let _ = write!(
                h,
                "<span class=\"key status\"><i data-status=\"{status}\"></i>{name}</span>"
            );
        }
        h.push_str("<span class=\"key rows\">rows: fewer <i data-rows=\"1\"></i><i data-rows=\"2\"></i><i data-rows=\"3\"></i><i data-rows=\"4\"></i><i data-rows=\"5\"></i> more; <i data-rows=\"0\"></i> none</span></p>\n");
        h.push_str("<div class=\"groups\">");
        calendar::render(&mut h, &self.cells, &self.missing_days);
        h.push_str("</div>");
        h.push_str("</section>\n");
        for t in &self.tables {
            let _ = write!(h, "<section><h2>{} ({})</h2>", esc(&t.title), t.rows.len());
            if t.rows.is_empty() {
                h.push_str("<p>none</p></section>\n");
                continue;
            }
            h.push_str("<table class=\"rows\"><tr>");
            for c in &t.headers {
                let _ = write!(h, "<th>{}</th>", esc(c));
            }
            h.push_str("</tr>");
            for r in &t.rows {
                h.push_str("<tr>");
                for c in r {
                    let _ = write!(h, "<td>{}</td>", esc(c));
                }
                h.push_str("</tr>");
            }
            h.push_str("</table></section>\n");
        }
        let _ = write!(h, "<script>{SCRIPT}</script>\n</body></html>\n");
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
