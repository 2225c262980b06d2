//! `--html` reports, opened in a real browser (headless Chromium): the DOM it builds holds
//! one cell per partition with the right status, and the summary's numbers; screenshots
//! are kept in the target folder (`reports/*.png`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{browse, put, rows, run_in, small_table, sql};

/// Where a test's screenshots go: kept after the tests, to look at.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("reports");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The partition cells of a DOM: partition -> status (empty when not coloured by one).
fn cells(dom: &str) -> BTreeMap<String, String> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[start..].find('"')? + start;
        Some(tag[start..end].to_string())
    };
    dom.split("<rect class=\"c\"")
        .skip(1)
        .map(|rest| {
            let tag = &rest[..rest.find('>').unwrap()];
            (
                attr(tag, "data-p").unwrap(),
                attr(tag, "data-status").unwrap_or_default(),
            )
        })
        .collect()
}

/// A summary number of a DOM, by its id (`sum-changed`).
fn summary(dom: &str, id: &str) -> String {
    let at = dom.find(&format!("id=\"sum-{id}\">")).expect(id) + id.len() + 10;
    dom[at..at + dom[at..].find('<').unwrap()].to_string()
}

fn count(cells: &BTreeMap<String, String>, status: &str) -> usize {
    cells.values().filter(|s| *s == status).count()
}

/// Opens `page` in Chromium, keeps a screenshot, and checks the page's script ran.
fn open(dir: &Path, page: &str) -> String {
    let png = artifacts().join(page.replace(".html", ".png"));
    let dom = browse(&dir.join(page), &png, 1100, 900);
    assert!(
        dom.contains("data-render-ms=\""),
        "the page's script did not run"
    );
    assert!(
        std::fs::metadata(&png).unwrap().len() > 1000,
        "{}",
        png.display()
    );
    dom
}

#[test]
fn reports_show_one_cell_per_partition_with_its_status_in_a_real_browser() {
    let (dir, table) = small_table(5);
    let d = dir.path();
    let out = run_in(
        d,
        &[
            "snapshot",
            "t",
            "--columns",
            "--out",
            "s.json",
            "--html",
            "snap.html",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("report written to snap.html"),
        "{}",
        out.stderr
    );
    let dom = open(d, "snap.html");
    let c = cells(&dom);
    assert_eq!(c.len(), 10);
    assert!(c.contains_key("day=2024-01-03/region=eu"));
    assert_eq!(summary(&dom, "partitions"), "10");
    assert_eq!(summary(&dom, "rows"), "30");

    // Another job: one partition gains a row, a day goes missing.
    put(
        &table,
        "day=2024-01-02/region=us",
        "late.parquet",
        &rows(&[(7, None)]),
    );
    std::fs::remove_dir_all(table.join("day=2024-01-04")).unwrap();
    let out = run_in(d, &["diff", "s.json", "t", "--html", "diff.html"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let dom = open(d, "diff.html");
    let c = cells(&dom);
    assert_eq!(c.len(), 10);
    assert_eq!(
        (
            count(&c, "unchanged"),
            count(&c, "changed"),
            count(&c, "missing")
        ),
        (7, 1, 2)
    );
    assert_eq!(c["day=2024-01-02/region=us"], "changed");
    assert_eq!(c["day=2024-01-04/region=eu"], "missing");
    assert_eq!(
        (
            summary(&dom, "changed"),
            summary(&dom, "missing"),
            summary(&dom, "rows-delta")
        ),
        ("1".into(), "2".into(), "-5".into())
    );

    let out = run_in(
        d,
        &[
            "verify",
            "t",
            "--expect-every",
            "day",
            "--html",
            "verify.html",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let dom = open(d, "verify.html");
    let c = cells(&dom);
    // Eight partitions verified; the missing day is a red gap in each region's calendar.
    assert_eq!((c.len(), count(&c, "ok")), (8, 8), "{c:?}");
    assert_eq!(
        dom.matches("data-status=\"missing\"><title>2024-01-04")
            .count(),
        2
    );
    assert_eq!(summary(&dom, "findings"), "1");
    assert!(dom.contains("missing_partition"));

    let q = sql(d, "u.sql", "SELECT id, upper(name) AS name FROM source");
    let out = run_in(d, &["run", "t", "--sql", &q, "--all", "--html", "run.html"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let dom = open(d, "run.html");
    let c = cells(&dom);
    assert_eq!(c.len(), 8);
    assert_eq!(
        count(&c, "rewritten").to_string(),
        summary(&dom, "rewritten")
    );
    assert_eq!(count(&c, "rewritten") + count(&c, "unchanged"), 8);
    assert!(
        dom.contains("Run history (1)"),
        "the run's history is a table"
    );
}

/// Seven years of days: one cell each, one row of weeks per year, a page that stays small.
#[test]
fn a_report_of_2526_daily_partitions_stays_small_and_whole() {
    let dir = tempfile::tempdir().unwrap();
    let start = chrono::NaiveDate::from_ymd_opt(1992, 1, 2).unwrap();
    for i in 0..2526i64 {
        let day = start + chrono::Duration::days(i);
        put(
            &dir.path().join("t"),
            &format!("day={day}"),
            "part-0.parquet",
            &rows(&[(i, Some("x"))]),
        );
    }
    let out = run_in(
        dir.path(),
        &["snapshot", "t", "--no-cache", "--html", "days.html"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let size = std::fs::metadata(dir.path().join("days.html"))
        .unwrap()
        .len();
    assert!(size < 1_000_000, "{size} bytes");
    let dom = open(dir.path(), "days.html");
    assert_eq!(cells(&dom).len(), 2526);
    assert_eq!(dom.matches("<svg class=\"year\"").count(), 7);
    let render = dom
        .split("data-render-ms=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or("?");
    eprintln!("report of 2526 partitions: {size} bytes, rendered in {render} ms");
}
