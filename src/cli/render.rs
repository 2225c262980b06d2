//! The one module that prints: tables for people, JSON for scripts, progress on a terminal.

use std::io::{IsTerminal, Write};

use backfill::diff::Diff;
use backfill::snapshot::{Progress, Snapshot};
use backfill::verify::VerifyReport;

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
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn short(checksum: &str) -> String {
    checksum.chars().take(16).collect()
}

pub fn snapshot(s: &Snapshot, columns: bool) -> String {
    // With --columns, each column's checksum (first 8 hex digits) gets a column of its own.
    let names: Vec<String> = if columns {
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
                p.partition.clone(),
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
            c.partition.clone(),
            c.rows_before.to_string(),
            c.rows_after.to_string(),
            format!("{:+}", c.rows_delta),
            what.join("; "),
        ]);
    }
    for m in &d.missing {
        rows.push(vec![
            "missing".into(),
            m.partition.clone(),
            m.rows.to_string(),
            "-".into(),
            format!("{:+}", -(m.rows as i64)),
            String::new(),
        ]);
    }
    for n in &d.new {
        rows.push(vec![
            "new".into(),
            n.partition.clone(),
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
        "verified {} partitions, {} files, {} rows in {}\n",
        r.partitions, r.files, r.rows, r.table
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
    Some((bar, std::sync::Arc::new(move |_files, bytes| b.inc(bytes))))
}
