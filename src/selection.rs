//! `--where` / `--from` / `--to` / `--partition` -> the set of partitions a command acts on.
//!
//! Pure: works on the partition keys and typed values already discovered (or stored in
//! a snapshot). All given flags must hold (they intersect); no flag selects everything.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::DFSchema;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::table::{KeyType, PartitionKey, Typed};

/// The selection flags as the user gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Selection {
    /// `--where`: a SQL predicate over the partition keys.
    #[serde(rename = "where", skip_serializing_if = "Option::is_none", default)]
    pub filter: Option<String>,
    /// `--from`: the first value of the first key (inclusive).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from: Option<String>,
    /// `--to`: the last value of the first key (inclusive).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to: Option<String>,
    /// `--partition`: exact partitions, or leading keys.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub partitions: Vec<String>,
}

/// A partition as selection sees it: its id and its typed values.
pub struct Candidate<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its values, typed, in key order.
    pub typed: &'a [Typed],
}

impl Selection {
    /// Whether no flag was given.
    pub fn is_everything(&self) -> bool {
        self.filter.is_none()
            && self.from.is_none()
            && self.to.is_none()
            && self.partitions.is_empty()
    }

    /// The flags in command-line form, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(w) = &self.filter {
            parts.push(format!("--where {w:?}"));
        }
        if let Some(f) = &self.from {
            parts.push(format!("--from {f}"));
        }
        if let Some(t) = &self.to {
            parts.push(format!("--to {t}"));
        }
        for p in &self.partitions {
            parts.push(format!("--partition {p}"));
        }
        if parts.is_empty() {
            "all partitions".into()
        } else {
            parts.join(" ")
        }
    }

    /// Checks what can be checked without the table: `--where` parses as a SQL
    /// expression, each `--partition` is `key=value[/key2=value2]`. The keys and values
    /// are checked against the table by [`Selection::apply`].
    pub fn check(&self) -> Result<()> {
        if let Some(filter) = &self.filter {
            use datafusion::sql::sqlparser::{dialect::GenericDialect, parser::Parser};
            let parsed = Parser::new(&GenericDialect {})
                .try_with_sql(filter)
                .and_then(|mut p| {
                    let e = p.parse_expr()?;
                    p.expect_token(&datafusion::sql::sqlparser::tokenizer::Token::EOF)?;
                    Ok(e)
                });
            if let Err(e) = parsed {
                return Err(Error::Usage(format!(
                    "--where {filter:?} is not a SQL predicate ({e}); e.g. --where \"region = 'eu' AND event_date >= DATE '2024-01-03'\""
                )));
            }
        }
        for spec in &self.partitions {
            let parts: Vec<&str> = spec.split('/').filter(|p| !p.is_empty()).collect();
            if parts.is_empty() {
                return Err(Error::Usage(
                    "--partition needs key=value[/key2=value2], e.g. --partition event_date=2024-01-03".into(),
                ));
            }
            if let Some(part) = parts
                .iter()
                .find(|p| !matches!(p.split_once('='), Some((k, _)) if !k.is_empty()))
            {
                return Err(Error::Usage(format!(
                    "--partition {spec:?}: {part:?} is not key=value; e.g. --partition event_date=2024-01-03/region=eu"
                )));
            }
        }
        Ok(())
    }

    /// Indices of the candidates the selection keeps, in the candidates' order.
    ///
    /// Fails on bad flags (unknown key, unparsable value, bad SQL), and with
    /// [`Error::EmptySelection`] when flags were given and nothing matches.
    pub fn apply(&self, keys: &[PartitionKey], candidates: &[Candidate<'_>]) -> Result<Vec<usize>> {
        let mut keep = vec![true; candidates.len()];
        if self.from.is_some() || self.to.is_some() {
            let first = keys
                .first()
                .ok_or_else(|| Error::Usage("the table has no partition keys".into()))?;
            let bound = |flag: &str, v: &Option<String>| -> Result<Option<Typed>> {
                v.as_deref()
                    .map(|s| {
                        Typed::read(Some(s), first.key_type).ok_or_else(|| {
                            Error::Usage(format!(
                                "{flag} {s:?} is not a {} like the first partition key {}; e.g. {}",
                                first.key_type,
                                first.name,
                                example(first.key_type)
                            ))
                        })
                    })
                    .transpose()
            };
            let from = bound("--from", &self.from)?;
            let to = bound("--to", &self.to)?;
            if let (Some(f), Some(t)) = (&from, &to) {
                if f > t {
                    return Err(Error::Usage(format!(
                        "--from {f} is after --to {t}; swap them"
                    )));
                }
            }
            for (k, c) in keep.iter_mut().zip(candidates) {
                let v = &c.typed[0];
                let inside = *v != Typed::Null
                    && from.as_ref().is_none_or(|f| v >= f)
                    && to.as_ref().is_none_or(|t| v <= t);
                *k &= inside;
            }
        }
        if !self.partitions.is_empty() {
            let specs = self
                .partitions
                .iter()
                .map(|s| parse_partition_spec(s, keys))
                .collect::<Result<Vec<_>>>()?;
            for (k, c) in keep.iter_mut().zip(candidates) {
                *k &= specs
                    .iter()
                    .any(|spec| spec.iter().enumerate().all(|(i, v)| &c.typed[i] == v));
            }
        }
        if let Some(filter) = &self.filter {
            let mask = evaluate_where(filter, keys, candidates)?;
            for (k, m) in keep.iter_mut().zip(mask) {
                *k &= m;
            }
        }
        let selected: Vec<usize> = keep
            .iter()
            .enumerate()
            .filter(|(_, k)| **k)
            .map(|(i, _)| i)
            .collect();
        if selected.is_empty() && !candidates.is_empty() && !self.is_everything() {
            return Err(Error::EmptySelection(format!(
                "{} (the table has {} partitions)",
                self.describe(),
                candidates.len()
            )));
        }
        Ok(selected)
    }
}

fn example(t: KeyType) -> &'static str {
    match t {
        KeyType::Date => "2024-01-03",
        KeyType::Int => "42",
        KeyType::String => "eu",
    }
}

/// Parses `k=v[/k2=v2]`: a prefix of the table's keys, in order, values in the key's type.
fn parse_partition_spec(spec: &str, keys: &[PartitionKey]) -> Result<Vec<Typed>> {
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    let mut out = Vec::new();
    for (i, part) in spec.split('/').filter(|p| !p.is_empty()).enumerate() {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            Error::Usage(format!(
                "--partition {spec:?}: {part:?} is not key=value; e.g. {}=...",
                names.join("=.../")
            ))
        })?;
        let key = keys.get(i).filter(|key| key.name == k).ok_or_else(|| {
            Error::Usage(format!(
                "--partition {spec:?}: key {k:?} is not partition key number {} of [{}]; give keys in the table's order",
                i + 1,
                names.join(", ")
            ))
        })?;
        // Users may paste either the folder spelling or the plain value.
        let value = crate::table::unescape_value(v);
        let typed = Typed::read(value.as_deref(), key.key_type).ok_or_else(|| {
            Error::Usage(format!(
                "--partition {spec:?}: {v:?} is not a {} (key {k})",
                key.key_type
            ))
        })?;
        out.push(typed);
    }
    if out.is_empty() {
        return Err(Error::Usage("--partition needs key=value".into()));
    }
    Ok(out)
}

/// Evaluates a SQL predicate over one row per candidate, in DataFusion.
fn evaluate_where(
    filter: &str,
    keys: &[PartitionKey],
    candidates: &[Candidate<'_>],
) -> Result<Vec<bool>> {
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    let fields: Vec<Field> = keys
        .iter()
        .map(|k| {
            let dt = match k.key_type {
                KeyType::Date => DataType::Date32,
                KeyType::Int => DataType::Int64,
                KeyType::String => DataType::Utf8,
            };
            Field::new(&k.name, dt, true)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let columns: Vec<ArrayRef> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| -> ArrayRef {
            let values = candidates.iter().map(|c| &c.typed[i]);
            match k.key_type {
                KeyType::Date => Arc::new(Date32Array::from_iter(values.map(|v| match v {
                    Typed::Date(d) => Some(crate::table::value::days_since_epoch(*d)),
                    _ => None,
                }))),
                KeyType::Int => Arc::new(Int64Array::from_iter(values.map(|v| match v {
                    Typed::Int(x) => Some(*x),
                    _ => None,
                }))),
                KeyType::String => Arc::new(StringArray::from_iter(values.map(|v| match v {
                    Typed::Str(s) => Some(s.as_str()),
                    _ => None,
                }))),
            }
        })
        .collect();
    let batch =
        RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Usage(e.to_string()))?;
    let bad = |reason: String| {
        Error::Usage(format!(
            "--where {filter:?} is not a predicate over the partition keys [{}]: {reason}",
            names.join(", ")
        ))
    };
    let ctx = SessionContext::new();
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| bad(e.to_string()))?;
    let expr = ctx
        .parse_sql_expr(filter, &df_schema)
        .map_err(|e| bad(e.strip_backtrace().to_string()))?;
    let physical = ctx
        .create_physical_expr(expr, &df_schema)
        .map_err(|e| bad(e.strip_backtrace().to_string()))?;
    let result = physical
        .evaluate(&batch)
        .and_then(|v| v.into_array(batch.num_rows()))
        .map_err(|e| bad(e.strip_backtrace().to_string()))?;
    let mask = result
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| {
            bad(format!(
                "it gives {} values, not true/false",
                result.data_type()
            ))
        })?;
    Ok((0..mask.len())
        .map(|i| mask.is_valid(i) && mask.value(i))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn keys() -> Vec<PartitionKey> {
        vec![
            PartitionKey {
                name: "event_date".into(),
                key_type: KeyType::Date,
            },
            PartitionKey {
                name: "region".into(),
                key_type: KeyType::String,
            },
        ]
    }

    fn table() -> Vec<(String, Vec<Typed>)> {
        let mut out = Vec::new();
        for day in 1..=5 {
            for region in ["eu", "us"] {
                let d = NaiveDate::from_ymd_opt(2024, 1, day).unwrap();
                out.push((
                    format!("event_date={d}/region={region}"),
                    vec![Typed::Date(d), Typed::Str(region.into())],
                ));
            }
        }
        out.push((
            "event_date=__HIVE_DEFAULT_PARTITION__/region=eu".into(),
            vec![Typed::Null, Typed::Str("eu".into())],
        ));
        out
    }

    fn run(sel: Selection) -> Result<Vec<String>> {
        let t = table();
        let c: Vec<Candidate> = t.iter().map(|(id, v)| Candidate { id, typed: v }).collect();
        Ok(sel
            .apply(&keys(), &c)?
            .into_iter()
            .map(|i| t[i].0.clone())
            .collect())
    }

    #[test]
    fn from_to_is_inclusive_and_typed() {
        let got = run(Selection {
            from: Some("2024-01-02".into()),
            to: Some("2024-01-03".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            got,
            [
                "event_date=2024-01-02/region=eu",
                "event_date=2024-01-02/region=us",
                "event_date=2024-01-03/region=eu",
                "event_date=2024-01-03/region=us"
            ]
        );
    }

    #[test]
    fn where_and_partition_intersect() {
        let got = run(Selection {
            filter: Some("region = 'us' AND event_date >= DATE '2024-01-04'".into()),
            partitions: vec![
                "event_date=2024-01-05".into(),
                "event_date=2024-01-01".into(),
            ],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(got, ["event_date=2024-01-05/region=us"]);
    }

    #[test]
    fn null_partitions_are_selectable_by_is_null_only() {
        let got = run(Selection {
            filter: Some("event_date IS NULL".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(got, ["event_date=__HIVE_DEFAULT_PARTITION__/region=eu"]);
        let got = run(Selection {
            from: Some("2024-01-01".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(got.len(), 10);
    }

    #[test]
    fn nothing_matched_is_an_error() {
        let err = run(Selection {
            partitions: vec!["event_date=2030-01-01".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, Error::EmptySelection(_)), "{err}");
    }

    #[test]
    fn bad_flags_name_the_problem() {
        let err = run(Selection {
            filter: Some("colour = 'red'".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("[event_date, region]"), "{err}");
        let err = run(Selection {
            filter: Some("region = ".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("--where"), "{err}");
        let err = run(Selection {
            partitions: vec!["region=eu".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("key \"region\" is not partition key number 1"),
            "{err}"
        );
        let err = run(Selection {
            from: Some("yesterday".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("is not a date"), "{err}");
    }
}
