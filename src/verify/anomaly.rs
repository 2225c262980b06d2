//! Volume anomalies: a partition whose row count is far from what the partitions before it
//! predict (`verify --rows-anomaly`).
//!
//! - Each partition is compared with a trailing window of earlier partitions of its group
//!   (the same values of every key but the first), in the order of the first key.
//! - When the first key is a date, the window holds earlier partitions of the same weekday,
//!   so a weekend that is always quieter is not an anomaly.
//! - Robustly: the window's median and median absolute deviation (MAD, scaled by 1.4826 to
//!   a standard deviation), so one bad day does not hide the next; the spread is at least
//!   5 % of the median, so a perfectly steady series does not flag a 1 % wobble.
//! - A partition is an anomaly when `|rows - median| / spread > threshold`; the expected
//!   range is `median ± threshold × spread`. Fewer than [`MIN_HISTORY`] earlier partitions:
//!   not judged.

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::table::PartitionId;

/// Earlier partitions needed before one is judged.
pub const MIN_HISTORY: usize = 4;
/// The default threshold, in robust standard deviations.
pub const THRESHOLD: f64 = 3.5;
/// Default window: earlier partitions of the same weekday (date keys), or earlier
/// partitions (other keys).
pub const WINDOW_WEEKDAYS: usize = 8;
/// Earlier partitions a partition is compared with when the first key is not a date.
pub const WINDOW: usize = 14;

/// The smallest spread, as a share of the median.
const MIN_SPREAD: f64 = 0.05;

/// One partition as the check sees it.
#[derive(Debug, Clone)]
pub struct Point {
    /// The partition.
    pub partition: PartitionId,
    /// The values of the keys after the first, joined: partitions of one group are
    /// compared with each other.
    pub group: String,
    /// The first key's date, when it is one (weekday-aware); else `None`.
    pub date: Option<NaiveDate>,
    /// Its rows.
    pub rows: u64,
}

/// How far from its window a partition may be.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AnomalyOptions {
    /// Robust standard deviations from the median that count as an anomaly.
    pub threshold: f64,
    /// Earlier partitions compared with (default [`WINDOW_WEEKDAYS`] or [`WINDOW`]).
    pub window: Option<usize>,
}

impl Default for AnomalyOptions {
    fn default() -> Self {
        AnomalyOptions {
            threshold: THRESHOLD,
            window: None,
        }
    }
}

/// A partition whose row count is out of its expected range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// The partition.
    pub partition: PartitionId,
    /// Its rows.
    pub rows: u64,
    /// The low end of the expected range.
    pub expected_low: u64,
    /// The high end of the expected range.
    pub expected_high: u64,
    /// The median of the window.
    pub median: f64,
    /// The earlier partitions it was compared with, and how they were chosen.
    pub references: usize,
    /// How the range was computed, in words.
    pub method: String,
}

/// The anomalies among `points`, which must be in the order of the first key within each
/// group (discovery's order).
pub fn row_count_anomalies(points: &[Point], options: &AnomalyOptions) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut groups: std::collections::BTreeMap<&str, Vec<&Point>> = Default::default();
    for p in points {
        groups.entry(p.group.as_str()).or_default().push(p);
    }
    for series in groups.values() {
        let weekdays = series.iter().all(|p| p.date.is_some());
        let window = options
            .window
            .unwrap_or(if weekdays { WINDOW_WEEKDAYS } else { WINDOW })
            .max(MIN_HISTORY);
        for (i, p) in series.iter().enumerate() {
            let earlier = series[..i].iter().rev().filter(|q| {
                !weekdays || q.date.map(|d| d.weekday()) == p.date.map(|d| d.weekday())
            });
            let refs: Vec<f64> = earlier.take(window).map(|q| q.rows as f64).collect();
            if refs.len() < MIN_HISTORY {
                continue;
            }
            let median = median(&refs);
            let mad = median_of(refs.iter().map(|r| (r - median).abs()).collect());
            let spread = (1.4826 * mad).max(MIN_SPREAD * median).max(1.0);
            let rows = p.rows as f64;
            if (rows - median).abs() / spread <= options.threshold {
                continue;
            }
            let half = options.threshold * spread;
            let method = if weekdays {
                format!(
                    "median and MAD of the {} previous {}s{}",
                    refs.len(),
                    p.date.expect("dated").weekday(),
                    group_of(p)
                )
            } else {
                format!(
                    "median and MAD of the {} previous partitions{}",
                    refs.len(),
                    group_of(p)
                )
            };
            out.push(Anomaly {
                partition: p.partition.clone(),
                rows: p.rows,
                expected_low: (median - half).max(0.0).ceil() as u64,
                expected_high: (median + half).floor() as u64,
                median,
                references: refs.len(),
                method,
            });
        }
    }
    out.sort_by(|a, b| a.partition.cmp(&b.partition));
    out
}

fn group_of(p: &Point) -> String {
    if p.group.is_empty() {
        String::new()
    } else {
        format!(" with {}", p.group)
    }
}

fn median(v: &[f64]) -> f64 {
    median_of(v.to_vec())
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Daily partitions from Monday 2024-01-01, one per value.
    fn days(rows: &[u64]) -> Vec<Point> {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let d = start + chrono::Duration::days(i as i64);
                Point {
                    partition: format!("day={d}").into(),
                    group: String::new(),
                    date: Some(d),
                    rows: *r,
                }
            })
            .collect()
    }

    /// A weekly shape with some noise: weekdays about 1,000 rows, weekends about 300.
    fn weekly(weeks: usize) -> Vec<u64> {
        (0..weeks * 7)
            .map(|i| {
                let noise = [0, 13, 27, 5, 31, 9, 18][(i * 3) % 7] as u64;
                if i % 7 >= 5 {
                    290 + noise / 2
                } else {
                    985 + noise
                }
            })
            .collect()
    }

    fn flagged(rows: &[u64]) -> Vec<String> {
        row_count_anomalies(&days(rows), &AnomalyOptions::default())
            .into_iter()
            .map(|a| a.partition.to_string())
            .collect()
    }

    #[test]
    fn a_dropped_day_and_a_doubled_day_are_anomalies() {
        let mut rows = weekly(8);
        rows[40] = 0; // a Saturday that lost its data
        rows[47] *= 2; // a Saturday loaded twice
        assert_eq!(flagged(&rows), ["day=2024-02-10", "day=2024-02-17"]);
        let a = &row_count_anomalies(&days(&rows), &AnomalyOptions::default())[0];
        assert_eq!(a.rows, 0);
        assert!(
            a.expected_low > 0 && a.expected_high < 2 * a.median as u64,
            "{a:?}"
        );
        assert!(a.method.contains("of the 5 previous Sats"), "{a:?}");
    }

    #[test]
    fn a_weekend_dip_is_not_an_anomaly_and_one_bad_day_does_not_hide_the_next() {
        assert_eq!(flagged(&weekly(8)), Vec::<String>::new());
        let mut rows = weekly(8);
        rows[35] = 0;
        rows[42] = 0; // the next Monday too: the median still stands
        assert_eq!(flagged(&rows), ["day=2024-02-05", "day=2024-02-12"]);
    }

    #[test]
    fn a_steady_ramp_is_not_an_anomaly() {
        let ramp: Vec<u64> = (0..60).map(|i| 1_000 + 25 * i).collect();
        assert_eq!(flagged(&ramp), Vec::<String>::new());
        let no_dates: Vec<Point> = days(&ramp)
            .into_iter()
            .map(|p| Point { date: None, ..p })
            .collect();
        assert!(row_count_anomalies(&no_dates, &AnomalyOptions::default()).is_empty());
    }

    #[test]
    fn groups_are_compared_only_with_themselves() {
        let mut points = days(&weekly(6));
        for p in &mut points {
            p.group = "region=eu".into();
        }
        let mut us = days(&weekly(6).iter().map(|r| r * 10).collect::<Vec<_>>());
        for p in &mut us {
            p.group = "region=us".into();
            p.partition = format!("{}/region=us", p.partition).into();
        }
        us[36].rows = 10;
        points.extend(us);
        let found = row_count_anomalies(&points, &AnomalyOptions::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].partition, "day=2024-02-06/region=us");
        assert!(found[0].method.ends_with("with region=us"), "{found:?}");
    }
}
