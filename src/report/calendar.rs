//! The partition calendar: one SVG cell per partition.
//!
//! - First key a date, days: one row of 53 weeks per year, Monday on top, as a wall
//!   calendar turned on its side; days between the first and the last partition that have
//!   none are drawn as gaps.
//! - First key a date, always the first of the month: one row of 12 months per year.
//! - Anything else: cells in partition order, 40 to a row.
//! - One calendar per value of the other keys (`region=eu`, `region=us`).

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{Datelike, NaiveDate};

use crate::table::PartitionId;

use super::esc;

/// One partition as a cell: where it goes, how it is coloured, what hovering says.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The partition.
    pub partition: PartitionId,
    status: Option<&'static str>,
    rows: Option<u64>,
    /// 0 for no rows, 1 to 5 by quantile of the page's partitions.
    bin: Option<u8>,
    tip: String,
    date: Option<NaiveDate>,
    /// The other keys' part of the folder path (`region=eu`), or empty.
    group: String,
}

impl Cell {
    /// A cell for `partition`, coloured by `status` and `rows`, saying `tip` on hover.
    pub fn new(
        partition: &PartitionId,
        status: Option<&'static str>,
        rows: Option<u64>,
        tip: String,
    ) -> Cell {
        let mut parts = partition.split('/');
        let first = parts
            .next()
            .and_then(|p| p.split_once('='))
            .and_then(|(_, v)| crate::table::unescape_value(v));
        let date = first.as_deref().and_then(crate::table::value::parse_date);
        Cell {
            partition: partition.clone(),
            status,
            rows,
            bin: None,
            tip,
            date,
            group: parts.collect::<Vec<_>>().join("/"),
        }
    }
}

/// Puts each cell's rows in one of five bins by quantile (0 for none).
pub(super) fn bin_rows(cells: &mut [Cell]) {
    let mut counts: Vec<u64> = cells
        .iter()
        .filter_map(|c| c.rows)
        .filter(|r| *r > 0)
        .collect();
    counts.sort_unstable();
    for c in cells.iter_mut() {
        c.bin = c.rows.map(|r| {
            if r == 0 {
                return 0;
            }
            let below = counts.partition_point(|x| *x < r);
            1 + (5 * below / counts.len().max(1)).min(4) as u8
        });
    }
}

const SIZE: u32 = 11;
const STEP: u32 = 13;
const LEFT: u32 = 34;
const TOP: u32 = 14;

/// A day (or month) between the first and the last partition that has none: `missing`
/// when one was expected there.
fn gap(h: &mut String, x: u32, y: u32, what: &str, missing: bool) {
    let (status, says) = if missing {
        (" data-status=\"missing\"", "missing (expected a partition)")
    } else {
        ("", "no partition")
    };
    let _ = write!(
        h,
        "<rect class=\"gap\" x=\"{x}\" y=\"{y}\" width=\"{SIZE}\" height=\"{SIZE}\"{status}><title>{what}: {says}</title></rect>"
    );
}

fn rect(h: &mut String, x: u32, y: u32, c: &Cell) {
    let _ = write!(
        h,
        "<rect class=\"c\" x=\"{x}\" y=\"{y}\" width=\"{SIZE}\" height=\"{SIZE}\" data-p=\"{}\"",
        esc(&c.partition)
    );
    if let Some(s) = c.status {
        let _ = write!(h, " data-status=\"{s}\"");
    }
    if let Some(b) = c.bin {
        let _ = write!(h, " data-rows=\"{b}\"");
    }
    let _ = write!(h, "><title>{}</title></rect>", esc(&c.tip));
}

/// Every cell, one calendar per group; `missing` days are gaps that should not be.
pub(super) fn render(
    h: &mut String,
    cells: &[Cell],
    missing: &std::collections::BTreeSet<NaiveDate>,
) {
    let mut groups: BTreeMap<&str, Vec<&Cell>> = BTreeMap::new();
    for c in cells {
        groups.entry(c.group.as_str()).or_default().push(c);
    }
    for (group, cells) in groups {
        h.push_str("<div class=\"group\">");
        if !group.is_empty() {
            let _ = write!(h, "<h3>{}</h3>", esc(group));
        }
        if cells.iter().all(|c| c.date.is_some()) {
            if cells.iter().all(|c| c.date.is_some_and(|d| d.day() == 1)) {
                months(h, &cells);
            } else {
                days(h, &cells, missing);
            }
        } else {
            in_order(h, &cells);
        }
        h.push_str("</div>");
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The cells by date, and the first and last date (`None` without dates).
fn dated<'a>(cells: &[&'a Cell]) -> Option<(BTreeMap<NaiveDate, &'a Cell>, NaiveDate, NaiveDate)> {
    let by_date: BTreeMap<NaiveDate, &Cell> =
        cells.iter().filter_map(|c| Some((c.date?, *c))).collect();
    let first = *by_date.keys().next()?;
    let last = *by_date.keys().next_back()?;
    Some((by_date, first, last))
}

fn days(h: &mut String, cells: &[&Cell], missing: &std::collections::BTreeSet<NaiveDate>) {
    let Some((by_date, first, last)) = dated(cells) else {
        return;
    };
    for year in first.year()..=last.year() {
        let jan1 = NaiveDate::from_ymd_opt(year, 1, 1).expect("a year's first day");
        let offset = jan1.weekday().num_days_from_monday();
        let week_of = |d: NaiveDate| (d.ordinal0() + offset) / 7;
        // Only the weeks the partitions span: a week of data is not drawn as a year.
        let from = if year == first.year() { first } else { jan1 };
        let to = if year == last.year() {
            last
        } else {
            NaiveDate::from_ymd_opt(year, 12, 31).expect("a year's last day")
        };
        let (w0, w1) = (week_of(from), week_of(to));
        let x_of = |week: u32| LEFT + (week - w0) * STEP;
        let _ = write!(
            h,
            "<svg class=\"year\" width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"{year}\">",
            LEFT + (w1 - w0 + 1) * STEP + 20,
            TOP + 7 * STEP
        );
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{}\">{year}</text>",
            TOP + 3 * STEP + 9
        );
        for (m, name) in MONTHS.iter().enumerate() {
            let d = NaiveDate::from_ymd_opt(year, m as u32 + 1, 1).expect("a month's first day");
            let week = week_of(d.max(from));
            let shown = d <= to && (d >= from || d.month() == from.month());
            if shown && week <= w1 {
                let _ = write!(h, "<text x=\"{}\" y=\"10\">{name}</text>", x_of(week));
            }
        }
        let mut d = from;
        while d <= to {
            let (x, y) = (
                x_of(week_of(d)),
                TOP + d.weekday().num_days_from_monday() * STEP,
            );
            match by_date.get(&d) {
                Some(c) => rect(h, x, y, c),
                None => gap(h, x, y, &d.to_string(), missing.contains(&d)),
            }
            d = d.succ_opt().expect("a next day");
        }
        h.push_str("</svg>");
    }
}

fn months(h: &mut String, cells: &[&Cell]) {
    let Some((by_date, first, last)) = dated(cells) else {
        return;
    };
    let years = (last.year() - first.year() + 1) as u32;
    let _ = write!(
        h,
        "<svg class=\"months\" width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"months\">",
        LEFT + 12 * STEP * 2,
        TOP + years * STEP
    );
    for (m, name) in MONTHS.iter().enumerate() {
        let _ = write!(
            h,
            "<text x=\"{}\" y=\"10\">{name}</text>",
            LEFT + m as u32 * STEP * 2
        );
    }
    for (i, year) in (first.year()..=last.year()).enumerate() {
        let y = TOP + i as u32 * STEP;
        let _ = write!(h, "<text x=\"0\" y=\"{}\">{year}</text>", y + 9);
        for m in 1..=12 {
            let d = NaiveDate::from_ymd_opt(year, m, 1).expect("a month's first day");
            let x = LEFT + (m - 1) * STEP * 2;
            match by_date.get(&d) {
                Some(c) => rect(h, x, y, c),
                None if d > first && d < last => gap(h, x, y, &format!("{year}-{m:02}"), false),
                None => {}
            }
        }
    }
    h.push_str("</svg>");
}

fn in_order(h: &mut String, cells: &[&Cell]) {
    const PER_ROW: u32 = 40;
    let rows = (cells.len() as u32).div_ceil(PER_ROW);
    let _ = write!(
        h,
        "<svg class=\"grid\" width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"partitions\">",
        PER_ROW * STEP,
        rows * STEP
    );
    for (i, c) in cells.iter().enumerate() {
        let i = i as u32;
        rect(h, (i % PER_ROW) * STEP, (i / PER_ROW) * STEP, c);
    }
    h.push_str("</svg>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_binned_by_quantile_and_none_is_zero() {
        let mut cells: Vec<Cell> = [0u64, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
            .iter()
            .map(|r| {
                Cell::new(
                    &PartitionId::new(format!("k={r}")),
                    None,
                    Some(*r),
                    String::new(),
                )
            })
            .collect();
        bin_rows(&mut cells);
        let bins: Vec<u8> = cells.iter().map(|c| c.bin.unwrap()).collect();
        assert_eq!(bins, [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    }

    #[test]
    fn a_cell_knows_its_day_and_group() {
        let c = Cell::new(
            &PartitionId::new("day=2024-01-03/region=eu"),
            Some("changed"),
            Some(3),
            String::new(),
        );
        assert_eq!(c.date, NaiveDate::from_ymd_opt(2024, 1, 3));
        assert_eq!(c.group, "region=eu");
    }
}
